"""Reconciler passes on the emulators: Argo and GitHub calls per pass with N runs in the window, and time.

Scenarios, each on fresh emulators (Argo Server and GitHub over loopback HTTP, a local release store):

* ``clean``: N finished runs whose exit handler reported. The pass lists them (100 per request, plus the
  archive) and makes no GitHub call.
* ``repair``: N finished runs whose ``report-final`` failed while GitHub shows their ``pending``. The pass
  reports each one (per run: the context's status, this run's deployments, the final status; one token
  per repository). A second pass over the same runs must change nothing.

Baseline, measured in the same run: the same number of GitHub requests the repairs need, sent one after the
other with a bare ``requests`` session (the floor for a pass that talks to GitHub sequentially). The largest
N is found by doubling N in the ``repair`` scenario, with every run needing a repair and no per-pass limit,
until a pass takes more than a minute. Run from the repository root:
``.venv/bin/python benchmarks/reconcile.py [--max-n 16000]``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from steps.argo.server import ArgoServer  # noqa: E402
from steps.reconcile import Limits, PassReport, Reconciler  # noqa: E402
from steps.runtime.settings import GitHubStepSettings  # noqa: E402
from steps.store.local import LocalStore  # noqa: E402
from tests.support import ArgoServerEmulator, SeededGitHubEmulator, make_app_key  # noqa: E402
from tests.support.reconcile_helpers import LINK, run_document  # noqa: E402

REPO = "acme/data"
TOKEN = "bench-token"  # the emulator's test token, not a credential  # noqa: S105
MINUTE = 60.0


def sha_of(i: int) -> str:
    return f"{i:040x}"


class Stage:
    """Fresh emulators with N runs, and a pass over them."""

    def __init__(self, n: int, *, repair: bool, tmp: Path) -> None:
        self.gh = SeededGitHubEmulator(make_app_key()).seed().start()
        self.argo = ArgoServerEmulator("argo")
        self.argo.add_token(TOKEN)
        self.argo.start()
        key = tmp / f"key-{n}-{repair}"
        key.write_bytes(self.gh.app_key.pem)
        os.environ["GITHUB_APP_PRIVATE_KEY_PATH"] = str(key)
        self.settings = GitHubStepSettings(api_url=self.gh.url, app_id=str(self.gh.app_id), timeout=10, budget=30)
        self.store = LocalStore(tmp / f"store-{n}-{repair}")
        now = time.time()
        token = self.gh.issue_token()
        session = requests.Session()
        session.headers.update({"Authorization": f"token {token}", "Accept": "application/vnd.github+json"})
        for i in range(n):
            name = f"rdp-{i:06d}"
            self.argo.put_workflow(
                run_document(
                    name, REPO, sha_of(i), created=now - 3600 + i * 0.001, reporter="Failed" if repair else "Succeeded"
                )
            )
            if repair:
                answer = session.post(
                    f"{self.gh.url}/repos/{REPO}/statuses/{sha_of(i)}",
                    json={"state": "pending", "context": "release-data-prep", "target_url": LINK.format(workflow=name)},
                    timeout=10,
                )
                answer.raise_for_status()
        self.session = session

    def run(self, **limits: float) -> tuple[PassReport, float, dict[str, int]]:
        gh_before, argo_before = len(self.gh.calls), len(self.argo.calls)
        reconciler = Reconciler(
            argo=ArgoServer(self.argo.url, "argo", TOKEN),
            settings=self.settings,
            target_url=lambda name: LINK.format(workflow=name),
            github_ids=lambda repo: (self.gh.installation_id, self.gh.app_id),
            store=self.store,
            limits=Limits(**limits),
        )
        started = time.perf_counter()
        report = reconciler.run()
        seconds = time.perf_counter() - started
        gh_calls = self.gh.calls[gh_before:]
        calls = {
            "argo": len(self.argo.calls) - argo_before,
            "github": len(gh_calls),
            "github_writes": sum(1 for c in gh_calls if c.method != "GET" and "access_tokens" not in c.api_path),
        }
        return report, seconds, calls

    def floor(self, requests_needed: int) -> float:
        """Seconds for ``requests_needed`` bare GitHub GETs in sequence on the same emulator."""
        started = time.perf_counter()
        for i in range(requests_needed):
            self.session.get(f"{self.gh.url}/repos/{REPO}/commits/{sha_of(i)}/status", timeout=10).raise_for_status()
        return time.perf_counter() - started

    def stop(self) -> None:
        self.gh.stop()
        self.argo.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="runs in the window for the per-pass counts")
    parser.add_argument("--max-n", type=int, default=16000, help="stop doubling here")
    args = parser.parse_args()
    unbounded = {"max_repairs": 10**9, "budget_seconds": 10**9}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        clean = Stage(args.n, repair=False, tmp=tmp)
        try:
            report, clean_seconds, clean_calls = clean.run()
            assert report.repairs == []
        finally:
            clean.stop()
        stage = Stage(args.n, repair=True, tmp=tmp)
        try:
            report, repair_seconds, repair_calls = stage.run(**unbounded)
            assert sum(r.posted for r in report.repairs) == args.n, "every run must be reported"
            _, second_seconds, second_calls = stage.run(**unbounded)
            floor_seconds = stage.floor(repair_calls["github"])
            _, bounded_seconds, bounded_calls = stage.run()  # the default limits (nothing left to repair)
        finally:
            stage.stop()
        largest, sizes = 0, []
        n = 1000
        while n <= args.max_n:
            big = Stage(n, repair=True, tmp=tmp)
            try:
                report, seconds, _ = big.run(**unbounded)
            finally:
                big.stop()
            sizes.append({"n": n, "seconds": round(seconds, 2), "reported": sum(r.posted for r in report.repairs)})
            print(f"repair pass, N={n}: {seconds:.1f} s", flush=True)
            if seconds > MINUTE:
                break
            largest, n = n, n * 2
    per_run = repair_calls["github"] / args.n
    print(
        f"clean pass, N={args.n}: {clean_calls['argo']} Argo, {clean_calls['github']} GitHub calls, "
        f"{clean_seconds:.2f} s"
    )
    print(
        f"repair pass, N={args.n}: {repair_calls['argo']} Argo, {repair_calls['github']} GitHub calls "
        f"({per_run:.2f} per run, {repair_calls['github_writes']} writes), {repair_seconds:.2f} s; "
        f"bare-request floor {floor_seconds:.2f} s"
    )
    print(
        f"second pass: {second_calls['github_writes']} GitHub writes, {second_calls['github']} calls, "
        f"{second_seconds:.2f} s"
    )
    result = {
        "benchmark": "reconcile",
        "n": args.n,
        "clean_argo_calls": clean_calls["argo"],
        "clean_github_calls": clean_calls["github"],
        "clean_seconds": round(clean_seconds, 3),
        "repair_argo_calls": repair_calls["argo"],
        "repair_github_calls": repair_calls["github"],
        "repair_github_calls_per_run": round(per_run, 3),
        "repair_seconds": round(repair_seconds, 3),
        "repair_ratio_to_request_floor": round(repair_seconds / floor_seconds, 2),
        "second_pass_github_writes": second_calls["github_writes"],
        "second_pass_github_calls": second_calls["github"],
        "default_limits_pass_seconds": round(bounded_seconds, 3),
        "default_limits_github_calls": bounded_calls["github"],
        "largest_n_within_60s": largest,
        "sizes": sizes,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
