"""The release-status reconciler on the emulators: Argo Server (list, archive), GitHub, and moto's S3 over HTTP."""

import json
import time

import pytest

from pipelines.cli import main
from steps.argo.server import ArgoServer
from steps.github.app import repo_client
from steps.github.deployments import GitHubDeployments
from steps.github.statuses import set_commit_status
from steps.reconcile import MEMO_KEY, Limits, Reconciler
from steps.reconcile import reconcile as reconcile_step
from steps.report import report_final
from steps.runtime.errors import InfraError
from steps.store.url import open_store
from tests.support.emulators.argo_server import simple_template
from tests.support.emulators.argo_server_fixtures import ARGO_TEST_TOKEN
from tests.support.emulators.github import Fault
from tests.support.reconcile_helpers import LINK, RUN_LABELS, run_document

REPO = "acme/data"
SHA = "a" * 40
SHA2 = "b" * 40
DAY = 86400.0


@pytest.fixture
def world(github_env, argo_server_emulator, s3_server):
    """The three emulators and a factory of reconciler passes (a pass may run at a later clock)."""
    store = open_store(f"s3://{s3_server.bucket}/releases", endpoint_url=s3_server.endpoint_url)
    argo = ArgoServer(argo_server_emulator.url, "argo", ARGO_TEST_TOKEN)

    def ids(repo):
        installation = github_env.globex_installation_id if repo.startswith("globex/") else github_env.installation_id
        return installation, github_env.app_id

    def reconcile(*, dry_run=False, later=0.0, **limits):
        return Reconciler(
            argo=argo,
            settings=github_env.settings,
            target_url=lambda name: LINK.format(workflow=name),
            github_ids=ids,
            store=store,
            limits=Limits(**limits),
            dry_run=dry_run,
            clock=lambda: time.time() + later,
        ).run()

    client = repo_client(
        REPO,
        {"statuses": "write", "deployments": "write"},
        installation_id=github_env.installation_id,
        app_id=github_env.app_id,
        settings=github_env.settings,
    )

    class World:
        pass

    w = World()
    w.github, w.argo, w.s3, w.store, w.reconcile, w.client = (
        github_env, argo_server_emulator, s3_server, store, reconcile, client
    )  # fmt: skip
    return w


def pending(world, name, sha=SHA):
    set_commit_status(world.client, sha, "pending", f"Preparing release data in {name}",
                      context="release-data-prep", target_url=LINK.format(workflow=name))  # fmt: skip


def in_progress_deployment(world, name, environment="staging", sha=SHA):
    api = GitHubDeployments(world.client)
    deployment = api.create(sha, environment, production=False, transient=False, payload={"workflow": name},
                            required_contexts=[], description="Deploying")  # fmt: skip
    api.set_status(deployment, "in_progress", "Waiting for Argo CD")
    return deployment


def running(world):
    """Submit a run from a small template through the Argo Server; it stays Running (what a pass sees)."""
    world.argo.add_template(simple_template("release-data-prep", ("report-pending", "fetch", "publish")))
    world.argo.workflow_timeline = [(0, "Pending"), (0.01, "Running")]
    submitted = ArgoServer(world.argo.url, "argo", ARGO_TEST_TOKEN).submit(
        "release-data-prep", {"repo": REPO, "sha": SHA}, RUN_LABELS
    )
    time.sleep(0.05)
    return submitted["metadata"]["name"]


def writes(github):
    """Calls that change something on GitHub (minting an installation token changes nothing there)."""
    return sum(1 for c in github.calls if c.method in ("POST", "PATCH", "DELETE") and "access_tokens" not in c.api_path)


def last_status(world, sha=SHA):
    return world.github.statuses(REPO, sha)[-1]


