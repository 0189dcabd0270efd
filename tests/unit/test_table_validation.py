"""Table validation: the examples, each kind of bad input, duplicates across batches, the sample cap."""

import datetime as dt
import json
from pathlib import Path

import pandera.polars as pa
import polars as pl
import pytest

from steps.data import keys
from steps.data.failures import check_label
from steps.data.schemas import Prices
from steps.data.validation import validate_table, validate_table_file
from steps.runtime.errors import SUMMARY_LIMIT, DataError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = ["product_id", "date"]
HEADER = "product_id,date,price,currency\n"


def prices(count: int, start: int = 1) -> pl.DataFrame:
    schema = {"product_id": pl.String, "date": pl.Date, "price": pl.Float64, "currency": pl.String}
    return pl.DataFrame(
        {
            "product_id": [f"P{n:05d}" for n in range(start, start + count)],
            "date": [dt.date(2024, 6, 3)] * count,
            "price": [1.5] * count,
            "currency": ["EUR"] * count,
        },
        schema=schema,
    )


def csv_file(tmp_path: Path, body: str | bytes, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    data = body if isinstance(body, bytes) else body.encode()
    path.write_bytes(HEADER.encode() + data)
    return path


def by_check(report) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for failure in report.failures:
        grouped.setdefault(failure["check"], []).append(failure)
    return grouped


def test_examples_pass_and_write_reports(tmp_path: Path):
    for table, rows in [("products", 600), ("prices", 3000)]:
        result = validate_table(str(EXAMPLES / "release-data"), table, str(tmp_path))
        assert result["valid"] and result["rows"] == rows and result["failure_count"] == 0
        report = json.loads((tmp_path / f"{table}.validation.json").read_text())
        assert report["valid"] is True and report["failures"] == [] and report["rows"] == rows
        assert report["summary"] == f"{table}: {rows:,} rows valid"


def test_bad_example_raises_after_writing_the_report(tmp_path: Path):
    with pytest.raises(DataError) as caught:
        validate_table(str(EXAMPLES / "release-data-bad"), "products", str(tmp_path))
    error = caught.value
    assert error.summary.startswith("products: 5 failures in 599 rows (")
    assert len(error.summary) <= SUMMARY_LIMIT
    report = json.loads((tmp_path / "products.validation.json").read_text())
    assert report["summary"] == error.summary
    assert report["schema"] == "schemas/products.yaml" and report["file"] == "products.csv"
    assert [(f["row"], f["check"]) for f in report["failures"]] == [
        (10, "pack_size in [1, 10000]"),
        (20, r"ean13 matches ^\d{13}$"),
        (31, "unique product_id"),
        (40, "rows have 9 fields"),
        (50, "name valid UTF-8"),
    ]
    assert report["failures"][2]["value"] == "P00031 (first in row 30)"
    assert "row 40: rows have 9 fields" in error.detail


def test_bad_parquet_example_finds_a_duplicate_key_in_another_row_group(tmp_path: Path):
    with pytest.raises(DataError) as caught:
        validate_table(str(EXAMPLES / "release-data-bad"), "prices", str(tmp_path))
    report = json.loads((tmp_path / "prices.validation.json").read_text())
    assert caught.value.summary == report["summary"]
    assert report["check_counts"] == {
        "price >= 0": 1,
        "currency in ['CHF', 'EUR', 'GBP', 'JPY', 'USD']": 1,
        "unique (product_id, date)": 1,
    }
    assert report["failures"][-1] == {
        "row": 2902,
        "column": "product_id, date",
        "check": "unique (product_id, date)",
        "value": "(P00002, 2024-06-03) (first in row 6)",
    }


def test_unknown_table_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="table 'orders' is not in .*; tables are: products, prices"):
        validate_table(str(EXAMPLES / "release-data"), "orders", str(tmp_path))


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_duplicates_are_found_across_batches(tmp_path: Path, suffix: str):
    frame = pl.concat([prices(50), prices(1, start=3), prices(40, start=51), prices(1, start=77)])
    path = tmp_path / f"prices.{suffix}"
    if suffix == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path, row_group_size=16)
    report = validate_table_file(path, "builtin:prices", KEY, batch_rows=7)
    assert not report.valid and report.rows == 92
    assert report.check_counts == {"unique (product_id, date)": 2}
    assert [(f["row"], f["value"]) for f in report.failures] == [
        (51, "(P00003, 2024-06-03) (first in row 3)"),
        (92, "(P00077, 2024-06-03) (first in row 78)"),
    ]


def test_single_column_unique_from_the_schema_is_checked_over_the_file(tmp_path: Path):
    schema = pa.DataFrameSchema({"id": pa.Column(pl.Int64), "code": pa.Column(pl.String, unique=True)})
    path = tmp_path / "codes.parquet"
    pl.DataFrame({"id": range(30), "code": [f"c{n % 29}" for n in range(30)]}).write_parquet(path, row_group_size=10)
    report = validate_table_file(path, schema, ["id"], batch_rows=4)
    assert report.check_counts == {"unique code": 1}
    assert report.failures == [{"row": 30, "column": "code", "check": "unique code", "value": "c0 (first in row 1)"}]


