"""The fused fast path agrees with pandera: a batch passes it exactly when pandera finds nothing wrong."""

import datetime as dt
import math

import pandera.polars as pa
import polars as pl
import pytest
from pandera.errors import SchemaErrors

from steps.data.fused import fused_checks

SCHEMA = pa.DataFrameSchema(
    {
        "order_id": pa.Column(pl.String, pa.Check.str_matches(r"^O\d{3}$")),
        "sku": pa.Column(pl.String, pa.Check.str_length(3, 3), nullable=True),
        "quantity": pa.Column(pl.Int64, pa.Check.in_range(1, 10)),
        "price": pa.Column(pl.Float64, [pa.Check.ge(0), pa.Check.lt(100)]),
        "discount": pa.Column(pl.Float64, pa.Check.in_range(0, 1), nullable=True),
        "category": pa.Column(pl.String, pa.Check.isin(["a", "b"])),
        "day": pa.Column(pl.Date, pa.Check.ge(dt.date(2020, 1, 1))),
        "note": pa.Column(pl.String, pa.Check.str_contains("x", ignore_na=False), nullable=True),
    }
)
GOOD = {
    "order_id": ["O001", "O002"],
    "sku": ["abc", None],
    "quantity": [1, 10],
    "price": [0.0, 99.5],
    "discount": [None, 0.5],
    "category": ["a", "b"],
    "day": [dt.date(2020, 1, 1), dt.date(2026, 12, 4)],
    "note": ["x1", "yx"],
}


def pandera_passes(batch: pl.DataFrame) -> bool:
    try:
        SCHEMA.validate(batch, lazy=True)
    except SchemaErrors:
        return False
    return True


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"order_id": ["O001", "X002"]},
        {"sku": ["abcd", None]},
        {"quantity": [0, 10]},
        {"price": [-1.0, 5.0]},
        {"price": [1.0, math.nan]},  # NaN is null for pandera in a non-nullable float column
        {"price": [1.0, None]},
        {"discount": [math.nan, 0.5]},  # nullable: NaN passes the column; in_range on NaN is pandera's call
        {"category": ["a", None]},
        {"day": [dt.date(2019, 12, 31), dt.date(2026, 1, 1)]},
        {"note": [None, "x"]},  # ignore_na=False: a null outcome fails the check
        {"quantity": [1.0, 2.0]},  # wrong dtype
    ],
)
def test_fused_passes_exactly_when_pandera_finds_nothing(change):
    fused = fused_checks(SCHEMA)
    assert fused is not None
    batch = pl.DataFrame({**GOOD, **change})
    assert fused.passes(batch) == pandera_passes(batch)


def test_schemas_the_fast_path_does_not_model_are_left_to_pandera():
    custom = pa.DataFrameSchema(
        {"a": pa.Column(pl.Int64, pa.Check(lambda data: data.lazyframe.select(pl.col("a") > 0)))}
    )
    assert fused_checks(custom) is not None  # a custom check written as one select is modelled like a built-in
    element_wise = pa.DataFrameSchema({"a": pa.Column(pl.Int64, pa.Check(lambda v: v > 0, element_wise=True))})
    collecting = pa.DataFrameSchema({"a": pa.Column(pl.Int64, pa.Check.unique_values_eq([1, 2]))})
    coerced = pa.DataFrameSchema({"a": pa.Column(pl.Int64, coerce=True)})
    frame_level = pa.DataFrameSchema(
        {"a": pa.Column(pl.Int64)}, checks=[pa.Check(lambda d: d.lazyframe.select(pl.lit(True)))]
    )
    for schema in (element_wise, collecting, coerced, frame_level):
        assert fused_checks(schema) is None
