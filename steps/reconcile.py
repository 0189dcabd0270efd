"""Step: the release-status reconciler, which reports runs that ended without their final commit status."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from steps.argo.server import ArgoServer, ArgoServerError
from steps.github.app import repo_client
from steps.github.client import RepoClient
from steps.github.deployments import GitHubDeployments
from steps.github.statuses import latest_status, set_commit_status
from steps.policy.reconcile import (
    Run,
    deployment_ending,
    gone_run,
    parse_duration,
    reason_to_repair,
    run_of,
    should_post,
    verdict,
)
from steps.runtime.errors import ConfigError, InfraError, StepError
from steps.runtime.labels import RUN_SELECTOR
from steps.runtime.metrics import write_metric
from steps.runtime.settings import GitHubStepSettings
from steps.runtime.step import step
from steps.store.base import ArtifactStore
from steps.store.workspace import STORE_ENV, release_store

log = logging.getLogger(__name__)

#: Runs a pass saw unfinished, so that the next one notices when they are deleted before they end.
MEMO_KEY = "_reconciler/unfinished.json"
RUNS_PREFIX = "_runs/"
PERMISSIONS = {"statuses": "write", "deployments": "write"}
#: Newer deployments of an environment looked at to tell "superseded" (inactive) from "failed" (error).
NEWER_LOOKBACK = 10
ALREADY_REPORTED = "GitHub already shows"


@dataclass
class Limits:
    """How much one pass may do; what is left waits for the next pass (the list is oldest first).

    Attributes:
        look_back: Seconds: runs created earlier are not looked at, and workspaces older are removed.
        max_repairs: Runs reported per pass at most.
        budget_seconds: Stop starting new repairs after this long.
        max_keys: Workspace keys listed per pass at most.
        max_uploads: Unfinished multipart uploads aborted per pass at most.
    """

    look_back: float = 86400.0
    max_repairs: int = 200
    budget_seconds: float = 240.0
    max_keys: int = 100_000
    max_uploads: int = 1000


@dataclass
class Repair:
    """One run the pass reported (or, in a dry run, would report)."""

    workflow: str
    repo: str
    sha: str
    reason: str
    state: str
    description: str
    posted: bool = False
    deployments: dict[int, str] = field(default_factory=dict)
    skipped: str = ""


@dataclass
class PassReport:
    """What one pass found and did."""

    dry_run: bool
    runs_listed: int = 0
    repairs: list[Repair] = field(default_factory=list)
    workspaces_removed: list[str] = field(default_factory=list)
    uploads_aborted: list[str] = field(default_factory=list)
    deferred: int = 0
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The numbers the reconciler's metrics count (``statuses``: final statuses actually posted)."""
        return {
            "statuses": sum(1 for r in self.repairs if r.posted),
            "deployments": sum(len(r.deployments) for r in self.repairs if r.posted or self.dry_run),
            "workspaces": len(self.workspaces_removed),
            "uploads": len(self.uploads_aborted),
        }


