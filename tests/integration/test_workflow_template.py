import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.config import load_config
from pipelines.lint import lint_resource
from pipelines.parameters import RELEASE_PARAMETERS
from pipelines.render import HEADER, render
from pipelines.resources.workflows import release_template

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifests/workflows/workflowtemplate-release-data-prep.yaml"
SHA = "5d1b2c3a4f5e6d7c8b9a0f1e2d3c4b5a69788776"


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "hera_config.yaml")


@pytest.fixture(scope="module")
def wt(config):
    return release_template(config).to_dict()


def templates(wt):
    return {t["name"]: t for t in wt["spec"]["templates"]}


def tasks(wt, name="main"):
    return {t["name"]: t for t in templates(wt)[name]["dag"]["tasks"]}


def upstream(dag_tasks, name):
    """All tasks that `name` waits for, transitively."""
    seen, todo = set(), [name]
    while todo:
        for dep in re.findall(r"[\w-]+", dag_tasks[todo.pop()].get("depends", "") or ""):
            if dep in dag_tasks and dep not in seen:
                seen.add(dep)
                todo.append(dep)
        for dep in dag_tasks[name].get("dependencies") or []:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_committed_manifests_match_the_python_definitions():
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "render", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_reports_drift_as_a_diff(tmp_path, config):
    out = tmp_path / "manifests"
    subprocess.run(
        [sys.executable, "-m", "pipelines", "render", "--output-dir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    target = out / "workflows/workflowtemplate-release-data-prep.yaml"
    target.write_text(target.read_text().replace("activeDeadlineSeconds: 3600", "activeDeadlineSeconds: 60"))
    (out / "workflows/stale.yaml").write_text(HEADER + "kind: ConfigMap\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "render", "--check", "--output-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "-  activeDeadlineSeconds: 60" in result.stdout and "+  activeDeadlineSeconds: 3600" in result.stdout
    assert "committed/workflows/stale.yaml" in result.stdout


def test_rendering_from_another_directory_is_byte_identical(tmp_path):
    here, there = tmp_path / "a", tmp_path / "b"
    env = {**os.environ, "PYTHONPATH": ""}
    subprocess.run(
        [sys.executable, "-m", "pipelines", "render", "--output-dir", str(here)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env=env,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "render",
            "--config",
            str(ROOT / "hera_config.yaml"),
            "--output-dir",
            str(there),
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env=env,
    )
    files = sorted(p.relative_to(here) for p in here.rglob("*.yaml"))
    assert files == sorted(p.relative_to(there) for p in there.rglob("*.yaml")) and len(files) >= 10
    for rel in files:
        assert (here / rel).read_bytes() == (there / rel).read_bytes(), rel


def test_every_rendered_resource_validates_against_the_official_schemas(config):
    for item in render(config):
        assert lint_resource(item.resource, item.path) == [], item.path


def test_lint_catches_what_heras_models_would_drop(wt):
    broken = json.loads(json.dumps(wt))
    broken["spec"]["templates"][0]["notAField"] = True
    broken["spec"]["templates"][1]["retryStrategy"]["limit"] = 3  # the schema's IntOrString quirk: must be "3"
    problems = [p.message for p in lint_resource(broken, "x")]
    assert any("notAField" in p for p in problems) and any("limit" in p for p in problems)


def test_pending_is_posted_first_with_nothing_slow_before_it(wt):
    dag = tasks(wt)
    assert "depends" not in dag["report-pending"] and "dependencies" not in dag["report-pending"]
    assert dag["report-pending"]["continueOn"] == {"failed": True}  # GitHub down must not stop data prep
    for name in ("check-metadata", "validate-tables", "publish", "register", "plan-deployments"):
        assert "fetch" in upstream(dag, name), name
        assert "report-pending" not in upstream(dag, name)


def test_stage_order(wt):
    dag = tasks(wt)
    assert upstream(dag, "deploy-environments") >= {
        "fetch",
        "check-metadata",
        "validate-tables",
        "publish",
        "register",
        "plan-deployments",
    }
    assert upstream(dag, "publish") == {"fetch", "check-metadata", "validate-tables"}


def test_tables_fan_out_with_the_configured_parallelism(wt, config):
    group = templates(wt)["validate-tables"]
    (task,) = group["dag"]["tasks"]
    assert task["withParam"] == "{{inputs.parameters.tables}}"
    assert group["parallelism"] == config.workflow.table_parallelism
    assert (
        tasks(wt)["validate-tables"]["arguments"]["parameters"][0]["value"] == "{{tasks.check-metadata.outputs.result}}"
    )


def test_exit_handler_receives_workflow_status_and_failures_as_arguments(wt):
    assert wt["spec"]["onExit"] == "exit-handler"
    steps = [s for group in templates(wt)["exit-handler"]["steps"] for s in group]
    assert {s["name"] for s in steps} == {"report-final", "report-pr-summary"}
    for s in steps:
        args = {p["name"]: p["value"] for p in s["arguments"]["parameters"]}
        assert args["workflow_status"] == "{{workflow.status}}"
        assert args["workflow_failures"] == "{{workflow.failures}}"
    # The workflow-level metric's label is evaluated by the controller once the run ended, not by a step.
    assert wt["spec"]["metrics"]["prometheus"][0]["labels"][0] == {"key": "outcome", "value": "{{workflow.status}}"}
    text = yaml.safe_dump({**wt, "spec": {k: v for k, v in wt["spec"].items() if k != "metrics"}})
    assert text.count("{{workflow.status}}") == 2  # only as exit-handler arguments
    by_name = {s["name"]: s for s in steps}
    assert by_name["report-pr-summary"]["continueOn"] == {"failed": True}  # a refused comment is not the verdict
    assert "continueOn" not in by_name["report-final"]


def test_deploy_branch_is_gated_serialised_and_mutexed(wt):
    dag = tasks(wt)
    assert dag["plan-deployments"]["when"] == "'{{workflow.parameters.deploy}}' == 'true'"
    loop = templates(wt)["deploy-environments"]
    assert loop["parallelism"] == 1
    assert loop["steps"][0][0]["withParam"] == "{{inputs.parameters.environments}}"
    (mutex,) = templates(wt)["deploy-environment"]["synchronization"]["mutexes"]
    assert "workflow.parameters.repo" in mutex["name"] and "inputs.parameters.environment" in mutex["name"]


def test_workflow_hygiene(wt, config):
    spec = wt["spec"]
    assert spec["activeDeadlineSeconds"] == config.workflow.active_deadline_seconds
    assert spec["podGC"]["strategy"] == "OnPodSuccess"
    assert spec["ttlStrategy"]["secondsAfterSuccess"] > 0 and spec["ttlStrategy"]["secondsAfterFailure"] > 0
    assert set(spec["workflowMetadata"]["labelsFrom"]) == {
        f"gitops-status-matrix/{k}" for k in ("repo", "sha", "event", "pr")
    }
    assert [p["name"] for p in spec["arguments"]["parameters"]] == list(RELEASE_PARAMETERS)
    scripts = [t for t in spec["templates"] if "script" in t]
    assert scripts and all(t["retryStrategy"]["limit"] == str(config.workflow.retry_limit) for t in scripts)
    assert all("75" in t["retryStrategy"]["expression"] for t in scripts)  # data errors are not retried


def test_entrypoints_are_runner_mode_functions_in_steps(wt):
    for t in (t for t in wt["spec"]["templates"] if "script" in t):
        script = t["script"]
        assert script["command"] == ["python"] and script["source"] == "{{inputs.parameters}}"
        assert script["args"][:3] == ["-m", "hera.workflows.runner", "-e"]
        module, function = script["args"][3].split(":")
        assert module.startswith("steps.")
        assert callable(getattr(__import__(module, fromlist=[function]), function))


SECRET_NEEDS = {
    "report-pending": {"github"},
    "fetch": {"github", "s3"},
    "check-metadata": {"s3"},
    "check-table": {"s3"},
    "publish": {"s3"},
    "register": {"github", "s3"},  # one compare call: the latest pointer only moves forward
    "plan-deployments": set(),
    "deploy-environment": {"github", "argocd", "s3"},  # s3: the outcome record in the run workspace
    "report-final": {"github", "s3"},
    "report-pr-summary": {"github", "s3"},
}


def secrets_of(template):
    found = set()
    for volume in template.get("volumes") or []:
        if "secret" in volume:
            found.add({"github-app": "github", "argocd-token": "argocd"}[volume["name"]])
    for env in template["script"].get("env") or []:
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == S3_SECRET_EXPRESSION
            found.add("s3")
    return found


# The registration's own Secret when the run names one, else the shared s3.credentialsSecret.
S3_SECRET_EXPRESSION = (
    "{{=workflow.parameters['s3-secret'] != '' ? workflow.parameters['s3-secret'] : 's3-credentials'}}"
)


@pytest.mark.parametrize(("given", "mounted"), [("", "s3-credentials"), ("acme-data-s3", "acme-data-s3")])
def test_the_s3_secret_is_the_registrations_own_else_the_shared_one(given, mounted):
    from pipelines.local.variables import substitute

    scope = {"workflow.parameters.s3-secret": given, "workflow.parameters.repo": "acme/data", "workflow.name": "w"}
    assert substitute(S3_SECRET_EXPRESSION, scope, "test") == mounted


def test_secrets_are_references_mounted_only_where_used(wt):
    by_name = templates(wt)
    assert set(SECRET_NEEDS) == {n for n, t in by_name.items() if "script" in t}
    for name, needs in SECRET_NEEDS.items():
        assert secrets_of(by_name[name]) == needs, name
    assert "volumes" not in wt["spec"]  # nothing mounted workflow-wide


def test_no_secret_material_anywhere_in_the_rendered_yaml(config):
    text = "".join(item.text for item in render(config))
    for pattern in (
        r"BEGIN [A-Z ]*PRIVATE KEY",
        r"gh[pousr]_[A-Za-z0-9]{20,}",
        r"AKIA[0-9A-Z]{16}",
        r"eyJ[\w-]{10,}\.",
    ):
        assert not re.search(pattern, text), pattern
    params = {p["name"] for p in release_template(config).to_dict()["spec"]["arguments"]["parameters"]}
    assert not params & {"token", "private-key", "password", "secret"}


# --------------------------------------------------------------------------------------------------------------------
# Each script template's entrypoint through hera.workflows.runner, with an Argo-shaped inputs file, as a pod runs it.


def run_template(wt, name, values, env, tmp_path):
    template = templates(wt)[name]
    inputs = []
    for param in template["inputs"]["parameters"]:
        value = values.get(param["name"], param.get("default"))
        assert value is not None, f"{name}: no value for input {param['name']}"
        inputs.append({"name": param["name"], "value": value})
    inputs_file = tmp_path / f"{name}.inputs.json"
    inputs_file.write_text(json.dumps(inputs))
    script = template["script"]
    step_env = {e["name"]: e["value"] for e in script.get("env", []) if "value" in e}
    step_env = {
        k: v.replace("{{workflow.name}}", "release-data-prep-x1y2z").replace("{{retries}}", "0")
        for k, v in step_env.items()
    }
    termination = tmp_path / f"{name}.termination"
    step_env.update(env, STEP_TERMINATION_LOG=str(termination))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ARGOCD_", "AWS_"))}
    full_env.update(step_env)
    command = [sys.executable if part == "python" else part for part in script["command"]]  # the image's python
    result = subprocess.run(
        [*command, *script["args"], str(inputs_file)],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    message = termination.read_text() if termination.exists() else ""
    return result, message


@pytest.fixture
def pod_env(tmp_path, config):
    from steps.runtime.registrations import dump_registrations

    registrations = tmp_path / "registrations.yaml"
    registrations.write_text(dump_registrations(config.repo_registrations))
    return {
        "RELEASE_WORKSPACE": str(tmp_path / "workspace"),
        "RELEASE_STORE": str(tmp_path / "store"),
        "RELEASE_SOURCE": str(ROOT / "examples/release-data"),
        "GITHUB_RECORD_FILE": str(tmp_path / "github.jsonl"),
        "STEP_REGISTRATIONS_FILE": str(registrations),
    }


def test_each_entrypoint_runs_through_heras_runner_as_in_a_pod(wt, pod_env, tmp_path, argocd_emulator):
    who = {"repo": "acme/data", "sha": SHA, "installation_id": "11111111", "app_id": "123456"}
    push = {"event": "push", "ref": "refs/heads/main", "pr_number": ""}
    outputs = {}
    for name, values in [
        ("report-pending", {**who, "workflow_name": "release-data-prep-x1y2z"}),
        ("fetch", {**who, "data_path": "release-data/"}),
        ("check-metadata", who),
    ]:
        result, message = run_template(wt, name, values, pod_env, tmp_path)
        assert result.returncode == 0, (name, message, result.stderr[-2000:])
        outputs[name] = result.stdout.strip()
    tables = json.loads(outputs["check-metadata"])
    assert {t["name"] for t in tables} == {"products", "prices"}
    for table in tables:
        result, _ = run_template(wt, "check-table", {**who, "table": table["name"]}, pod_env, tmp_path)
        assert result.returncode == 0 and json.loads(result.stdout)["valid"] is True
    for name, values in [
        ("publish", {**who, **push, "workflow_name": "release-data-prep-x1y2z"}),
        ("register", {**who, **push, "run_id": "uid-1"}),
        ("plan-deployments", {"repo": "acme/data", **push}),
    ]:
        result, message = run_template(wt, name, values, pod_env, tmp_path)
        assert result.returncode == 0, (name, message, result.stderr[-2000:])
        outputs[name] = result.stdout.strip()
    plan = json.loads(outputs["plan-deployments"])
    assert [p["environment"] for p in plan] == ["staging", "production"]

    argocd_emulator.add_app("acme-data-staging", revision=SHA)
    token_file = tmp_path / "argocd-token"
    token_file.write_text("argocd-test-token")
    deploy_env = {
        **pod_env,
        "ARGOCD_SERVER_URL": argocd_emulator.url,
        "ARGOCD_TOKEN_FILE": str(token_file),
        "ARGOCD_STABILITY_SECONDS": "0",
        "ARGOCD_TIMEOUT_SECONDS": "10",
        "ARGOCD_INSECURE": "true",
    }
    staging = {**who, **plan[0], "workflow_name": "release-data-prep-x1y2z"}
    result, message = run_template(wt, "deploy-environment", staging, deploy_env, tmp_path)
    assert result.returncode == 0, (message, result.stderr[-2000:])

    for name in ("report-final", "report-pr-summary"):
        values = {**who, **push, "workflow_status": "Succeeded", "workflow_failures": "null"}
        result, message = run_template(wt, name, values, pod_env, tmp_path)
        assert result.returncode == 0, (name, message, result.stderr[-2000:])
    records = [json.loads(line) for line in (tmp_path / "github.jsonl").read_text().splitlines()]
    statuses = [r for r in records if r["kind"] == "commit_status"]
    assert [s["state"] for s in statuses] == ["pending", "success"]
    assert statuses[-1]["description"] == "acme-prices 1.4.0: 2 tables, 3,600 rows published"
    assert any(r["kind"].startswith("deployment") for r in records)


def test_a_failing_step_exits_with_its_summary_as_termination_message(wt, pod_env, tmp_path):
    pod_env["RELEASE_SOURCE"] = str(ROOT / "examples/release-data-bad")
    who = {"repo": "acme/data", "sha": SHA}
    for name in ("fetch", "check-metadata"):
        result, _ = run_template(
            wt, name, {**who, "installation_id": "", "app_id": "", "data_path": ""}, pod_env, tmp_path
        )
        assert result.returncode == 0, result.stderr[-2000:]
    failures = []
    for table in json.loads(result.stdout):
        result, message = run_template(wt, "check-table", {**who, "table": table["name"]}, pod_env, tmp_path)
        if result.returncode:
            assert result.returncode == 2  # a data error: final, not retried
            assert message.startswith(f"{table['name']}: ") and len(message) <= 140
            failures.append(message)
    assert failures, "the bad example must fail validation"
    assert not list((tmp_path / "store").rglob("manifest.json"))


def test_a_bad_argument_is_a_clear_final_failure(wt, pod_env, tmp_path):
    result, message = run_template(wt, "report-pending", {"repo": "acme/data", "sha": "HEAD"}, pod_env, tmp_path)
    assert result.returncode == 2
    assert message == "sha 'head' is not a full 40-character hex commit id"


def test_postsync_hooks_are_rendered_only_on_request_and_never_gate(tmp_path):
    hooks = tmp_path / "hooks"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "render",
            "--output-dir",
            str(tmp_path / "m"),
            "--postsync-hooks",
            str(hooks),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    files = sorted(hooks.glob("*.yaml"))
    assert files and not list((tmp_path / "m").rglob("workflow-*-postsync.yaml"))
    for path in files:
        hook = yaml.safe_load(path.read_text())
        assert hook["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
        params = {p["name"]: p["value"] for p in hook["spec"]["arguments"]["parameters"]}
        assert params["deploy"] == "false"  # a hook cannot wait for its own app to turn Healthy
        assert lint_resource(hook, str(path)) == []


def test_preview_cleanup_entrypoint_runs_through_heras_runner(config, pod_env, tmp_path):
    from pipelines.resources.workflows import cleanup_template

    wt = cleanup_template(config).to_dict()
    values = {"repo": "acme/data", "pr_number": "7", "installation_id": "11111111", "app_id": "123456"}
    result, message = run_template(wt, "deactivate-preview", values, pod_env, tmp_path)
    assert result.returncode == 0, (message, result.stderr[-2000:])
    assert json.loads(result.stdout)["environment"] == "preview/pr-7"
