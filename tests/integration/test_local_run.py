"""Tests of the local Argo executor (pipelines.local) on small hand-written templates.

Every step runs as a real subprocess through Hera's runner (tests/support/local_steps.py). The scenarios that
run pods start together in one module fixture, so their ~1 s interpreter start-ups overlap; each test
then waits for its own run. Concurrency is measured with marker files, never with timings.
"""

import copy
import json
import re
import threading
from pathlib import Path

import pytest
import yaml

from pipelines import local as lr
from pipelines.local.items import _item_scope, _loop_items
from steps.policy.status import parse_failures

TEMPLATES = Path(__file__).resolve().parents[1] / "support" / "local_templates"


def load(name: str) -> dict:
    return yaml.safe_load((TEMPLATES / f"{name}.yaml").read_text(encoding="utf-8"))


def node(result: lr.RunResult, suffix: str) -> lr.Node:
    matches = [n for n in result.nodes if n.name == f"{result.name}{suffix}"]
    assert matches, f"no node {suffix!r} in {[n.name for n in result.nodes]}"
    return matches[0]


def exit_record(trace: Path) -> dict:
    return json.loads((trace / "exit.json").read_text(encoding="utf-8"))


def trace_lines(trace: Path) -> list[str]:
    return (trace / "trace.log").read_text(encoding="utf-8").splitlines()


class Scenario:
    def __init__(self, run: lr.LocalRun, trace: Path) -> None:
        self.run, self.trace = run, trace

    def result(self) -> lr.RunResult:
        result = self.run.wait(timeout=180)
        assert result is not None, f"{self.run.name} did not finish"
        return result


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scenario]:
    root = tmp_path_factory.mktemp("local-run")
    key_file = root / "private-key"
    key_file.write_text("not a real key", encoding="utf-8")
    deadline = load("environment")
    deadline["spec"]["activeDeadlineSeconds"] = 3
    deadline["spec"]["templates"][0]["dag"]["tasks"] = deadline["spec"]["templates"][0]["dag"]["tasks"][1:]
    stop = copy.deepcopy(deadline)
    del stop["spec"]["activeDeadlineSeconds"]
    plans = {
        "dag": (load("dag"), {}),
        "concurrency": (load("concurrency"), {}),
        "steps": (load("steps"), {}),
        "retries": (load("retries"), {}),
        "crash": (load("failures"), {"mode": "crash"}),
        "unstartable": (load("failures"), {"mode": "unstartable"}),
        "environment": (load("environment"), {}),
        "deadline": (deadline, {"nap": "120"}),
        "stop": (stop, {"nap": "120"}),
    }
    out: dict[str, Scenario] = {}
    for name, (resource, params) in plans.items():
        trace = root / name
        trace.mkdir()
        options = lr.RunOptions(
            runs_dir=root / "runs",
            config_maps={"test-registrations": {"registrations.yaml": "repoRegistrations: []\n"}},
            secrets={"SECRET_TOKEN": "s3cr3t-value", "KEY_PATH": str(key_file)},
            env={"LOCAL_ONLY": "set by the local runner"},
        )
        on_change = None
        if name == "stop":

            def on_change(n: lr.Node, scenario: str = name) -> None:
                if n.template_name == "sleep" and n.phase == "Running":
                    threading.Thread(target=out[scenario].run.stop).start()

        run = lr.LocalRun(resource, {"trace-dir": str(trace), **params}, options, on_change)
        out[name] = Scenario(run, trace)
    for scenario in out.values():
        scenario.run.start()
    yield out
    for scenario in out.values():
        scenario.run.terminate()


# --- pure parts: Go formatting, expressions, refusals ------------------------------------------------------


def test_go_quote_and_json_match_go_encoding() -> None:
    assert lr.go_quote('[{"m":"a\\b"}]') == '"[{\\"m\\":\\"a\\\\b\\"}]"'
    assert lr.go_quote("tab\there\nand\x01") == '"tab\\there\\nand\\x01"'
    assert lr.go_quote("héllo…") == '"héllo…"'
    assert lr.go_json(None) == "null"
    assert lr.go_json([{"a": "<b> & c"}]) == '[{"a":"\\u003cb\\u003e \\u0026 c"}]'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        (1, "1"),
        (123456, "123456"),
        (1000000, "1e+06"),
        (1234567, "1.234567e+06"),
        (0.5, "0.5"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
        ("text", "text"),
    ],
)
def test_item_values_render_like_go_percent_v(value: object, expected: str) -> None:
    assert lr.go_format(value) == expected


