"""GitHub calls per run: the requests the real steps make on the GitHub emulator, counted by the emulator.

Two scenarios, each a fresh commit, run through the step functions the pods run (first attempts,
``STEP_RETRIES=0``, a run workspace on the local disk):

* ``pending_to_success``: ``report_pending`` then ``report_final`` of a run that succeeded;
* ``push_two_environments``: ``report_pending``, ``deploy_environment`` for staging (auto-synced, Argo CD
  turns Healthy at the sha), ``deploy_environment`` for production (``after: staging``: promoted by a sync),
  then ``report_final``.

Token mints count: each step is its own pod and mints its own scoped token. Targets (issue 16):
``pending_to_success_calls`` <= 4 and ``push_two_environments_calls`` <= 14. Run from the repository root:
``.venv/bin/python benchmarks/github_calls.py``. The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from steps.deploy import deploy_environment  # noqa: E402
from steps.report import report_final, report_pending  # noqa: E402
from tests.support import ArgoCDEmulator, SeededGitHubEmulator, make_app_key, point_steps_at  # noqa: E402

REPO = "acme/data"
STAGING, PRODUCTION = "data-staging", "data-prod"


def setup(tmp: Path, gh: SeededGitHubEmulator, argo: ArgoCDEmulator) -> None:
    """Point the steps at the emulators, as the WorkflowTemplate's mounts do in a pod."""
    registration = {
        "name": "data",
        "repoUrl": f"https://github.com/{REPO}",
        "installationId": gh.installation_id,
        "environments": [
            {"name": "staging", "argocdApp": STAGING},
            {
                "name": "production",
                "argocdApp": PRODUCTION,
                "after": "staging",
                "production": True,
                "argocd": {"destinationNamespace": "data"},
            },
        ],
    }
    point_steps_at(tmp, gh, argo, registration, STAGING, PRODUCTION)


def roll_out_when_watched(argo: ArgoCDEmulator, app: str, sha: str) -> threading.Thread:
    """Play an auto-sync of ``sha`` once the step watches (what Argo CD does after the push)."""
    streams = len(argo.calls_to("GET", "/api/v1/stream/applications"))

    def drive() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            len(argo.calls_to("GET", "/api/v1/stream/applications")) > streams and argo.active_streams
        ):
            time.sleep(0.002)
        argo.set_state(app, sync="OutOfSync", revision=sha)
        argo.set_state(app, operation_phase="Running")
        argo.set_state(app, sync="Synced", operation_phase="Succeeded", health="Healthy")

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    return thread


def counted(gh: SeededGitHubEmulator, since: int) -> dict[str, int]:
    """The calls made since ``since``, by method and path pattern (ids replaced), for the table."""
    shapes: Counter[str] = Counter()
    for call in gh.calls[since:]:
        path = "/".join("{id}" if part.isdigit() or len(part) == 40 else part for part in call.api_path.split("/"))
        shapes[f"{call.method} {path}"] += 1
    return dict(sorted(shapes.items()))


def main() -> int:
    """Run both scenarios and print the calls, then one JSON line."""
    gh = SeededGitHubEmulator(make_app_key()).seed().start()
    argo = ArgoCDEmulator().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            setup(Path(tmp), gh, argo)
            sha = "a" * 40
            os.environ["RELEASE_WORKSPACE"] = str(Path(tmp) / "ws-1")
            start = len(gh.calls)
            report_pending(REPO, sha, workflow_name="bench-1")
            report_final(REPO, sha, "Succeeded", "null", workflow_name="bench-1")
            simple = counted(gh, start)

            sha = "b" * 40
            os.environ["RELEASE_WORKSPACE"] = str(Path(tmp) / "ws-2")
            start = len(gh.calls)
            report_pending(REPO, sha, workflow_name="bench-2")
            driver = roll_out_when_watched(argo, STAGING, sha)
            staging = deploy_environment(REPO, sha, "staging", STAGING, workflow_name="bench-2")
            driver.join()
            production = deploy_environment(
                REPO, sha, "production", PRODUCTION, production=True, after="staging", workflow_name="bench-2"
            )
            report_final(REPO, sha, "Succeeded", "null", workflow_name="bench-2")
            both = counted(gh, start)
            if (staging["state"], production["state"]) != ("success", "success"):
                raise RuntimeError(f"deployments ended {staging['state']} / {production['state']}")
    finally:
        gh.stop()
        argo.stop()
    for title, shapes in (("pending -> success", simple), ("push, staging then production", both)):
        print(f"{title}: {sum(shapes.values())} calls")
        for shape, n in shapes.items():
            print(f"  {n} x {shape}")
    result = {
        "benchmark": "github_calls",
        "pending_to_success_calls": sum(simple.values()),
        "push_two_environments_calls": sum(both.values()),
        "target_pending_to_success_at_most_4": sum(simple.values()) <= 4,
        "target_push_two_environments_at_most_14": sum(both.values()) <= 14,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
