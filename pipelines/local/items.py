"""Fan-out items: ``withItems`` / ``withParam`` lists, ``{{item}}`` values, item node labels, aggregated results."""

import json
from collections.abc import Mapping
from typing import Any

from pipelines.local.expressions import ExpressionError
from pipelines.local.goformat import go_json
from pipelines.local.variables import substitute


class _JsonNumber(str):
    """A JSON number kept as written, as Argo's ``json.Number`` keeps it."""


def _item_json(value: Any, where: str, nested: bool = False) -> str:
    """``json.Marshal`` of an Argo ``Item``/``ItemValue``: sorted keys, numbers as written, HTML escaped."""
    if isinstance(value, _JsonNumber):
        return str(value)
    if isinstance(value, dict):
        if nested and any(not isinstance(v, str | None) for v in value.values()):
            bad = next(v for v in value.values() if not isinstance(v, str | None))
            raise ExpressionError(f"{where}: json: cannot unmarshal {_json_kind(bad)} into Go value of type string")
        parts = [f"{go_json(k)}:{_item_json(value[k], where, True)}" for k in sorted(value)]
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_item_json(v, where, True) for v in value) + "]"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return go_json(value)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "object" if isinstance(value, dict) else "array"


def _item_text(value: Any, where: str) -> str:
    """``ItemValue.String()``: strings JSON-escaped without their quotes, null as empty, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, _JsonNumber):
        return go_json(value)[1:-1]
    return _item_json(value, where)


def _item_scope(index: int, item: Any) -> tuple[dict[str, str], str]:
    """``{{item}}``, ``{{item.key}}`` and the node-name label of a fan-out item, as Argo v3's ``Item``."""
    where = f"withItems[{index}]"
    if isinstance(item, dict):
        values = {key: _item_text(value, f"{where}[{key}]") for key, value in item.items()}
        for key, value in item.items():
            if isinstance(value, dict):
                _item_json(value, f"{where}[{key}]", nested=True)
        label = ",".join(sorted(f"{key}:{text}" for key, text in values.items()))
        return {"item": _item_json(item, where), **{f"item.{k}": v for k, v in values.items()}}, label
    if isinstance(item, list):
        texts = [_item_text(v, f"{where}[{i}]") for i, v in enumerate(item)]
        return {"item": _item_json(item, where)}, "[" + " ".join(texts) + "]"
    text = _item_text(item, where)
    return {"item": text}, text


def _loop_items(call: Mapping[str, Any], scope: Mapping[str, str], where: str) -> list[Any] | None:
    if "withItems" in call:
        return list(call["withItems"])
    if "withParam" not in call:
        return None
    text = substitute(str(call["withParam"]), scope, f"{where}.withParam")
    try:
        items = json.loads(text, parse_int=_JsonNumber, parse_float=_JsonNumber)
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"withParam value could not be parsed as a JSON list: {text[:200]}: {exc.msg}") from None
    if not isinstance(items, list):
        raise ExpressionError(f"withParam value could not be parsed as a JSON list: {text[:200]}")
    return items


def _aggregate(results: list[str]) -> str:
    """A fan-out's ``outputs.result``: the items' results as a JSON list (maps decoded, as Argo does)."""
    values: list[Any] = []
    for result in results:
        try:
            decoded = json.loads(result)
        except json.JSONDecodeError:
            decoded = None
        values.append(decoded if isinstance(decoded, dict) else result)
    return go_json(values)


__all__: list[str] = []
