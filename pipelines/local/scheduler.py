"""Templates executed as the controller does: inputs bound, DAG tasks and step groups scheduled, fan-outs started."""

import concurrent.futures as cf
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pipelines.local.depends import _continues, _dag_phase, _eval_depends, _task_depends
from pipelines.local.expressions import ExpressionError, evaluate_when
from pipelines.local.goformat import go_json
from pipelines.local.items import _aggregate, _item_scope, _loop_items
from pipelines.local.model import FAILED, STOP_MESSAGE, Node, _Ctx
from pipelines.local.pods import PodRunner
from pipelines.local.variables import _substitute_tree, substitute

log = logging.getLogger(__name__)


class Scheduler(PodRunner):
    """Executes a template on a node: a DAG or Steps schedules its calls, a script runs as a pod."""

    def _execute_safe(self, node: Node, template: str, args: Mapping[str, str], ctx: _Ctx) -> Node:
        try:
            self._execute(node, template, args, ctx)
        except Exception as exc:  # a bug here must still end the node, so the exit handler sees it
            log.exception("local run failed on %s", node.name)
            self._set(node, phase="Error", message=f"local run internal error: {type(exc).__name__}: {exc}")
        return node

    def _execute(self, node: Node, template: str, args: Mapping[str, str], ctx: _Ctx) -> None:
        if self._halted(ctx):
            self._set(node, phase="Failed", message=self._stop_message or STOP_MESSAGE)
            return
        tmpl = self.templates[template]
        try:
            inputs = self._bind_inputs(tmpl, args)
        except ExpressionError as exc:
            self._set(node, phase="Error", message=str(exc))
            return
        scope = {
            **self.globals,
            "inputs.parameters": go_json([_input_json(p, inputs[p["name"]]) for p in _inputs(tmpl)]),
            **{f"inputs.parameters.{k}": v for k, v in inputs.items()},
        }
        child_ctx = _Ctx(node.row, ctx.on_exit)
        if "dag" in tmpl:
            self._set(node, phase="Running")
            self._run_dag(node, tmpl, scope, child_ctx)
        elif "steps" in tmpl:
            self._set(node, phase="Running")
            self._run_steps(node, tmpl, scope, child_ctx)
        else:
            # Metrics and the output files they read are Argo's, evaluated after the pod: nothing to run here.
            tmpl = {k: v for k, v in tmpl.items() if k not in ("metrics", "outputs")}
            try:
                resolved = _substitute_tree(dict(tmpl), {**scope, "retries": "0"}, f"template {template!r}")
            except ExpressionError as exc:
                self._set(node, phase="Error", message=str(exc))
                return
            with self._mutex(node, resolved):
                if "retryStrategy" in resolved:
                    self._run_retries(
                        node,
                        resolved,
                        ctx,
                        lambda n: _substitute_tree(dict(tmpl), {**scope, "retries": str(n)}, f"template {template!r}"),
                    )
                else:
                    self._run_pod(node, resolved, ctx)

    def _bind_inputs(self, tmpl: Mapping[str, Any], args: Mapping[str, str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for param in _inputs(tmpl):
            name = param["name"]
            if name in args:
                value = args[name]
            elif "value" in param:
                value = str(param["value"])
            elif "default" in param:
                value = str(param["default"])
            else:
                raise ExpressionError(f"inputs.parameters.{name} was not supplied to template {tmpl['name']!r}")
            if param.get("enum") and value not in [str(e) for e in param["enum"]]:
                raise ExpressionError(f"inputs.parameters.{name}={value!r} is not one of {param['enum']}")
            values[name] = substitute(value, self.globals, f"inputs.parameters.{name}", allow_unresolved=True)
        return values

    @contextlib.contextmanager
    def _mutex(self, node: Node, tmpl: Mapping[str, Any]) -> Iterator[None]:
        sync = tmpl.get("synchronization") or {}
        names = [m["name"] for m in list(sync.get("mutexes") or []) + ([sync["mutex"]] if sync.get("mutex") else [])]
        with self._lock:
            locks = [self._mutexes.setdefault(name, threading.Lock()) for name in sorted(set(names))]
        held = []
        try:
            for name, lock in zip(sorted(set(names)), locks, strict=True):
                if not lock.acquire(blocking=False):
                    self._set(node, message=f"Waiting for {name} lock")
                    lock.acquire()
                held.append(lock)
            if held:
                self._set(node, message="")
            yield
        finally:
            for lock in held:
                lock.release()

    # -- DAG -------------------------------------------------------------------------------------------------

    def _pool(self, tmpl: Mapping[str, Any]) -> cf.ThreadPoolExecutor:
        workers = int(tmpl.get("parallelism") or self.options.max_workers)
        return cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{self.name}-{tmpl['name']}")

    def _run_dag(self, node: Node, tmpl: Mapping[str, Any], scope: dict[str, str], ctx: _Ctx) -> None:
        dag = tmpl["dag"]
        tasks = {t["name"]: t for t in dag.get("tasks") or []}
        deps = {name: _task_depends(task) for name, task in tasks.items()}
        fail_fast = dag.get("failFast", True) is not False
        done: dict[str, Node] = {}
        fanned: dict[str, list[Node]] = {}  # TaskGroup children, for .AnySucceeded / .AllFailed
        outputs: dict[str, str] = {}
        waiting = list(tasks)
        inflight: dict[cf.Future[Node], str] = {}
        groups: dict[str, tuple[Node, list[Node]]] = {}
        stopped = False

        def finished(name: str, task_node: Node) -> None:
            nonlocal stopped
            done[name] = task_node
            if task_node.result is not None and task_node.phase == "Succeeded":
                outputs[f"tasks.{name}.outputs.result"] = task_node.result
            if task_node.phase in FAILED and task_node.phase not in _continues(tasks[name]) and fail_fast:
                stopped = True

        with self._pool(tmpl) as pool:
            while True:
                progress = True
                while progress:
                    progress = False
                    for name in list(waiting):
                        tree, names = deps[name]
                        if any(d not in done for d in names):
                            continue
                        if tree is not None and not _eval_depends(tree, tasks, done, fanned):
                            waiting.remove(name)
                            progress = True
                            finished(
                                name,
                                self._new(
                                    f"{node.name}.{name}",
                                    name,
                                    "Skipped",
                                    tasks[name]["template"],
                                    (*ctx.row, name),
                                    ctx,
                                    phase="Omitted",
                                    message="omitted: depends condition not met",
                                ),
                            )
                            continue
                        if stopped or self._halted(ctx):
                            continue
                        waiting.remove(name)
                        progress = True

                        def track(fut: cf.Future[Node], task: str = name) -> None:
                            inflight[fut] = task

                        final, children = self._start_call(
                            node.name, tasks[name], {**scope, **outputs}, ctx, pool, track, groups
                        )
                        if "withParam" in tasks[name] or "withItems" in tasks[name]:
                            fanned[name] = children
                        if final is not None:
                            finished(name, final)
                if not inflight:
                    break
                ready, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
                for fut in ready:
                    name = inflight.pop(fut)
                    if name not in groups:
                        finished(name, fut.result())
                    elif name not in inflight.values():
                        finished(name, self._close_group(*groups.pop(name), tasks[name]))
        phase = _dag_phase(dag, tasks, deps, done, fail_fast)
        if phase == "Succeeded" and len(done) < len(tasks):
            phase = "Failed"  # stopped (deadline, stop) before every task ran
        self._set(
            node,
            phase=phase,
            message=self._stop_message or "" if phase in FAILED and self._halted(ctx) else "",
        )

    def _start_call(
        self,
        parent: str,
        call: Mapping[str, Any],
        scope: Mapping[str, str],
        ctx: _Ctx,
        pool: cf.ThreadPoolExecutor,
        track: Callable[[cf.Future[Node]], None],
        groups: dict[str, tuple[Node, list[Node]]] | None,
    ) -> tuple[Node | None, list[Node]]:
        """Start one task/step; returns its node if it is already final (else None) and the nodes it created.

        With ``groups`` (DAG) a fan-out gets a TaskGroup node, closed by the caller when its last item ends;
        without (Steps) the items are the step's nodes.
        """
        name, template = call["name"], call["template"]
        row = (*ctx.row, name)
        base = f"{parent}.{name}"
        child_type = _node_type(self.templates[template])
        try:
            items = _loop_items(call, scope, base)
            scopes = [_item_scope(i, item) for i, item in enumerate(items or [])]
        except ExpressionError as exc:
            error = self._new(base, name, "Skipped", template, row, ctx, phase="Error", message=str(exc))
            return error, [error]
        if items is None:
            single, submitted = self._start_one(base, name, child_type, call, scope, row, ctx, pool, track, None)
            return (None if submitted else single), [single]
        if not items:
            empty = self._new(
                base, name, "Skipped", template, row, ctx, phase="Skipped", message="Skipped, empty params"
            )
            return empty, [empty]
        group = None
        if groups is not None:
            group = self._new(base, name, "TaskGroup", template, row, ctx, phase="Running", expected=len(items))
        children, running = [], 0
        for index, (item_scope, label) in enumerate(scopes):
            display = f"{name}({index}:{label})"
            child, submitted = self._start_one(
                f"{parent}.{display}",
                display,
                child_type,
                call,
                {**scope, **item_scope},
                row,
                ctx,
                pool,
                track,
                index,
            )
            children.append(child)
            running += submitted
        if group is None:
            return None, children
        if not running:
            return self._close_group(group, children, call), children
        assert groups is not None
        groups[name] = (group, children)
        return None, children

    def _start_one(
        self,
        name: str,
        display: str,
        kind: str,
        call: Mapping[str, Any],
        scope: Mapping[str, str],
        row: tuple[str, ...],
        ctx: _Ctx,
        pool: cf.ThreadPoolExecutor,
        track: Callable[[cf.Future[Node]], None],
        item: int | None,
    ) -> tuple[Node, bool]:
        """Evaluate ``when`` and the arguments, then submit; returns the node and whether it was submitted."""
        template = call["template"]
        try:
            when = call.get("when")
            if when is not None:
                rendered = substitute(str(when), scope, f"{display}.when")
                if not evaluate_when(rendered):
                    return self._new(
                        name,
                        display,
                        "Skipped",
                        template,
                        row,
                        ctx,
                        phase="Skipped",
                        message=f"when '{rendered}' evaluated false",
                        item=item,
                    ), False
            args = {
                p["name"]: substitute(str(p.get("value", "")), scope, f"{display}.arguments.{p['name']}")
                for p in (call.get("arguments") or {}).get("parameters") or []
            }
        except ExpressionError as exc:
            error = self._new(name, display, "Skipped", template, row, ctx, phase="Error", message=str(exc), item=item)
            return error, False
        node = self._new(name, display, kind, template, row, ctx, item=item)
        track(pool.submit(self._execute_safe, node, template, args, ctx))
        return node, True

    def _close_group(self, group: Node, children: list[Node], call: Mapping[str, Any]) -> Node:
        failed = [c for c in children if c.phase in FAILED and c.phase not in _continues(call)]
        results = [c.result for c in sorted(children, key=lambda c: c.item or 0) if c.result is not None]
        self._set(group, phase=failed[0].phase if failed else "Succeeded", result=_aggregate(results))
        return group

    # -- Steps -----------------------------------------------------------------------------------------------

    def _run_steps(self, node: Node, tmpl: Mapping[str, Any], scope: dict[str, str], ctx: _Ctx) -> None:
        outputs: dict[str, str] = {}
        phase, message = "Succeeded", ""
        with self._pool(tmpl) as pool:
            for index, group in enumerate(tmpl["steps"]):
                if self._halted(ctx):
                    phase, message = "Failed", self._stop_message or STOP_MESSAGE
                    break
                group_node = self._new(
                    f"{node.name}[{index}]",
                    f"[{index}]",
                    "StepGroup",
                    tmpl["name"],
                    ctx.row,
                    ctx,
                    phase="Running",
                )
                futures: list[cf.Future[Node]] = []
                started: list[tuple[Mapping[str, Any], Node]] = []
                for step in group:
                    _final, children = self._start_call(
                        group_node.name, step, {**scope, **outputs}, ctx, pool, futures.append, None
                    )
                    started.extend((step, child) for child in children)
                cf.wait(futures)
                failed = [n for step, n in started if n.phase in FAILED and n.phase not in _continues(step)]
                for step in group:
                    mine = sorted((n for s, n in started if s is step), key=lambda n: n.item or 0)
                    results = [n.result for n in mine if n.result is not None and n.phase == "Succeeded"]
                    if not results:
                        continue
                    looped = "withParam" in step or "withItems" in step
                    outputs[f"steps.{step['name']}.outputs.result"] = _aggregate(results) if looped else results[0]
                if failed:
                    self._set(group_node, phase="Failed", message=f"child '{failed[0].id}' failed")
                    phase, message = "Failed", f"child '{group_node.id}' failed"
                    break
                self._set(group_node, phase="Succeeded")
        self._set(node, phase=phase, message=message)


def _node_type(tmpl: Mapping[str, Any]) -> str:
    if "dag" in tmpl:
        return "DAG"
    if "steps" in tmpl:
        return "Steps"
    return "Retry" if "retryStrategy" in tmpl else "Pod"


def _inputs(tmpl: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((tmpl.get("inputs") or {}).get("parameters") or [])


def _input_json(param: Mapping[str, Any], value: str) -> dict[str, Any]:
    """One entry of ``{{inputs.parameters}}``, in the field order Go marshals ``Parameter``."""
    out: dict[str, Any] = {"name": param["name"]}
    if "default" in param:
        out["default"] = str(param["default"])
    out["value"] = value
    for key in ("enum", "description"):
        if key in param:
            out[key] = param[key]
    return out


__all__ = ["Scheduler"]
