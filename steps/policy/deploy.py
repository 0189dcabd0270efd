"""Deployment decisions as pure functions: is this Argo CD Application live at this commit, what to plan."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from steps.policy.status import clip
from steps.runtime.registrations import Environment, Preview

VerdictState = Literal["waiting", "deployed", "degraded", "superseded"]
OutcomeKind = Literal["deployed", "degraded", "superseded", "timed_out"]
#: The final GitHub deployment status for each outcome of the wait.
DEPLOYMENT_STATE: dict[str, str] = {
    "deployed": "success",
    "degraded": "failure",
    "superseded": "inactive",
    "timed_out": "error",
}
PREVIEW_PREFIX = "preview/pr-"
_TERMINAL_FAILED = ("Failed", "Error")


def short(sha: str) -> str:
    """The 7-character form of a commit id used in messages."""
    return sha[:7]


def revisions_of(section: Mapping[str, Any] | None) -> tuple[str, ...]:
    """``revision`` or ``revisions`` of a sync status, operation or sync result, lower-cased."""
    if not section:
        return ()
    many = section.get("revisions")
    if many:
        return tuple(str(r).lower() for r in many)
    one = section.get("revision")
    return (str(one).lower(),) if one else ()


@dataclass(frozen=True)
class AppSnapshot:
    """The parts of an Application that decide the gate."""

    name: str
    sync_status: str
    sync_revisions: tuple[str, ...]
    health: str
    health_message: str
    health_since: str
    operation_phase: str
    operation_message: str
    operation_revisions: tuple[str, ...]
    operation_started: str

    @classmethod
    def of(cls, application: Mapping[str, Any]) -> "AppSnapshot":
        """Extract the snapshot from an Application as the API server returns it."""
        status = application.get("status") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        op = status.get("operationState") or {}
        op_revisions = revisions_of(op.get("syncResult")) or revisions_of((op.get("operation") or {}).get("sync"))
        return cls(
            name=str((application.get("metadata") or {}).get("name", "")),
            sync_status=str(sync.get("status") or "Unknown"),
            sync_revisions=revisions_of(sync),
            health=str(health.get("status") or "Unknown"),
            health_message=str(health.get("message") or ""),
            health_since=str(health.get("lastTransitionTime") or ""),
            operation_phase=str(op.get("phase") or ""),
            operation_message=str(op.get("message") or ""),
            operation_revisions=op_revisions,
            operation_started=str(op.get("startedAt") or ""),
        )

    @property
    def operation_key(self) -> str:
        """Identifies the sync operation: ``startedAt`` (whole seconds) and the revisions it syncs."""
        return f"{self.operation_started}@{','.join(self.operation_revisions)}" if self.operation_phase else ""

    @property
    def fingerprint(self) -> tuple[str, ...]:
        """What may not change during the stability window (a health flap changes ``health_since``)."""
        return (
            self.sync_status,
            *self.sync_revisions,
            self.health,
            self.health_since,
            self.operation_phase,
            *self.operation_revisions,
            self.operation_started,
        )

    def describe(self) -> str:
        """One line: sync status and revision, operation, health (for waiting and timeout messages)."""
        revision = short(self.sync_revisions[0]) if self.sync_revisions else "?"
        op = ""
        if self.operation_phase:
            target = short(self.operation_revisions[0]) if self.operation_revisions else "?"
            op = f", last sync {self.operation_phase} at {target}"
        return f"{self.sync_status} at {revision}{op}, health {self.health}"


@dataclass(frozen=True)
class Verdict:
    """Where an Application stands relative to one commit."""

    state: VerdictState
    reason: str
    snapshot: AppSnapshot


def judge(
    snap: AppSnapshot, sha: str, *, seen: bool, baseline_operation: str | None, synced_is_newer: bool = False
) -> Verdict:
    """Decide the state of ``snap`` relative to ``sha`` (rules in the module docstring).

    Args:
        snap: The Application now.
        sha: The full commit id, lower-case.
        seen: Whether ``sha`` was the compared or synced revision in an earlier snapshot.
        baseline_operation: ``operation_key`` of the operation at the first look ("" when there was none).
        synced_is_newer: GitHub says the revision Argo CD is Synced at descends from ``sha`` (compare
            ``ahead``): a newer commit got there first, so ``sha`` alone will never be live.
    """
    sha = sha.lower()
    op_for_sha = sha in snap.operation_revisions
    at_sha = sha in snap.sync_revisions
    if op_for_sha and snap.operation_phase in _TERMINAL_FAILED:
        message = snap.operation_message or f"sync {snap.operation_phase.lower()}"
        return Verdict("degraded", f"sync {snap.operation_phase}: {message}", snap)
    applied = op_for_sha and snap.operation_phase == "Succeeded"
    if applied and at_sha and snap.sync_status == "Synced":
        if snap.health == "Healthy":
            return Verdict("deployed", f"Synced and Healthy at {short(sha)}", snap)
        if snap.health == "Degraded":
            return Verdict("degraded", f"health Degraded: {snap.health_message or 'no message'}", snap)
    if (
        at_sha
        and snap.sync_status == "Synced"
        and not op_for_sha
        and snap.operation_phase in ("Succeeded", "")
        and snap.health == "Healthy"
    ):
        return Verdict("deployed", f"Synced and Healthy at {short(sha)} (nothing to apply: no sync needed)", snap)
    running_for_sha = op_for_sha and snap.operation_phase == "Running"
    if synced_is_newer and snap.sync_status == "Synced" and not at_sha and not running_for_sha:
        other = short(snap.sync_revisions[0]) if snap.sync_revisions else "?"
        return Verdict("superseded", f"Argo CD is at {other}, a newer commit; {short(sha)} will not be live", snap)
    new_operation = baseline_operation is not None and snap.operation_key != baseline_operation
    if (
        snap.operation_phase == "Succeeded"
        and snap.sync_status == "Synced"
        and not op_for_sha
        and snap.operation_revisions
        and not at_sha
        and (seen or new_operation)
    ):
        other = short(snap.operation_revisions[0])
        return Verdict("superseded", f"Argo CD synced {other} instead; {short(sha)} will not be live", snap)
    return Verdict("waiting", snap.describe(), snap)


@dataclass
class RevisionWatch:
    """Follows one Application event by event and judges it against ``sha`` (keeps ``seen`` and the baseline).

    Args:
        sha: The full commit id.
        is_newer: Whether a revision descends from ``sha`` (GitHub's compare); None: only a new sync tells.
    """

    sha: str
    is_newer: Callable[[str], bool] | None = None
    seen: bool = False
    baseline_operation: str | None = None
    last: Verdict | None = field(default=None, repr=False)
    _newer: dict[str, bool] = field(default_factory=dict, repr=False)

    def _other_revision(self, snap: AppSnapshot) -> str | None:
        if snap.sync_status != "Synced" or not snap.sync_revisions or snap.sync_revisions[0] == self.sha.lower():
            return None
        return snap.sync_revisions[0]

    def pending_compare(self) -> str | None:
        """The other revision Argo CD is Synced at whose order GitHub was not asked yet (None: nothing to ask)."""
        revision = self._other_revision(self.last.snapshot) if self.last and self.is_newer else None
        return revision if revision is not None and revision not in self._newer else None

    def ask(self) -> Verdict:
        """Ask GitHub whether the pending revision descends from ``sha`` and judge the last snapshot again.

        Raises:
            ValueError: nothing was observed yet.
        """
        if self.last is None:
            raise ValueError("ask() before any observe()")
        revision = self.pending_compare()
        if revision is not None and self.is_newer is not None:
            self._newer[revision] = self.is_newer(revision)
        self.last = self._judge(self.last.snapshot)
        return self.last

    def _judge(self, snap: AppSnapshot) -> Verdict:
        other = self._other_revision(snap)
        return judge(
            snap,
            self.sha,
            seen=self.seen,
            baseline_operation=self.baseline_operation,
            synced_is_newer=other is not None and self._newer.get(other, False),
        )

    def observe(self, application: Mapping[str, Any]) -> Verdict:
        """Judge the next Application snapshot."""
        snap = AppSnapshot.of(application)
        if self.baseline_operation is None:
            self.baseline_operation = snap.operation_key
        verdict = self._judge(snap)
        self.seen = self.seen or self.sha.lower() in (*snap.sync_revisions, *snap.operation_revisions)
        self.last = verdict
        return verdict


def timeout_reason(app: str, sha: str, timeout_seconds: float, last: Verdict | None) -> str:
    """Why a wait timed out, with the last state seen."""
    if last is None:
        return f"no state of Argo CD app {app} was seen within {timeout_seconds:g} s"
    snap = last.snapshot
    text = f"{app} not Healthy at {short(sha)} after {timeout_seconds:g} s ({snap.describe()})"
    return text


# ------------------------------------------------------------------------------------------- planning


def order_by_after(environments: Sequence[Environment]) -> list[Environment]:
    """Order environments so that one with ``after: X`` comes after X (stable otherwise).

    An ``after`` naming an environment outside ``environments`` puts no constraint on the order.

    Raises:
        ValueError: the ``after`` links form a cycle.
    """
    names = {env.name for env in environments}
    placed: list[Environment] = []
    done: set[str] = set()
    remaining = list(environments)
    while remaining:
        ready = [e for e in remaining if e.after is None or e.after not in names or e.after in done]
        if not ready:
            cycle = ", ".join(f"{e.name} after {e.after}" for e in remaining)
            raise ValueError(f"environments form an 'after' cycle: {cycle}")
        for env in ready:
            placed.append(env)
            done.add(env.name)
        remaining = [e for e in remaining if e.name not in done]
    return placed


def preview_environment(pr_number: int) -> str:
    """The transient environment of a pull request: ``preview/pr-N``."""
    return f"{PREVIEW_PREFIX}{pr_number}"


def is_preview(environment: str) -> bool:
    """Whether ``environment`` is a pull request's preview environment."""
    suffix = environment.removeprefix(PREVIEW_PREFIX)
    return environment.startswith(PREVIEW_PREFIX) and suffix.isdigit()


def plan_item(env: Environment) -> dict[str, str]:
    """One item of the deploy fan-out (string values, as Argo passes ``withParam`` items)."""
    return {
        "environment": env.name,
        "argocd_app": env.argocd_app or "",
        "url": env.url or "",
        "production": "true" if env.production else "false",
        "transient": "false",
        "after": env.after or "",
    }


def preview_item(preview: Preview, pr_number: int) -> dict[str, str]:
    """The fan-out item of a pull request's preview environment (templates' ``{pr}`` filled in)."""
    return {
        "environment": preview_environment(pr_number),
        "argocd_app": (preview.argocd_app or "").replace("{pr}", str(pr_number)),
        "url": (preview.url or "").replace("{pr}", str(pr_number)),
        "production": "false",
        "transient": "true",
        "after": "",
    }


def after_gate(states_newest_first: Sequence[str]) -> Literal["succeeded", "running", "superseded", "failed"]:
    """Whether a deployment, given its status states newest first, succeeded, is running, was superseded or failed.

    A ``success`` anywhere counts (a later ``inactive`` only means a newer deployment replaced it). ``inactive``
    without a ``success`` is a superseded rollout: a newer commit got there first, so the environments after it
    are superseded too, not failed.
    """
    if "success" in states_newest_first:
        return "succeeded"
    if not states_newest_first or states_newest_first[0] in ("pending", "queued", "in_progress"):
        return "running"
    if states_newest_first[0] == "inactive":
        return "superseded"
    return "failed"


def superseded_note(outcomes: Sequence[Mapping[str, Any]]) -> str:
    """For the final commit status: which deployments a newer commit superseded ("" when none was)."""
    names = [str(o.get("environment")) for o in outcomes if o.get("outcome") == "superseded"]
    return f"deployment to {', '.join(names)} superseded by a newer commit" if names else ""


def outcome_description(kind: str, app: str, sha: str, reason: str) -> str:
    """The final deployment status description for an outcome (<= 140 characters)."""
    texts = {
        "deployed": f"{app} is Healthy at {short(sha)} in Argo CD",
        "degraded": f"{app} at {short(sha)}: {reason}",
        "superseded": f"Superseded: {reason}",
        "timed_out": f"Timed out: {reason}",
    }
    return clip(texts[kind])


def in_progress_description(app: str, sha: str) -> str:
    """The ``in_progress`` description while Argo CD rolls ``sha`` out."""
    return clip(f"Waiting for Argo CD app {app} to be Synced and Healthy at {short(sha)}")


__all__ = [
    "DEPLOYMENT_STATE",
    "PREVIEW_PREFIX",
    "AppSnapshot",
    "OutcomeKind",
    "RevisionWatch",
    "Verdict",
    "after_gate",
    "superseded_note",
    "in_progress_description",
    "is_preview",
    "judge",
    "order_by_after",
    "outcome_description",
    "plan_item",
    "preview_environment",
    "preview_item",
    "revisions_of",
    "short",
    "timeout_reason",
]
