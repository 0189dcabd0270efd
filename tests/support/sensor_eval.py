"""An evaluator of Argo Events Sensors: dependency data filters and trigger parameters, as argo-events runs them.

It follows argoproj/argo-events ``pkg/sensors/dependencies/filter.go`` (``filterData``) and
``pkg/sensors/triggers/params.go`` (``ResolveParamValue``, ``ApplyParams``), see
https://argoproj.github.io/argo-events/sensors/filters/data/ :

* paths are gjson paths (``a.b.0``, ``\\`` escapes, ``#`` = array length) into the event data;
* ``string`` values are Go regexes matched UNANCHORED against gjson's ``String()`` of the value (an array
  or object is matched as its raw JSON); ``bool`` values go through ``strconv.ParseBool``; ``number``
  values are float64 compared with ``comparator``;
* a missing path is an error, and an error in AND mode fails the dependency; filters are ANDed unless
  ``dataLogicalOperator``/``filtersLogicalOperator`` is ``or``;
* a trigger runs when its ``conditions`` (dependency names joined by ``&&``/``||``) hold, or, without
  conditions, when every dependency resolved;
* parameters resolve ``src.dataKey`` (or the ``src.value`` default) and are written at ``dest`` (sjson
  path) with ``overwrite``/``append``/``prepend``.

``github_event_data`` builds what the GitHub EventSource emits: ``{"headers": http.Header, "body": ...}``
with canonical header names and array values, and ``X-GitHub-Event``/``X-GitHub-Delivery`` copied into
the body. Expr filters follow ``filterExpr`` with the govaluate subset the project writes (``==``/``!=``,
``&&``/``||``). Features the project does not use (script/time filters, Go templates) raise
``NotImplementedError`` rather than being guessed.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

_MISSING = object()


class SensorEvalError(Exception):
    """The sensor definition cannot be evaluated (an error argo-events would also report)."""


@dataclass(frozen=True)
class GResult:
    """A gjson result: the JSON value found at a path and its gjson type name."""

    value: Any

    @property
    def type(self) -> str:
        """gjson's ``Type.String()``: String, Number, True, False, Null or JSON."""
        v = self.value
        if v is None:
            return "Null"
        if v is True:
            return "True"
        if v is False:
            return "False"
        if isinstance(v, int | float):
            return "Number"
        if isinstance(v, str):
            return "String"
        return "JSON"

    @property
    def raw(self) -> str:
        """The compact JSON text of the value (what Go's json.Marshal would have written)."""
        return json.dumps(self.value, separators=(",", ":"), ensure_ascii=False)

    def string(self) -> str:
        """gjson ``Result.String()``."""
        kind = self.type
        if kind == "String":
            return self.value
        if kind == "Number":
            if isinstance(self.value, int):
                return str(self.value)
            return format(Decimal(repr(self.value)), "f").rstrip("0").rstrip(".") or "0"
        if kind == "True":
            return "true"
        if kind == "False":
            return "false"
        if kind == "Null":
            return ""
        return self.raw

    def bool(self) -> bool:
        """gjson ``Result.Bool()``."""
        kind = self.type
        if kind == "True":
            return True
        if kind == "String":
            try:
                return parse_bool(self.value.lower())
            except ValueError:
                return False
        if kind == "Number":
            return self.value != 0
        return False

    def float(self) -> float:
        """gjson ``Result.Float()``."""
        kind = self.type
        if kind == "Number":
            return float(self.value)
        if kind == "True":
            return 1.0
        if kind == "String":
            try:
                return parse_float(self.value)
            except ValueError:
                return 0.0
        return 0.0


def parse_bool(text: str) -> bool:
    """Go ``strconv.ParseBool``.

    Raises:
        ValueError: not one of Go's accepted spellings.
    """
    if text in {"1", "t", "T", "TRUE", "true", "True"}:
        return True
    if text in {"0", "f", "F", "FALSE", "false", "False"}:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def parse_float(text: str) -> float:
    """Go ``strconv.ParseFloat(text, 64)`` for decimal input.

    Raises:
        ValueError: not a Go float literal.
    """
    if "_" in text or text.strip() != text or not text:
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    return float(text)


