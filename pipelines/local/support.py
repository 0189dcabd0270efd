"""What the local runner supports: each field of a workflow is interpreted, ignored (allow-listed) or refused."""

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.local.depends import _CONTINUE_ON, _task_depends, _topological
from pipelines.local.expressions import ExpressionError, _parse_duration, expression_vars, parse_expression
from pipelines.local.items import _item_scope
from pipelines.local.variables import _TAG_RE, _tags

SUBMIT_HINT = "run it on a cluster with `python -m pipelines submit`"

# --- allow-lists: "run" fields are interpreted, "ignored" ones cannot change a local result -------
SPEC_RUN = {"entrypoint", "templates", "arguments", "onExit", "activeDeadlineSeconds", "parallelism"}
SPEC_IGNORED = {
    "serviceAccountName", "automountServiceAccountToken", "podGC", "ttlStrategy", "securityContext",
    "workflowMetadata", "podMetadata", "nodeSelector", "tolerations", "affinity", "imagePullSecrets",
    "priority", "podPriorityClassName", "schedulerName", "archiveLogs", "synchronization", "metrics",
    "podDisruptionBudget", "executor",
}  # fmt: skip
TEMPLATE_RUN = {
    "name", "inputs", "dag", "steps", "script", "retryStrategy", "parallelism", "synchronization", "volumes",
    "activeDeadlineSeconds", "failFast",
}  # fmt: skip
TEMPLATE_IGNORED = {
    "metadata", "nodeSelector", "tolerations", "affinity", "securityContext", "serviceAccountName",
    "automountServiceAccountToken", "priorityClassName", "schedulerName", "outputs", "metrics",
}  # fmt: skip
SCRIPT_RUN = {"command", "args", "source", "env", "volumeMounts", "terminationMessagePath", "name"}
SCRIPT_IGNORED = {"image", "imagePullPolicy", "resources", "securityContext", "terminationMessagePolicy"}
TASK_KEYS = {
    "name", "template", "arguments", "dependencies", "depends", "when", "withParam", "withItems",
    "continueOn",
}  # fmt: skip
STEP_KEYS = TASK_KEYS - {"dependencies", "depends"}
RETRY_KEYS = {"limit", "retryPolicy", "expression", "backoff", "affinity"}
BACKOFF_KEYS = {"duration", "factor", "maxDuration", "cap"}
PARAM_KEYS = {"name", "value", "default", "description", "enum"}
WORKFLOW_VARS = {
    "name", "namespace", "uid", "serviceAccountName", "mainEntrypoint", "creationTimestamp", "status",
    "failures", "parameters",
}  # fmt: skip
RETRY_VARS = {"exitCode", "status", "duration", "message"}


