"""Benchmark: from "Healthy at the commit" in Argo CD to the GitHub ``success`` deployment status.

Both emulators run on loopback (tests/emulators). Each run deploys a new commit with the real step
``steps.github.deployments.deploy_environment`` (stability window 0): once the step watches the application, the
benchmark moves the Argo CD app to Synced + Succeeded + Progressing at the commit, waits a random moment,
then stamps the clock and turns it Healthy. The latency is the GitHub emulator's own ``created_at`` of the
``success`` status (server side) minus that stamp. Also reported: GitHub calls per deployment (the token
included), and the same latency through the polling fallback (stream endpoint answering 501) at its
interval, measured in the same process, with the ratio of the medians.

Usage::

    .venv/bin/python benchmarks/deploy_latency.py [--runs 20] [--poll-runs 10] [--poll-seconds 5]

The last line printed is one JSON object with the figures.
"""

import argparse
import json
import logging
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from steps.deploy import deploy_environment  # noqa: E402
from tests.support import ArgoCDEmulator, SeededGitHubEmulator, make_app_key, point_steps_at  # noqa: E402

REPO = "acme/data"
APP = "data-staging"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def setup(tmp: Path, gh: SeededGitHubEmulator, argo: ArgoCDEmulator) -> None:
    registration = {
        "name": "data",
        "repoUrl": "https://github.com/acme/data",
        "installationId": gh.installation_id,
        "environments": [{"name": "staging", "argocdApp": APP, "url": "https://staging.example.org"}],
    }
    point_steps_at(tmp, gh, argo, registration, APP)


def one_run(gh: SeededGitHubEmulator, argo: ArgoCDEmulator, index: int, jitter: float) -> tuple[float, int]:
    """Deploy one new commit; return (latency in seconds, GitHub calls made)."""
    sha = f"{index:040x}"
    calls_before = len(gh.calls)
    streams_before = len(argo.calls_to("GET", "/api/v1/stream/applications"))
    healthy_at: list[float] = []

    def drive() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            opened = len(argo.calls_to("GET", "/api/v1/stream/applications")) > streams_before
            if opened and (argo.stream_unavailable or argo.active_streams):
                break
            time.sleep(0.002)
        argo.set_state(APP, sync="OutOfSync", revision=sha)
        argo.set_state(APP, operation_phase="Running")
        argo.set_state(APP, sync="Synced", operation_phase="Succeeded", health="Progressing")
        time.sleep(random.uniform(0, jitter))
        healthy_at.append(time.time())
        argo.set_state(APP, health="Healthy")

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    result = deploy_environment(REPO, sha, "staging", APP, "https://staging.example.org", workflow_name="bench")
    driver.join()
    if result["state"] != "success":
        raise RuntimeError(f"run {index} ended {result['state']}: {result['description']}")
    success = next(s for s in gh.deployment_statuses(REPO, result["deployment_id"]) if s.state == "success")
    return success.created_at - healthy_at[0], len(gh.calls) - calls_before


def measure(gh, argo, runs: int, start: int, jitter: float) -> tuple[list[float], list[int]]:
    latencies, calls = [], []
    for i in range(runs):
        latency, n = one_run(gh, argo, start + i, jitter)
        latencies.append(latency)
        calls.append(n)
    return latencies, calls


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {system}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--poll-runs", type=int, default=10)
    parser.add_argument("--poll-seconds", type=float, default=5.0, help="polling interval (the default setting)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    random.seed(7)
    gh = SeededGitHubEmulator(make_app_key()).seed().start()
    argo = ArgoCDEmulator().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            setup(Path(tmp), gh, argo)
            one_run(gh, argo, 10**6, 0.0)  # warm-up: imports, the OpenAPI validator, first connections
            stream, stream_calls = measure(gh, argo, args.runs, 1, 0.05)
            os.environ["ARGOCD_POLL_SECONDS"] = str(args.poll_seconds)
            argo.stream_unavailable = True
            poll, poll_calls = measure(gh, argo, args.poll_runs, 10**5, args.poll_seconds)
    finally:
        argo.stop()
        gh.stop()
    figures = {
        "benchmark": "deploy_latency",
        "runs": args.runs,
        "stream_median_s": round(statistics.median(stream), 4),
        "stream_p95_s": round(p95(stream), 4),
        "stream_max_s": round(max(stream), 4),
        "github_calls_per_deployment": max(stream_calls),
        "poll_interval_s": args.poll_seconds,
        "poll_runs": args.poll_runs,
        "poll_median_s": round(statistics.median(poll), 4),
        "poll_p95_s": round(p95(poll), 4),
        "poll_to_stream_median_ratio": round(statistics.median(poll) / statistics.median(stream), 1),
        "target_median_under_1s": statistics.median(stream) < 1.0,
        "target_calls_at_most_4": max(stream_calls + poll_calls) <= 4,
        "machine": machine(),
    }
    print(
        f"stream: median {figures['stream_median_s'] * 1000:.1f} ms, p95 {figures['stream_p95_s'] * 1000:.1f} ms "
        f"over {args.runs} runs; GitHub calls per deployment: {sorted(set(stream_calls))}"
    )
    print(
        f"poll every {args.poll_seconds:g} s: median {figures['poll_median_s']:.3f} s, p95 "
        f"{figures['poll_p95_s']:.3f} s over {args.poll_runs} runs "
        f"(x{figures['poll_to_stream_median_ratio']:g} the stream's median)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
