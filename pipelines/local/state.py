"""The state of one local run and the bookkeeping of its nodes."""

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipelines.local.goformat import fnv32a, generate_name, go_json
from pipelines.local.model import FINAL, TERMINATE_MESSAGE, Node, RunOptions, RunResult, _Ctx
from pipelines.local.support import LocalRunRefused, check_supported

log = logging.getLogger(__name__)


class RunState:
    """A run's workflow, arguments, nodes, locks and kill switches; ``LocalRun`` documents the arguments."""

    def __init__(
        self,
        resource: Mapping[str, Any],
        parameters: Mapping[str, str] | None = None,
        options: RunOptions | None = None,
        on_change: Callable[[Node], None] | None = None,
    ) -> None:
        check_supported(resource)
        self.options = options or RunOptions()
        self.resource = resource
        self.spec: Mapping[str, Any] = resource["spec"]
        self.templates: dict[str, Mapping[str, Any]] = {t["name"]: t for t in self.spec["templates"]}
        template_name = resource.get("metadata", {}).get("name") or "workflow"
        self.name = self.options.name or generate_name(template_name)
        self.arguments = self._arguments(parameters or {})
        self._check_config_maps()
        self.run_dir = (Path(self.options.runs_dir) / self.name).absolute()
        self.on_change = on_change
        self.nodes: dict[str, Node] = {}
        self._omitted: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._kill_all = threading.Event()
        self._stop_message: str | None = None
        self._pod_message = ""
        self._procs: dict[int, tuple[subprocess.Popen[bytes], Node]] = {}
        self._killed: dict[str, str] = {}
        self._mutexes: dict[str, threading.Lock] = {}
        self._config_dirs: dict[str, Path] = {}
        limit = self.spec.get("parallelism")
        self._pod_slots = threading.BoundedSemaphore(int(limit)) if limit else None
        self._secrets = os.environ if self.options.secrets is None else self.options.secrets
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: RunResult | None = None
        self.started_at = 0.0
        meta = resource.get("metadata") or {}
        self.globals: dict[str, str] = {
            "workflow.name": self.name,
            "workflow.namespace": str(meta.get("namespace") or "default"),
            "workflow.uid": f"local-{fnv32a(self.name):08x}",
            "workflow.serviceAccountName": str(self.spec.get("serviceAccountName") or ""),
            "workflow.mainEntrypoint": str(self.spec["entrypoint"]),
            # Go's time.RFC3339 of the creation time, as operator.go formats it (UTC, whole seconds).
            "workflow.creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "workflow.parameters": go_json([{"name": k, "value": v} for k, v in self.arguments.items()]),
            **{f"workflow.parameters.{k}": v for k, v in self.arguments.items()},
        }

    def _arguments(self, given: Mapping[str, str]) -> dict[str, str]:
        declared = (self.spec.get("arguments") or {}).get("parameters") or []
        names = [p["name"] for p in declared]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise LocalRunRefused([f"unknown parameter(s) {', '.join(unknown)}; the template takes {', '.join(names)}"])
        values: dict[str, str] = {}
        missing = []
        for param in declared:
            name = param["name"]
            value = given.get(name, param.get("value", param.get("default")))
            if value is None:
                missing.append(name)
                continue
            value = str(value)
            if param.get("enum") and value not in [str(e) for e in param["enum"]]:
                raise LocalRunRefused([f"parameter {name}={value!r} is not one of {param['enum']}"])
            values[name] = value
        if missing:
            raise LocalRunRefused([f"parameter(s) {', '.join(missing)} need a value: pass -p NAME=VALUE"])
        return values

    def _check_config_maps(self) -> None:
        problems = []
        for i, tmpl in enumerate(self.spec["templates"]):
            for volume in tmpl.get("volumes") or []:
                config_map = volume.get("configMap")
                if config_map is None or config_map.get("optional"):
                    continue
                name = config_map.get("name") or volume["name"]
                if name not in self.options.config_maps:
                    problems.append(
                        f"templates[{i}] ({tmpl['name']!r}) mounts ConfigMap {name!r}, which the local run "
                        "was not given (RunOptions.config_maps)"
                    )
        if problems:
            raise LocalRunRefused(problems)

    def _node_id(self, name: str) -> str:
        return name if name == self.name else f"{self.name}-{fnv32a(name)}"

    def _pod_name(self, node: Node) -> str:
        if node.name == self.name:
            return self.name
        return f"{self.name}-{node.template_name}"[:242] + f"-{fnv32a(node.name)}"

    def _emit(self, node: Node) -> None:
        if self.on_change is not None:
            try:
                self.on_change(dataclasses.replace(node))
            except Exception:  # a broken progress view must not break the run
                log.exception("progress callback failed")

    def _new(
        self,
        name: str,
        display: str,
        kind: str,
        template: str,
        row: tuple[str, ...],
        ctx: _Ctx,
        **fields: Any,
    ) -> Node:
        node = Node(self._node_id(name), name, display, kind, template, row, on_exit=ctx.on_exit, **fields)
        if node.fulfilled or node.phase == "Running":
            node.started_at = time.time()
        if node.fulfilled:
            node.finished_at = node.started_at
        with self._lock:
            self.nodes[node.id] = node
            self._emit(node)
        return node

    def _set(self, node: Node, **changes: Any) -> None:
        with self._lock:
            if node.fulfilled and "phase" in changes:
                return
            for key, value in changes.items():
                setattr(node, key, value)
            if changes.get("phase") == "Running" and node.started_at is None:
                node.started_at = time.time()
            if changes.get("phase") in FINAL and node.finished_at is None:
                node.finished_at = time.time()
                if node.started_at is None:
                    node.started_at = node.finished_at
            self._emit(node)

    def _halted(self, ctx: _Ctx) -> bool:
        return self._kill_all.is_set() if ctx.on_exit else self._halt.is_set()

    def _kill(self, which: Callable[[Node], bool]) -> None:
        for proc, node in list(self._procs.values()):
            if which(node) and node.id not in self._killed:
                self._killed[node.id] = TERMINATE_MESSAGE if self._kill_all.is_set() else self._pod_message
                _signal_group(proc, signal.SIGTERM)
                killer = threading.Timer(3.0, _signal_group, (proc, signal.SIGKILL))
                killer.daemon = True
                killer.start()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


__all__ = ["RunState"]
