"""Every Prometheus metric the rendered templates emit: valid names, low-cardinality labels, documented."""

import re
from pathlib import Path

from pipelines import render
from pipelines.config import load_config

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # Argo: valid Prometheus and OpenTelemetry names (docs/metrics.md)
# Label values are Argo variables with a handful of values each; never a sha, a repository or a PR number.
ALLOWED_VALUES = re.compile(
    r"^(\{\{(status|workflow\.status|workflow\.parameters\.event|outputs\.parameters\.[a-z-]+)\}\}|[a-z][a-z-]*)$"
)


def emitted() -> list[tuple[str, dict]]:
    config = load_config(ROOT / "hera_config.yaml", environ={})
    out = []
    for rendered in render.render(config):
        resource = rendered.resource
        spec = resource.get("spec", {})
        spec = spec.get("workflowSpec", spec)
        for metric in (spec.get("metrics") or {}).get("prometheus", []):
            out.append((f"{rendered.path} (workflow)", metric))
        for template in spec.get("templates", []) if isinstance(spec.get("templates"), list) else []:
            for metric in (template.get("metrics") or {}).get("prometheus", []):
                out.append((f"{rendered.path} {template['name']}", metric))
    return out


def test_names_and_labels_are_valid_and_low_cardinality():
    metrics = emitted()
    assert {m["name"] for _, m in metrics} == {
        "release_run_duration_seconds",
        "release_step_failures_total",
        "release_pending_to_final_seconds",
        "release_deployment_lead_time_seconds",
        "release_reconciler_repairs_total",
    }
    for where, metric in metrics:
        assert NAME.match(metric["name"]) and metric["help"], where
        for label in metric.get("labels", []):
            assert NAME.match(label["key"]), where
            assert ALLOWED_VALUES.match(label["value"]), f"{where}: label {label} may grow without bound"
        if "histogram" in metric:
            buckets = metric["histogram"]["buckets"]
            assert buckets == sorted(buckets), where


def test_every_output_a_metric_reads_is_declared_with_a_default():
    config = load_config(ROOT / "hera_config.yaml", environ={})
    for rendered in render.render(config):
        spec = rendered.resource.get("spec", {})
        spec = spec.get("workflowSpec", spec)
        for template in spec.get("templates", []) if isinstance(spec.get("templates"), list) else []:
            text = str(template.get("metrics", ""))
            declared = {p["name"]: p for p in (template.get("outputs") or {}).get("parameters", [])}
            for name in re.findall(r"outputs\.parameters\.([a-z-]+)", text):
                assert name in declared and "default" in declared[name]["valueFrom"], (template["name"], name)


def test_docs_ops_lists_every_metric_and_its_labels():
    ops = (ROOT / "docs" / "ops.md").read_text()
    for _, metric in emitted():
        assert f"`{metric['name']}`" in ops
        for label in metric.get("labels", []):
            assert f"`{label['key']}`" in ops
