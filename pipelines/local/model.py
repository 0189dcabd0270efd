"""What a local run takes and gives: ``RunOptions`` in, ``Node`` records while it runs, ``RunResult`` at the end."""

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FINAL = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
FAILED = frozenset({"Failed", "Error"})
DEADLINE_POD_MESSAGE = "Pod was active on the node longer than the specified deadline"
DEADLINE_MESSAGE = "Step exceeded its deadline"
STOP_MESSAGE = "Stopped with strategy 'Stop'"
TERMINATE_MESSAGE = "Stopped with strategy 'Terminate'"


@dataclass
class Node:
    """One node of the run, shaped like Argo's ``status.nodes`` entries.

    Attributes:
        id: Argo's node id (``<workflow>-<fnv32a(name)>``).
        name: Full node name, e.g. ``wf.validate-tables.check-table(0:name:prices)(0)``.
        display_name: The last part of the name.
        type: DAG, Steps, StepGroup, TaskGroup, Retry, Pod or Skipped.
        template_name: The template it runs.
        row: Task/step names from the root, without fan-out and attempt suffixes (for progress views).
        phase: Pending, Running, Succeeded, Failed, Error, Skipped or Omitted.
        message: Why it failed, was skipped or is waiting.
        started_at: Epoch seconds when it started running.
        finished_at: Epoch seconds when it reached a final phase.
        result: ``outputs.result`` (script stdout, trimmed; a JSON list for fan-outs).
        exit_code: The process exit code of a Pod node.
        attempt: Retry attempt index of a Pod node under a Retry node.
        item: Fan-out index.
        expected: Number of fan-out items of a TaskGroup node.
        log_path: The file holding the step's stderr.
        pod_dir: The pod's working directory (inputs file, stdout, termination message).
        on_exit: Whether the node belongs to the exit handler.
    """

    id: str
    name: str
    display_name: str
    type: str
    template_name: str
    row: tuple[str, ...]
    phase: str = "Pending"
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    result: str | None = None
    exit_code: int | None = None
    attempt: int | None = None
    item: int | None = None
    expected: int | None = None
    log_path: Path | None = None
    pod_dir: Path | None = None
    on_exit: bool = False

    @property
    def fulfilled(self) -> bool:
        """Whether the node reached a final phase."""
        return self.phase in FINAL

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (to now while running); None before it starts."""
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


@dataclass
class RunOptions:
    """How to run locally.

    Attributes:
        name: The workflow name; generated from the template name when empty.
        runs_dir: Parent of the run directory (``runs_dir/NAME`` gets pods/, logs/, volumes/).
        python: Interpreter for a ``python`` / ``python3`` command.
        pythonpath: Prepended to ``PYTHONPATH`` of every step (default: the current directory).
        env: Applied last to every step's environment (local stores, record files, ...).
        secrets: Local stand-ins for Secret values, by env var name (default: ``os.environ``).
        missing_secrets: Secrets that do not exist in the modelled cluster, as ``NAME`` or ``NAME/KEY``. A
            reference to one with ``optional: true`` is left out, as the kubelet does; a required one keeps
            the pod from starting (``CreateContainerConfigError``): it stays Pending until the run is
            stopped or its deadline passes.
        config_maps: ConfigMap contents by name, for ConfigMap volumes.
        fast_retries: Cap every retry backoff at ``max_backoff`` seconds.
        max_backoff: The cap used with ``fast_retries``.
        max_workers: Concurrency of a DAG/Steps node without ``parallelism``.
    """

    name: str = ""
    runs_dir: Path = Path(".local-run/runs")
    python: str = sys.executable
    pythonpath: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] | None = None
    missing_secrets: frozenset[str] = frozenset()
    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    fast_retries: bool = True
    max_backoff: float = 0.2
    max_workers: int = 32


@dataclass(frozen=True)
class RunResult:
    """The end of a run.

    Attributes:
        name: The workflow name.
        phase: Succeeded, Failed or Error (what Argo would show for the workflow).
        message: The workflow message (the failing node's, a deadline, a stop).
        started_at: Epoch seconds.
        finished_at: Epoch seconds.
        run_dir: Where pods/, logs/ and volumes/ of this run are.
        nodes: Every node, in creation order.
        failures: ``{{workflow.failures}}`` as the exit handler received it, decoded.
        notes: Things the run did differently from a cluster (omitted secrets, ...).
    """

    name: str
    phase: str
    message: str
    started_at: float
    finished_at: float
    run_dir: Path
    nodes: list[Node]
    failures: list[dict[str, Any]]
    notes: list[str]


@dataclass(frozen=True)
class _Ctx:
    """Where a node runs: its row prefix and whether it belongs to the exit handler."""

    row: tuple[str, ...]
    on_exit: bool


__all__ = [
    "DEADLINE_MESSAGE",
    "DEADLINE_POD_MESSAGE",
    "FAILED",
    "FINAL",
    "STOP_MESSAGE",
    "TERMINATE_MESSAGE",
    "Node",
    "RunOptions",
    "RunResult",
]
