"""The reconciler's pure decisions (steps/policy/reconcile.py) and its rendered CronWorkflow."""

import time
from pathlib import Path

import pytest
import yaml

from pipelines.config import ConfigFileError, load_config
from pipelines.resources.reconciler import REPAIR_KINDS, app_ids, reconciler_workflow
from pipelines.resources.workflows import fork_template, release_template
from steps.policy.reconcile import (
    gone_run,
    parse_duration,
    reason_to_repair,
    run_of,
    should_post,
    verdict,
)
from steps.runtime.errors import ConfigError
from steps.runtime.labels import RUN_SELECTOR
from tests.support.reconcile_helpers import run_document

ROOT = Path(__file__).resolve().parents[2]
SHA = "c" * 40
NOW = time.time()


def run(**kw):
    return run_of(run_document("rdp-x", "acme/data", SHA, created=NOW - 60, **kw))


def test_a_run_whose_exit_handler_reported_needs_nothing():
    assert reason_to_repair(run()) is None
    assert reason_to_repair(run(main="Running", reporter=None)) is None  # its own exit handler is still to come


@pytest.mark.parametrize(
    ("kw", "reason", "state"),
    [
        ({"reporter": "Failed"}, "exit handler failed", "success"),
        ({"reporter": "Error", "main": "Failed"}, "exit handler failed", "failure"),
        ({"reporter": None, "main": "Failed"}, "exit handler did not run", "failure"),
        ({"reporter": "Running", "main": "Error"}, "exit handler did not finish", "error"),
    ],
)
def test_the_real_outcome_is_reported_when_the_exit_handler_did_not(kw, reason, state):
    r = run(**kw)
    assert reason_to_repair(r) == reason
    assert verdict(r, reason).state == state


def test_the_entrypoints_phase_is_the_outcome_not_the_workflows():
    # A failed exit handler fails a succeeded run (operator.go); the data was still released.
    r = run(reporter="Failed")
    assert (r.phase, r.main_phase) == ("Failed", "Succeeded")
    assert verdict(r, "exit handler failed").description == "Release data prepared (reported by the reconciler)"


def test_failures_come_from_the_nodes_outside_the_exit_handler():
    r = run(main="Failed", reporter="Failed", failed_step="publish", failure_message="S3 refused the upload")
    assert [f.display_name for f in r.failures] == ["rdp-x", "publish"]
    assert verdict(r, "exit handler failed").description.startswith("publish: S3 refused the upload")


def test_terminated_and_deleted_runs_end_in_error():
    document = run_document("rdp-t", "acme/data", SHA, created=NOW, main="Failed", reporter=None)
    document["spec"]["shutdown"] = "Terminate"
    terminated = run_of(document)
    assert reason_to_repair(terminated) == "terminated"
    assert verdict(terminated, "terminated").state == "error"
    gone = gone_run({"name": "rdp-g", "repo": "acme/data", "sha": SHA, "created": NOW})
    assert reason_to_repair(gone) == "deleted"
    assert verdict(gone, "deleted").description == "Run deleted before it reported; see the run"


def test_only_this_runs_own_pending_status_is_replaced():
    link = "https://argo/workflows/argo/rdp-x"
    assert should_post(None, link)
    assert should_post(("pending", link), link)
    assert not should_post(("pending", "https://argo/workflows/argo/rdp-newer"), link)
    assert not should_post(("success", link), link)  # a second pass, or the exit handler got through after all


def test_a_workflow_without_run_parameters_is_not_a_run():
    document = run_document("rdp-x", "acme/data", SHA, created=NOW)
    document["spec"]["arguments"]["parameters"] = []
    assert run_of(document) is None


@pytest.mark.parametrize(("text", "seconds"), [("90m", 5400), ("24h", 86400), ("2d", 172800), ("30", 30)])
def test_durations(text, seconds):
    assert parse_duration(text, "--since") == seconds


@pytest.mark.parametrize("text", ["", "1w", "-2h", "0h", "soon"])
def test_bad_durations_say_what_is_accepted(text):
    with pytest.raises(ConfigError, match="use e.g. 90m, 24h or 2d"):
        parse_duration(text, "--since")


def test_the_cron_workflow_never_overlaps_and_takes_its_schedule_from_the_config():
    config = load_config(ROOT / "hera_config.yaml", environ={"GSM_RECONCILER_SCHEDULE": "*/5 * * * *"})
    cron = reconciler_workflow(config).to_dict()
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedules"] == ["*/5 * * * *"]
    spec = cron["spec"]["workflowSpec"]
    assert spec["serviceAccountName"] == "release-status-reconciler"
    step = next(t for t in spec["templates"] if t["name"] == "reconcile")
    assert step["script"]["args"][-1] == "steps.reconcile:reconcile"  # runner mode, like every other step
    names = {e["name"] for e in step["script"]["env"]}
    # The shared S3 key only (never a tenant's, never chosen by a parameter); no Argo CD token.
    assert "S3_CREDENTIALS_SECRET" in names and "ARGOCD_TOKEN_FILE" not in names
    assert "s3-secret" not in yaml.safe_dump(cron)
    secrets = [v["secret"]["secretName"] for v in step["volumes"] if "secret" in v]
    assert secrets == [f"github-app-{i}" for i in app_ids(config)]
    metrics = [m for m in step["metrics"]["prometheus"] if m["name"] == "release_reconciler_repairs_total"]
    assert {m["labels"][0]["value"] for m in metrics} == set(REPAIR_KINDS)
    assert all("sha" not in str(m["labels"]) and "repo" not in str(m["labels"]) for m in metrics)


def test_a_bad_schedule_or_look_back_names_the_key(tmp_path):
    config = tmp_path / "hera_config.yaml"
    config.write_text("reconciler:\n  schedule: every ten minutes\n  lookBack: a day\n")
    with pytest.raises(ConfigFileError) as caught:
        load_config(config, environ={})
    assert "reconciler.schedule" in str(caught.value) and "reconciler.lookBack" in str(caught.value)


def test_the_reconciler_selects_release_and_fork_runs_by_the_label_both_templates_give():
    config = load_config(ROOT / "hera_config.yaml", environ={})
    key, value = RUN_SELECTOR.split("=")
    for template in (release_template(config), fork_template(config)):
        assert template.to_dict()["spec"]["workflowMetadata"]["labels"][key] == value
