"""Render-scale benchmark: render and lint 10, 100 and 1,000 registrations over 50 installations.

Per size it prints the config load + render time, the lint time (schemas, admission rules), the largest
rendered object and the Sensor's size, as compact JSON (what Argo CD's client-side apply copies into the
``last-applied-configuration`` annotation, limit 256 KiB) and as YAML. Registrations are realistic: one in
five uses ``master``, half have staging + production, one in ten has previews, spread over 50
installations of one App.

Targets (issue 15): every object under 256 KiB at 1,000 registrations, and ``python -m pipelines render`` +
``lint`` of 1,000 in under 3x the time of 10 (fresh processes, as a user runs them; the in-process
render and lint times are printed beside them). Run from the repository root:
``.venv/bin/python benchmarks/render_scale.py``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from pipelines.config import Config  # noqa: E402
from pipelines.lint import lint_all  # noqa: E402
from pipelines.render import render  # noqa: E402

ANNOTATION_LIMIT = 256 * 1024  # Argo CD client-side apply: kubectl's last-applied annotation
INSTALLATIONS = 50


def registrations(count: int) -> list[dict[str, Any]]:
    """``count`` registrations over ``INSTALLATIONS`` installations (owners ``org-<i>``)."""
    regs = []
    for i in range(count):
        inst = i % INSTALLATIONS
        name = f"org{inst}-dataset-{i:04d}"
        reg: dict[str, Any] = {
            "name": name,
            "repoUrl": f"https://github.com/org-{inst}/dataset-{i:04d}",
            "installationId": 1000 + inst,
        }
        if i % 5 == 4:
            reg["defaultBranch"] = "master"
        if i % 2 == 0:
            reg["environments"] = [
                {"name": "staging", "argocdApp": f"{name}-staging"},
                {
                    "name": "production",
                    "argocdApp": f"{name}-production",
                    "after": "staging",
                    "production": True,
                    "argocd": {"destinationNamespace": name},
                },
            ]
        if i % 10 == 0:
            reg["preview"] = {"enabled": True, "argocdApp": f"{name}-pr-{{pr}}"}
        regs.append(reg)
    return regs


def cli_seconds(data: dict[str, Any]) -> tuple[float, float]:
    """Wall time of ``python -m pipelines render`` and ``lint`` as a user runs them (fresh processes)."""
    with tempfile.TemporaryDirectory(prefix="render-scale-") as tmp:
        config = Path(tmp) / "hera_config.yaml"
        config.write_text(yaml.safe_dump(data))
        out = Path(tmp) / "manifests"
        times = []
        for command in ("render", "lint"):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "pipelines", command, "--config", str(config), "--output-dir", str(out)],
                cwd=ROOT,
                check=command == "render",
                capture_output=True,
            )
            times.append(time.perf_counter() - started)
    return times[0], times[1]


def measure(base: dict[str, Any], count: int) -> dict[str, Any]:
    """Render and lint ``count`` registrations; sizes in bytes."""
    data = {**base, "repoRegistrations": registrations(count)}
    cli_render_s, cli_lint_s = cli_seconds(data)
    started = time.perf_counter()
    config = Config.model_validate(data)
    rendered = render(config)
    render_s = time.perf_counter() - started
    started = time.perf_counter()
    problems = lint_all((r.path, r.resource) for r in rendered)
    lint_s = time.perf_counter() - started
    sizes = {r.path: len(json.dumps(r.resource, separators=(",", ":"))) for r in rendered}
    largest = max(sizes, key=lambda p: sizes[p])
    sensor = next((r for r in rendered if r.resource.get("kind") == "Sensor"), None)
    return {
        "registrations": count,
        "objects": len(rendered),
        "render_s": round(render_s, 3),
        "lint_s": round(lint_s, 3),
        "total_s": round(render_s + lint_s, 3),
        "cli_render_s": round(cli_render_s, 2),
        "cli_lint_s": round(cli_lint_s, 2),
        "cli_total_s": round(cli_render_s + cli_lint_s, 2),
        "lint_problems": len(problems),
        "largest_object": largest,
        "largest_json_bytes": sizes[largest],
        "sensor_json_bytes": sizes[sensor.path] if sensor else 0,
        "sensor_yaml_bytes": len(sensor.text.encode()) if sensor else 0,
        "sensor_dependencies": len(sensor.resource["spec"]["dependencies"]) if sensor else 0,
        "sensor_triggers": len(sensor.resource["spec"]["triggers"]) if sensor else 0,
        "all_under_256kib": sizes[largest] < ANNOTATION_LIMIT,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the sizes and print a table, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated registration counts")
    args = parser.parse_args(argv)
    base = yaml.safe_load((ROOT / "hera_config.yaml").read_text())
    base.pop("repoRegistrations", None)
    sizes = [int(s) for s in args.sizes.split(",")]
    measure(base, sizes[0])  # warm imports and schema caches so the first size is not charged for them
    rows = [measure(base, n) for n in sizes]
    print(
        "| registrations | CLI render + lint s | in-process render / lint s | largest object | largest JSON "
        "| Sensor JSON | deps/triggers |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['registrations']} | {r['cli_total_s']} | {r['render_s']} / {r['lint_s']} | {r['largest_object']} | "
            f"{r['largest_json_bytes']:,} | {r['sensor_json_bytes']:,} | "
            f"{r['sensor_dependencies']}/{r['sensor_triggers']} |"
        )
    first, last = rows[0], rows[-1]
    # The figures (10 s for 10, 11.5 s for 500) are the commands a user runs, start-up included.
    ratio = last["cli_total_s"] / first["cli_total_s"] if first["cli_total_s"] else None
    result = {
        "benchmark": "render_scale",
        "sizes": rows,
        "time_ratio_largest_to_smallest": round(ratio, 2) if ratio else None,
        "target_all_under_256kib": all(r["all_under_256kib"] for r in rows),
        "target_time_ratio_under_3": ratio is not None and ratio < 3,
        "lint_clean": all(r["lint_problems"] == 0 for r in rows),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