def split_path(path: str) -> list[str]:
    """Split a gjson/sjson path on unescaped dots.

    Raises:
        NotImplementedError: the path uses gjson features this evaluator does not model (wildcards,
            queries, modifiers, multipaths).
    """
    parts, current, escaped, plain = [], [], False, True
    for ch in path:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ".":
            parts.append("".join(current))
            current = []
        else:
            if ch in "*?|@[]{}!=<>%":
                plain = False
            current.append(ch)
    parts.append("".join(current))
    if not plain or any(p.startswith("#") and p != "#" for p in parts):
        raise NotImplementedError(f"gjson path {path!r} uses wildcards, queries or modifiers; not modelled here")
    return parts


def gjson_get(data: Any, path: str) -> GResult | None:
    """The value at a gjson path, or None when it does not exist."""
    current = data
    for part in split_path(path):
        if isinstance(current, dict):
            current = current.get(part, _MISSING)
        elif isinstance(current, list):
            if part == "#":
                current = len(current)
            elif part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                current = _MISSING
        else:
            current = _MISSING
        if current is _MISSING:
            return None
    return GResult(current)


def sjson_set(obj: dict, path: str, value: Any) -> None:
    """Set ``value`` at an sjson path, creating missing objects; ``-1`` appends to an array.

    Raises:
        SensorEvalError: the path runs through a scalar or past the end of an array.
    """
    parts = split_path(path)
    current: Any = obj
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(current, list):
            if part == "-1":
                index = len(current)
                current.append(None)
            elif part.isdigit() and int(part) < len(current):
                index = int(part)
            else:
                raise SensorEvalError(f"sjson path {path!r}: index {part} is outside an array of {len(current)}")
            if last:
                current[index] = value
            else:
                if current[index] is None:
                    current[index] = {}
                current = current[index]
        elif isinstance(current, dict):
            if last:
                current[part] = value
            else:
                current = current.setdefault(part, {})
        else:
            raise SensorEvalError(f"sjson path {path!r}: {part!r} is below a scalar")


_GO_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\\[1-9]|\\Z")


def go_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Go (RE2) regex with Python's ``re``, keeping Go's meaning of ``$`` and ``\\z``.

    Go's ``$`` (without the ``m`` flag) matches only at the end of the text; Python's also matches before a
    final newline, so it is rewritten to ``\\Z``.

    Raises:
        SensorEvalError: the pattern does not compile, or uses lookarounds, backreferences or ``\\Z``, which
            Go's regexp rejects.
    """
    if _GO_UNSUPPORTED.search(pattern):
        raise SensorEvalError(f"error parsing regexp {pattern!r}: not RE2 syntax (lookaround, backreference, \\Z)")
    multiline = re.search(r"\(\?[a-zA-Z]*m", pattern) is not None
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append("\\Z" if pattern[i + 1] == "z" else pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$" and not multiline:
            ch = "\\Z"
        out.append(ch)
        i += 1
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise SensorEvalError(f"error parsing regexp {pattern!r}: {exc}") from None


_COMPARE = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "!=": lambda a, b: a != b,
    "=": lambda a, b: a == b,
    "": lambda a, b: a == b,
}


def _one_filter(f: dict, data: Any) -> bool:
    """One data filter in AND semantics; raises SensorEvalError where filterData returns an error."""
    if f.get("template"):
        raise NotImplementedError("data filter templates (Go templates) are not evaluated here")
    result = gjson_get(data, f["path"])
    if result is None:
        raise SensorEvalError(f"data filter error (path '{f['path']}' does not exist)")
    values = f.get("value") or []
    if not values:
        raise SensorEvalError("data filter error (no values specified)")
    comparator = f.get("comparator", "")
    kind = f.get("type")
    for value in values:
        if kind == "bool":
            try:
                if parse_bool(value) == result.bool():
                    return True
            except ValueError as exc:
                raise SensorEvalError(f"data filter error ({exc})") from None
        elif kind == "number":
            try:
                wanted = parse_float(value)
            except ValueError as exc:
                raise SensorEvalError(f"data filter error ({exc})") from None
            compare = _COMPARE.get(comparator)
            if compare is not None and compare(result.float(), wanted):
                return True
        elif kind == "string":
            match = go_regex(value).search(result.string()) is not None
            if (comparator in {"", "="} and match) or (comparator == "!=" and not match):
                return True
        else:
            raise SensorEvalError(f"data filter error (unsupported JSON type '{kind}')")
    return False


def filter_data(filters: list[dict], operator: str, data: Any) -> tuple[bool, str | None]:
    """``filterData``: (passed, error message) for a list of data filters and ``dataLogicalOperator``."""
    if not filters:
        return True, None
    if operator == "or":
        errors = []
        for f in filters:
            try:
                if _one_filter(f, data):
                    return True, None
            except SensorEvalError as exc:
                errors.append(str(exc))
        return False, (" / ".join(errors) or None)
    for f in filters:
        try:
            if not _one_filter(f, data):
                return False, None
        except SensorEvalError as exc:
            return False, str(exc)
    return True, None


_EXPR_TOKEN = re.compile(r"""\s*(\(|\)|&&|\|\||==|!=|'[^']*'|"[^"]*"|[A-Za-z_][A-Za-z0-9_]*)""")