def test_fan_out_items_render_like_argo_v3_items() -> None:
    items = _loop_items({"withParam": "{{x}}"}, {"x": '[1.50, 1e3, true, "a<b", null, ["p", 2]]'}, "t")
    assert [_item_scope(i, item)[0]["item"] for i, item in enumerate(items or [])] == [
        "1.50",
        "1e3",
        "true",
        "a\\u003cb",
        "",
        '["p",2]',
    ]
    scope, label = _item_scope(0, {"name": "prices", "keys": ["id", "date"], "opts": {"b": "2", "a": "1"}})
    assert scope["item.keys"] == '["id","date"]' and scope["item.opts"] == '{"a":"1","b":"2"}'
    assert scope["item"] == '{"keys":["id","date"],"name":"prices","opts":{"a":"1","b":"2"}}'
    assert label == 'keys:["id","date"],name:prices,opts:{"a":"1","b":"2"}'
    with pytest.raises(lr.ExpressionError, match="cannot unmarshal number into Go value of type string"):
        _item_scope(0, {"opts": {"n": 1}})


def test_when_follows_govaluate_as_argo_uses_it() -> None:
    assert lr.evaluate_when("'Succeeded' == 'Succeeded'")
    assert lr.evaluate_when("crash == crash")  # bare words are strings
    assert not lr.evaluate_when("('a' == 'b' || 'c' != 'c') && true")
    assert lr.evaluate_when("1 == 1.0")
    refused = [
        ("my-repo == x", "cannot parse|'-'"),
        ("1abc == x", "cannot parse"),
        ("'a' < 'b'", "not supported"),
        ("!true", "not supported"),
        ("f(1) == 1", "not supported"),
        ("'a'", "not a boolean"),
    ]
    for bad, why in refused:
        with pytest.raises(lr.ExpressionError, match=why):
            lr.evaluate_when(bad)


def test_expressions_of_the_release_template() -> None:
    scope = {"workflow.parameters.repo": "acme/data", "inputs.parameters.environment": "preview/pr-7"}
    mutex = (
        "{{=sprig.replace('/', '.', workflow.parameters.repo) + '.' + "
        "sprig.replace('/', '-', inputs.parameters.environment)}}"
    )
    assert lr.substitute(mutex, scope, "mutex") == "acme.data.preview-pr-7"
    labels = "{{=sprig.trunc(7, 'abcdef0123')}}-{{ workflow.parameters.repo }}"
    assert lr.substitute(labels, scope, "x") == "abcdef0-acme/data"
    assert lr.substitute("{{=workflow.parameters['repo']}}", scope, "x") == "acme/data"
    retry = lr.parse_expression("lastRetry.status == 'Error' || asInt(lastRetry.exitCode) == 75")
    assert lr.evaluate(retry, {"lastRetry": {"status": "Failed", "exitCode": "75"}}) is True
    assert lr.evaluate(retry, {"lastRetry": {"status": "Error", "exitCode": "-1"}}) is True
    assert lr.evaluate(retry, {"lastRetry": {"status": "Failed", "exitCode": "2"}}) is False
    with pytest.raises(lr.ExpressionError, match="failed to resolve"):
        lr.substitute("{{inputs.parameters.nope}}", scope, "args")
    with pytest.raises(lr.ExpressionError, match="unknown function sprig.sha1sum"):
        lr.parse_expression("sprig.sha1sum(workflow.name)")


def test_depends_parsing() -> None:
    tree, names = lr.parse_depends("(check-metadata.Succeeded || fetch) && !publish.Failed")
    assert names == {"check-metadata", "fetch", "publish"}
    assert tree[0] == "and"
    with pytest.raises(lr.ExpressionError, match="unknown result .Done"):
        lr.parse_depends("fetch.Done")
    with pytest.raises(lr.ExpressionError, match="cannot parse"):
        lr.parse_depends("fetch =~ 'x'")


