"""Workflow documents as the Argo Server lists release-data-prep runs, for the reconciler's tests and benchmark.

The node layout follows what the controller writes for this template (``operator.go``): the entrypoint's node
has the Workflow's name as id, the exit handler's node is ``<name>.onExit`` (``common.GenerateOnExitNodeName``)
with ``report-final`` below it as a Retry node over its Pod attempts (the template has a retryStrategy).
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

RUN_LABELS = {"gitops-status-matrix/managed-by": "release-data-prep"}
LINK = "https://argo.example.com/workflows/argo/{workflow}"


def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node(wf: str, name: str, display: str, kind: str, template: str, phase: str, at: float, **extra: Any) -> dict:
    node_id = wf if name == wf else f"{wf}-{zlib.crc32(name.encode())}"
    node = {
        "id": node_id,
        "name": name,
        "displayName": display,
        "type": kind,
        "templateName": template,
        "templateScope": "namespaced/release-data-prep",
        "phase": phase,
        "startedAt": _ts(at),
    }
    if phase in ("Succeeded", "Failed", "Error"):
        node["finishedAt"] = _ts(at + 5)
    node.update(extra)
    return node


def run_document(
    name: str,
    repo: str,
    sha: str,
    *,
    created: float,
    main: str = "Succeeded",
    reporter: str | None = "Succeeded",
    failed_step: str = "check-table",
    failure_message: str = "prices: 3 rows fail the schema",
) -> dict[str, Any]:
    """A finished (or, with ``main="Running"``, a running) run of ``repo`` at ``sha``.

    Args:
        name: The Workflow name.
        created: Creation time, epoch seconds.
        main: The entrypoint's phase (Running, Succeeded, Failed or Error).
        reporter: The phase of the exit handler's ``report-final``; None: the exit handler never ran.
        failed_step: With ``main`` Failed or Error, the step whose pod failed.
        failure_message: That pod's message.
    """
    nodes: dict[str, dict[str, Any]] = {}

    def add(node: dict[str, Any]) -> None:
        nodes[node["id"]] = node

    add(_node(name, name, name, "DAG", "main", main, created + 1))
    if main in ("Failed", "Error"):
        add(
            _node(
                name, f"{name}.{failed_step}", failed_step, "Pod", failed_step, main, created + 2,
                message=failure_message,
            )
        )  # fmt: skip
    phase = main
    if main != "Running" and reporter is not None:
        handler = f"{name}.onExit"
        handler_phase = reporter if reporter != "Succeeded" else "Succeeded"
        add(_node(name, handler, handler, "Steps", "exit-handler", handler_phase, created + 10))
        extra = {} if reporter == "Succeeded" else {"message": "No more retries left"}
        add(
            _node(
                name,
                f"{handler}[0].report-final",
                "report-final",
                "Retry",
                "report-final",
                reporter,
                created + 11,
                **extra,
            )
        )
        pod_extra = {} if reporter == "Succeeded" else {"message": "GitHub unreachable (exit code 75)"}
        add(
            _node(
                name, f"{handler}[0].report-final(0)", "report-final(0)", "Pod", "report-final", reporter,
                created + 11, **pod_extra,
            )
        )  # fmt: skip
        if main == "Succeeded" and reporter in ("Failed", "Error"):
            phase = reporter  # a failed exit handler fails a succeeded run (operator.go)
    status: dict[str, Any] = {"phase": phase, "startedAt": _ts(created + 1), "nodes": nodes}
    if phase != "Running":
        status["finishedAt"] = _ts(created + 30)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "labels": dict(RUN_LABELS), "creationTimestamp": _ts(created)},
        "spec": {
            "workflowTemplateRef": {"name": "release-data-prep"},
            "arguments": {"parameters": [{"name": "repo", "value": repo}, {"name": "sha", "value": sha}]},
        },
        "status": status,
    }


__all__ = ["LINK", "RUN_LABELS", "run_document"]