def govaluate(expression: str, parameters: dict[str, Any]) -> Any:
    """Evaluate the subset of govaluate (Knetic/govaluate) the project writes: ``==``/``!=`` between names and
    string literals, ``&&``, ``||`` and parentheses. ``==`` is ``reflect.DeepEqual`` of the two values.

    Raises:
        SensorEvalError: a name that is not a parameter (govaluate: "No parameter 'x' found.").
        NotImplementedError: any other govaluate syntax.
    """
    tokens, pos, text = [], 0, expression.rstrip()
    while pos < len(text):
        match = _EXPR_TOKEN.match(text, pos)
        if not match:
            raise NotImplementedError(f"govaluate syntax {text[pos:]!r} is not modelled here")
        tokens.append(match.group(1))
        pos = match.end()

    def atom(i: int) -> tuple[Any, int]:
        token = tokens[i]
        if token == "(":
            value, i = either(i + 1)
            if i >= len(tokens) or tokens[i] != ")":
                raise SensorEvalError(f"expr {expression!r}: unbalanced parenthesis")
            return value, i + 1
        if token[0] in "'\"":
            return token[1:-1], i + 1
        if token in {"true", "false"}:
            return token == "true", i + 1
        if token not in parameters:
            raise SensorEvalError(f"No parameter '{token}' found.")
        return parameters[token], i + 1

    def comparison(i: int) -> tuple[Any, int]:
        left, i = atom(i)
        while i < len(tokens) and tokens[i] in {"==", "!="}:
            op = tokens[i]
            right, i = atom(i + 1)
            left = (left == right and type(left) is type(right)) == (op == "==")
        return left, i

    def both(i: int) -> tuple[Any, int]:
        left, i = comparison(i)
        while i < len(tokens) and tokens[i] == "&&":
            right, i = comparison(i + 1)
            left = bool(left) and bool(right)
        return left, i

    def either(i: int) -> tuple[Any, int]:
        left, i = both(i)
        while i < len(tokens) and tokens[i] == "||":
            right, i = both(i + 1)
            left = bool(left) or bool(right)
        return left, i

    value, end = either(0)
    if end != len(tokens):
        raise SensorEvalError(f"expr {expression!r}: unexpected {tokens[end:]}")
    return value


def filter_expr(filters: list[dict], operator: str, data: Any) -> tuple[bool, str | None]:
    """``filterExpr``: each expr's fields are gjson values; a missing path is an error; ANDed unless ``or``."""
    if not filters:
        return True, None
    errors = []
    for f in filters:
        parameters, missing = {}, None
        for field_ in f.get("fields") or []:
            result = gjson_get(data, field_["path"])
            if result is None:
                missing = f"path '{field_['path']}' does not exist"
                break
            parameters[field_["name"]] = result.value
        if missing:
            if operator != "or":
                return False, f"expr filter error ({missing})"
            errors.append(missing)
            continue
        if not parameters:
            continue
        try:
            passed = govaluate(f["expr"], parameters) is True
        except SensorEvalError as exc:
            if operator != "or":
                return False, f"expr filter error ({exc})"
            errors.append(str(exc))
            continue
        if passed and operator == "or":
            return True, None
        if not passed and operator != "or":
            return False, None
    if operator == "or":
        return False, (f"expr filter errors [{' / '.join(errors)}]" if errors else None)
    return True, None


