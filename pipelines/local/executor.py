"""``LocalRun``: one run of a workflow on this machine, from the entrypoint through the exit handler."""

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pipelines.local.goformat import go_json, go_quote
from pipelines.local.model import (
    DEADLINE_MESSAGE,
    DEADLINE_POD_MESSAGE,
    FAILED,
    STOP_MESSAGE,
    TERMINATE_MESSAGE,
    Node,
    RunOptions,
    RunResult,
    _Ctx,
)
from pipelines.local.scheduler import Scheduler, _node_type


class LocalRun(Scheduler):
    """One run of a workflow on this machine.

    Use ``start()`` then ``wait()``, or ``run_workflow`` for both. ``stop()`` behaves like ``argo stop``
    (running steps are killed, the exit handler still runs), ``terminate()`` like ``argo terminate``.

    Args:
        resource: The WorkflowTemplate (or Workflow) as a dict, e.g. from ``pipelines.render``.
        parameters: Workflow arguments by name; the spec's values are the defaults.
        options: Local settings (run directory, stand-ins, interpreter, retries).
        on_change: Called with a copy of each node whenever it is created or changes, under a lock.

    Raises:
        LocalRunRefused: unsupported features, unknown parameters, missing ConfigMaps.
    """

    def start(self) -> None:
        """Start the run in a background thread."""
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._main, name=f"local-run-{self.name}", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait for the end of the run; returns the result, or None on timeout."""
        self._done.wait(timeout)
        return self._result

    def stop(self, message: str = STOP_MESSAGE, pod_message: str | None = None) -> None:
        """Kill the running steps and schedule nothing new; the exit handler still runs."""
        with self._lock:
            if self._stop_message is None:
                self._stop_message = message
                self._pod_message = pod_message or message
            self._halt.set()
            self._kill(lambda node: not node.on_exit)

    def terminate(self) -> None:
        """Kill everything, the exit handler included."""
        with self._lock:
            self._kill_all.set()
            self.stop(TERMINATE_MESSAGE)
            self._kill(lambda node: True)

    def snapshot(self) -> list[Node]:
        """Copies of all nodes, in creation order."""
        with self._lock:
            return [dataclasses.replace(n) for n in self.nodes.values()]

    def _main(self) -> None:
        self.started_at = time.time()
        entry = str(self.spec["entrypoint"])
        root = self._new(self.name, self.name, _node_type(self.templates[entry]), entry, (), _Ctx((), False))
        deadline = self.spec.get("activeDeadlineSeconds")
        timer = None
        if deadline:
            timer = threading.Timer(float(deadline), self.stop, (DEADLINE_MESSAGE, DEADLINE_POD_MESSAGE))
            timer.daemon = True
            timer.start()
        self._execute_safe(root, entry, self.arguments, _Ctx((), False))
        if timer is not None:
            timer.cancel()
        status = {
            "Succeeded": "Succeeded",
            "Skipped": "Succeeded",
            "Omitted": "Succeeded",
            "Failed": "Failed",
        }.get(root.phase, "Error")
        failures = self._failures()
        self.globals["workflow.status"] = status
        self.globals["workflow.failures"] = go_quote(go_json(failures or None))
        phase, message = status, root.message
        if status != "Succeeded" and self._stop_message:
            message = self._stop_message
        on_exit = self.spec.get("onExit")
        if on_exit and not self._kill_all.is_set():
            name = f"{self.name}.onExit"
            ctx = _Ctx(("onExit",), True)
            exit_node = self._new(name, name, _node_type(self.templates[on_exit]), on_exit, ("onExit",), ctx)
            self._execute_safe(exit_node, on_exit, self.arguments, ctx)
            if phase == "Succeeded" and exit_node.phase in FAILED:
                phase, message = exit_node.phase, exit_node.message
        for node in self.snapshot():
            if not node.fulfilled:
                self._set(
                    self.nodes[node.id],
                    phase="Error",
                    message="the local run ended before this node finished",
                )
        if self._kill_all.is_set() and phase == "Succeeded":
            phase, message = "Failed", TERMINATE_MESSAGE
        self._result = RunResult(
            name=self.name,
            phase=phase,
            message=message,
            started_at=self.started_at,
            finished_at=time.time(),
            run_dir=self.run_dir,
            nodes=self.snapshot(),
            failures=failures,
            notes=[f"{text} {', '.join(users)}" for text, users in self._omitted.items()],
        )
        self._done.set()

    def _failures(self) -> list[dict[str, Any]]:
        """``workflow.failures``: every Failed/Error node; pods first, then by finish time."""
        nodes = [n for n in self.snapshot() if n.phase in FAILED]
        nodes.sort(key=lambda n: (n.type != "Pod", n.finished_at or 0.0))
        return [
            {
                "displayName": n.display_name,
                "message": n.message,
                "templateName": n.template_name,
                "phase": n.phase,
                "podName": self._pod_name(n),
                "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(n.finished_at))
                if n.finished_at
                else None,
            }
            for n in nodes
        ]


def run_workflow(
    resource: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    options: RunOptions | None = None,
    on_change: Callable[[Node], None] | None = None,
) -> RunResult:
    """Run a workflow to the end (exit handler included) and return the result.

    Raises:
        LocalRunRefused: the workflow uses something the local runner does not implement.
    """
    run = LocalRun(resource, parameters, options, on_change)
    run.start()
    result = run.wait()
    assert result is not None
    return result


__all__ = ["LocalRun", "run_workflow"]
