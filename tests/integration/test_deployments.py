"""GitHub deployments gated on Argo CD: the step functions against both emulators over real HTTP."""

import json
import threading
import time
from pathlib import Path

import pytest
import yaml

from steps.argocd.watch import COMPARE_AFTER_SECONDS
from steps.deploy import deactivate_preview, deploy_environment, plan_deployments
from steps.runtime.errors import ConfigError, DataError, InfraError, TimedOut
from tests.support.deploy_helpers import play_when_watched
from tests.support.emulators.argocd import degraded_timeline, rollout_timeline, superseded_timeline
from tests.support.emulators.argocd_fixtures import ARGOCD_TEST_TOKEN

REPO = "acme/data"
SHA = "1111111111111111111111111111111111111111"
NEWER = "2222222222222222222222222222222222222222"
WORKFLOW = "release-data-prep-abc12"
PUSH = ("push", "refs/heads/main")


def registration(**changes) -> dict:
    reg = {
        "name": "data",
        "repoUrl": "https://github.com/acme/data",
        "installationId": 11111111,
        "environments": [
            {
                "name": "production",
                "argocdApp": "data-prod",
                "url": "https://data.example.org",
                "production": True,
                "after": "staging",
                "argocd": {"destinationNamespace": "data"},
            },
            {"name": "staging", "argocdApp": "data-staging", "url": "https://staging.data.example.org"},
            {"name": "docs"},
        ],
        "preview": {"enabled": True, "argocdApp": "data-pr-{pr}", "url": "https://pr-{pr}.data.example.org"},
    }
    reg.update(changes)
    return reg


class Env:
    def __init__(self, gh, argo, path: Path):
        self.gh, self.argo, self.path = gh, argo, path

    def register(self, **changes) -> None:
        self.path.write_text(yaml.safe_dump({"repoRegistrations": [registration(**changes)]}))

    def item(self, environment: str, event=PUSH, pr_number="") -> dict:
        items = plan_deployments(REPO, *event, pr_number)
        return next(i for i in items if i["environment"] == environment)

    def deploy(self, environment: str, sha=SHA, event=PUSH, pr_number="", **changes) -> dict:
        item = {**self.item(environment, event, pr_number), **changes}
        return deploy_environment(REPO, sha, **item, installation_id="", app_id="", workflow_name=WORKFLOW)

    def deployments(self, environment: str | None = None):
        return [d for d in self.gh.deployments(REPO) if environment in (None, d.original_environment)]

    def states(self, environment: str) -> list[list[str]]:
        return [[s.state for s in d.statuses] for d in self.deployments(environment)]

    def rollout(self, app: str, sha=SHA, timeline=None):
        return play_when_watched(self.argo, app, timeline or rollout_timeline(sha, 0.02))


