"""Template variables: ``{{name}}`` and ``{{=expr}}`` tags replaced from a scope, as the controller does."""

import re
from collections.abc import Mapping
from typing import Any

from pipelines.local.expressions import ExpressionError, evaluate, parse_expression
from pipelines.local.goformat import go_format

_TAG_RE = re.compile(r"\{\{(.*?)\}\}", re.S)


def _tags(text: str) -> list[str]:
    return [m.group(1).strip() for m in _TAG_RE.finditer(text)]


def _nest(scope: Mapping[str, str]) -> dict[str, Any]:
    """Turn flat ``a.b.c`` keys into nested dicts, the way Argo builds the expr environment."""
    root: dict[str, Any] = {}
    for key in sorted(scope, key=lambda k: k.count(".")):
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = scope[key]
    return root


def substitute(text: str, scope: Mapping[str, str], where: str, allow_unresolved: bool = False) -> str:
    """Replace ``{{var}}`` and ``{{=expr}}`` tags in ``text`` from ``scope`` (flat Argo variable names).

    With ``allow_unresolved`` a tag that cannot be resolved stays as it is (Argo's global pass over input
    values); otherwise it is an error. Replaced text is never scanned again.

    Raises:
        ExpressionError: a tag that cannot be resolved, naming it and ``where``.
    """

    def replace(match: re.Match[str]) -> str:
        tag = match.group(1).strip()
        try:
            if tag.startswith("="):
                value = evaluate(parse_expression(tag[1:], "expr"), _nest(scope))
                return value if isinstance(value, str) else go_format(value)
            if tag in scope:
                return scope[tag]
            raise ExpressionError(f"failed to resolve {{{{{tag}}}}} in {where}")
        except ExpressionError:
            if allow_unresolved:
                return match.group(0)
            raise

    return _TAG_RE.sub(replace, text)


def _substitute_tree(value: Any, scope: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):
        return substitute(value, scope, where)
    if isinstance(value, Mapping):
        return {k: _substitute_tree(v, scope, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_tree(v, scope, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


__all__ = ["substitute"]