def test_unsupported_features_are_refused_by_name_before_anything_runs(tmp_path: Path) -> None:
    resource = load("dag")
    spec = resource["spec"]
    spec["hooks"] = {"exit": {"template": "echo"}}
    spec["templates"].append({"name": "approve", "suspend": {}})
    spec["templates"].append({"name": "kubectl", "resource": {"action": "create", "manifest": "{}"}})
    templates = {t["name"]: t for t in spec["templates"]}
    templates["echo"]["outputs"] = {"artifacts": [{"name": "report", "path": "/tmp/r"}]}
    templates["echo"]["podSpecPatch"] = "{}"
    templates["echo"]["memoize"] = {"key": "x"}
    templates["echo"]["script"]["env"] = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]
    templates["make-items"]["synchronization"] = {"semaphores": [{"configMapKeyRef": {"name": "s", "key": "k"}}]}
    templates["make-items"]["retryStrategy"] = {"limit": "2", "retryPolicy": "OnTransientError"}
    tasks = templates["main"]["dag"]["tasks"]
    tasks[0]["withSequence"] = {"count": "3"}
    tasks[1]["depends"] = "first && sprig.hasKey(x)"
    tasks[2]["arguments"]["parameters"][0]["value"] = "{{tasks.items.outputs.parameters.list}}"
    tasks[3]["when"] = "{{=sprig.sha1sum(workflow.name)}} == x"
    with pytest.raises(lr.LocalRunRefused) as refused:
        lr.LocalRun(resource, {"trace-dir": str(tmp_path)}, lr.RunOptions(runs_dir=tmp_path / "runs"))
    text = str(refused.value)
    for expected in [
        "spec.hooks",
        "templates[7] ('approve').suspend",
        "templates[8] ('kubectl').resource",
        "templates[2] ('echo').outputs",
        "templates[2] ('echo').podSpecPatch",
        "templates[2] ('echo').memoize",
        "valueFrom.configMapKeyRef",
        "synchronization.semaphores",
        "retryPolicy 'OnTransientError'",
        "tasks[0] ('first').withSequence",
        "tasks[1] ('items').depends",
        "tasks.items.outputs.parameters.list",
        "unknown function sprig.sha1sum",
    ]:
        assert expected in text, f"{expected!r} not named in:\n{text}"
    assert all("python -m pipelines submit" in p for p in refused.value.problems if "does not support" in p)
    assert not (tmp_path / "runs").exists()


def test_bad_parameters_and_missing_config_maps_are_refused(tmp_path: Path) -> None:
    options = lr.RunOptions(runs_dir=tmp_path)
    with pytest.raises(lr.LocalRunRefused, match="unknown parameter.*colour.*takes trace-dir, count, mode"):
        lr.LocalRun(load("dag"), {"colour": "red"}, options)
    with pytest.raises(lr.LocalRunRefused, match="mounts ConfigMap 'test-registrations'"):
        lr.LocalRun(load("environment"), {}, options)
    broken = load("dag")
    broken["spec"]["templates"][0]["dag"]["tasks"][0]["depends"] = "last"
    with pytest.raises(lr.LocalRunRefused, match="cycle"):
        lr.LocalRun(broken, {}, options)


def test_plan_rows_follow_dependency_order_and_the_exit_handler() -> None:
    rows = [(r.key, r.fan_out, r.leaf) for r in lr.plan_rows(load("dag"))]
    assert [key for key, _, _ in rows] == [
        ("first",),
        ("items",),
        ("when-true",),
        ("when-false",),
        ("fan",),
        ("fan", "overlap"),
        ("last",),
        ("onExit",),
        ("onExit", "record"),
    ]
    assert (("fan", "overlap"), True, True) in rows
    assert (("fan",), False, False) in rows


# --- runs: each scenario's pods really run ----------------------------------------------------------------


