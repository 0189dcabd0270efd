"""The one place where Argo's string parameters become the typed arguments a step function declares."""

import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from steps.runtime.errors import ConfigError


def _convert(name: str, value: Any, annotation: Any) -> Any:
    args = typing.get_args(annotation)
    optional = type(None) in args and (typing.get_origin(annotation) in (typing.Union, types.UnionType))
    target = next((a for a in args if a is not type(None)), annotation) if optional else annotation
    if not isinstance(value, str) or target not in (bool, int):
        return value
    text = value.strip()
    if optional and text in ("", "null"):  # Argo's empty argument; Hera renders a None default as 'null'
        return None
    if target is bool and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if target is int and (text.isdigit() or (text[:1] == "-" and text[1:].isdigit())):
        return int(text)
    kind = "true or false" if target is bool else "an integer"
    raise ConfigError(f"parameter {name.replace('_', '-')}={value[:40]!r} must be {kind}")


def runner_signature(fn: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, Any]]:
    """``fn``'s signature and annotations with every parameter typed ``str``, for the wrapper Hera's runner calls."""
    signature = inspect.signature(fn)
    params = [p.replace(annotation=str) for p in signature.parameters.values()]
    annotations: dict[str, Any] = {p.name: str for p in params}
    annotations["return"] = signature.return_annotation
    return signature.replace(parameters=params), annotations


def coerce(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of a call to ``fn`` by name, strings converted to the ``bool``/``int``/``X | None`` it declares.

    Raises:
        ConfigError: a value that is not of the declared type.
        TypeError: arguments that do not fit the signature.
    """
    hints = typing.get_type_hints(fn)
    bound = inspect.signature(fn).bind(*args, **kwargs)
    return {k: _convert(k, v, hints[k]) if k in hints else v for k, v in bound.arguments.items()}


__all__ = ["coerce", "runner_signature"]
