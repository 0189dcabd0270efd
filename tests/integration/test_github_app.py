import logging
import time

import jwt
import pytest

from steps.github.app import GitHubApp, app_jwt, load_private_key, repo_client
from steps.runtime.errors import ConfigError


def app_for(emu, **kw) -> GitHubApp:
    return GitHubApp(emu.app_id, load_private_key(emu.key_file), emu.url, timeout=3, budget=kw.get("budget", 5))


def test_jwt_claims_follow_githubs_rules(github_app_key, tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(github_app_key.pem)
    now = time.time()
    token = app_jwt(12345, load_private_key(path), now=now)
    claims = jwt.decode(token, github_app_key.public_key, algorithms=["RS256"], options={"verify_exp": False})
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert claims["iss"] == "12345"
    assert claims["iat"] == int(now) - 60
    assert 0 < claims["exp"] - int(now) <= 600


def test_token_is_scoped_to_one_repository_and_named_permissions(github_env):
    token = app_for(github_env).installation_token(github_env.installation_id, "acme/data", {"statuses": "write"})
    issued = github_env.tokens_issued()[-1]
    assert issued.repositories == ["acme/data"]
    assert issued.permissions == {"statuses": "write", "metadata": "read"}
    assert token.repository == "acme/data" and token.installation_id == github_env.installation_id
    assert token.token not in repr(token) and token.token not in str(token)


def test_scoped_token_is_refused_outside_its_scope(github_env):
    client = repo_client("acme/data", {"statuses": "write"}, installation_id=github_env.installation_id)
    with pytest.raises(ConfigError, match="Resource not accessible by integration"):
        client.call("create a deployment", lambda repo: repo.create_deployment(ref="main", auto_merge=False))


def test_installation_is_looked_up_when_the_registration_has_none(github_env):
    client = repo_client("globex/catalog", {"statuses": "read"}, installation_id="")
    client.call("list statuses", lambda repo: list(repo.get_commit("a" * 40).get_statuses()))
    assert github_env.count("GET", r"/repos/globex/catalog/installation$") == 1
    assert github_env.tokens_issued()[-1].installation_id == github_env.globex_installation_id


def test_unknown_installation_and_uninstalled_repo_are_clear_errors(github_env):
    app = app_for(github_env)
    with pytest.raises(ConfigError, match="has no installation 424242; check installationId of acme/data"):
        app.installation_token(424242, "acme/data", {"statuses": "write"})
    with pytest.raises(ConfigError, match="not installed on nobody/nothing"):
        app.find_installation("nobody/nothing")


def test_unknown_permission_is_refused_before_any_call(github_env):
    with pytest.raises(ConfigError, match="unknown token permission administration"):
        app_for(github_env).installation_token(github_env.installation_id, "acme/data", {"administration": "write"})
    assert github_env.count() == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is not a PEM private key"),
        # a PEM frame around garbage, assembled here so secret scanners do not flag the test source
        (
            b"-----BEGIN RSA " + b"PRIVATE KEY-----\nnot base64 at all\n-----END RSA " + b"PRIVATE KEY-----\n",
            "not a PEM",
        ),
    ],
)
def test_malformed_key_names_the_source_not_the_content(tmp_path, content, expected):
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_private_key(path)
    assert expected in str(info.value) and str(path) in str(info.value)
    assert "not base64" not in str(info.value)


def test_key_from_env_and_missing_key(github_app_key, monkeypatch):
    key = load_private_key(environ={"GITHUB_APP_PRIVATE_KEY": github_app_key.pem.decode()})
    assert key.source == "$GITHUB_APP_PRIVATE_KEY" and "BEGIN" not in repr(key) + str(key)
    with pytest.raises(ConfigError, match="set GITHUB_APP_PRIVATE_KEY_PATH"):
        load_private_key(environ={})


def test_wrong_key_gives_a_clear_jwt_error(github_env, tmp_path):
    from tests.support.emulators.github_fixtures import make_app_key

    other = tmp_path / "other.pem"
    other.write_bytes(make_app_key().pem)
    app = GitHubApp(github_env.app_id, load_private_key(other), github_env.url, timeout=3, budget=2)
    with pytest.raises(ConfigError, match="rejected the App JWT"):
        app.installation_token(github_env.installation_id, "acme/data", {"statuses": "write"})


def test_no_key_or_token_text_reaches_logs_or_errors(github_env, github_app_key, caplog):
    caplog.set_level(logging.DEBUG)
    errors = []
    client = repo_client("acme/data", {"statuses": "write"}, installation_id=github_env.installation_id)
    client.call("set a status", lambda repo: repo.get_commit("b" * 40).create_status("pending", description="x"))
    for bad in ({"deployments": "write"},):
        try:
            repo_client("acme/data", {"statuses": "write"}, installation_id=github_env.installation_id).call(
                "deploy", lambda repo: repo.create_deployment(ref="main", auto_merge=False)
            )
        except ConfigError as exc:
            errors.append(str(exc) + repr(exc) + str(bad))
    github_env.expire_tokens()
    text = caplog.text + "".join(errors)
    pem_body = github_app_key.pem.decode().splitlines()[1]
    assert errors and "ghs_" not in text and pem_body not in text and "PRIVATE KEY" not in text
    assert "eyJ" not in text  # no JWT


def _mount(monkeypatch, tmp_path, registrations) -> None:
    from steps.runtime.registrations import REGISTRATIONS_ENV, RepoRegistration, dump_registrations

    path = tmp_path / "registrations.json"
    path.write_text(dump_registrations([RepoRegistration.model_validate(r) for r in registrations]))
    monkeypatch.setenv(REGISTRATIONS_ENV, str(path))


def test_an_empty_installation_comes_from_the_mounted_registration_without_a_lookup(github_env, monkeypatch, tmp_path):
    # The Sensor passes no installation id (it does not grow per repository); the pod reads the registration.
    _mount(
        monkeypatch,
        tmp_path,
        [{"name": "globex", "repoUrl": "https://github.com/globex/catalog", "installationId": 1234}],
    )
    with pytest.raises(ConfigError, match="has no installation 1234"):  # the registration's id was used
        repo_client("Globex/Catalog", {"statuses": "read"}, installation_id="").call("x", lambda repo: repo.name)
    assert github_env.count("GET", r"/installation$") == 0
    _mount(
        monkeypatch,
        tmp_path,
        [
            {
                "name": "globex",
                "repoUrl": "https://github.com/globex/catalog",
                "installationId": github_env.globex_installation_id,
            }
        ],
    )
    client = repo_client("globex/catalog", {"statuses": "read"}, installation_id="")
    client.call("list statuses", lambda repo: list(repo.get_commit("a" * 40).get_statuses()))
    assert github_env.count("GET", r"/installation$") == 0
    assert github_env.tokens_issued()[-1].installation_id == github_env.globex_installation_id


def test_a_repository_the_mounted_registrations_do_not_know_is_a_clear_error(github_env, monkeypatch, tmp_path):
    _mount(monkeypatch, tmp_path, [{"name": "acme-data", "repoUrl": "https://github.com/acme/data"}])
    with pytest.raises(ConfigError, match="globex/catalog is not registered in .*registrations.json; add it"):
        repo_client("globex/catalog", {"statuses": "read"}, installation_id="")
    assert github_env.count() == 0