@pytest.fixture
def env(github_env, argocd_emulator, tmp_path, monkeypatch) -> Env:
    path = tmp_path / "registrations.yaml"
    settings = {
        "STEP_REGISTRATIONS_FILE": str(path),
        "ARGOCD_SERVER_URL": argocd_emulator.url,
        "ARGOCD_TOKEN": ARGOCD_TEST_TOKEN,
        "ARGOCD_NAMESPACE": "argocd",
        "ARGOCD_STABILITY_SECONDS": "0.05",
        "ARGOCD_TIMEOUT_SECONDS": "20",
        "ARGOCD_POLL_SECONDS": "0.05",
        "STEP_RETRIES": "0",
    }
    for name in (
        "ARGOCD_TOKEN_FILE",
        "ARGOCD_PROJECT",
        "ARGOCD_UI_URL",
        "ARGOCD_INSECURE",
        "ARGOCD_CA_BUNDLE",
        "ARGOCD_REFRESH",
        "GITHUB_REQUIRED_CONTEXTS",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    for app in ("data-staging", "data-prod", "data-pr-7"):
        argocd_emulator.add_app(app)
    result = Env(github_env, argocd_emulator, path)
    result.register()
    yield result
    assert github_env.invalid_requests == []
    assert argocd_emulator.invalid_requests == []


# ------------------------------------------------------------------------------------------- planning


def test_push_to_the_default_branch_plans_environments_in_after_order(env):
    items = plan_deployments(REPO, *PUSH)
    assert [i["environment"] for i in items] == ["staging", "production"]  # docs has no argocdApp: no deployment
    assert items[1] == {
        "environment": "production",
        "argocd_app": "data-prod",
        "url": "https://data.example.org",
        "production": "true",
        "transient": "false",
        "after": "staging",
    }
    assert plan_deployments(REPO, "push", "refs/heads/feature") == []
    assert plan_deployments(REPO, "push", "refs/tags/v1") == []


def test_pull_request_plans_its_preview_only_when_enabled(env):
    assert plan_deployments(REPO, "pull_request", "refs/pull/7/merge", "7") == [
        {
            "environment": "preview/pr-7",
            "argocd_app": "data-pr-7",
            "url": "https://pr-7.data.example.org",
            "production": "false",
            "transient": "true",
            "after": "",
        }
    ]
    env.register(preview={"enabled": False})
    assert plan_deployments(REPO, "pull_request", "refs/pull/7/merge", "7") == []


# ------------------------------------------------------------------------------------------- outcomes


def test_happy_path_in_four_github_calls(env):
    env.rollout("data-staging")
    result = env.deploy("staging")
    assert (result["state"], result["outcome"], result["reused"]) == ("success", "deployed", False)
    [deployment] = env.deployments("staging")
    assert (deployment.sha, deployment.task, deployment.auto_merge, deployment.required_contexts) == (
        SHA,
        "deploy",
        False,
        [],
    )
    assert deployment.payload == {
        "workflow": WORKFLOW,
        "argo_ui": "https://argo.example.com/workflows/argo/release-data-prep-abc12",
    }
    assert (deployment.production_environment, deployment.transient_environment) == (False, False)
    in_progress, success = deployment.statuses
    assert (in_progress.state, success.state) == ("in_progress", "success")
    assert success.log_url == f"{env.argo.url}/applications/argocd/data-staging"
    assert success.environment_url == "https://staging.data.example.org"
    assert success.description == "data-staging is Healthy at 1111111 in Argo CD"
    calls = [(c.method, c.api_path) for c in env.gh.calls]
    assert calls == [
        ("POST", "/app/installations/11111111/access_tokens"),
        ("POST", "/repos/acme/data/deployments"),
        ("POST", f"/repos/acme/data/deployments/{deployment.id}/statuses"),
        ("POST", f"/repos/acme/data/deployments/{deployment.id}/statuses"),
    ]
    assert env.gh.calls[-1].body["auto_inactive"] is True
    # contents: read is for compare, only asked when Argo CD is at another commit (not on this path).
    assert env.gh.tokens_issued()[-1].permissions == {"contents": "read", "deployments": "write", "metadata": "read"}


def test_production_is_promoted_by_a_sync_to_the_sha_only_after_staging_succeeded(env):
    env.rollout("data-staging")
    env.deploy("staging")
    assert env.argo.sync_requests == []  # staging auto-syncs; nothing asked of Argo CD for it
    assert env.deploy("production")["state"] == "success"  # no rollout scripted: only the sync starts one
    assert env.argo.sync_requests == [("data-prod", SHA)]
    [prod] = env.deployments("production")
    assert prod.production_environment and [s.state for s in prod.statuses] == ["in_progress", "success"]
    sync = next(c for c in env.argo.calls if c.path.endswith("/sync"))
    assert sync.body == {"revision": SHA, "prune": False}


def test_production_trusts_this_runs_own_record_of_staging_and_asks_github_otherwise(env, monkeypatch, tmp_path):
    monkeypatch.setenv("RELEASE_WORKSPACE", str(tmp_path / "ws"))
    env.rollout("data-staging")
    env.deploy("staging")  # records deploy/staging.json in this run's workspace
    lookups = env.gh.count("GET", r"/deployments")
    assert env.deploy("production")["state"] == "success"
    assert env.gh.count("GET", r"/deployments\?|/deployments$") - lookups <= 1  # only the retire look-up
    assert env.gh.count("GET", r"/deployments/\d+/statuses") == 0  # staging's statuses were not read


def test_a_token_without_sync_permission_fails_the_promotion_with_the_rbac_line(env):
    env.rollout("data-staging")
    env.deploy("staging")
    env.argo.sync_denied.add("data-prod")
    with pytest.raises(
        ConfigError, match=r"may not sync data-prod: add .p, <role>, applications, sync, <project>/data-prod"
    ):
        env.deploy("production")
    assert env.states("production") == [["in_progress", "failure"]]


def test_degraded_fails_the_step_and_clips_argo_cds_message(env):
    message = "Deployment data exceeded its progress deadline: " + " ".join(f"pod-{i} crashlooping" for i in range(30))
    env.rollout("data-staging", timeline=degraded_timeline(SHA, 0.02, message=message))
    with pytest.raises(DataError) as err:
        env.deploy("staging")
    assert err.value.summary.startswith("staging: data-staging at 1111111: health Degraded: Deployment data")
    assert env.states("staging") == [["in_progress", "failure"]]
    failure = env.deployments("staging")[0].statuses[-1].description
    assert len(failure) <= 140 and failure.endswith("…") and "crashlooping" in failure


def test_timed_out_is_a_final_error_with_an_error_status(env, monkeypatch):
    monkeypatch.setenv("ARGOCD_TIMEOUT_SECONDS", "0.3")
    with pytest.raises(TimedOut) as err:
        env.deploy("staging")
    assert "Timed out: data-staging not Healthy at 1111111 after 0.3 s" in err.value.summary
    assert env.states("staging") == [["in_progress", "error"]]  # never left in_progress
    assert err.value.kind == "error" and err.value.retry is False  # exit 2: the retryStrategy does not run it again


def test_superseded_ends_inactive_and_the_step_succeeds(env):
    env.rollout("data-staging", timeline=superseded_timeline(SHA, NEWER, 0.02))
    result = env.deploy("staging")
    assert (result["state"], result["outcome"]) == ("inactive", "superseded")
    assert env.states("staging") == [["in_progress", "inactive"]]
    assert result["description"].startswith("Superseded: Argo CD synced 2222222 instead")


def test_superseded_before_the_wait_started_ends_inactive_at_once(env, monkeypatch):
    # Push SHA, then NEWER while SHA's data steps run; Argo CD already synced NEWER when SHA's deploy starts.
    monkeypatch.setenv("ARGOCD_TIMEOUT_SECONDS", "30")
    env.gh.add_commits(REPO, SHA, NEWER)
    env.argo.set_state("data-staging", sync="Synced", revision=NEWER, operation_phase="Succeeded", health="Healthy")
    started = time.monotonic()
    result = env.deploy("staging")
    # Not the 30 s time-out: after COMPARE_AFTER_SECONDS at NEWER, GitHub's compare says NEWER descends from SHA.
    assert time.monotonic() - started < COMPARE_AFTER_SECONDS + 3
    assert (result["state"], result["outcome"]) == ("inactive", "superseded")
    assert result["description"] == "Superseded: Argo CD is at 2222222, a newer commit; 1111111 will not be live"
    assert env.states("staging") == [["in_progress", "inactive"]]
    assert env.gh.count("GET", r"/compare/1111111111111111111111111111111111111111\.\.\.2222") == 1


def test_a_superseded_staging_supersedes_production_and_the_commit_still_succeeds(env, monkeypatch, tmp_path):
    from steps.report import report_final

    monkeypatch.setenv("RELEASE_WORKSPACE", str(tmp_path / "ws"))  # a local workspace: the outcome records
    env.rollout("data-staging", timeline=superseded_timeline(SHA, NEWER, 0.02))
    assert env.deploy("staging")["outcome"] == "superseded"
    production = env.deploy("production")  # no "staging did not succeed (inactive)" failure
    assert (production["outcome"], production["deployment_id"]) == ("superseded", 0)
    assert production["description"].startswith("Superseded: staging moved on to a newer commit")
    assert env.deployments("production") == []  # never rolled out: no deployment record
    final = report_final(REPO, SHA, "Succeeded", "null", "", "")
    assert final["state"] == "success"
    assert final["description"].endswith("deployment to production, staging superseded by a newer commit")


def test_an_older_revision_in_argo_cd_is_waited_for_not_superseded(env, monkeypatch):
    # Argo CD still at the previous commit (behind SHA): it has not caught up yet, so keep waiting.
    monkeypatch.setenv("ARGOCD_TIMEOUT_SECONDS", str(COMPARE_AFTER_SECONDS + 1))
    older = "0" * 40
    env.gh.add_commits(REPO, older, SHA)
    env.argo.set_state("data-staging", sync="Synced", revision=older, operation_phase="Succeeded", health="Healthy")
    with pytest.raises(TimedOut):
        env.deploy("staging")
    assert env.gh.count("GET", r"/compare/") == 1  # asked once for that revision, not on every event


def test_a_connection_dropped_after_github_created_the_deployment_leaves_exactly_one(env):
    from tests.support.emulators.github import Fault

    env.gh.add_fault(Fault("drop_after", method="POST", path_regex=r"/deployments$"))
    env.rollout("data-staging")
    result = env.deploy("staging")
    [deployment] = env.deployments("staging")  # not a second one beside a first without any status
    assert result["deployment_id"] == deployment.id and result["state"] == "success"
    assert [s.state for s in deployment.statuses] == ["in_progress", "success"]
    posts = [c for c in env.gh.calls if c.method == "POST" and c.api_path.endswith("/deployments")]
    assert len(posts) == 1  # the lost POST was not resent: the look-up found what it made


def test_the_exit_handler_ends_this_runs_deployments_left_in_progress(env):
    # The deploy pod was killed mid-wait (deadline, node loss): its deployment says in_progress forever unless
    # the exit handler ends it. Another workflow's deployment of the same sha is left alone.
    from steps.github.app import repo_client
    from steps.github.deployments import GitHubDeployments
    from steps.report import report_final

    api = GitHubDeployments(repo_client(REPO, {"deployments": "write"}, installation_id=11111111))

    def started(environment: str, workflow: str) -> int:
        made = api.create(
            SHA,
            environment,
            production=False,
            transient=False,
            payload={"workflow": workflow, "argo_ui": ""},
            required_contexts=[],
            description="x",
        )
        api.set_status(made, "in_progress", "waiting for Argo CD")
        return made

    ours, theirs = started("staging", WORKFLOW), started("production", "release-data-prep-other")
    final = report_final(REPO, SHA, "Failed", "null", "", "", workflow_name=WORKFLOW)
    assert final["state"] == "failure" and final["deployments_ended"] == [ours]
    assert env.states("staging") == [["in_progress", "error"]]
    assert env.deployments("staging")[0].statuses[-1].description.startswith(f"{WORKFLOW} ended before staging")
    assert env.states("production") == [["in_progress"]] and theirs != ours  # not ours
    again = report_final(REPO, SHA, "Failed", "null", "", "", workflow_name=WORKFLOW)
    assert again["deployments_ended"] == []  # a second pass changes nothing
    assert env.gh.count("POST", r"/deployments/\d+/statuses") == 3
    lookups = env.gh.count("GET", r"/deployments")
    assert report_final(REPO, SHA, "Succeeded", "null", "", "", workflow_name=WORKFLOW)["state"] == "success"
    assert env.gh.count("GET", r"/deployments") == lookups  # a success looks no deployment up


def test_retry_reuses_the_deployment_it_created(env, monkeypatch):
    monkeypatch.setenv("ARGOCD_TIMEOUT_SECONDS", "0.3")
    with pytest.raises(TimedOut):
        env.deploy("staging")
    monkeypatch.setenv("ARGOCD_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("STEP_RETRIES", "1")
    calls_before = len(env.gh.calls)
    env.rollout("data-staging")
    result = env.deploy("staging")
    assert result["reused"] is True
    assert len(env.deployments("staging")) == 1
    assert env.states("staging") == [["in_progress", "error", "in_progress", "success"]]
    retry_calls = [(c.method, c.api_path, c.query) for c in env.gh.calls[calls_before:]]
    assert retry_calls[1] == (
        "GET",
        "/repos/acme/data/deployments",
        {"sha": SHA, "environment": "staging", "task": "deploy", "per_page": "1"},
    )
    assert len(retry_calls) == 4


def test_unknown_retry_count_looks_before_creating(env, monkeypatch):
    monkeypatch.delenv("STEP_RETRIES")
    env.rollout("data-staging")
    assert env.deploy("staging")["reused"] is False
    assert [c.method for c in env.gh.calls].count("GET") == 1
    assert len(env.deployments("staging")) == 1


def test_a_newer_success_makes_the_older_deployment_inactive(env):
    env.rollout("data-staging")
    env.deploy("staging")
    env.rollout("data-staging", timeline=rollout_timeline(NEWER, 0.02))
    env.deploy("staging", sha=NEWER)
    older, newer = env.deployments("staging")
    assert [s.state for s in older.statuses] == ["in_progress", "success", "inactive"]
    assert older.statuses[-1].auto and [s.state for s in newer.statuses] == ["in_progress", "success"]


@pytest.mark.parametrize("environment", ["production", "preview/pr-7"])
def test_a_newer_success_retires_the_old_production_or_preview_deployment(env, environment):
    # GitHub's auto_inactive skips production and transient environments; the step retires the old one itself.
    app, event, pr = (
        ("data-prod", PUSH, "")
        if environment == "production"
        else ("data-pr-7", ("pull_request", "refs/pull/7/head"), "7")
    )
    for sha in (SHA, NEWER):
        env.rollout(app, sha=sha, timeline=rollout_timeline(sha, 0.02))
        changes = {"after": ""} if environment == "production" else {}
        assert env.deploy(environment, sha=sha, event=event, pr_number=pr, **changes)["state"] == "success"
    older, newer = env.deployments(environment)
    assert [s.state for s in older.statuses] == ["in_progress", "success", "inactive"]
    assert not older.statuses[-1].auto and older.statuses[-1].description == f"Replaced by deployment {newer.id}"
    assert [s.state for s in newer.statuses] == ["in_progress", "success"]


def test_an_environment_without_argocd_app_never_gets_a_fake_success(env):
    with pytest.raises(ConfigError, match="docs of acme/data has no argocdApp"):
        deploy_environment(REPO, SHA, "docs", "", installation_id="", app_id="", workflow_name=WORKFLOW)
    assert env.deployments("docs") == [] and env.gh.calls == []  # no deployment record, no call at all
    env.register(environments=[])  # a registration without environments plans nothing (no default staging)
    assert plan_deployments(REPO, *PUSH) == []


# ----------------------------------------------------------------------------------------------- after


def test_after_gate_refuses_production_before_staging_succeeded(env):
    with pytest.raises(DataError) as err:
        env.deploy("production")
    assert err.value.summary == "staging did not succeed for 1111111 (no deployment); not deploying production"
    assert env.deployments("production") == [] and env.argo.sync_requests == []  # never promoted before staging


def test_after_gate_waits_for_a_staging_rollout_still_running(env):
    failures = []

    def staging():
        try:
            env.deploy("staging")
        except Exception as exc:  # reported below; a thread cannot fail the test itself
            failures.append(exc)

    worker = threading.Thread(target=staging)
    worker.start()
    deadline = time.monotonic() + 5
    while env.states("staging") != [["in_progress"]] and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(InfraError, match="staging is still deploying 1111111 \\(in_progress\\)"):
        env.deploy("production")
    env.rollout("data-staging")
    worker.join()
    assert failures == []
    env.rollout("data-prod")
    assert env.deploy("production")["state"] == "success"


def test_after_gate_refuses_when_staging_failed(env):
    env.rollout("data-staging", timeline=degraded_timeline(SHA, 0.02))
    with pytest.raises(DataError):
        env.deploy("staging")
    with pytest.raises(DataError, match="staging did not succeed for 1111111 \\(failure\\)"):
        env.deploy("production")


# ---------------------------------------------------------------------------------------------- previews


def test_preview_is_transient_and_cleaned_up_on_close(env):
    pr = ("pull_request", "refs/pull/7/merge")
    env.rollout("data-pr-7")
    env.deploy("preview/pr-7", event=pr, pr_number="7")
    env.rollout("data-pr-7", timeline=rollout_timeline(NEWER, 0.02))
    env.deploy("preview/pr-7", sha=NEWER, event=pr, pr_number="7")
    previews = env.deployments("preview/pr-7")
    assert [d.transient_environment for d in previews] == [True, True]
    assert previews[1].statuses[-1].environment_url == "https://pr-7.data.example.org"
    result = deactivate_preview(REPO, "7")
    assert result == {"repo": REPO, "environment": "preview/pr-7", "deactivated": 2, "deleted": 0}
    assert all(d.state == "inactive" and d.destroyed for d in env.deployments("preview/pr-7"))


def test_preview_deleted_on_close_when_registered_so(env):
    env.register(preview={"enabled": True, "argocdApp": "data-pr-{pr}", "deleteOnClose": True})
    env.rollout("data-pr-7")
    env.deploy("preview/pr-7", event=("pull_request", "refs/pull/7/merge"), pr_number="7")
    env.rollout("data-staging")
    env.deploy("staging")
    assert deactivate_preview(REPO, "7")["deleted"] == 1
    assert env.deployments("preview/pr-7") == [] and len(env.deployments("staging")) == 1


def test_preview_not_enabled_is_refused(env):
    env.register(preview={"enabled": False})
    with pytest.raises(ConfigError, match="previews are not enabled for acme/data"):
        deploy_environment(REPO, SHA, "preview/pr-7", "data-pr-7", transient="true")


# ------------------------------------------------------------------------------------------ bad config


def test_unknown_environment_is_refused_before_any_call(env):
    with pytest.raises(ConfigError) as err:
        deploy_environment(REPO, SHA, "qa", "data-qa")
    assert err.value.summary.startswith("environment 'qa' is not registered for acme/data (known: production, ")
    assert env.gh.calls == [] and env.argo.calls == []


def test_missing_argo_cd_app_fails_the_deployment_with_both_causes(env):
    with pytest.raises(ConfigError) as err:
        env.deploy("staging", argocd_app="data-missing")
    assert "either it does not exist or the token lacks 'applications, get' permission" in err.value.summary
    [deployment] = env.deployments("staging")
    assert [s.state for s in deployment.statuses] == ["in_progress", "failure"]
    assert deployment.statuses[-1].description.startswith("Argo CD answered 403 for application 'data-missing'")


def test_missing_argo_cd_app_with_a_project_is_reported_missing(env):
    env.register(argocd={"project": "default"})
    with pytest.raises(ConfigError, match="Argo CD has no application 'data-missing' in project 'default'"):
        env.deploy("staging", argocd_app="data-missing")


def test_required_contexts_that_fail_are_a_data_error(env, monkeypatch):
    monkeypatch.setenv("GITHUB_REQUIRED_CONTEXTS", '["ci/build"]')
    with pytest.raises(DataError, match="required status contexts are not all successful"):
        env.deploy("staging")
    assert env.gh.calls[1].body["required_contexts"] == ["ci/build"]


@pytest.mark.parametrize(("name", "value"), [("GITHUB_REQUIRED_CONTEXTS", "ci/build"), ("ARGOCD_SERVER_URL", "")])
def test_bad_settings_are_refused_before_any_call(env, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError):
        env.deploy("staging")
    assert env.gh.calls == []


# ----------------------------------------------------------------------------------------- record mode


def test_record_file_mode_sends_nothing_and_reads_its_own_record(env, monkeypatch, tmp_path):
    record = tmp_path / "github.jsonl"
    monkeypatch.setenv("GITHUB_RECORD_FILE", str(record))
    monkeypatch.delenv("STEP_RETRIES")
    env.rollout("data-staging")
    first = env.deploy("staging")
    again = env.deploy("staging")
    env.rollout("data-prod")
    env.deploy("production")
    assert (first["reused"], again["reused"], again["deployment_id"]) == (False, True, first["deployment_id"])
    env.register(preview={"enabled": True, "argocdApp": "data-pr-{pr}", "deleteOnClose": True})
    env.rollout("data-pr-7")
    env.deploy("preview/pr-7", event=("pull_request", "refs/pull/7/merge"), pr_number="7")
    assert deactivate_preview(REPO, "7")["deleted"] == 1
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    kinds = [(e["kind"], e.get("environment"), e.get("state")) for e in entries]
    assert kinds == [
        ("deployment", "staging", None),
        ("deployment_status", "staging", "in_progress"),
        ("deployment_status", "staging", "success"),
        ("deployment_status", "staging", "in_progress"),
        ("deployment_status", "staging", "success"),
        ("deployment", "production", None),
        ("deployment_status", "production", "in_progress"),
        ("deployment_status", "production", "success"),
        ("deployment", "preview/pr-7", None),
        ("deployment_status", "preview/pr-7", "in_progress"),
        ("deployment_status", "preview/pr-7", "success"),
        ("deployment_status", "preview/pr-7", "inactive"),
        ("deployment_delete", None, None),
    ]
    assert entries[0]["auto_merge"] is False and entries[5]["production_environment"] is True
    assert env.gh.calls == []


def test_a_retry_waits_only_for_what_is_left_of_the_first_attempts_budget(env, monkeypatch):
    # Attempts share one wait budget (counted from the deployment's created_at), so the worst case of the step
    # is one timeout plus backoff: what config load checks against the workflow deadline.
    monkeypatch.setenv("ARGOCD_TIMEOUT_SECONDS", "0.6")
    with pytest.raises(TimedOut):
        env.deploy("staging")
    monkeypatch.setenv("STEP_RETRIES", "1")
    with pytest.raises(TimedOut) as err:
        env.deploy("staging")
    waited = float(err.value.summary.split(" after ")[1].split(" s")[0])
    assert waited < 0.6
    assert len(env.deployments("staging")) == 1


def test_a_preview_app_created_after_the_run_started_ends_success(env):
    # The ApplicationSet's pull-request generator creates data-pr-8 minutes after the push; until then Argo CD
    # answers 403 for it (getAppEnforceRBAC hides unknown apps). For a preview that is waiting, not failure.
    pr = ("pull_request", "refs/pull/8/merge")
    found: list[int] = []

    def create_later() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not found:
            found.extend(1 for _ in env.argo.calls_to("GET", "/api/v1/applications/data-pr-8"))
            time.sleep(0.01)
        time.sleep(0.2)  # a few more 403s
        env.argo.add_app("data-pr-8", revision=SHA)

    threading.Thread(target=create_later, daemon=True).start()
    result = env.deploy("preview/pr-8", event=pr, pr_number="8")
    assert (result["state"], result["outcome"]) == ("success", "deployed")
    assert env.states("preview/pr-8") == [["in_progress", "success"]]
    assert len(env.argo.calls_to("GET", "/api/v1/applications/data-pr-8")) > 2  # it looked again


def test_a_preview_app_that_never_appears_times_out_as_error(env, monkeypatch):
    monkeypatch.setenv("ARGOCD_TIMEOUT_SECONDS", "0.4")
    with pytest.raises(TimedOut, match="application data-pr-9 did not appear"):
        env.deploy("preview/pr-9", event=("pull_request", "refs/pull/9/merge"), pr_number="9")
    assert env.states("preview/pr-9") == [["in_progress", "error"]]


def test_a_refresh_that_blocks_does_not_look_like_an_outage(env, monkeypatch):
    # Real Argo CD holds a GET ?refresh= until the controller has reconciled; with a slow reconcile that
    # outlasts the request timeout. The refresh gets its own short timeout, then a plain GET and the stream.
    monkeypatch.setenv("ARGOCD_REQUEST_TIMEOUT_SECONDS", "0.3")
    env.argo.refresh_delay = 2.0
    env.rollout("data-staging")
    result = env.deploy("staging")
    assert result["state"] == "success"
    assert env.argo.refresh_requests[-1] == ("data-staging", "normal")
    assert env.states("staging") == [["in_progress", "success"]]


def test_a_successful_deployment_hands_its_lead_time_to_argos_metric(env, tmp_path, monkeypatch):
    metrics = tmp_path / "metrics"
    monkeypatch.setenv("STEP_METRICS_DIR", str(metrics))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
    env.rollout("data-staging")
    env.deploy("staging", run_created=created)
    assert 119 <= float((metrics / "lead-time-seconds").read_text()) < 150
    assert (metrics / "environment-class").read_text() == "staging"
