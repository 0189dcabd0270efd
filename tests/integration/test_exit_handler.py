"""The exit handler always posts a final commit status, whatever happened to the S3 Secret (local runner, moto S3)."""

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from pipelines import render
from pipelines.cli.run import config_maps
from pipelines.config import load_config
from pipelines.local import LocalRun, RunOptions, RunResult
from pipelines.runs import data_sha, local_registration, run_parameters

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "release-data"
REPO = "local/example"


def release_template() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config = load_config(ROOT / "hera_config.yaml", environ={})
    resources = [r.resource for r in render.render(config)]
    template = next(
        r for r in resources if r["kind"] == "WorkflowTemplate" and r["metadata"]["name"] == "release-data-prep"
    )
    return template, resources


def run_release(
    tmp_path: Path, s3_server, template: dict[str, Any], resources: list, secrets: dict, missing: frozenset[str]
) -> tuple[RunResult, list[dict[str, Any]]]:
    config = load_config(ROOT / "hera_config.yaml", environ={})
    params = {**run_parameters(config, REPO, data_sha(DATA), "push", ""), "deploy": "false"}
    records = tmp_path / "github.jsonl"
    root = f"s3://{s3_server.bucket}/releases"
    options = RunOptions(
        name="rdp-test",
        runs_dir=tmp_path / "runs",
        env={
            "RELEASE_SOURCE": str(DATA),
            "RELEASE_STORE": root,
            "RELEASE_WORKSPACE": f"{root}/_runs/rdp-test",
            "AWS_ENDPOINT_URL_S3": s3_server.endpoint_url,
            "GITHUB_RECORD_FILE": str(records),
        },
        secrets=secrets,
        missing_secrets=missing,
        config_maps=config_maps(resources, local_registration(REPO, config)),
    )
    run = LocalRun(template, params, options)
    run.start()
    result = run.wait(120)
    assert result is not None, "the local run did not finish"
    lines = records.read_text().splitlines() if records.exists() else []
    return result, [e for e in map(json.loads, lines) if e["kind"] == "commit_status"]


def test_a_secret_without_a_key_fails_fast_and_the_final_status_names_it(tmp_path, s3_server):
    # The Secret exists but lacks secret-access-key: the optional ref leaves the variable unset, the step names
    # the Secret and key at once, and the exit handler (which needs only the App key) posts the final status.
    template, resources = release_template()
    result, statuses = run_release(
        tmp_path,
        s3_server,
        template,
        resources,
        secrets={"AWS_ACCESS_KEY_ID": "testing"},
        missing=frozenset({"s3-credentials/secret-access-key"}),
    )
    assert result.phase == "Failed"
    assert [s["state"] for s in statuses] == ["pending", "failure"]
    assert "Secret s3-credentials has no secret-access-key" in statuses[-1]["description"]
    fetch = [n for n in result.nodes if n.display_name.startswith("fetch")]
    assert all(n.finished_at and n.finished_at - n.started_at < 30 for n in fetch)  # not held until a deadline


@pytest.mark.parametrize("missing", ["s3-credentials", "s3-credentials/access-key-id"])
def test_with_required_references_the_commit_would_stay_pending(tmp_path, s3_server, missing):
    # What optional: true prevents. Every Secret reference of the rendered template is optional; made required,
    # a missing Secret holds fetch Pending (CreateContainerConfigError) until the workflow deadline, and the
    # exit handler's own pods cannot start either, so no final status is ever posted.
    template, resources = release_template()
    refs = 0
    for t in template["spec"]["templates"]:
        for env in (t.get("script") or {}).get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref is not None:
                assert ref["optional"] is True, f"{t['name']}: {env['name']} is a required Secret reference"
                ref["optional"], refs = False, refs + 1
        for volume in t.get("volumes") or []:
            assert "secret" not in volume or volume["secret"]["optional"] is True
    assert refs
    template["spec"]["activeDeadlineSeconds"] = 8
    result, statuses = run_release(
        tmp_path,
        s3_server,
        template,
        resources,
        secrets={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        missing=frozenset({missing}),
    )
    fetch = next(n for n in result.nodes if n.display_name == "fetch")
    assert result.phase == "Failed" and fetch.message == "Step exceeded its deadline"
    assert [s["state"] for s in statuses] == ["pending"]  # stale: the exit handler never got to run a pod
    final = next(n for n in result.nodes if n.display_name == "report-final")
    assert final.phase == "Failed" and final.message == "Step exceeded its deadline"
    assert [n.display_name for n in result.nodes if n.display_name.startswith("report-final(")] == ["report-final(0)"]


def test_an_s3_outage_that_outlasts_the_retries_ends_error_not_failure(tmp_path, s3_server):
    # S3 refuses connections for the whole run: the steps exit 75 with an "[infra]" termination message, Argo
    # marks the run Failed (exit 75 is a failed node), and the exit handler still reports `error` (README's
    # matrix: `error` is infrastructure), naming the step and the outage in the step's own words.
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    template, resources = release_template()

    class Down:
        bucket = s3_server.bucket
        endpoint_url = closed

    result, statuses = run_release(
        tmp_path,
        Down,
        template,
        resources,
        secrets={"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
        missing=frozenset(),
    )
    assert result.phase == "Failed"
    assert [s["state"] for s in statuses] == ["pending", "error"]
    description = statuses[-1]["description"]
    assert "[infra]" not in description and "exit code" not in description
    assert description.startswith(("fetch", "metadata", "validate", "etl", "publish")), description