@dataclass
class Reconciler:
    """One pass over the runs of the look-back window.

    Args:
        argo: The Argo Server client (namespace of the runs).
        settings: GitHub settings (API URL, App id, status context).
        target_url: The link of a run, from its Workflow name (what its own statuses point to).
        store: The release store (workspaces and the memo), or None to leave storage alone.
        github_ids: ``(installation_id, app_id)`` of a repository; by default (None, None): a pod's token
            source reads them from the mounted registrations, else looks the installation up.
        limits: What one pass may do.
        dry_run: Read everything, change nothing.
        clock: The time source (tests pass a fixed one).
    """

    argo: ArgoServer
    settings: GitHubStepSettings
    target_url: Callable[[str], str]
    store: ArtifactStore | None
    github_ids: Callable[[str], tuple[int | None, int | None]] = lambda repo: (None, None)
    limits: Limits = field(default_factory=Limits)
    dry_run: bool = False
    clock: Callable[[], float] = time.time
    _clients: dict[str, RepoClient] = field(default_factory=dict, repr=False)

    def run(self) -> PassReport:
        """List the runs, report those that need it, then tidy storage."""
        started, now = time.monotonic(), self.clock()
        report = PassReport(dry_run=self.dry_run)
        cutoff = now - self.limits.look_back
        listed = {}
        archived = self.argo.list_workflows(RUN_SELECTOR, archived=True)
        for document in [*archived, *self.argo.list_workflows(RUN_SELECTOR)]:
            run = run_of(document)
            if run is not None:
                listed[run.name] = run  # the live Workflow wins over an archived copy
        report.runs_listed = len(listed)
        runs = [r for r in listed.values() if r.created >= cutoff or not r.ended]
        gone = [r for r in self._gone(listed, report) if r.created >= cutoff]
        due = sorted(((r, reason) for r in runs + gone if (reason := reason_to_repair(r))), key=lambda x: x[0].created)
        settled: set[str] = set()
        for index, (run, reason) in enumerate(due):
            if index >= self.limits.max_repairs or time.monotonic() - started > self.limits.budget_seconds:
                report.deferred = len(due) - index
                report.notes.append(f"{report.deferred} run(s) left for the next pass (budget reached)")
                break
            repair = self._repair(run, reason)
            report.repairs.append(repair)
            if repair.posted or repair.skipped.startswith(ALREADY_REPORTED):
                settled.add(run.name)
        # Remembered for the next pass: what is still going, and deleted runs not settled yet (GitHub failed
        # or the budget ran out), so a deleted run is never forgotten before its status is final.
        unfinished = [r for r in listed.values() if not r.ended] + [r for r in gone if r.name not in settled]
        if self.store is not None:
            self._remember(unfinished, report)
            self._tidy(cutoff, {r.name for r in unfinished}, report)
        else:
            report.notes.append("storage not checked: no release store (workspaces, uploads, deleted runs)")
        return report

    def _gone(self, listed: dict[str, Run], report: PassReport) -> list[Run]:
        """Runs the previous pass saw unfinished that are now neither live nor archived."""
        if self.store is None:
            return []
        found = self.store.get(MEMO_KEY)
        if found is None:
            return []
        try:
            memos = json.loads(found[0])["runs"]
            return [gone_run(m) for m in memos if m["name"] not in listed]
        except (ValueError, KeyError, TypeError) as exc:
            report.notes.append(f"ignored an unreadable {MEMO_KEY} ({type(exc).__name__}); it is rewritten")
            return []

    def _client(self, repo: str) -> RepoClient:
        if repo not in self._clients:
            installation, app = self.github_ids(repo)
            self._clients[repo] = repo_client(
                repo, PERMISSIONS, installation_id=installation, app_id=app, settings=self.settings
            )
        return self._clients[repo]

    def _repair(self, run: Run, reason: str) -> Repair:
        final = verdict(run, reason)
        link = self.target_url(run.name)
        repair = Repair(run.name, run.repo, run.sha, reason, final.state, final.description)
        try:
            client = self._client(run.repo)
            latest = latest_status(client, run.sha, self.settings.status_context)
            if not should_post(latest, link):
                repair.skipped = f"{ALREADY_REPORTED} {latest[0] if latest else 'no status'} from another report"
                return repair
            # Deployments first: a pass cut short after them still sees this run's pending next time.
            repair.deployments = self._end_deployments(client, run)
            if not self.dry_run:
                set_commit_status(
                    client,
                    run.sha,
                    final.state,
                    final.description,
                    context=self.settings.status_context,
                    target_url=link,
                    look_first=False,
                )
                repair.posted = True
        except StepError as exc:
            repair.skipped = f"not reported: {exc.summary}"
            log.error("%s (%s@%s): %s", run.name, run.repo, run.sha[:7], exc.summary)
        return repair

    def _end_deployments(self, client: RepoClient, run: Run) -> dict[int, str]:
        api = GitHubDeployments(client)
        ended: dict[int, str] = {}
        for deployment_id, environment in api.unfinished_of_run(run.sha, run.name):
            newer = [i for i in api.recent_ids(environment, NEWER_LOOKBACK) if i > deployment_id]
            state = deployment_ending(any(api.latest_state(i) == "success" for i in newer))
            ended[deployment_id] = state
            if not self.dry_run:
                text = "a newer deployment succeeded" if state == "inactive" else "see the run"
                api.set_status(deployment_id, state, f"{run.name} ended before {environment} reported; {text}")
        return ended

    def _remember(self, unfinished: list[Run], report: PassReport) -> None:
        if self.dry_run or self.store is None:
            return
        body = json.dumps({"runs": [r.memo() for r in unfinished]}, sort_keys=True).encode()
        self.store.put(MEMO_KEY, body)

    def _tidy(self, cutoff: float, keep: set[str], report: PassReport) -> None:
        """Remove workspaces last written before ``cutoff`` (unless their run is still going); abort old uploads."""
        assert self.store is not None
        keys, more = self.store.list_modified(RUNS_PREFIX, max_keys=self.limits.max_keys)
        if more:
            report.notes.append(f"listed the first {len(keys)} workspace keys; the rest wait for the next pass")
        newest: dict[str, float] = {}
        members: dict[str, list[str]] = {}
        for key, modified in keys.items():
            parts = key.split("/")
            if len(parts) < 5:  # _runs/OWNER/REPO/WORKFLOW/file
                continue
            workspace = "/".join(parts[:4]) + "/"
            newest[workspace] = max(newest.get(workspace, 0.0), modified)
            members.setdefault(workspace, []).append(key)
        expired = sorted(w for w, t in newest.items() if t < cutoff and w.split("/")[3] not in keep)
        if not self.dry_run:
            self.store.delete([k for w in expired for k in members[w]])
        report.workspaces_removed = expired
        if self.dry_run:
            return
        report.uploads_aborted = self.store.abort_uploads_before(cutoff, max_uploads=self.limits.max_uploads)


