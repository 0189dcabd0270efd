"""Table schemas: pandera's polars schemas, built in or loaded from pandera's own YAML format."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaDefinitionError

from steps.data.yaml_input import load_yaml_file
from steps.runtime.errors import DataError

BUILTIN_PREFIX = "builtin:"
CURRENCIES = ["CHF", "EUR", "GBP", "JPY", "USD"]
_TRUE = ["true", "t", "yes", "1"]
_FALSE = ["false", "f", "no", "0"]


class Prices(pa.DataFrameModel):
    """Daily price of one product in one currency (``builtin:prices``)."""

    product_id: str = pa.Field(str_matches=r"^P\d{5}$", description="product code, P and 5 digits")
    date: pl.Date = pa.Field(ge=dt.date(2000, 1, 1), le=dt.date(2100, 12, 31))
    price: float = pa.Field(ge=0, le=1_000_000, description="unit price in the currency")
    currency: str = pa.Field(isin=CURRENCIES, description="ISO 4217 code")

    class Config:
        """Reject columns the model does not declare."""

        strict = True


BUILTIN_SCHEMAS: dict[str, type[pa.DataFrameModel]] = {"prices": Prices}


def builtin_schema(name: str) -> pa.DataFrameSchema:
    """Return the built-in schema called ``name``.

    Args:
        name: Key of ``BUILTIN_SCHEMAS`` (the part after ``builtin:``).

    Raises:
        DataError: No built-in schema has that name.
    """
    model = BUILTIN_SCHEMAS.get(name)
    if model is None:
        known = ", ".join(f"{BUILTIN_PREFIX}{n}" for n in sorted(BUILTIN_SCHEMAS))
        raise DataError(f"unknown built-in schema '{BUILTIN_PREFIX}{name}'; use one of: {known}")
    return model.to_schema()


def load_schema_file(path: Path, shown_as: str | None = None) -> pa.DataFrameSchema:
    """Load a pandera polars schema from a YAML file written by ``DataFrameSchema.to_yaml``.

    Args:
        path: The YAML file.
        shown_as: How error messages name the file (defaults to ``path``).

    Raises:
        DataError: The file is missing, is not YAML, is a pandas schema, or pandera rejects it.
    """
    name = shown_as or str(path)
    if not path.is_file():
        raise DataError(f"schema file {name} not found; create it with pandera's DataFrameSchema.to_yaml")
    document = load_yaml_file(path, f"schema file {name}")
    if not isinstance(document, dict) or not isinstance(document.get("columns"), dict):
        raise DataError(f"schema file {name} has no 'columns' mapping; write it with DataFrameSchema.to_yaml")
    kind = document.get("schema_type", "polars_dataframe")
    if kind != "polars_dataframe":
        raise DataError(
            f"schema file {name} is a '{kind}' schema; export it from pandera.polars (schema_type: polars_dataframe)"
        )
    try:
        return pa.DataFrameSchema.from_yaml(path)
    except (SchemaDefinitionError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise DataError(f"schema file {name} is not a valid pandera polars schema: {exc}", repr(exc)) from exc


def resolve_schema(ref: str, base_dir: Path) -> pa.DataFrameSchema:
    """Turn a schema reference from ``release.yaml`` into a pandera polars schema.

    Args:
        ref: ``builtin:<name>`` or a path relative to ``base_dir``.
        base_dir: The release-data directory.

    Raises:
        DataError: The reference does not name a usable schema.
    """
    if ref.startswith(BUILTIN_PREFIX):
        return builtin_schema(ref.removeprefix(BUILTIN_PREFIX))
    return load_schema_file(base_dir / ref, shown_as=ref)


@dataclass(frozen=True)
class StreamingSchema:
    """A schema prepared for batch-by-batch validation.

    Attributes:
        schema: The pandera schema each batch is validated with: no uniqueness, no strictness (the
            validator checks columns once per file), primary-key columns non-nullable.
        dtypes: Declared polars type of every column (``None`` when the schema leaves it open).
        required: Columns that must be present.
        strict: Whether columns the schema does not declare are an error.
        ordered: Whether the file's columns must follow the schema's order.
        unique_keys: Column groups whose values must be unique over the whole file, primary key first.
    """

    schema: pa.DataFrameSchema
    dtypes: dict[str, pl.DataType | None]
    required: tuple[str, ...]
    strict: bool
    ordered: bool
    unique_keys: tuple[tuple[str, ...], ...]


def _polars_dtype(column: pa.Column) -> pl.DataType | None:
    if column.dtype is None:
        return None
    dtype = column.dtype.type
    converted = dtype() if isinstance(dtype, type) else dtype
    return cast(pl.DataType, converted)  # pandera's polars engine types wrap a polars DataType


def prepare_schema(schema: pa.DataFrameSchema, primary_key: list[str]) -> StreamingSchema:
    """Split ``schema`` into what pandera checks per batch and what the validator checks per file.

    Args:
        schema: A pandera polars schema.
        primary_key: Columns whose combined values must be unique and present in every row.

    Raises:
        DataError: The primary key names undeclared columns, or the schema uses regex column names.
    """
    regex = [name for name, column in schema.columns.items() if column.regex]
    if regex:
        raise DataError(f"schema uses regex column names {regex}; declare each column by its exact name")
    missing = [name for name in primary_key if name not in schema.columns]
    if not primary_key or missing:
        raise DataError(
            f"primary key {primary_key} names columns the schema does not declare: {missing}; "
            "fix primaryKey or add the columns to the schema"
        )
    keys: list[tuple[str, ...]] = [tuple(primary_key)]
    table_unique = schema.unique
    if table_unique:
        keys.append(tuple([table_unique] if isinstance(table_unique, str) else table_unique))
    keys.extend((name,) for name, column in schema.columns.items() if column.unique)
    unique_keys = tuple(dict.fromkeys(keys))

    batch_schema = copy.deepcopy(schema)
    batch_schema.unique = None
    batch_schema.strict = False
    batch_schema.ordered = False
    batch_schema.drop_invalid_rows = False
    batch_schema.add_missing_columns = False
    for name, column in batch_schema.columns.items():
        column.unique = False
        column.drop_invalid_rows = False
        if name in primary_key:
            column.nullable = False
    return StreamingSchema(
        schema=batch_schema,
        dtypes={name: _polars_dtype(column) for name, column in schema.columns.items()},
        required=tuple(name for name, column in schema.columns.items() if column.required),
        strict=bool(schema.strict),
        ordered=bool(schema.ordered),
        unique_keys=unique_keys,
    )


def text_to_dtype(name: str, dtype: pl.DataType | None) -> pl.Expr:
    """Build the expression that converts CSV text in column ``name`` to ``dtype``.

    Values that do not convert become null; the caller compares with the text to find them.

    Args:
        name: Column name.
        dtype: Target polars type (``None`` keeps the text).

    Raises:
        DataError: ``dtype`` is a nested type a CSV cell cannot hold.
    """
    text = pl.col(name)
    if dtype is None or dtype == pl.String:
        return text
    if dtype == pl.Boolean:
        lowered = text.str.strip_chars().str.to_lowercase()
        return pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)
    if dtype == pl.Date:
        return text.str.to_date("%Y-%m-%d", strict=False)
    if isinstance(dtype, pl.Datetime):
        return text.str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone, strict=False)
    if dtype == pl.Time:
        return text.str.to_time(strict=False)
    if dtype.is_nested():
        raise DataError(f"column {name} has type {dtype}, which a CSV cell cannot hold; use Parquet")
    return text.cast(dtype, strict=False)


__all__ = [
    "BUILTIN_PREFIX",
    "BUILTIN_SCHEMAS",
    "Prices",
    "StreamingSchema",
    "builtin_schema",
    "load_schema_file",
    "prepare_schema",
    "resolve_schema",
    "text_to_dtype",
]
