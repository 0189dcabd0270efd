"""The static plan of a run: the tasks and steps it will show, in order, for progress views."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipelines.local.depends import _task_depends, _topological


@dataclass(frozen=True)
class Row:
    """A step of the static plan: where a task or step sits, for progress views.

    Attributes:
        key: Task/step names from the root (``("validate-tables", "check-table")``); the exit handler's
            rows start with ``"onExit"``.
        template: The template the task runs.
        fan_out: Whether the task fans out with ``withParam`` / ``withItems``.
        leaf: Whether the template is a script (runs pods) rather than a DAG or Steps.
    """

    key: tuple[str, ...]
    template: str
    fan_out: bool
    leaf: bool


def plan_rows(resource: Mapping[str, Any]) -> list[Row]:
    """The steps a run will show, in order: entrypoint tasks (DAGs in dependency order), then ``onExit``."""
    templates = {t["name"]: t for t in resource["spec"]["templates"]}
    rows: list[Row] = []

    def calls(tmpl: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        if "dag" in tmpl:
            tasks = tmpl["dag"].get("tasks") or []
            by_name = {t["name"]: t for t in tasks}
            deps = {t["name"]: _task_depends(t)[1] & set(by_name) for t in tasks}
            return [by_name[n] for n in _topological(list(by_name), deps) or list(by_name)]
        return [step for group in tmpl.get("steps") or [] for step in group]

    def walk(name: str, prefix: tuple[str, ...], depth: int) -> None:
        for call in calls(templates[name]):
            child = templates[call["template"]]
            key = (*prefix, call["name"])
            if key not in {r.key for r in rows}:
                rows.append(Row(key, call["template"], "withParam" in call or "withItems" in call, "script" in child))
            if ("dag" in child or "steps" in child) and depth < 10:
                walk(call["template"], key, depth + 1)

    walk(resource["spec"]["entrypoint"], (), 0)
    on_exit = resource["spec"].get("onExit")
    if on_exit:
        rows.append(Row(("onExit",), on_exit, False, "script" in templates[on_exit]))
        walk(on_exit, ("onExit",), 0)
    return rows


__all__ = ["Row", "plan_rows"]
