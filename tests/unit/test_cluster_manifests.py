"""What a real cluster needs and admits: RBAC per workload, Pod Security "restricted", labels, sizes, kustomize."""

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipelines import admission, lint, render
from pipelines.config import load_config
from pipelines.resources import rbac

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rendered() -> list[render.Rendered]:
    return render.render(load_config(ROOT / "hera_config.yaml", environ={}))


def by_kind(rendered, kind: str) -> list[dict]:
    return [r.resource for r in rendered if r.resource["kind"] == kind]


def test_every_service_account_a_workload_runs_as_is_rendered_and_bound_to_exactly_its_rules(rendered):
    accounts = {(a["metadata"]["namespace"], a["metadata"]["name"]) for a in by_kind(rendered, "ServiceAccount")}
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r["rules"] for r in by_kind(rendered, "Role")}
    bound: dict[tuple[str, str], list[dict]] = {}
    for binding in by_kind(rendered, "RoleBinding"):
        namespace = binding["metadata"]["namespace"]
        for subject in binding["subjects"]:
            key = (subject["namespace"], subject["name"])
            bound.setdefault(key, []).extend(roles[(namespace, binding["roleRef"]["name"])])

    workflows = {
        (t["metadata"]["namespace"], t["spec"]["serviceAccountName"]) for t in by_kind(rendered, "WorkflowTemplate")
    }
    sensors = {
        (s["metadata"]["namespace"], s["spec"]["template"]["serviceAccountName"]) for s in by_kind(rendered, "Sensor")
    }
    crons = {
        (c["metadata"]["namespace"], c["spec"]["workflowSpec"]["serviceAccountName"])
        for c in by_kind(rendered, "CronWorkflow")
    }
    assert workflows == {("argo", "release-data-prep")} and sensors == {("argo-events", "gitops-status-matrix-sensor")}
    assert crons == {("argo", "release-status-reconciler")}
    for account in workflows | sensors | crons:
        assert account in accounts, f"{account} runs a workload but is not rendered"
    # Least privilege: the executor reports outputs and nothing else; the Sensor starts runs.
    assert bound[("argo", "release-data-prep")] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
    ]
    assert bound[("argo-events", "gitops-status-matrix-sensor")] == rbac.SENSOR_RULES
    # The reconciler reads runs (list, get) and its own executor's outputs; it creates, patches or deletes nothing.
    assert bound[("argo", "release-status-reconciler")] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "list"]},
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
    ]
    assert all("*" not in str(rules) for rules in roles.values())
    # The Sensor's rights apply where its Workflows are created, not in its own namespace.
    sensor_binding = next(b for b in by_kind(rendered, "RoleBinding") if b["subjects"][0]["name"].endswith("sensor"))
    assert sensor_binding["metadata"]["namespace"] == "argo"


def test_every_pod_meets_pod_security_restricted(rendered):
    templates = by_kind(rendered, "WorkflowTemplate") + by_kind(rendered, "CronWorkflow")
    assert len(by_kind(rendered, "CronWorkflow")) == 1
    for template in templates:
        assert admission.restricted_problems(template) == []
        spec = template["spec"].get("workflowSpec") or template["spec"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for t in spec["templates"]:
            if "script" in t:
                context = t["script"]["securityContext"]
                assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
                assert context["readOnlyRootFilesystem"] is True
                assert {"name": "scratch", "mountPath": "/tmp"} in t["script"]["volumeMounts"]


def test_the_restricted_check_finds_what_the_admission_controller_refuses(rendered):
    template = copy.deepcopy(by_kind(rendered, "WorkflowTemplate")[0])
    del template["spec"]["securityContext"]["seccompProfile"]
    script = next(t for t in template["spec"]["templates"] if "script" in t)
    script["script"]["securityContext"] = {"capabilities": {"add": ["SYS_ADMIN"]}}
    script["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    problems = admission.restricted_problems(template)
    where = f"templates[{template['spec']['templates'].index(script)}] ('{script['name']}')"
    for expected in (
        f"{where}.script: seccompProfile.type must be RuntimeDefault or Localhost",
        f"{where}.script: allowPrivilegeEscalation must be false",
        f"{where}.script: capabilities.drop must include ALL",
        f"{where}.script: capabilities.add may only hold NET_BIND_SERVICE",
        f"{where}.volumes[{len(script['volumes']) - 1}]: hostPath volumes are not allowed",
    ):
        assert expected in problems


def test_label_syntax_and_object_sizes_are_checked():
    assert admission.label_problems({"ok/a": "acme.data", "x": ""}, "m") == []
    bad = admission.label_problems({"gitops-status-matrix/repo": "acme.repo-", "Bad Key": "v"}, "m")
    assert any("acme.repo-" in p for p in bad) and any("'Bad Key'" in p for p in bad)
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "x" * 300_000}}
    assert any("annotations must stay under 262,144 bytes" in p for p in admission.size_problems(big))
    sensor = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {"name": "s"}, "spec": {}}
    sensor["spec"]["pad"] = "x" * 100_000
    assert any("base64-encoded in one environment variable" in p for p in admission.size_problems(sensor))


def test_lint_checks_core_objects_against_the_kubernetes_schemas(rendered):
    role = copy.deepcopy(by_kind(rendered, "Role")[0])
    assert lint.lint_resource(role, "role") == []
    role["rules"][0]["verb"] = ["get"]
    role["metadata"]["labels"]["app"] = "-bad-"
    problems = [str(p) for p in lint.lint_resource(role, "role")]
    assert any("rules.0" in p and "'verb' was unexpected" in p for p in problems), problems
    assert any("label app='-bad-'" in p for p in problems), problems
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert "is not a kind of Kubernetes" in str(lint.lint_resource(unknown, "w")[0])


def test_kustomization_lists_every_rendered_file(rendered):
    index = next(r for r in rendered if r.path == render.KUSTOMIZATION).resource
    assert index["resources"] == sorted(r.path for r in rendered if r.path != render.KUSTOMIZATION)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_every_committed_resource(rendered):
    built = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "manifests")], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    got = sorted((d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in docs)
    want = sorted(
        (r.resource["kind"], r.resource["metadata"].get("namespace", ""), r.resource["metadata"]["name"])
        for r in rendered
        if r.path != render.KUSTOMIZATION
    )
    assert got == want


def test_no_step_variable_collides_with_the_config_override_prefix(rendered):
    # GSM_<SECTION>_<KEY> overrides hera_config.yaml, and an unknown GSM_ variable is refused: a step variable
    # named like one would stop `render` from running wherever that variable is set.
    names = {
        env["name"]
        for template in by_kind(rendered, "WorkflowTemplate")
        for t in template["spec"]["templates"]
        for env in (t.get("script") or {}).get("env") or []
    }
    assert names and not [n for n in names if n.startswith("GSM_")]
    config = load_config(ROOT / "hera_config.yaml", environ={n: "x" for n in names})
    assert config.repo_registrations
