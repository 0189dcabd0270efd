from pathlib import Path

import pytest
import yaml

from pipelines.config import ConfigFileError, env_overrides, load_config

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "hera_config.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def registration(**kw):
    return {"name": "acme-data", "repoUrl": "https://github.com/acme/data", "installationId": 11111111, **kw}


def test_committed_config_loads_with_registrations_over_two_installations():
    config = load_config(ROOT / "hera_config.yaml")
    ids = {r.installation_id for r in config.repo_registrations}
    assert len(config.repo_registrations) >= 3 and len(ids) == 2
    assert config.registration("ACME/data").name == "acme-data"
    assert config.image.tag == "0.1.0"


def test_defaults_apply(tmp_path):
    config = load_config(write(tmp_path, {"repoRegistrations": [registration()]}))
    reg = config.repo_registrations[0]
    assert reg.default_branch == "main" and reg.events == ["push", "pull_request"]
    assert config.github.status_context == "release-data-prep"
    assert config.github.api_url == "https://api.github.com"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"github": {"bogus": 1}}, "github.bogus: Extra inputs are not permitted"),
        ({"repoRegistrations": [registration(installationId="123")]}, "repoRegistrations[0].installationId"),
        (
            {"repoRegistrations": [registration(installationId=1.5)]},
            "repoRegistrations[0].installationId: Input should be a valid integer",
        ),
        (
            {"repoRegistrations": [registration(repoUrl="git@github.com:acme/data.git")]},
            "repoRegistrations[0].repoUrl: 'git@github.com:acme/data.git' is not a GitHub HTTPS URL",
        ),
        (
            {"repoRegistrations": [registration(repoUrl="http://github.com/acme/data")]},
            "repoRegistrations[0].repoUrl: 'http://github.com/acme/data' is not a GitHub HTTPS URL",
        ),
        (
            {"repoRegistrations": [registration(), registration(repoUrl="https://github.com/acme/x")]},
            "repoRegistrations[1].name: duplicate registration name 'acme-data' (also repoRegistrations[0])",
        ),
        (
            {"repoRegistrations": [registration(), registration(name="other")]},
            "repoRegistrations[1].repoUrl: acme/data is registered twice",
        ),
        ({"workflow": {"tableParallelism": 0}}, "workflow.tableParallelism"),
        (
            {"repoRegistrations": [registration(environments=[{"name": "prod", "after": "staging"}])]},
            "repoRegistrations[0].environments[0].after: 'prod' comes after unknown environment 'staging'",
        ),
        (
            {"repoRegistrations": [registration(installationId=None)]},
            "repoRegistrations[0].installationId: no installationId and no app id",
        ),
        (
            {
                "repoRegistrations": [
                    registration(environments=[{"name": "staging", "argocdApp": "shared"}]),
                    registration(
                        name="other",
                        repoUrl="https://github.com/acme/other",
                        environments=[{"name": "staging", "argocdApp": "shared"}],
                    ),
                ]
            },
            "repoRegistrations[1].environments[0].argocdApp: Application 'shared' is also used by "
            "repoRegistrations[0].environments[0].argocdApp",
        ),
        (
            {
                "repoRegistrations": [
                    registration(
                        environments=[
                            {"name": "a", "after": "c"},
                            {"name": "b", "after": "a"},
                            {"name": "c", "after": "b"},
                        ]
                    )
                ]
            },
            "repoRegistrations[0].environments: 'after' forms a cycle a -> c -> b -> a",
        ),
        (
            {
                "repoRegistrations": [
                    registration(appId=1),
                    registration(name="other", repoUrl="https://github.com/acme/other", appId=2),
                ]
            },
            "repoRegistrations[1].appId: installation 11111111 is given app ids 1 (repoRegistrations[0]) and 2",
        ),
        (
            {
                "repoRegistrations": [
                    registration(
                        installationId=None,
                        appId=5,
                        environments=[{"name": "staging", "argocdApp": "acme-data-staging"}],
                    )
                ]
            },
            "repoRegistrations[0].installationId: the registration has Argo CD applications",
        ),
        (
            {"repoRegistrations": [registration(environments=[{"name": "staging", "argocdApp": "Acme_Data"}])]},
            "repoRegistrations[0].environments[0].argocdApp",
        ),
        (
            {"repoRegistrations": [registration(dataPath="../etc")]},
            "repoRegistrations[0].dataPath: '../etc' must be a relative path inside the repository",
        ),
    ],
)
def test_invalid_config_names_file_key_path_and_fix(tmp_path, data, expected):
    path = write(tmp_path, data)
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}: {expected}" in message
    assert "Traceback" not in message


