"""A batch schema's column checks as one polars selection: a batch that passes it needs no pandera pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandera.backends.polars.builtin_checks  # noqa: F401 - registers the polars implementations of the checks
import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.engines import polars_engine


class _Selection:
    """Stands in for ``PolarsData.lazyframe``: pandera's built-in polars checks are ``lazyframe.select(expr)``."""

    def __init__(self) -> None:
        self.exprs: tuple[Any, ...] = ()

    def select(self, *exprs: Any, **named: Any) -> _Selection:
        self.exprs = exprs if not named else ()
        return self


def _expression(check: pa.Check, column: str) -> pl.Expr | None:
    """The per-row boolean expression of a built-in check, or None for anything else (custom, element-wise)."""
    if check.element_wise or check.groupby is not None or check._check_fn is None:
        return None
    selection = _Selection()
    try:
        out = check._check_fn(PolarsData(selection, column), **check._check_kwargs)  # type: ignore[arg-type]
    except (AttributeError, TypeError, KeyError):  # more than one select (unique_values_eq collects), no polars fn
        return None
    if out is not selection or len(selection.exprs) != 1 or not isinstance(selection.exprs[0], pl.Expr):
        return None
    expr: pl.Expr = selection.exprs[0]
    # pandera's polars check backend: with ignore_na a null outcome passes (``out | out.is_null()``, written
    # as fill_null so the check is evaluated once, not twice), without it a null fails.
    return expr.fill_null(check.ignore_na).all()


@dataclass(frozen=True)
class FusedChecks:
    """Every column check of a batch schema, evaluated in one ``select`` (polars runs them in parallel).

    A batch passes when its columns have the declared types, no column that may not be null has one, and
    every check holds, exactly what pandera's polars backend would find; then pandera need not run. A batch
    that fails goes to pandera, which reports the failure cases.
    """

    exprs: tuple[pl.Expr, ...]
    dtypes: tuple[tuple[str, Any], ...]

    def passes(self, batch: pl.DataFrame) -> bool:
        """Whether pandera would find nothing wrong with ``batch``."""
        schema = batch.schema
        for name, dtype in self.dtypes:
            if name not in schema or (dtype is not None and not dtype.check(polars_engine.Engine.dtype(schema[name]))):
                return False
        if not self.exprs:
            return True
        try:
            return all(value is True for value in batch.select(list(self.exprs)).row(0))
        except pl.exceptions.PolarsError:  # pandera reports a check that cannot run as a failure: let it
            return False


def fused_checks(schema: pa.DataFrameSchema) -> FusedChecks | None:
    """The fused checks of a batch schema, or None when it uses something only pandera evaluates.

    Only column-level built-in checks, ``nullable`` and ``dtype`` are modelled; coercion, parsers, regex
    columns, ``unique``, dataframe-level checks and custom or element-wise checks leave every batch to pandera.
    """
    if schema.checks or schema.coerce or schema.unique or getattr(schema, "parsers", None):
        return None
    if schema.add_missing_columns or schema.drop_invalid_rows:
        return None
    exprs: list[pl.Expr] = []
    dtypes: list[tuple[str, Any]] = []
    for name, column in schema.columns.items():
        if column.regex or column.coerce or column.unique or getattr(column, "parsers", None):
            return None
        if column.drop_invalid_rows or getattr(column, "default", None) is not None:
            return None
        if column.dtype is None:
            return None
        dtypes.append((name, column.dtype))
        if not column.nullable:
            # pandera counts NaN as null in a float column ("nulls and nan values as effectively equivalent").
            present = pl.col(name).is_not_null()
            if column.dtype.type.is_float():
                present = present & pl.col(name).is_not_nan()
            exprs.append(present.all())
        for check in column.checks:
            expr = _expression(check, name)
            if expr is None:
                return None
            exprs.append(expr)
    return FusedChecks(tuple(e.alias(f"_check_{i}") for i, e in enumerate(exprs)), tuple(dtypes))


__all__ = ["FusedChecks", "fused_checks"]