def test_exit_handler_that_failed_past_its_budget_is_reported_once(world, monkeypatch):
    pending(world, "rdp-1")
    deployment = in_progress_deployment(world, "rdp-1")
    # The exit handler's own step meets a GitHub outage longer than its retry budget, and gives up.
    monkeypatch.setenv("GITHUB_TARGET_URL", LINK.format(workflow="rdp-1"))
    monkeypatch.setenv("GITHUB_RETRY_BUDGET_SECONDS", "1")
    outage = world.github.add_fault(Fault("http_error", method="POST", path_regex=r"/statuses/", status=502, times=50))
    with pytest.raises(InfraError):
        report_final(REPO, SHA, "Succeeded", "null", str(world.github.installation_id), workflow_name="rdp-1")
    assert last_status(world).state == "pending"
    outage.remaining = 0  # GitHub is back; Argo marked report-final Failed and the run with it
    world.argo.put_workflow(run_document("rdp-1", REPO, SHA, created=time.time() - 600, reporter="Failed"))

    report = world.reconcile()

    assert [(r.workflow, r.reason, r.state, r.posted) for r in report.repairs] == [
        ("rdp-1", "exit handler failed", "success", True)
    ]
    status = last_status(world)
    assert (status.state, status.target_url) == ("success", LINK.format(workflow="rdp-1"))
    assert status.description == "Release data prepared (reported by the reconciler)"
    assert world.github.deployment_statuses(REPO, deployment)[-1].state == "error"

    before = writes(world.github)
    second = world.reconcile()
    # Idempotent: the second pass reads GitHub (the status is final now) and changes nothing.
    assert writes(world.github) == before
    assert [r.posted for r in second.repairs] == [False]
    assert "GitHub already shows success" in second.repairs[0].skipped


def test_terminated_run_is_reported_as_error(world):
    name = running(world)
    pending(world, name)
    world.argo.terminate(name)

    report = world.reconcile()

    assert [(r.reason, r.state) for r in report.repairs] == [("terminated", "error")]
    assert last_status(world).description == "Run terminated before it reported; see the run"
    assert last_status(world).target_url == LINK.format(workflow=name)


def test_deleted_run_is_noticed_by_the_next_pass(world):
    name = running(world)
    pending(world, name)
    deployment = in_progress_deployment(world, name)

    first = world.reconcile()
    assert first.repairs == []  # running: its own exit handler will report
    assert [m["name"] for m in json.loads(world.store.get(MEMO_KEY)[0])["runs"]] == [name]

    world.argo.delete_workflow(name)
    refused = world.github.add_fault(Fault("http_error", method="POST", path_regex=r"/statuses/", status=422))
    failed = world.reconcile()  # GitHub refuses the status this time: the deleted run stays remembered
    assert [(r.reason, r.posted) for r in failed.repairs] == [("deleted", False)]
    assert [m["name"] for m in json.loads(world.store.get(MEMO_KEY)[0])["runs"]] == [name]
    assert refused.remaining == 0
    second = world.reconcile()

    assert [(r.reason, r.state, r.posted) for r in second.repairs] == [("deleted", "error", True)]
    assert last_status(world).description == "Run deleted before it reported; see the run"
    assert world.github.deployment_statuses(REPO, deployment)[-1].state == "error"
    before = writes(world.github)
    third = world.reconcile()
    assert third.repairs == [] and writes(world.github) == before  # the memo forgot it: nothing left to do


def test_exit_handler_that_never_ran_reports_the_runs_own_failure(world):
    # The deadline passed with report-final still Pending (argo-workflows #13060): the cause comes from the nodes.
    world.argo.put_workflow(run_document("rdp-2", REPO, SHA, created=time.time() - 60, main="Failed", reporter=None))
    pending(world, "rdp-2")

    report = world.reconcile()

    assert [(r.reason, r.state) for r in report.repairs] == [("exit handler did not run", "failure")]
    assert last_status(world).description.startswith("check-table: prices: 3 rows fail the schema")


def test_a_newer_runs_status_is_left_alone(world):
    world.argo.put_workflow(run_document("rdp-old", REPO, SHA, created=time.time() - 60, reporter="Failed"))
    pending(world, "rdp-new")  # a re-run of the same commit is under way and owns the status now
    before = writes(world.github)

    report = world.reconcile()

    assert report.repairs[0].posted is False and writes(world.github) == before
    assert last_status(world).target_url == LINK.format(workflow="rdp-new")