@step
def reconcile(look_back: str = "24h", max_repairs: int = 200, budget_seconds: int = 240, dry_run: bool = False) -> str:
    """Step (CronWorkflow ``release-status-reconciler``): one pass; its summary is the step's result.

    Args:
        look_back: How far back runs are looked at and workspaces kept (``90m``, ``24h``, ``2d``).
        max_repairs: Runs reported per pass at most.
        budget_seconds: Stop starting new repairs after this many seconds.
        dry_run: Change nothing.
    """
    env = os.environ
    if not env.get("ARGO_SERVER_URL") or not env.get("ARGO_NAMESPACE"):
        raise ConfigError("ARGO_SERVER_URL and ARGO_NAMESPACE are not set; the CronWorkflow sets them from the config")
    token_file = env.get("ARGO_TOKEN_FILE", "")
    token = Path(token_file).read_text(encoding="utf-8").strip() if token_file and Path(token_file).exists() else ""
    verify: bool | str = env.get("ARGO_CA_BUNDLE") or env.get("ARGO_INSECURE", "false") != "true"
    argo = ArgoServer(env["ARGO_SERVER_URL"], env["ARGO_NAMESPACE"], token, verify=verify)
    template = env.get("RECONCILER_TARGET_URL_TEMPLATE", "")
    reconciler = Reconciler(
        argo=argo,
        settings=GitHubStepSettings.from_env(),
        target_url=lambda name: template.replace("{workflow}", name),
        store=release_store() if env.get(STORE_ENV) else None,
        limits=Limits(
            look_back=parse_duration(look_back, "look-back"), max_repairs=max_repairs, budget_seconds=budget_seconds
        ),
        dry_run=dry_run,
    )
    try:
        report = reconciler.run()
    except ArgoServerError as exc:  # unreachable, or a token it refused: retried by the step's retryStrategy
        raise InfraError(f"Argo Server: {exc}") from None
    for kind, count in report.counts().items():  # Argo's counters add these up (release_reconciler_repairs_total)
        write_metric(f"repaired-{kind}", count)
    for repair in report.repairs:
        log.info("%s", json.dumps(asdict(repair), sort_keys=True))
    for note in report.notes:
        log.warning("%s", note)
    counts = report.counts()
    return (
        f"{report.runs_listed} runs listed; reported {counts['statuses']} final status(es), ended "
        f"{counts['deployments']} deployment(s), removed {counts['workspaces']} workspace(s), aborted "
        f"{counts['uploads']} upload(s)" + (f"; {report.deferred} left for the next pass" if report.deferred else "")
    )


__all__ = ["MEMO_KEY", "RUN_SELECTOR", "Limits", "PassReport", "Reconciler", "Repair", "reconcile"]
