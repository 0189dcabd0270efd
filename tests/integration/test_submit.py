import pytest

from pipelines.cli import main
from pipelines.config import load_config
from pipelines.parameters import RELEASE_PARAMETERS
from pipelines.resources.workflows import release_template
from pipelines.runs import submit_parameters
from steps.argo.server import ArgoServer, ArgoServerError
from tests.support.emulators.argo_server_fixtures import ARGO_TEST_TOKEN

SHA = "9f1c2e3d4b5a69788776655443322110ffeeddcc"


@pytest.fixture
def cluster(argo_server_emulator, tmp_path, monkeypatch):
    """The Argo Server emulator holding the rendered template, and a config that points at it."""
    config_path = tmp_path / "hera_config.yaml"
    config_path.write_text(open("hera_config.yaml").read())
    monkeypatch.setenv("GSM_ARGO_HOST", argo_server_emulator.url)
    monkeypatch.setenv("GSM_ARGO_UI_URL", "https://argo.example.com")
    monkeypatch.setenv("ARGO_TOKEN", ARGO_TEST_TOKEN)
    config = load_config(config_path)
    argo_server_emulator.add_template(release_template(config).to_dict())
    argo_server_emulator.pending_seconds = 0.3
    argo_server_emulator.node_seconds = 0.05
    return argo_server_emulator, config_path


def test_submit_prints_name_and_ui_link(cluster, capsys):
    emu, config_path = cluster
    assert main(["submit", "--config", str(config_path), "--repo", "acme/data", "--sha", SHA]) == 0
    out = capsys.readouterr().out
    (workflow,) = emu.workflows()
    name = workflow["metadata"]["name"]
    assert f"submitted {name}" in out
    assert f"https://argo.example.com/workflows/argo/{name}" in out
    params = {p["name"]: p.get("value") for p in workflow["spec"]["arguments"]["parameters"]}
    assert params["repo"] == "acme/data" and params["sha"] == SHA and params["event"] == "push"
    assert params["installation-id"] == "11111111" and params["ref"] == "refs/heads/main"
    assert emu.invalid_requests == []
    (call,) = emu.calls_to("POST", "/api/v1/workflows/argo/submit")
    assert call.body["resourceKind"] == "WorkflowTemplate" and call.body["resourceName"] == "release-data-prep"


def test_wait_follows_past_pending_until_succeeded(cluster, capsys):
    emu, config_path = cluster
    rc = main(["submit", "--config", str(config_path), "--repo", "acme/data", "--sha", SHA, "--wait", "--poll", "0.05"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Pending" in out and out.strip().endswith("Succeeded")


@pytest.mark.parametrize("outcome", ["Failed", "Error"])
def test_wait_exits_1_when_the_run_does_not_succeed(cluster, capsys, outcome):
    emu, config_path = cluster
    emu.next_outcome = outcome
    rc = main(["submit", "--config", str(config_path), "--repo", "acme/data", "--sha", SHA, "--wait", "--poll", "0.05"])
    assert rc == 1
    assert outcome in capsys.readouterr().out


def test_pull_request_parameters(cluster):
    emu, config_path = cluster
    assert (
        main(
            [
                "submit",
                "--config",
                str(config_path),
                "--repo",
                "acme/data",
                "--sha",
                SHA,
                "--event",
                "pull_request",
                "--pr",
                "42",
            ]
        )
        == 0
    )
    params = {p["name"]: p.get("value") for p in emu.workflows()[0]["spec"]["arguments"]["parameters"]}
    assert params["pr-number"] == "42" and params["ref"] == "refs/pull/42/head" and params["event"] == "pull_request"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--repo", "acme/data", "--sha", "abc"], "not a full 40-character"),
        (["--repo", "nobody/none", "--sha", SHA], "not in repoRegistrations"),
        (["--repo", "acme/data", "--sha", SHA, "--event", "pull_request"], "needs --pr"),
    ],
)
def test_bad_input_is_refused_before_calling_the_server(cluster, capsys, argv, expected):
    emu, config_path = cluster
    assert main(["submit", "--config", str(config_path), *argv]) == 2
    assert expected in capsys.readouterr().err
    assert emu.calls == []


def test_auth_failure_and_missing_template_are_clear(cluster, capsys, monkeypatch):
    emu, config_path = cluster
    monkeypatch.setenv("ARGO_TOKEN", "wrong")
    assert main(["submit", "--config", str(config_path), "--repo", "acme/data", "--sha", SHA]) == 1
    assert "refused the token (401)" in capsys.readouterr().err
    server = ArgoServer(emu.url, "argo", ARGO_TEST_TOKEN)
    with pytest.raises(ArgoServerError, match="WorkflowTemplate 'nope' is not in namespace argo"):
        server.submit("nope", dict(RELEASE_PARAMETERS))


def test_unreachable_server(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GSM_ARGO_HOST", "http://127.0.0.1:9")
    assert main(["submit", "--repo", "acme/data", "--sha", SHA]) == 1
    assert "cannot reach the Argo Server" in capsys.readouterr().err


def test_server_lint_accepts_the_rendered_template(cluster):
    emu, config_path = cluster
    config = load_config(config_path)
    server = ArgoServer(emu.url, "argo", ARGO_TEST_TOKEN)
    assert server.lint_template(release_template(config).to_dict())["metadata"]["name"] == "release-data-prep"
    broken = release_template(config).to_dict()
    broken["spec"]["entrypoint"] = 42
    with pytest.raises(ArgoServerError, match="400"):
        server.lint_template(broken)


def test_submit_parameters_follow_the_contract_order():
    config = load_config("hera_config.yaml")
    params = submit_parameters(config, "globex/prices", SHA, "push", "")
    assert list(params) == list(RELEASE_PARAMETERS)
    assert params["installation-id"] == "987654321" and params["data-path"] == "data/release/"