def test_a_deployment_superseded_by_a_newer_success_ends_inactive(world):
    world.argo.put_workflow(run_document("rdp-3", REPO, SHA, created=time.time() - 60, reporter="Error"))
    pending(world, "rdp-3")
    old = in_progress_deployment(world, "rdp-3")
    api = GitHubDeployments(world.client)
    newer = api.create(SHA2, "staging", production=False, transient=False, payload={"workflow": "rdp-4"},
                       required_contexts=[], description="Deploying")  # fmt: skip
    api.set_status(newer, "success", "Synced and Healthy")

    world.reconcile()

    assert world.github.deployment_statuses(REPO, old)[-1].state == "inactive"


def test_dry_run_lists_repairs_and_changes_nothing(world):
    world.argo.put_workflow(run_document("rdp-5", REPO, SHA, created=time.time() - 60, reporter="Failed"))
    pending(world, "rdp-5")
    in_progress_deployment(world, "rdp-5")
    world.store.put("_runs/acme/data/rdp-0/summary.json", b"{}")
    before = writes(world.github)

    report = world.reconcile(dry_run=True, later=2 * DAY)

    assert [(r.workflow, r.state, r.posted) for r in report.repairs] == []  # 2 days later: out of the window
    report = world.reconcile(dry_run=True)
    assert [(r.workflow, r.state, r.posted, list(r.deployments.values())) for r in report.repairs] == [
        ("rdp-5", "success", False, ["error"])
    ]
    assert writes(world.github) == before
    assert world.store.head("_runs/acme/data/rdp-0/summary.json") is not None
    assert world.store.get(MEMO_KEY) is None


def test_old_workspaces_and_abandoned_uploads_are_removed(world):
    still_running = running(world)
    for workflow in ("rdp-done", still_running):
        world.store.put(f"_runs/acme/data/{workflow}/summary.json", b"{}")
        world.store.put(f"_runs/acme/data/{workflow}/deploy/staging.json", b"{}")
    client, bucket = world.s3.client, world.s3.bucket
    upload = client.create_multipart_upload(Bucket=bucket, Key="releases/acme/data/v1/prices.parquet")

    # moto lists every multipart upload as initiated 2010-11-10T20:48:33Z (moto/s3/responses.py): at a clock an
    # hour after that date the upload is within a two-hour window and stays; at today's clock it is long abandoned.
    moto_epoch = 1289422113.0
    assert world.reconcile(later=moto_epoch + 3600 - time.time(), look_back=2 * 3600).uploads_aborted == []
    fresh = world.reconcile()
    assert fresh.workspaces_removed == []
    assert fresh.uploads_aborted == ["acme/data/v1/prices.parquet"]
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert upload["UploadId"]

    later = world.reconcile(later=2 * DAY)

    assert later.workspaces_removed == ["_runs/acme/data/rdp-done/"]  # the running run keeps its workspace
    assert world.store.head(f"_runs/acme/data/{still_running}/summary.json") is not None
    assert world.store.head("_runs/acme/data/rdp-done/summary.json") is None
    assert world.reconcile(later=2 * DAY).workspaces_removed == []


def test_archived_runs_count_as_listed_and_are_repaired_too(world):
    world.argo.archive_enabled = True
    world.argo.put_workflow(run_document("rdp-6", REPO, SHA, created=time.time() - 60, reporter="Failed"))
    world.argo.archive_workflow("rdp-6")
    pending(world, "rdp-6")

    report = world.reconcile()

    assert [(r.workflow, r.reason) for r in report.repairs] == [("rdp-6", "exit handler failed")]


def test_lists_are_paged_and_repairs_bounded_per_pass(world):
    now = time.time()
    for i in range(250):
        world.argo.put_workflow(run_document(f"rdp-{i:03d}", REPO, SHA, created=now - 600 + i))
    world.argo.put_workflow(run_document("rdp-late", REPO, SHA2, created=now - 10, reporter="Failed"))
    for sha, name in ((SHA2, "rdp-late"),):
        pending(world, name, sha)

    report = world.reconcile(max_repairs=0)

    assert report.runs_listed == 251 and report.deferred == 1 and report.repairs == []
    pages = world.argo.calls_to("GET", "/api/v1/workflows/argo")
    assert len(pages) == 3  # 100 + 100 + 51