def test_dag_order_results_fan_out_limit_and_when(scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios["dag"]
    result = scenario.result()
    assert result.phase == "Succeeded", result.message
    lines = trace_lines(scenario.trace)
    runs = [line for line in lines if line.startswith("run ")]
    assert runs[0] == "run first" and runs[-1] == "run last"
    assert "run never" not in lines
    assert node(result, ".when-true").result == "first-again"  # {{tasks.first.outputs.result}} passed on
    skipped = node(result, ".when-false")
    assert (skipped.phase, skipped.message) == ("Skipped", "when ''fast' != 'fast'' evaluated false")
    assert node(result, ".last").phase == "Succeeded"  # depends on a skipped task still runs (Argo's expansion)
    group = node(result, ".fan.overlap")
    assert (group.type, group.expected, json.loads(group.result or "")) == (
        "TaskGroup",
        4,
        ["t0", "t1", "t2", "t3"],
    )
    assert node(result, ".fan.overlap(3:name:t3)").phase == "Succeeded"
    seen = [int(x) for x in (scenario.trace / "max-active").read_text().split()]
    assert len(seen) == 4 and max(seen) <= 2  # parallelism: 2 honoured
    record = exit_record(scenario.trace)
    assert record["status"] == "Succeeded"
    assert record["failures"] == '"null"'  # Go-quoted null: nothing failed
    assert parse_failures(record["failures"]) == []
    assert all(n.fulfilled for n in result.nodes)


def test_fan_out_without_limit_runs_items_at_once(scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios["concurrency"]
    result = scenario.result()
    assert result.phase == "Succeeded", result.message
    assert [int(x) for x in (scenario.trace / "max-active").read_text().split()] == [3, 3, 3]
    assert node(result, ".together(1:b)").result == "b"


def test_steps_run_group_by_group_and_parallelism_one_in_item_order(scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios["steps"]
    result = scenario.result()
    assert result.phase == "Succeeded", result.message  # the failed step had continueOn.failed
    tolerated = node(result, "[0].tolerated")
    assert (tolerated.phase, tolerated.message, tolerated.exit_code) == (
        "Failed",
        "main: Error (exit code 3)",
        3,
    )
    lines = trace_lines(scenario.trace)
    deploys = [line for line in lines if line.startswith(("begin", "end"))]
    assert deploys == [
        "begin staging-false",
        "end staging-false",
        "begin pr-7-false",
        "end pr-7-false",
        "begin production-true",
        "end production-true",
    ]
    assert lines[0] == "run hello" and lines[-1] == "run after hello"  # {{steps.hello.outputs.result}}
    item = node(result, "[1].deploy-all[0].deploy-environment(1:environment:preview/pr-7,key:pr-7,production:false)")
    assert item.phase == "Succeeded"
    assert Path(item.log_path or "").name.startswith("[1].deploy-all[0].deploy-environment(1:environment:preview_pr-7")


def test_retries_follow_the_expression_and_the_exit_handler_gets_go_quoted_failures(
    scenarios: dict[str, Scenario],
) -> None:
    scenario = scenarios["retries"]
    result = scenario.result()
    assert result.phase == "Failed"
    infra = node(result, ".infra")
    assert (infra.type, infra.phase, infra.result) == ("Retry", "Succeeded", "infra ok after 3")
    attempts = [n for n in result.nodes if n.name.startswith(f"{result.name}.infra(")]
    assert [(n.phase, n.exit_code) for n in attempts] == [("Failed", 75), ("Failed", 75), ("Succeeded", 0)]
    data = node(result, ".data")
    assert (data.phase, data.message) == ("Failed", "retryStrategy.expression evaluated to false")
    assert [n.exit_code for n in result.nodes if n.name.startswith(f"{result.name}.data(")] == [2]
    assert (scenario.trace / "calls-data").read_text() == "1"  # exit 2 is final: not retried
    attempts = [line for line in trace_lines(scenario.trace) if line.endswith(" infra")]
    assert attempts == ["attempt 0 infra", "attempt 1 infra", "attempt 2 infra"]  # {{retries}}

    record = exit_record(scenario.trace)
    assert record["status"] == "Failed"
    raw = record["failures"]
    assert raw.startswith('"[{\\"displayName\\":') and raw.endswith('}]"')
    failures = json.loads(json.loads(raw))
    assert failures == result.failures
    pod = next(f for f in failures if f["displayName"] == "data(0)")
    assert list(pod) == ["displayName", "message", "templateName", "phase", "podName", "finishedAt"]
    assert pod["message"] == "main: Error (exit code 2): data: attempt 1 failed on purpose"  # Argo 3.7
    assert (pod["templateName"], pod["phase"]) == ("flaky", "Failed")
    assert pod["podName"].startswith(f"{result.name}-flaky-")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", pod["finishedAt"])
    assert {"data", "data(0)", "infra(0)", "infra(1)", result.name} == {f["displayName"] for f in failures}
    assert "data(0)" in [f.display_name for f in parse_failures(raw)]


def test_a_crash_still_runs_the_exit_handler_with_failed(scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios["crash"]
    result = scenario.result()
    assert result.phase == "Failed"
    crash = node(result, ".crash")
    assert (crash.phase, crash.exit_code) == ("Failed", 1)
    assert crash.message == "main: Error (exit code 1): crash crashed: RuntimeError: crash-step hit a bug"
    assert "Traceback" in Path(crash.log_path or "").read_text()
    omitted = node(result, ".after-crash")
    assert (omitted.phase, omitted.message) == ("Omitted", "omitted: depends condition not met")
    record = exit_record(scenario.trace)
    assert record["status"] == "Failed"
    assert [f["displayName"] for f in json.loads(json.loads(record["failures"]))] == ["crash", result.name]
    assert all(n.fulfilled for n in result.nodes)  # nothing left pending


def test_a_step_that_cannot_start_is_an_error(scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios["unstartable"]
    result = scenario.result()
    assert result.phase == "Error"
    step = node(result, ".unstartable")
    assert step.phase == "Error"
    assert step.message.startswith("cannot start container command '/nonexistent/bin/python-xyz'")
    assert node(result, ".after-crash").phase == "Omitted"  # crash was skipped: crash.Succeeded is false
    assert exit_record(scenario.trace)["status"] == "Error"


def test_env_secrets_and_volumes_get_local_stand_ins(scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios["environment"]
    result = scenario.result()
    assert result.phase == "Succeeded", result.message
    seen = json.loads(node(result, ".env").result or "")
    assert seen["SECRET_TOKEN"]["value"] == "s3cr3t-value"  # secretKeyRef from the local stand-in
    assert seen["KEY_PATH"]["content"] == "not a real key"  # a path into a Secret volume: the stand-in path
    assert seen["STEP_REGISTRATIONS_FILE"]["content"] == "repoRegistrations: []\n"  # ConfigMap volume written locally
    assert seen["STEP_REGISTRATIONS_FILE"]["value"].startswith(str(result.run_dir))
    assert seen["STEP_TERMINATION_LOG"]["value"].startswith(str(result.run_dir / "pods"))
    assert seen["MISSING"]["value"] is None
    assert seen["LOCAL_ONLY"]["value"] == "set by the local runner"
    assert seen["PLAIN"]["value"] == f"workflow {result.name}"
    assert any(note.startswith("MISSING (secretKeyRef tokens/other) is not set locally") for note in result.notes)
    assert (
        "s3cr3t-value"
        not in (
            result.run_dir / "pods" / f"{result.name}-read-env-{lr.fnv32a(result.name + '.env')}" / "script"
        ).read_text()
    )


def test_the_workflow_deadline_kills_running_steps_and_the_exit_handler_runs(
    scenarios: dict[str, Scenario],
) -> None:
    scenario = scenarios["deadline"]
    result = scenario.result()
    assert (result.phase, result.message) == ("Failed", lr.DEADLINE_MESSAGE)
    nap = node(result, ".nap")
    assert nap.phase == "Failed" and nap.message in (lr.DEADLINE_POD_MESSAGE, lr.DEADLINE_MESSAGE)
    assert exit_record(scenario.trace)["status"] == "Failed"


def test_stop_kills_running_steps_and_the_exit_handler_runs(scenarios: dict[str, Scenario]) -> None:
    scenario = scenarios["stop"]
    result = scenario.result()
    assert (result.phase, result.message) == ("Failed", lr.STOP_MESSAGE)
    assert node(result, ".nap").message == lr.STOP_MESSAGE
    record = exit_record(scenario.trace)
    assert record["status"] == "Failed"
    assert parse_failures(record["failures"])[0].message == lr.STOP_MESSAGE


# --- python -m pipelines run: its parts, then the real rendered template end to end ------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "hera_config.yaml"


def fake_node(name: str, phase: str, row: tuple[str, ...], **fields: object) -> lr.Node:
    kind = fields.pop("type", "Pod")
    return lr.Node(
        id=name,
        name=name,
        display_name=name.split(".")[-1],
        type=str(kind),
        template_name=row[-1] if row else "main",
        row=row,
        phase=phase,
        **fields,
    )  # type: ignore[arg-type]


def test_data_sha_is_a_stable_stand_in_commit(tmp_path: Path) -> None:
    from pipelines.runs import data_sha

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "t.csv").write_text("x\n1\n")
    first = data_sha(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", first) and data_sha(tmp_path) == first
    (tmp_path / "a" / "t.csv").write_text("x\n2\n")
    assert data_sha(tmp_path) != first


def test_unregistered_repos_get_local_parameters_and_a_synthetic_registration(tmp_path: Path) -> None:
    from pipelines.cli.run import config_maps
    from pipelines.config import load_config
    from pipelines.resources.mounts import REGISTRATIONS_CONFIGMAP, REGISTRATIONS_KEY
    from pipelines.runs import local_registration, run_parameters
    from steps.runtime.registrations import load_registration

    config = load_config(CONFIG)
    sha = "a" * 40
    params = run_parameters(config, "local/example", sha, "pull_request", "7")
    assert (params["repo"], params["ref"], params["pr-number"], params["installation-id"]) == (
        "local/example",
        "refs/pull/7/head",
        "7",
        "",
    )
    registered = config.repo_registrations[0]
    assert run_parameters(config, registered.full_name, sha, "push", "")["installation-id"] == str(
        registered.installation_id
    )
    with pytest.raises(ValueError, match="40-character"):
        run_parameters(config, "local/example", "abc", "push", "")
    maps = config_maps(
        [
            {
                "kind": "ConfigMap",
                "metadata": {"name": REGISTRATIONS_CONFIGMAP},
                "data": {REGISTRATIONS_KEY: '{"repoRegistrations":[]}'},
            },
            {"kind": "ConfigMap", "metadata": {"name": "other"}, "data": {REGISTRATIONS_KEY: "{}"}},
        ],
        local_registration("local/example", config),
    )
    assert maps["other"][REGISTRATIONS_KEY] == "{}"  # only the first shard takes the synthetic registration
    path = tmp_path / REGISTRATIONS_KEY
    path.write_text(maps[REGISTRATIONS_CONFIGMAP][REGISTRATIONS_KEY])
    registration = load_registration("local/example", path)
    assert (registration.name, registration.environments) == ("local-example", [])


def test_progress_rows_aggregate_fan_out_and_retries_and_plain_lines_follow_changes() -> None:
    import io

    from pipelines.cli.run_view import Progress

    rows = [
        lr.Row(("fetch",), "fetch", False, True),
        lr.Row(("tables",), "tables", False, False),
        lr.Row(("tables", "check"), "check", True, True),
        lr.Row(("publish",), "publish", False, True),
    ]
    out = io.StringIO()
    progress = Progress(rows, out, live=False)
    progress.on_change(fake_node("wf", "Running", (), type="DAG"))
    progress.on_change(fake_node("wf.fetch", "Running", ("fetch",), type="Retry", started_at=1.0))
    progress.on_change(
        fake_node("wf.fetch(0)", "Failed", ("fetch",), attempt=0, started_at=1.0, finished_at=2.0, message="boom")
    )
    progress.on_change(fake_node("wf.fetch(1)", "Succeeded", ("fetch",), attempt=1, started_at=2.0, finished_at=3.0))
    progress.on_change(fake_node("wf.fetch", "Succeeded", ("fetch",), type="Retry", started_at=1.0, finished_at=3.0))
    progress.on_change(fake_node("wf.tables.check", "Running", ("tables", "check"), type="TaskGroup", expected=3))
    for i, phase in enumerate(["Succeeded", "Running", "Pending"]):
        progress.on_change(fake_node(f"wf.tables.check({i}:t{i})", phase, ("tables", "check"), item=i))
    states = {s.row.key: s for s in progress.states()}
    assert (states[("fetch",)].status, states[("fetch",)].retries) == ("succeeded", 1)
    assert (states[("tables", "check")].status, states[("tables", "check")].count) == ("running", "1/3")
    assert states[("publish",)].status == "pending"
    assert progress.states(finished=True)[-1].status == "not run"
    lines = [line.split("  ", 1)[1].strip() for line in out.getvalue().splitlines()]
    assert lines[:3] == [
        "running    fetch",
        "failed     fetch attempt 1 (1.0s): boom",
        "succeeded  fetch (2.0s)",
    ]
    assert "running    tables.check(1:t1)" in lines and not any("check(2:t2)" in line for line in lines)

    live = io.StringIO()
    view = Progress(rows, live, live=True)
    view.redraw()
    view.redraw()
    assert live.getvalue().count("\x1b[5F\x1b[J") == 1  # the second draw moves up over the first


def test_summary_shows_the_status_timeline_artifacts_registry_and_a_failed_log(tmp_path: Path) -> None:
    from pipelines.cli.run_summary import summary
    from pipelines.cli.run_view import RowState
    from steps.runtime.settings import record

    sha = "b" * 40
    records = tmp_path / "github.jsonl"
    record(str(records), "commit_status", state="pending", context="release-data-prep", description="Preparing")
    record(str(records), "commit_status", state="failure", context="release-data-prep", description="prices: bad")
    store = tmp_path / "store"
    (store / "local/example" / sha / "tables").mkdir(parents=True)
    (store / "local/example" / sha / "tables/prices.parquet").write_bytes(b"PAR1")
    (store / "local/example/index.json").write_text(json.dumps({"branches": {"main": {"sha": "c" * 40}}}))
    log = tmp_path / "check.log"
    log.write_text("line 1\nTraceback: the end\n")
    failed = fake_node(
        "wf.check", "Failed", ("check",), message="prices: bad", log_path=log, started_at=1.0, finished_at=2.5
    )
    result = lr.RunResult("wf", "Failed", "", 0.0, 3.0, tmp_path / "runs/wf", [failed], [], ["KEY omitted"])
    states = [RowState(lr.Row(("check",), "check", False, True), [failed], True)]
    text = summary(
        result,
        states,
        repo="local/example",
        sha=sha,
        ref="refs/heads/main",
        store=store,
        record_file=records,
        root=tmp_path,
    )
    assert "wf: Failed in 3.0s" in text
    timeline = r"status +pending +release-data-prep: Preparing\n.*status +failure +release-data-prep: prices"
    assert re.search(timeline, text)
    assert "tables/prices.parquet  (4 bytes)" in text
    assert "this run registered nothing" in text
    assert "Log of check: check.log" in text and "| Traceback: the end" in text
    assert "KEY omitted" in text


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Both examples through `python -m pipelines run`, concurrently, recording GitHub calls."""
    import io

    from pipelines.cli import build_parser
    from pipelines.cli.run import cmd_run

    work = tmp_path_factory.mktemp("cli")
    out: dict[str, dict] = {}

    def run(name: str, data: str) -> None:
        buf = io.StringIO()
        args = build_parser().parse_args(
            [
                "run",
                "--config",
                str(CONFIG),
                "--data",
                str(REPO_ROOT / data),
                "--workdir",
                str(work),
                "--plain",
            ]
        )
        out[name] = {"code": cmd_run(args, stdout=buf, stderr=buf), "text": buf.getvalue()}

    with pytest.MonkeyPatch.context() as mp:
        for var in ("GITHUB_APP_PRIVATE_KEY_PATH", "GITHUB_APP_PRIVATE_KEY"):
            mp.delenv(var, raising=False)
        threads = [
            threading.Thread(target=run, args=(n, d))
            for n, d in (("good", "examples/release-data"), ("bad", "examples/release-data-bad"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    for item in out.values():
        started = re.search(r"running (\S+) .* for local/example@([0-9a-f]{12})", item["text"])
        assert started, item["text"]
        item["run_dir"] = work / "runs" / started.group(1)
        item["sha"] = started.group(2)
        item["records"] = [json.loads(line) for line in (item["run_dir"] / "github.jsonl").read_text().splitlines()]
        item["store"] = work / "store"
    return out


def statuses(run: dict) -> list[tuple[str, str]]:
    return [(r["state"], r["description"]) for r in run["records"] if r["kind"] == "commit_status"]


def test_cli_runs_the_rendered_template_on_the_example_data(cli_runs: dict[str, dict]) -> None:
    run = cli_runs["good"]
    assert run["code"] == 0, run["text"]
    assert [state for state, _ in statuses(run)] == ["pending", "success"]
    manifests = list((run["store"] / "local/example").glob("*/manifest.json"))
    assert manifests and "Succeeded" in run["text"]


def test_cli_reports_the_failing_table_of_the_bad_example(cli_runs: dict[str, dict]) -> None:
    run = cli_runs["bad"]
    assert run["code"] == 1, run["text"]
    (first, _), (final, description) = statuses(run)
    assert (first, final) == ("pending", "failure")
    assert re.match(r"check-table: (products|prices): \d+ failures? in ", description), description
    assert re.search(r"check-table +failed .* 2/2", run["text"])
    assert "Log of check-table:" in run["text"]
    assert not list((run["store"] / "local/example").glob(f"{run['sha']}*/manifest.json"))
