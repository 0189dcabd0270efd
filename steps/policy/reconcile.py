"""What the reconciler does about a run that ended without reporting: pure decisions, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from steps.policy.status import Failure, clip, failures_of_nodes, final_description, final_state
from steps.runtime.errors import ConfigError

REPORTER = "report-final"
ENDED = frozenset({"Succeeded", "Failed", "Error"})
RECONCILED = " (reported by the reconciler)"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, name: str) -> float:
    """Seconds in ``90m``, ``24h``, ``2d``, ``30s`` or a bare number of seconds.

    Raises:
        ConfigError: naming ``name`` and the accepted forms.
    """
    text = str(text).strip()
    try:
        seconds = float(text[:-1]) * _UNITS[text[-1]] if text and text[-1] in _UNITS else float(text)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(f"{name} {text!r} is not a positive duration; use e.g. 90m, 24h or 2d")
    return seconds


def epoch(timestamp: str | None) -> float | None:
    """Seconds since the epoch of a Kubernetes RFC 3339 timestamp (``2026-12-04T01:02:03Z``), or None."""
    if not timestamp:
        return None
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Run:
    """One release-data-prep run as the reconciler sees it in the Argo Server's list.

    Attributes:
        name: The Workflow name (the ``payload.workflow`` of its deployments, the end of its status link).
        repo: ``owner/name`` from the run's ``repo`` parameter.
        sha: The commit from its ``sha`` parameter.
        phase: The Workflow's phase ("" before the controller saw it).
        main_phase: The entrypoint's own phase (the root node's): the run's outcome before the exit handler,
            which turns a succeeded run ``Failed`` when the handler fails (``operator.go``).
        reporter_phase: The phase of the exit handler's ``report-final`` (its retry node), None when absent.
        shutdown: ``spec.shutdown`` (``Terminate`` skips the exit handler, ``Stop`` runs it).
        created: Creation time (epoch seconds).
        finished: ``status.finishedAt`` (epoch seconds) or None.
        failures: Failed and errored nodes outside the exit handler, as ``{{workflow.failures}}`` lists them.
        gone: Not listed any more (deleted) although a previous pass saw it unfinished.
    """

    name: str
    repo: str
    sha: str
    phase: str = ""
    main_phase: str = ""
    reporter_phase: str | None = None
    shutdown: str = ""
    created: float = 0.0
    finished: float | None = None
    failures: tuple[Failure, ...] = field(default=())
    gone: bool = False

    @property
    def ended(self) -> bool:
        """The Workflow reached a final phase."""
        return self.phase in ENDED

    def memo(self) -> dict[str, Any]:
        """What a later pass needs to repair this run if it disappears before it ends."""
        return {"name": self.name, "repo": self.repo, "sha": self.sha, "created": self.created}


def run_of(workflow: Mapping[str, Any]) -> Run | None:
    """The ``Run`` of a Workflow document, or None when it carries no repo and sha parameters."""
    metadata = workflow.get("metadata") or {}
    name = str(metadata.get("name") or "")
    params = {
        str(p.get("name")): str(p.get("value") or "")
        for p in ((workflow.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    }
    if not name or not params.get("repo") or not params.get("sha"):
        return None
    status = workflow.get("status") or {}
    nodes: dict[str, dict[str, Any]] = status.get("nodes") or {}
    exit_prefix = f"{name}.onExit"
    reporters = [
        n
        for n in nodes.values()
        if n.get("templateName") == REPORTER and str(n.get("name", "")).startswith(exit_prefix)
    ]
    # With a retryStrategy the Retry node holds the outcome of all attempts; without one the Pod does.
    reporter = next((n for n in reporters if n.get("type") == "Retry"), reporters[-1] if reporters else None)
    root = nodes.get(name) or next((n for n in nodes.values() if n.get("name") == name), None) or {}
    return Run(
        name=name,
        repo=params["repo"],
        sha=params["sha"].lower(),
        phase=str(status.get("phase") or ""),
        main_phase=str(root.get("phase") or status.get("phase") or ""),
        reporter_phase=None if reporter is None else str(reporter.get("phase") or ""),
        shutdown=str((workflow.get("spec") or {}).get("shutdown") or ""),
        created=epoch(metadata.get("creationTimestamp")) or 0.0,
        finished=epoch(status.get("finishedAt")),
        failures=tuple(failures_of_nodes(nodes, skip_prefix=exit_prefix)),
    )


def gone_run(memo: Mapping[str, Any]) -> Run:
    """A run a previous pass saw unfinished and that is now neither live nor archived: it was deleted."""
    return Run(
        name=str(memo["name"]),
        repo=str(memo["repo"]),
        sha=str(memo["sha"]),
        created=float(memo.get("created", 0)),
        gone=True,
    )


def reason_to_repair(run: Run) -> str | None:
    """Why this run's final status may be missing, or None when its own exit handler reported (or may still)."""
    if run.gone:
        return "deleted"
    if not run.ended or run.reporter_phase == "Succeeded":
        return None
    if run.shutdown == "Terminate":
        return "terminated"
    if run.reporter_phase is None:
        return "exit handler did not run"
    if run.reporter_phase in ENDED:
        return "exit handler failed"
    # Ended while report-final sat Pending or Running (a deadline stopped it, argo-workflows #13060 / #13252).
    return "exit handler did not finish"


@dataclass(frozen=True)
class Verdict:
    """The commit status the run should have ended with."""

    state: str
    description: str


def verdict(run: Run, reason: str) -> Verdict:
    """The final status for a run the reconciler reports: its real outcome, or ``error`` when it was cut short.

    A terminated or deleted run has no outcome to report; any other run's entrypoint finished, and its phase
    and failures say what the exit handler would have said.
    """
    if reason in ("terminated", "deleted"):
        return Verdict("error", clip(f"Run {reason} before it reported; see the run"))
    if run.main_phase not in ENDED:
        return Verdict("error", clip(f"Run ended before its steps finished ({reason}); see the run"))
    failures = list(run.failures)
    state = final_state(run.main_phase, failures)
    text = final_description(run.main_phase, failures, "Release data prepared")
    return Verdict(state, clip(text.rstrip(".") + RECONCILED) if len(text) + len(RECONCILED) <= 140 else text)


def should_post(latest: tuple[str, str] | None, target_url: str) -> bool:
    """Post only over this run's own ``pending`` (or no status at all); never over a newer run's or a final one.

    Args:
        latest: ``(state, target_url)`` of the newest status of the context on the commit, or None.
        target_url: This run's link.
    """
    if latest is None:
        return True
    state, url = latest
    return state == "pending" and (not target_url or url == target_url)


def deployment_ending(newer_success: bool) -> str:
    """How an unfinished deployment of a repaired run ends: ``inactive`` when a newer one succeeded, else error."""
    return "inactive" if newer_success else "error"


__all__ = [
    "ENDED",
    "REPORTER",
    "Run",
    "Verdict",
    "deployment_ending",
    "epoch",
    "gone_run",
    "parse_duration",
    "reason_to_repair",
    "run_of",
    "should_post",
    "verdict",
]
