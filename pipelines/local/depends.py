"""DAG dependencies: ``depends`` and ``dependencies`` parsed and evaluated, and the phase of a finished DAG."""

import re
from collections.abc import Mapping
from typing import Any

from pipelines.local.expressions import ExpressionError, Tree
from pipelines.local.model import FAILED, Node

_DEPENDS_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z]+)?)")
TASK_RESULTS = {
    "Succeeded",
    "Failed",
    "Errored",
    "Skipped",
    "Omitted",
    "Daemoned",
    "AnySucceeded",
    "AllFailed",
}
_CONTINUE_ON = {"failed": "Failed", "error": "Error"}


def parse_depends(text: str) -> tuple[Tree, set[str]]:
    """Parse a ``depends`` expression; returns the tree and the task names it mentions.

    Raises:
        ExpressionError: anything but task names, ``.Result`` suffixes, ``&&``, ``||``, ``!`` and parentheses.
    """
    tokens: list[str] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = _DEPENDS_TOKEN.match(text, pos)
        if not match:
            raise ExpressionError(f"cannot parse depends {text!r} at {text[pos : pos + 20]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    names: set[str] = set()
    i = 0

    def atom() -> Tree:
        nonlocal i
        if i >= len(tokens):
            raise ExpressionError(f"depends {text!r} ends too early")
        tok = tokens[i]
        i += 1
        if tok == "!":
            return ("not", atom())
        if tok == "(":
            inner = disjunction()
            if i >= len(tokens) or tokens[i] != ")":
                raise ExpressionError(f"missing ')' in depends {text!r}")
            i += 1
            return inner
        if tok in (")", "&&", "||"):
            raise ExpressionError(f"unexpected {tok!r} in depends {text!r}")
        task, _, result = tok.partition(".")
        if result and result not in TASK_RESULTS:
            raise ExpressionError(f"depends {text!r}: unknown result .{result}; use one of {sorted(TASK_RESULTS)}")
        names.add(task)
        return ("task", task, result)

    def conjunction() -> Tree:
        nonlocal i
        left = atom()
        while i < len(tokens) and tokens[i] == "&&":
            i += 1
            left = ("and", left, atom())
        return left

    def disjunction() -> Tree:
        nonlocal i
        left = conjunction()
        while i < len(tokens) and tokens[i] == "||":
            i += 1
            left = ("or", left, conjunction())
        return left

    tree = disjunction()
    if i != len(tokens):
        raise ExpressionError(f"unexpected {tokens[i]!r} in depends {text!r}")
    return tree, names


def _task_depends(task: Mapping[str, Any]) -> tuple[Tree | None, set[str]]:
    if task.get("depends"):
        return parse_depends(str(task["depends"]))
    deps = [str(d) for d in task.get("dependencies") or []]
    if not deps:
        return None, set()
    return parse_depends(" && ".join(deps))


def _topological(names: list[str], deps: Mapping[str, set[str]]) -> list[str] | None:
    """Names in dependency order, stable by definition order; None when there is a cycle."""
    order: list[str] = []
    remaining = list(names)
    while remaining:
        ready = [n for n in remaining if deps.get(n, set()) <= set(order)]
        if not ready:
            return None
        order.extend(ready)
        remaining = [n for n in remaining if n not in ready]
    return order


def _continues(call: Mapping[str, Any]) -> set[str]:
    continue_on = call.get("continueOn") or {}
    return {phase for key, phase in _CONTINUE_ON.items() if continue_on.get(key)}


def _eval_depends(
    tree: Tree,
    tasks: Mapping[str, Mapping[str, Any]],
    done: Mapping[str, Node],
    fanned: Mapping[str, list[Node]],
) -> bool:
    """Evaluate a parsed ``depends`` against finished tasks, with Argo's bare-name expansion."""
    kind = tree[0]
    if kind == "not":
        return not _eval_depends(tree[1], tasks, done, fanned)
    if kind in ("and", "or"):
        left = _eval_depends(tree[1], tasks, done, fanned)
        if left == (kind == "or"):
            return left
        return _eval_depends(tree[2], tasks, done, fanned)
    _, name, result = tree
    phase = done[name].phase
    children = fanned.get(name, [])
    if not result:
        return phase in {"Succeeded", "Skipped"} | _continues(tasks[name])
    if result == "AnySucceeded":
        return any(c.phase == "Succeeded" for c in children)
    if result == "AllFailed":
        return bool(children) and all(c.phase == "Failed" for c in children)
    if result == "Daemoned":
        return False  # no daemon steps locally
    return phase == ("Error" if result == "Errored" else result)


def _dag_phase(
    dag: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    deps: Mapping[str, tuple[Tree | None, set[str]]],
    done: Mapping[str, Node],
    fail_fast: bool,
) -> str:
    """Argo's ``assessDAGPhase``: target tasks' branch phases, Skipped/Omitted inheriting failures."""
    memo: dict[str, str] = {}

    def branch(name: str) -> str:
        if name not in memo:
            node = done.get(name)
            if node is None:
                memo[name] = ""
            elif node.phase in ("Succeeded", "Failed", "Error"):
                memo[name] = node.phase
            else:
                parents = [branch(d) for d in sorted(deps[name][1])]
                memo[name] = next((p for p in parents if p in FAILED), "Succeeded")
        return memo[name]

    depended = {d for _, names in deps.values() for d in names}
    targets = str(dag.get("target") or "").split() or [n for n in tasks if n not in depended]
    result = "Succeeded"
    for name in targets:
        phase = branch(name)
        if phase in FAILED and phase not in _continues(tasks[name]):
            if result == "Succeeded":
                result = phase
            if fail_fast:
                break
    return result


__all__ = ["TASK_RESULTS", "parse_depends"]