def test_many_duplicates_are_counted_by_hash_beyond_the_confirm_limit(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(keys, "CONFIRM_LIMIT", 10)
    path = tmp_path / "prices.parquet"
    pl.concat([prices(20), prices(20)]).write_parquet(path)
    report = validate_table_file(path, Prices, KEY, sample_cap=5)
    assert report.check_counts == {"unique (product_id, date)": 20}
    assert [f["row"] for f in report.failures] == [21, 22, 23, 24, 25]
    assert report.failures[0]["value"] == "(P00001, 2024-06-03) (first in row 1)"
    assert report.notes == ["20 rows repeat a 64-bit hash of (product_id, date); repeats counted by hash"]


def test_sample_is_capped_and_keeps_every_failing_check(tmp_path: Path):
    frame = prices(500).with_columns(
        price=pl.when(pl.int_range(pl.len()) < 300).then(-1.0).otherwise(pl.col("price")),
        currency=pl.when(pl.int_range(pl.len()) == 450).then(pl.lit("XXX")).otherwise(pl.col("currency")),
    )
    path = tmp_path / "prices.parquet"
    frame.write_parquet(path, row_group_size=64)
    report = validate_table_file(path, "builtin:prices", KEY, batch_rows=50, sample_cap=10)
    assert report.failure_count == 301
    assert report.check_counts == {"price >= 0": 300, "currency in ['CHF', 'EUR', 'GBP', 'JPY', 'USD']": 1}
    assert len(report.failures) == 10
    assert {f["check"] for f in report.failures} == set(report.check_counts)
    assert report.summary == (
        "prices: 301 failures in 500 rows (price >= 0: 300, currency in ['CHF', 'EUR', 'GBP', 'JPY', 'USD']: 1)"
    )


def test_ragged_rows_are_reported_and_later_rows_keep_their_numbers(tmp_path: Path):
    body = (
        "P00001,2024-06-03,1.0,EUR\n"
        "P00002,2024-06-03,1.0\n"
        "P00003,2024-06-03,1.0,EUR,extra\n"
        "P00004,2024-06-03,-2.0,EUR\n"
        'P00005,2024-06-03,"1.0\n2.0",EUR,x\n'
        "P00006,2024-06-03,-6.0,EUR\n"
    )
    report = validate_table_file(csv_file(tmp_path, body), "builtin:prices", KEY, batch_rows=2)
    assert report.rows == 3
    assert [(f["row"], f["check"], f["value"]) for f in report.failures] == [
        (2, "rows have 4 fields", "3 fields: P00002,2024-06-03,1.0"),
        (3, "rows have 4 fields", "5 fields: P00003,2024-06-03,1.0,EUR,extra"),
        (4, "price >= 0", "-2.0"),
        (5, "rows have 4 fields", '5 fields: P00005,2024-06-03,"1.0 2.0",EUR,x'),
        (6, "price >= 0", "-6.0"),
    ]
    assert report.summary == "prices: 5 failures in 3 rows (rows have 4 fields: 3, price >= 0: 2)"
    assert report.notes == [
        "quoted values span lines after data row 5: from there a row's file line is not row + 1, "
        "and row numbers count records"
    ]


def test_bytes_that_are_not_utf8_are_reported_per_cell(tmp_path: Path):
    body = b"P00001,2024-06-03,1.0,EUR\nP00002,2024-06-03,1.0,\xe9UR\nP00003,2024-06-03,1.0,EUR\n"
    report = validate_table_file(csv_file(tmp_path, body), "builtin:prices", KEY)
    assert report.check_counts == {"currency valid UTF-8": 1}
    assert report.failures == [{"row": 2, "column": "currency", "check": "currency valid UTF-8", "value": r"\xe9UR"}]


def test_header_that_is_not_utf8_makes_the_file_unreadable(tmp_path: Path):
    path = tmp_path / "prices.csv"
    path.write_bytes(b"product_id,d\xe4te,price,currency\n")
    report = validate_table_file(path, "builtin:prices", KEY)
    assert (
        report.summary
        == "prices: cannot read prices.csv: header (line 1) is not UTF-8 at byte offset 12; save the file as UTF-8"
    )


def test_text_of_the_wrong_type_is_reported_once_per_cell(tmp_path: Path):
    body = "P00001,2024-06-03,abc,EUR\nP00002,03/06/2024,1.0,EUR\nP00003,2024-06-03,,EUR\n"
    report = validate_table_file(csv_file(tmp_path, body), "builtin:prices", KEY)
    assert [(f["row"], f["check"], f["value"]) for f in report.failures] == [
        (1, "price type Float64", "abc"),
        (2, "date type Date", "03/06/2024"),
        (3, "price not null", None),
    ]
    assert report.failure_count == 3


def test_parquet_column_of_the_wrong_type_is_reported_once(tmp_path: Path):
    path = tmp_path / "prices.parquet"
    prices(30).with_columns(pl.col("price").cast(pl.Int64)).write_parquet(path, row_group_size=10)
    report = validate_table_file(path, "builtin:prices", KEY)
    assert report.check_counts == {"price type Float64": 1}
    assert report.failures == [{"row": None, "column": "price", "check": "price type Float64", "value": "found Int64"}]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_empty_table(tmp_path: Path, suffix: str):
    path = tmp_path / f"prices.{suffix}"
    if suffix == "csv":
        path.write_text(HEADER)
    else:
        prices(0).write_parquet(path)
    report = validate_table_file(path, "builtin:prices", KEY)
    assert not report.valid and report.rows == 0
    assert report.summary == f"prices: prices.{suffix} has no data rows; add rows or remove the table"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "file is empty; a CSV table needs a header line"),
        (b"product_id,price,price\n", "header (line 1) repeats column names ['price']"),
    ],
)
def test_csv_that_cannot_be_read(tmp_path: Path, content: bytes, reason: str):
    path = tmp_path / "prices.csv"
    path.write_bytes(content)
    report = validate_table_file(path, "builtin:prices", KEY)
    assert report.summary == f"prices: cannot read prices.csv: {reason}"
    assert report.failures == [{"row": None, "column": None, "check": "file readable", "value": reason}]