class LocalRunRefused(Exception):
    """The workflow uses something the local runner does not implement; nothing ran.

    Attributes:
        problems: One line per unsupported field or invalid reference, each naming where it is.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, child in value.items():
            yield from _strings(child, f"{where}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _strings(child, f"{where}[{i}]")


@dataclass(frozen=True)
class _Vars:
    """What a string may reference where it appears."""

    params: frozenset[str]
    inputs: frozenset[str] | None = None
    siblings: frozenset[str] = frozenset()
    sibling_kind: str = ""
    item: bool = False
    last_retry: bool = False
    retries: bool = False

    def allows(self, path: list[str]) -> bool:
        root, rest = path[0], path[1:]
        if path == ["retries"]:
            return self.retries
        if root == "workflow":
            if rest[:1] == ["parameters"]:
                return len(rest) == 1 or (len(rest) == 2 and rest[1] in self.params)
            return len(rest) == 1 and rest[0] in WORKFLOW_VARS
        if root == "inputs":
            return (
                self.inputs is not None
                and rest[:1] == ["parameters"]
                and (len(rest) == 1 or (len(rest) == 2 and rest[1] in self.inputs))
            )
        if root in ("tasks", "steps"):
            return (
                root == self.sibling_kind
                and len(rest) == 3
                and rest[0] in self.siblings
                and rest[1:] == ["outputs", "result"]
            )
        if root == "item":
            return self.item and len(rest) <= 1
        if root == "lastRetry":
            return self.last_retry and len(rest) == 1 and rest[0] in RETRY_VARS
        return False


class _Checker:
    """Collects every unsupported field and bad reference of a workflow spec."""

    def __init__(self, resource: Mapping[str, Any]) -> None:
        self.problems: list[str] = []
        self.resource = resource
        self.spec: Mapping[str, Any] = resource.get("spec") or {}
        self.templates = {t.get("name"): t for t in self.spec.get("templates") or [] if isinstance(t, Mapping)}
        args = (self.spec.get("arguments") or {}).get("parameters") or []
        self.params = frozenset(p.get("name", "") for p in args if isinstance(p, Mapping))

    def unsupported(self, where: str) -> None:
        self.problems.append(f"local run does not support {where}; {SUBMIT_HINT}")

    def invalid(self, where: str, problem: str) -> None:
        self.problems.append(f"{where}: {problem}")

    def keys(self, value: Any, where: str, run: set[str], ignored: frozenset[str] | set[str] = frozenset()) -> None:
        if not isinstance(value, Mapping):
            self.invalid(where, f"expected a mapping, got {type(value).__name__}")
            return
        for key in value:
            if key not in run and key not in ignored:
                self.unsupported(f"{where}.{key}")

    def tags(self, text: str, where: str, allowed: _Vars) -> None:
        for tag in _tags(text):
            if tag.startswith("="):
                try:
                    paths = expression_vars(parse_expression(tag[1:], "expr"))
                except ExpressionError as exc:
                    self.unsupported(f"the expression {{{{{tag}}}}} in {where} ({exc})")
                    continue
            else:
                paths = [tag.split(".")]
            for path in paths:
                if not allowed.allows(path):
                    self.unsupported(f"the variable {'.'.join(path)} in {where}")

    def check(self) -> list[str]:
        kind = self.resource.get("kind")
        if kind not in ("WorkflowTemplate", "Workflow"):
            self.invalid("kind", f"expected a WorkflowTemplate or Workflow, got {kind!r}")
            return self.problems
        self.keys(self.spec, "spec", SPEC_RUN, SPEC_IGNORED)
        for i, param in enumerate((self.spec.get("arguments") or {}).get("parameters") or []):
            self.keys(param, f"spec.arguments.parameters[{i}]", PARAM_KEYS)
            for where, text in _strings(param, f"spec.arguments.parameters[{i}]"):
                self.tags(text, where, _Vars(self.params))
        for field_name in ("entrypoint", "onExit"):
            name = self.spec.get(field_name)
            if name is not None and name not in self.templates:
                self.invalid(f"spec.{field_name}", f"no template named {name!r}")
        if not self.spec.get("entrypoint"):
            self.invalid("spec.entrypoint", "missing; local run starts from the entrypoint template")
        for i, template in enumerate(self.spec.get("templates") or []):
            self.template(i, template)
        return self.problems

    def outputs(self, outputs: Any, where: str) -> None:
        """Output parameters read from a file are Argo's business (metrics); nothing here may reference them.

        The reference check allows ``outputs.result`` only, so ignoring them cannot change a local result.
        """
        if not outputs:
            return
        self.keys(outputs, f"{where}.outputs", {"parameters"})
        for i, param in enumerate(outputs.get("parameters") or [] if isinstance(outputs, Mapping) else []):
            value_from = param.get("valueFrom") or {}
            if set(param) - {"name", "valueFrom"} or set(value_from) - {"path", "default"} or "path" not in value_from:
                self.unsupported(f"{where}.outputs.parameters[{i}] (only valueFrom.path, read by Argo's metrics)")

    def template(self, index: int, tmpl: Mapping[str, Any]) -> None:
        where = f"templates[{index}] ({tmpl.get('name')!r})"
        self.keys(tmpl, where, TEMPLATE_RUN, TEMPLATE_IGNORED)
        kinds = [k for k in ("dag", "steps", "script") if k in tmpl]
        if len(kinds) > 1:
            self.invalid(where, f"has {' and '.join(kinds)}; a template has exactly one")
        if not kinds and not any(k not in TEMPLATE_RUN | TEMPLATE_IGNORED for k in tmpl):
            self.invalid(where, "has no dag, steps or script")
        self.outputs(tmpl.get("outputs"), where)
        if tmpl.get("failFast"):
            self.unsupported(f"{where}.failFast")
        inputs = tmpl.get("inputs") or {}
        self.keys(inputs, f"{where}.inputs", {"parameters"})
        names = []
        for i, param in enumerate(inputs.get("parameters") or []):
            self.keys(param, f"{where}.inputs.parameters[{i}]", PARAM_KEYS)
            names.append(param.get("name", ""))
        allowed = _Vars(self.params, inputs=frozenset(names))
        if "dag" in tmpl:
            self.dag(where, tmpl["dag"], allowed)
        elif "steps" in tmpl:
            self.steps(where, tmpl["steps"], allowed)
        elif "script" in tmpl:
            self.script(where, tmpl, allowed)
        for key in ("parallelism", "activeDeadlineSeconds"):
            if key in tmpl and not re.fullmatch(r"\d+", str(tmpl[key])):
                self.unsupported(f"{where}.{key} = {tmpl[key]!r} (only a plain number)")

    def call(self, where: str, call: Mapping[str, Any], allowed: _Vars, keys: set[str]) -> None:
        self.keys(call, where, keys)
        if call.get("template") not in self.templates:
            self.invalid(where, f"template {call.get('template')!r} does not exist")
        arguments = call.get("arguments") or {}
        self.keys(arguments, f"{where}.arguments", {"parameters"})
        for i, param in enumerate(arguments.get("parameters") or []):
            self.keys(param, f"{where}.arguments.parameters[{i}]", {"name", "value"})
        looped = dataclasses.replace(allowed, item="withParam" in call or "withItems" in call)
        for key in ("arguments", "withParam", "when"):
            for place, text in _strings(call.get(key), f"{where}.{key}"):
                self.tags(text, place, looped)
        if "withParam" in call and not isinstance(call["withParam"], str):
            self.invalid(f"{where}.withParam", "must be a string (a JSON list or an expression giving one)")
        if "withItems" in call:
            self.items(f"{where}.withItems", call["withItems"])
        if "when" in call:
            try:
                parse_expression(_TAG_RE.sub("x", str(call["when"])), "when")
            except ExpressionError as exc:
                self.unsupported(f"{where}.when ({exc})")
        continue_on = call.get("continueOn") or {}
        self.keys(continue_on, f"{where}.continueOn", set(_CONTINUE_ON))

    def items(self, where: str, items: Any) -> None:
        if not isinstance(items, list):
            self.invalid(where, "must be a list")
            return
        for i, item in enumerate(items):
            try:
                _item_scope(i, item)
            except ExpressionError as exc:
                self.invalid(f"{where}[{i}]", str(exc))

    def dag(self, where: str, dag: Mapping[str, Any], allowed: _Vars) -> None:
        self.keys(dag, f"{where}.dag", {"tasks", "failFast", "target"})
        tasks = dag.get("tasks") or []
        names = frozenset(t.get("name", "") for t in tasks)
        allowed = dataclasses.replace(allowed, siblings=names, sibling_kind="tasks")
        graph: dict[str, set[str]] = {}
        for i, task in enumerate(tasks):
            place = f"{where}.dag.tasks[{i}] ({task.get('name')!r})"
            self.call(place, task, allowed, TASK_KEYS)
            if "depends" in task and "dependencies" in task:
                self.invalid(place, "has both depends and dependencies; use one")
            try:
                _tree, deps = _task_depends(task)
            except ExpressionError as exc:
                self.unsupported(f"{place}.depends ({exc})")
                deps = set()
            for dep in sorted(deps - names):
                self.invalid(place, f"depends on unknown task {dep!r}")
            graph[task.get("name", "")] = deps & names
        for target in str(dag.get("target") or "").split():
            if target not in names:
                self.invalid(f"{where}.dag.target", f"unknown task {target!r}")
        if _topological(list(graph), graph) is None:
            self.invalid(f"{where}.dag", "the task dependencies form a cycle")

    def steps(self, where: str, groups: Any, allowed: _Vars) -> None:
        if not isinstance(groups, list):
            self.invalid(f"{where}.steps", "must be a list of step groups")
            return
        names = frozenset(s.get("name", "") for g in groups if isinstance(g, list) for s in g)
        allowed = dataclasses.replace(allowed, siblings=names, sibling_kind="steps")
        for g, group in enumerate(groups):
            if not isinstance(group, list):
                self.invalid(f"{where}.steps[{g}]", "must be a list of steps")
                continue
            for s, step in enumerate(group):
                self.call(f"{where}.steps[{g}][{s}] ({step.get('name')!r})", step, allowed, STEP_KEYS)

    def script(self, where: str, tmpl: Mapping[str, Any], allowed: _Vars) -> None:
        script = tmpl["script"]
        self.keys(script, f"{where}.script", SCRIPT_RUN, SCRIPT_IGNORED)
        if not script.get("command"):
            self.unsupported(f"{where}.script without command (the image's entrypoint is unknown locally)")
        volumes: dict[str, Mapping[str, Any]] = {}
        for i, volume in enumerate(tmpl.get("volumes") or []):
            place = f"{where}.volumes[{i}]"
            self.keys(volume, place, {"name", "secret", "configMap", "emptyDir"})
            kinds = [k for k in ("secret", "configMap", "emptyDir") if k in volume]
            if len(kinds) != 1:
                self.unsupported(f"{place} without exactly one of secret, configMap or emptyDir")
            if "emptyDir" in volume:
                self.keys(volume["emptyDir"] or {}, f"{place}.emptyDir", {"medium", "sizeLimit"})
            volumes[volume.get("name", "")] = volume
        for i, mount in enumerate(script.get("volumeMounts") or []):
            place = f"{where}.script.volumeMounts[{i}]"
            self.keys(mount, place, {"name", "mountPath", "readOnly"})
            if mount.get("name") not in volumes:
                self.unsupported(f"{place}: volume {mount.get('name')!r} is not one of the template's volumes")
        for i, env in enumerate(script.get("env") or []):
            place = f"{where}.script.env[{i}]"
            self.keys(env, place, {"name", "value", "valueFrom"})
            if "valueFrom" in env:
                value_from = env["valueFrom"] or {}
                if set(value_from) != {"secretKeyRef"}:
                    self.unsupported(f"{place}.valueFrom.{next(iter(value_from), '')} (only secretKeyRef)")
        in_pod = dataclasses.replace(allowed, retries="retryStrategy" in tmpl)
        for key in ("script", "volumes", "synchronization", "retryStrategy", "activeDeadlineSeconds"):
            for place, text in _strings(tmpl.get(key), f"{where}.{key}"):
                self.tags(text, place, in_pod if key == "script" else allowed)
        if "retryStrategy" in tmpl:
            self.retry(f"{where}.retryStrategy", tmpl["retryStrategy"])
        if "synchronization" in tmpl:
            sync = tmpl["synchronization"] or {}
            self.keys(sync, f"{where}.synchronization", {"mutexes", "mutex"})
            mutexes = list(sync.get("mutexes") or []) + ([sync["mutex"]] if sync.get("mutex") else [])
            for i, mutex in enumerate(mutexes):
                self.keys(mutex, f"{where}.synchronization.mutexes[{i}]", {"name", "namespace"})

    def retry(self, where: str, retry: Mapping[str, Any]) -> None:
        self.keys(retry, where, RETRY_KEYS)
        policy = retry.get("retryPolicy", "OnFailure")
        if policy not in ("Always", "OnFailure", "OnError"):
            self.unsupported(f"{where}.retryPolicy {policy!r} (Always, OnFailure or OnError)")
        if "limit" in retry and not re.fullmatch(r"\d+", str(retry["limit"])):
            self.unsupported(f"{where}.limit {retry['limit']!r} (only a plain number)")
        if "expression" in retry:
            try:
                paths = expression_vars(parse_expression(str(retry["expression"]), "expr"))
            except ExpressionError as exc:
                self.unsupported(f"{where}.expression ({exc})")
                paths = []
            for path in paths:
                if not _Vars(self.params, last_retry=True).allows(path):
                    self.unsupported(f"the variable {'.'.join(path)} in {where}.expression")
        backoff = retry.get("backoff") or {}
        self.keys(backoff, f"{where}.backoff", BACKOFF_KEYS)
        for key in ("duration", "maxDuration", "cap"):
            if key in backoff:
                try:
                    _parse_duration(backoff[key])
                except ExpressionError as exc:
                    self.invalid(f"{where}.backoff.{key}", str(exc))
        if "factor" in backoff and not re.fullmatch(r"\d+", str(backoff["factor"])):
            self.unsupported(f"{where}.backoff.factor {backoff['factor']!r} (only a whole number)")


def check_supported(resource: Mapping[str, Any]) -> None:
    """Refuse a workflow the local runner cannot run faithfully, before anything runs.

    Raises:
        LocalRunRefused: listing every unsupported field (with the hint to use ``pipelines submit``) and
            every reference to a template, task, parameter or variable that does not exist.
    """
    problems = _Checker(resource).check()
    if problems:
        raise LocalRunRefused(problems)


__all__ = [
    "BACKOFF_KEYS",
    "PARAM_KEYS",
    "RETRY_KEYS",
    "RETRY_VARS",
    "SCRIPT_IGNORED",
    "SCRIPT_RUN",
    "SPEC_IGNORED",
    "SPEC_RUN",
    "STEP_KEYS",
    "SUBMIT_HINT",
    "TASK_KEYS",
    "TEMPLATE_IGNORED",
    "TEMPLATE_RUN",
    "WORKFLOW_VARS",
    "LocalRunRefused",
    "check_supported",
]