@pytest.fixture
def laptop(world, tmp_path, monkeypatch):
    """A config pointed at the emulators, as `python -m pipelines reconcile` reads it on a laptop."""
    host = world.github.url.split("://", 1)[1]
    config = tmp_path / "hera_config.yaml"
    config.write_text(
        f"""
argo: {{host: "{world.argo.url}", uiUrl: https://argo.example.com, tokenEnv: ARGO_TOKEN}}
github: {{apiUrl: "{world.github.url}", appId: {world.github.app_id}, retryBudgetSeconds: 8}}
s3: {{bucket: {world.s3.bucket}, endpointUrl: "{world.s3.endpoint_url}"}}
repoRegistrations:
  - name: acme-data
    repoUrl: https://{host}/acme/data
    installationId: {world.github.installation_id}
"""
    )
    monkeypatch.setenv("ARGO_TOKEN", ARGO_TEST_TOKEN)
    return str(config)


def test_cli_dry_run_prints_the_repairs_and_changes_nothing(world, laptop, capsys):
    world.argo.put_workflow(run_document("rdp-cli", REPO, SHA, created=time.time() - 60, reporter="Failed"))
    pending(world, "rdp-cli")
    deployment = in_progress_deployment(world, "rdp-cli")
    before = writes(world.github)

    assert main(["reconcile", "--config", laptop, "--dry-run", "--since", "1h"]) == 0

    out = capsys.readouterr().out
    assert f"success acme/data@{SHA[:7]} (rdp-cli, exit handler failed): Release data prepared" in out
    assert f"deployment {deployment} -> error" in out
    assert "1 run(s) listed; would report 1 final status(es)" in out
    assert writes(world.github) == before and last_status(world).state == "pending"

    assert main(["reconcile", "--config", laptop]) == 0
    assert last_status(world).state == "success"
    assert last_status(world).target_url == "https://argo.example.com/workflows/argo/rdp-cli"


def test_cli_bad_duration_is_a_clear_error(laptop, capsys):
    assert main(["reconcile", "--config", laptop, "--since", "yesterday"]) == 2
    assert "--since 'yesterday' is not a positive duration" in capsys.readouterr().err


def test_the_step_as_the_cron_workflow_runs_it(world, tmp_path, monkeypatch):
    # The pod's environment as pipelines/resources/reconciler.py renders it: the ServiceAccount token in a file,
    # the link template, the metric files Argo reads back as output parameters.
    world.argo.put_workflow(run_document("rdp-pod", REPO, SHA, created=time.time() - 60, reporter="Failed"))
    pending(world, "rdp-pod")
    token = tmp_path / "token"
    token.write_text(ARGO_TEST_TOKEN)
    for name, value in {
        "ARGO_SERVER_URL": world.argo.url,
        "ARGO_NAMESPACE": "argo",
        "ARGO_TOKEN_FILE": str(token),
        "RECONCILER_TARGET_URL_TEMPLATE": LINK,
        "STEP_METRICS_DIR": str(tmp_path / "metrics"),
        "RELEASE_STORE": f"s3://{world.s3.bucket}/releases",
        "AWS_ENDPOINT_URL_S3": world.s3.endpoint_url,
        "GITHUB_APP_ID": str(world.github.app_id),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("S3_CREDENTIALS_SECRET", raising=False)

    summary = reconcile_step(look_back="1h")

    assert summary.startswith("1 runs listed; reported 1 final status(es)")
    assert (tmp_path / "metrics" / "repaired-statuses").read_text() == "1"
    assert last_status(world).target_url == LINK.format(workflow="rdp-pod")
    monkeypatch.setenv("ARGO_SERVER_URL", "http://127.0.0.1:9")  # nothing listens: an outage, retried by Argo
    with pytest.raises(InfraError, match="cannot reach the Argo Server"):
        reconcile_step(look_back="1h")