def test_parquet_that_is_not_parquet(tmp_path: Path):
    path = tmp_path / "prices.parquet"
    path.write_bytes(b"just text")
    report = validate_table_file(path, "builtin:prices", KEY)
    assert report.summary.startswith("prices: cannot read prices.parquet: not a readable Parquet file (")


def test_missing_and_undeclared_columns(tmp_path: Path):
    path = tmp_path / "prices.csv"
    path.write_text("product_id,date,currency,colour\nP00001,2024-06-03,EUR,red\nP00001,2024-06-03,USD,blue\n")
    report = validate_table_file(path, "builtin:prices", KEY)
    assert report.check_counts == {
        "column price present": 1,
        "column colour declared": 1,
        "unique (product_id, date)": 1,
    }
    assert report.rows == 2


def test_null_keys_are_reported_as_null_not_as_duplicates(tmp_path: Path):
    body = ",2024-06-03,1.0,EUR\n,2024-06-03,1.0,EUR\nP00001,2024-06-03,1.0,EUR\n"
    report = validate_table_file(csv_file(tmp_path, body), Prices, KEY)
    assert report.check_counts == {"product_id not null": 2}


def test_yaml_schema_path_with_booleans_and_nullable_values(tmp_path: Path):
    schema = pa.DataFrameSchema(
        {
            "id": pa.Column(pl.Int64, pa.Check.ge(1)),
            "active": pa.Column(pl.Boolean),
            "note": pa.Column(pl.String, pa.Check.str_length(1, 5), nullable=True),
        },
        strict=True,
    )
    schema.to_yaml(tmp_path / "schema.yaml")
    path = tmp_path / "flags.csv"
    path.write_text("id,active,note\n1,true,\n2,FALSE,ok\n3,maybe,toolong\n")
    report = validate_table_file(path, tmp_path / "schema.yaml", ["id"], table="flags")
    assert report.table == "flags"
    assert [(f["row"], f["check"], f["value"]) for f in report.failures] == [
        (3, "active type Boolean", "maybe"),
        (3, "note str_length(1, 5)", "toolong"),
    ]


def test_primary_key_outside_the_schema_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match=r"primary key \['sku'\] names columns the schema does not declare"):
        validate_table_file(csv_file(tmp_path, ""), "builtin:prices", ["sku"])


def test_summary_fits_a_commit_status_when_many_checks_fail(tmp_path: Path):
    columns = {f"column_with_a_long_name_{n}": pa.Column(pl.Int64, pa.Check.ge(10)) for n in range(8)}
    path = tmp_path / "wide.parquet"
    pl.DataFrame({name: [1, 2] for name in columns} | {"id": [1, 2]}).write_parquet(path)
    report = validate_table_file(path, pa.DataFrameSchema(columns | {"id": pa.Column(pl.Int64)}), ["id"])
    assert report.failure_count == 16
    assert len(report.summary) <= SUMMARY_LIMIT
    assert report.summary.startswith("wide: 16 failures in 2 rows (column_with_a_long_name_0 >= 10: 2")
    assert report.summary.endswith("more)")


@pytest.mark.parametrize(
    ("column", "check", "label"),
    [
        ("price", "greater_than_or_equal_to(0)", "price >= 0"),
        ("qty", "in_range(1, 1000)", "qty in [1, 1000]"),
        ("sku", "str_matches('^P\\d{5}$')", "sku matches ^P\\d{5}$"),
        ("price", "dtype('Float64')", "price type Float64"),
        ("price", "not_nullable", "price not null"),
        (None, "my_custom_check", "table my_custom_check"),
    ],
)
def test_check_labels(column, check, label):
    assert check_label(column, check) == label