def filter_dependency(dependency: dict, data: Any) -> tuple[bool, str | None]:
    """Whether an event passes a dependency's filters (``filterEvent``: exprs, then data).

    Raises:
        NotImplementedError: the dependency uses script, context or time filters, or ``or`` between them.
    """
    filters = dependency.get("filters")
    if not filters:
        return True, None
    unsupported = sorted(set(filters) - {"data", "dataLogicalOperator", "exprs", "exprLogicalOperator"})
    if unsupported:
        raise NotImplementedError(f"filters {unsupported} are not evaluated here")
    if dependency.get("filtersLogicalOperator") == "or":
        raise NotImplementedError("filtersLogicalOperator 'or' is not evaluated here")
    passed_expr, error = filter_expr(filters.get("exprs") or [], filters.get("exprLogicalOperator", "and"), data)
    if error is not None:
        return False, error
    passed, error = filter_data(filters.get("data") or [], filters.get("dataLogicalOperator", "and"), data)
    if error is not None:
        return False, error
    return passed_expr and passed, None


_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||[A-Za-z0-9_]+)")


def conditions_hold(expression: str, resolved: set[str], known: set[str]) -> bool:
    """Evaluate a trigger ``conditions`` expression over the resolved dependency names.

    Raises:
        SensorEvalError: the expression does not parse or names an unknown dependency.
    """
    tokens, pos = [], 0
    while pos < len(expression.rstrip()):
        match = _TOKEN.match(expression, pos)
        if not match:
            raise SensorEvalError(f"conditions {expression!r}: cannot parse at {expression[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()

    def parse_or(i: int) -> tuple[bool, int]:
        value, i = parse_and(i)
        while i < len(tokens) and tokens[i] == "||":
            right, i = parse_and(i + 1)
            value = value or right
        return value, i

    def parse_and(i: int) -> tuple[bool, int]:
        value, i = parse_atom(i)
        while i < len(tokens) and tokens[i] == "&&":
            right, i = parse_atom(i + 1)
            value = value and right
        return value, i

    def parse_atom(i: int) -> tuple[bool, int]:
        if i >= len(tokens):
            raise SensorEvalError(f"conditions {expression!r}: unexpected end")
        if tokens[i] == "(":
            value, i = parse_or(i + 1)
            if i >= len(tokens) or tokens[i] != ")":
                raise SensorEvalError(f"conditions {expression!r}: missing ')'")
            return value, i + 1
        if tokens[i] not in known:
            raise SensorEvalError(f"conditions {expression!r}: unknown dependency {tokens[i]!r}")
        return tokens[i] in resolved, i + 1

    value, end = parse_or(0)
    if end != len(tokens):
        raise SensorEvalError(f"conditions {expression!r}: trailing {tokens[end:]}")
    return value


def resolve_param(src: dict, events: dict[str, Any]) -> tuple[str | None, str]:
    """``ResolveParamValue``: (value, gjson type name) of a parameter source; value None = skip.

    Raises:
        SensorEvalError: the key is missing from the event and no default ``value`` is set.
        NotImplementedError: context keys or Go templates.
    """
    if any(src.get(k) for k in ("contextKey", "contextTemplate", "dataTemplate")):
        raise NotImplementedError("context keys and Go templates in parameters are not evaluated here")
    default = src.get("value")
    name = src.get("dependencyName")
    if name not in events:
        return (default, "String") if default is not None else (None, "String")
    key = src.get("dataKey")
    if not key:
        if default is None:
            raise NotImplementedError("a parameter without dataKey or value receives the whole event envelope")
        return default, "String"
    result = gjson_get(events[name], key)
    if result is not None:
        if result.type == "JSON":
            return result.raw, "JSON"
        if result.type == "Null":
            return "null", "Null"
        return result.string(), result.type
    if default is not None:
        return default, "String"
    raise SensorEvalError(f"unable to resolve '{name}' parameter value: key {key} does not exist in the event")


def apply_params(resource: dict, params: list[dict], events: dict[str, Any]) -> dict:
    """``ApplyParams``: a copy of ``resource`` with each parameter written at its ``dest``.

    Raises:
        SensorEvalError: an unsupported operation, or a value that cannot be resolved or set.
    """
    out = copy.deepcopy(resource)
    for param in params:
        value, kind = resolve_param(param.get("src") or {}, events)
        if value is None:
            continue
        op = param.get("operation", "")
        if op in {"append", "prepend"}:
            current = gjson_get(out, param["dest"])
            if current is not None:
                kind = "String"
                value = current.string() + value if op == "append" else value + current.string()
        elif op not in {"", "overwrite"}:
            raise SensorEvalError(f"unsupported trigger parameter operation: {op}")
        raw = kind != "String" and (param.get("src") or {}).get("useRawData")
        sjson_set(out, param["dest"], json.loads(value) if raw else value)
    return out


@dataclass
class Fired:
    """A trigger that ran, with the resource it would create after parameters were applied."""

    trigger: str
    operation: str
    resource: dict

    @property
    def arguments(self) -> list[tuple[str, str]]:
        """``spec.arguments.parameters`` of the Workflow as (name, value) pairs, in order."""
        return [(p["name"], p.get("value")) for p in self.resource["spec"]["arguments"]["parameters"]]

    @property
    def parameters(self) -> dict[str, str]:
        """``spec.arguments.parameters`` of the Workflow as a dict."""
        return dict(self.arguments)


@dataclass
class Evaluation:
    """The result of delivering one event to a Sensor."""

    resolved: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    fired: list[Fired] = field(default_factory=list)

    @property
    def triggers(self) -> list[str]:
        """Names of the triggers that ran."""
        return [f.trigger for f in self.fired]


def evaluate(sensor: dict, event_source: str, event_name: str, data: Any) -> Evaluation:
    """Deliver one event (from ``event_source``/``event_name``) to a Sensor with no earlier state.

    Raises:
        SensorEvalError: the Sensor's conditions or parameters are invalid for this event.
        NotImplementedError: the Sensor uses features this evaluator does not model.
    """
    spec = sensor["spec"]
    result = Evaluation()
    known = {d["name"] for d in spec["dependencies"]}
    if len(known) != len(spec["dependencies"]):
        raise SensorEvalError("dependency names are not unique")
    for dep in spec["dependencies"]:
        if (dep["eventSourceName"], dep["eventName"]) != (event_source, event_name):
            continue
        passed, error = filter_dependency(dep, data)
        if passed:
            result.resolved.add(dep["name"])
        elif error:
            result.errors[dep["name"]] = error
    events = {name: data for name in result.resolved}
    for trigger in spec["triggers"]:
        if trigger.get("parameters"):
            raise NotImplementedError("trigger-level parameters (applied to the template) are not evaluated here")
        template = trigger["template"]
        conditions = template.get("conditions")
        fires = conditions_hold(conditions, result.resolved, known) if conditions else result.resolved == known
        if not fires:
            continue
        kind = "argoWorkflow" if "argoWorkflow" in template else "k8s" if "k8s" in template else None
        if kind is None:
            raise NotImplementedError(f"trigger {template['name']!r}: only argoWorkflow and k8s triggers are modelled")
        body = template[kind]
        resource = apply_params(body["source"]["resource"], body.get("parameters") or [], events)
        default_op = "submit" if kind == "argoWorkflow" else "create"
        result.fired.append(Fired(template["name"], body.get("operation", default_op), resource))
    return result


def canonical_header(name: str) -> str:
    """Go ``textproto.CanonicalMIMEHeaderKey``: ``x-github-event`` -> ``X-Github-Event``."""
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def github_event_data(event: str, payload: dict, *, delivery: str = "00000000-0000-0000-0000-000000000000") -> dict:
    """The event data the GitHub EventSource publishes for one delivery (``GithubEventData``)."""
    sent = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/sensor-eval",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": "1",
    }
    body = {**copy.deepcopy(payload), "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    return {"headers": {canonical_header(k): [v] for k, v in sent.items()}, "body": body}


__all__ = [
    "Evaluation",
    "Fired",
    "GResult",
    "SensorEvalError",
    "apply_params",
    "canonical_header",
    "conditions_hold",
    "evaluate",
    "filter_data",
    "filter_dependency",
    "filter_expr",
    "github_event_data",
    "gjson_get",
    "govaluate",
    "go_regex",
    "parse_bool",
    "resolve_param",
    "sjson_set",
]