def test_every_conflict_is_reported_at_once(tmp_path):
    data = {
        "repoRegistrations": [
            registration(environments=[{"name": "staging", "argocdApp": "shared"}]),
            registration(environments=[{"name": "staging", "argocdApp": "shared"}]),
        ]
    }
    with pytest.raises(ConfigFileError) as info:
        load_config(write(tmp_path, data))
    message = str(info.value)
    assert "3 problem(s)" in message
    for where in ("repoRegistrations[1].name", "repoRegistrations[1].repoUrl", "environments[0].argocdApp"):
        assert where in message


def test_ghes_repo_urls_must_match_the_api_host(tmp_path):
    data = {
        "github": {"apiUrl": "https://ghe.example.com/api/v3", "appId": 7},
        "repoRegistrations": [registration(repoUrl="https://ghe.example.com/acme/data")],
    }
    config = load_config(write(tmp_path, data))
    assert config.github.is_enterprise and config.repo_registrations[0].full_name == "acme/data"
    data["repoRegistrations"][0]["repoUrl"] = "https://github.com/acme/data"
    with pytest.raises(ConfigFileError, match="does not match github.apiUrl"):
        load_config(write(tmp_path, data))


def test_large_installation_ids_stay_integers(tmp_path):
    config = load_config(write(tmp_path, {"repoRegistrations": [registration(installationId=98663092123)]}))
    assert config.repo_registrations[0].installation_id == 98663092123


def test_env_overrides_scalar_settings(tmp_path):
    path = write(tmp_path, {"s3": {"bucket": "from-file"}})
    config = load_config(
        path, environ={"GSM_S3_BUCKET": "from-env", "GSM_GITHUB_APP_ID": "42", "GSM_ARGO_VERIFY_TLS": "false"}
    )
    assert config.s3.bucket == "from-env"
    assert config.github.app_id == 42
    assert config.argo.verify_tls is False


def test_unknown_env_override_is_refused():
    with pytest.raises(ConfigFileError, match="GSM_GITHUB_NOPE names no setting"):
        env_overrides({"GSM_GITHUB_NOPE": "1"})


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigFileError, match="cannot read YAML"):
        load_config(write(tmp_path, "a: [b"))
    with pytest.raises(ConfigFileError, match="no such file"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigFileError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_deploys_that_cannot_fit_the_workflow_deadline_are_refused_at_load(tmp_path):
    envs = [
        {"name": "staging", "argocdApp": "data-staging"},
        {"name": "production", "argocdApp": "data-prod", "after": "staging", "argocd": {"destinationNamespace": "d"}},
    ]
    data = {
        "workflow": {"activeDeadlineSeconds": 2400, "retryLimit": 3},
        "argocd": {"timeoutSeconds": 900, "stabilitySeconds": 30},
        "repoRegistrations": [registration(environments=envs)],
    }
    with pytest.raises(ConfigFileError) as info:
        load_config(write(tmp_path, data))
    message = str(info.value)
    # 2 x (900 + 30 + 3 x 120) = 2580 s of deploys, + 300 s for the data steps
    assert "workflow.activeDeadlineSeconds" in message and "2580 s" in message and "at least 2880" in message
    data["workflow"]["activeDeadlineSeconds"] = 2880
    assert load_config(write(tmp_path, data)).workflow.active_deadline_seconds == 2880


def test_a_registrations_own_s3_secret_needs_the_shared_one_as_the_rest_and_is_listed(tmp_path):
    from pipelines.resources.secrets import layout

    data = {"s3": {"credentialsSecret": None}, "repoRegistrations": [registration(s3CredentialsSecret="s3-acme")]}
    with pytest.raises(
        ConfigFileError, match=r"repoRegistrations\[0\]\.s3CredentialsSecret: .*set s3\.credentialsSecret"
    ):
        load_config(write(tmp_path, data))
    data["s3"] = {"credentialsSecret": "s3-credentials"}
    config = load_config(write(tmp_path, data))
    names = {spec.name for spec in layout(config)}
    assert {"s3-credentials", "s3-acme"} <= names
