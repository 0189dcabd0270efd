"""What to tell GitHub for which workflow state: pure functions, no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from steps.runtime.errors import INFRA_MARKER, SUMMARY_LIMIT

STATES = ("error", "failure", "pending", "success")
PHASE_TO_STATE = {"Succeeded": "success", "Failed": "failure", "Error": "error"}
# How Argo words a failed pod node (workflow/controller/operator.go ``inferFailedReason``): 3.6 writes
# "<Reason> (exit code N)" and ": <termination message>" when there is one; 3.7 puts the container name
# first ("main: Error (exit code 75): ..."). The local runner writes "failed with exit code N" when a
# step left no termination message. Older controllers and deadline kills write the bare message.
_NODE_MESSAGE = re.compile(
    r"^(?:(?P<container>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?): )?"
    r"(?:[A-Za-z]+ \(exit code (?P<code>\d+)\)|failed with exit code (?P<local>\d+))"
    r"(?:: (?P<message>.*))?$",
    re.S,
)
EXIT_INFRA = 75  # EX_TEMPFAIL, what the @step decorator exits with for an InfraError
# Node messages that mean the platform, not the data, ended the step (Argo's deadline and pod kills).
_PLATFORM = (
    "Step exceeded its deadline",
    "Pod was active on the node longer than the specified deadline",
    "pod deleted",
    "CreateContainerConfigError",
)


def github_state(workflow_status: str) -> str:
    """Map an Argo phase to a commit status state.

    Raises:
        ValueError: anything but Succeeded, Failed or Error: a bug in the caller, not a 422 from GitHub.
    """
    try:
        return PHASE_TO_STATE[workflow_status]
    except KeyError:
        raise ValueError(
            f"workflow status {workflow_status!r} is not a final Argo phase (Succeeded, Failed, Error)"
        ) from None


def clip(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """Fold whitespace and clip to ``limit`` characters at a word boundary, marking the cut with ``…``."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut and not text[limit - 1].isspace():
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:.-") + "…"


@dataclass(frozen=True)
class Failure:
    """One failed node as Argo reports it in ``{{workflow.failures}}``."""

    display_name: str
    template_name: str
    message: str
    phase: str
    finished_at: str = ""
    exit_code: int | None = None
    infra: bool = False

    @property
    def step(self) -> str:
        """The step's name without Argo's fan-out item label or retry attempt number."""
        return self.display_name.split("(", 1)[0] or self.display_name


def parse_failures(raw: str | None) -> list[Failure]:
    r"""Decode ``{{workflow.failures}}``.

    Argo hands the list over as a Go-quoted JSON string (``"[{\\"displayName\\":...}]"``), as the bare
    list, or as ``null`` / empty when nothing failed; this accepts all of them.
    """
    value: object = raw
    for _ in range(3):
        if not isinstance(value, str):
            break
        text = value.strip()
        if text in ("", "null", "None"):
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return [Failure(display_name="workflow", template_name="", message=text, phase="Failed")]
    if not isinstance(value, list):
        return []
    return [_failure(item) for item in value if isinstance(item, dict)]


def failures_of_nodes(nodes: dict[str, dict[str, object]], *, skip_prefix: str = "") -> list[Failure]:
    """``{{workflow.failures}}`` rebuilt from a Workflow's ``status.nodes``: every Failed or Error node.

    Argo builds that variable the same way (``operator.go``: each node whose phase is Failed or Error);
    ``skip_prefix`` leaves out a subtree by node name (e.g. the exit handler's ``<workflow>.onExit``).
    """
    return [
        _failure(node)
        for node in nodes.values()
        if node.get("phase") in ("Failed", "Error")
        and not (skip_prefix and str(node.get("name", "")).startswith(skip_prefix))
    ]


def _failure(item: dict[str, object]) -> Failure:
    raw = str(item.get("message") or "").strip()
    code: int | None = None
    message = raw
    match = _NODE_MESSAGE.match(raw)
    if match:
        code = int(match["code"] or match["local"])
        message = (match["message"] or "").strip() or (raw[match.end("container") + 2 :] if match["container"] else raw)
    infra = message.startswith(INFRA_MARKER) or code == EXIT_INFRA or raw.startswith(_PLATFORM)
    if message.startswith(INFRA_MARKER):
        message = message[len(INFRA_MARKER) :].strip()
    return Failure(
        display_name=str(item.get("displayName") or item.get("name") or "?"),
        template_name=str(item.get("templateName") or ""),
        message=message,
        phase=str(item.get("phase") or "Failed"),
        finished_at=str(item.get("finishedAt") or ""),
        exit_code=code,
        infra=infra,
    )


# Messages Argo writes on parent and retry nodes; the cause is on the pod that failed.
_BOOKKEEPING = (
    "child '",
    "retryStrategy.expression evaluated to false",
    "No more retries left",
    "Stopped with strategy",
    "step group",
)
_ATTEMPT = re.compile(r"\(\d+\)$")
_GENERIC = re.compile(r"^(failed with exit code \d+|[A-Za-z]+ \(exit code \d+\))$")


def root_cause(failures: list[Failure]) -> Failure | None:
    """The failure that explains the run, from Argo's unordered list.

    Skips Argo's bookkeeping messages on parent and retry nodes and attempts whose retry later succeeded
    (their retry node is not among the failures); prefers a step's own message over a bare exit code, then
    the earliest to finish.
    """
    names = {f.display_name for f in failures}

    def relevant(f: Failure) -> bool:
        if not f.message or f.message.startswith(_BOOKKEEPING):
            return False
        parent = _ATTEMPT.sub("", f.display_name)
        return parent == f.display_name or parent in names

    candidates = sorted(
        (f for f in failures if relevant(f)), key=lambda f: (bool(_GENERIC.match(f.message)), f.finished_at)
    )
    return candidates[0] if candidates else (failures[0] if failures else None)


def final_state(workflow_status: str, failures: list[Failure]) -> str:
    """The final commit state: ``failure`` only when the step's own cause is the data or a deployment.

    Argo marks a step that exited 75 (an outage that outlasted its retries) ``Failed`` like bad data, so the
    phase alone would report outages as ``failure``; the root cause's exit code or marker decides instead.
    """
    state = github_state(workflow_status)
    if state == "failure":
        cause = root_cause(failures)
        if cause is not None and cause.infra:
            return "error"
    return state


def final_description(workflow_status: str, failures: list[Failure], success_text: str = "") -> str:
    """The description of the final status: what succeeded, or which step failed and why (<= 140)."""
    if workflow_status == "Succeeded":
        return clip(success_text or "Release data prepared")
    cause = root_cause(failures)
    if cause is None:
        verb = "errored" if workflow_status == "Error" else "failed"
        return clip(f"Workflow {verb} before any step reported a cause; see the run")
    message = cause.message or f"{cause.phase.lower()} without a message"
    return clip(f"{cause.step}: {message}")


def pending_description(workflow_name: str) -> str:
    """The description of the ``pending`` status posted when the run starts."""
    return clip(f"Preparing release data in {workflow_name}" if workflow_name else "Preparing release data")


__all__ = [
    "PHASE_TO_STATE",
    "STATES",
    "Failure",
    "clip",
    "INFRA_MARKER",
    "final_description",
    "failures_of_nodes",
    "final_state",
    "github_state",
    "parse_failures",
    "pending_description",
    "root_cause",
]
