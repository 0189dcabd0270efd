"""build_release: typed zstd Parquet, statistics, checksums, manifest, determinism; then publish and register."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pandera.polars as pa
import polars as pl
import pyarrow as arrow
import pyarrow.parquet as pq
import pytest

from steps.data import etl
from steps.data.etl import build_release
from steps.runtime.errors import ConfigError, DataError
from steps.store.local import LocalStore
from steps.store.publish import publish_release
from steps.store.registry import StoreRegistry, register_outputs

SHA = "fedcba9876543210fedcba9876543210fedcba98"
CREATED = "2026-03-01T12:00:00+00:00"
ITEMS_CSV = """id,name,price,day,active
3,Cherry,2.5,2024-03-01,true
1,"Apple, red",,2024-01-15,false
2,Banana,0.25,2023-12-31,TRUE
4,Date,10,2024-02-29,no
"""


def items_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "id": pa.Column(pl.Int64, unique=True),
            "name": pa.Column(pl.String),
            "price": pa.Column(pl.Float64, nullable=True),
            "day": pa.Column(pl.Date),
            "active": pa.Column(pl.Boolean),
        },
        strict=True,
        name="items",
    )


def release_data(root: Path, *, items_csv: str = ITEMS_CSV, price_groups: int = 3) -> Path:
    (root / "schemas").mkdir(parents=True)
    (root / "schemas/items.yaml").write_text(items_schema().to_yaml())
    (root / "items.csv").write_text(items_csv)
    prices = pl.DataFrame(
        {
            "product_id": [f"P{i:05d}" for i in range(1, 31)],
            "date": [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(30)],
            "price": [float(i) / 4 for i in range(30)],
            "currency": ["EUR", "USD", "CHF"] * 10,
        }
    )
    pq.write_table(prices.to_arrow(), root / "prices.parquet", row_group_size=30 // price_groups)
    (root / "release.yaml").write_text(
        "name: acme-test\nversion: 2.0.1\ndescription: test release\ntables:\n"
        "  - {name: items, file: items.csv, schema: schemas/items.yaml, primaryKey: [id]}\n"
        "  - {name: prices, file: prices.parquet, schema: 'builtin:prices', primaryKey: [product_id, date]}\n"
    )
    return root


def build(data: Path, out: Path, **overrides) -> dict:
    args = {
        "repo": "acme/data",
        "sha": SHA,
        "event": "pull_request",
        "ref": "refs/pull/42/merge",
        "pr_number": "42",
        "workflow_name": "release-data-prep-x7k2p",
        "created_at": CREATED,
        **overrides,
    }
    return build_release(str(data), str(out), **args)


def test_tables_become_typed_zstd_parquet_with_the_schema_types(tmp_path):
    build(release_data(tmp_path / "data"), tmp_path / "out")

    items = pq.ParquetFile(tmp_path / "out/tables/items.parquet")
    assert items.schema_arrow.types == [
        arrow.int64(),
        arrow.large_string(),
        arrow.float64(),
        arrow.date32(),
        arrow.bool_(),
    ]
    assert items.schema_arrow.names == ["id", "name", "price", "day", "active"]
    chunks = [items.metadata.row_group(g).column(c) for g in range(items.num_row_groups) for c in range(5)]
    assert {c.compression for c in chunks} == {"ZSTD"}
    assert pl.read_parquet(tmp_path / "out/tables/items.parquet").to_dicts()[1] == {
        "id": 1,
        "name": "Apple, red",
        "price": None,
        "day": dt.date(2024, 1, 15),
        "active": False,
    }
    prices = pq.ParquetFile(tmp_path / "out/tables/prices.parquet")
    assert prices.num_row_groups == 1 and prices.metadata.num_rows == 30
    assert prices.schema_arrow.field("date").type == arrow.date32()


def test_statistics_per_column(tmp_path):
    build(release_data(tmp_path / "data"), tmp_path / "out")
    stats = json.loads((tmp_path / "out/stats/items.json").read_text())
    assert stats["rows"] == 4
    assert stats["columns"] == [
        {"name": "id", "type": "Int64", "nulls": 0, "min": 1, "max": 4},
        {"name": "name", "type": "String", "nulls": 0, "min": "Apple, red", "max": "Date"},
        {"name": "price", "type": "Float64", "nulls": 1, "min": 0.25, "max": 10.0},
        {"name": "day", "type": "Date", "nulls": 0, "min": "2023-12-31", "max": "2024-03-01"},
        {"name": "active", "type": "Boolean", "nulls": 0, "min": False, "max": True},
    ]
    prices = json.loads((tmp_path / "out/stats/prices.json").read_text())
    by_name = {c["name"]: c for c in prices["columns"]}
    assert prices["rows"] == 30
    assert (by_name["date"]["min"], by_name["date"]["max"]) == ("2024-01-01", "2024-01-30")
    assert (by_name["price"]["min"], by_name["price"]["max"]) == (0.0, 7.25)


def test_statistics_are_the_same_when_read_in_many_small_batches(tmp_path, monkeypatch):
    rows = "".join(
        f"{i},item {i:04d},{i / 8 if i % 7 else ''},2024-01-{i % 28 + 1:02d},{i % 2 == 0}\n" for i in range(1, 400)
    )
    data = release_data(tmp_path / "data", items_csv="id,name,price,day,active\n" + rows)
    build(data, tmp_path / "whole")
    monkeypatch.setattr(etl, "CSV_BLOCK_BYTES", 1024)
    monkeypatch.setattr(etl, "ROW_GROUP_ROWS", 50)
    build(data, tmp_path / "batched")

    groups = pq.ParquetFile(tmp_path / "batched/tables/items.parquet").metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [50] * 7 + [49]
    assert pq.ParquetFile(tmp_path / "whole/tables/items.parquet").num_row_groups == 1
    whole = json.loads((tmp_path / "whole/stats/items.json").read_text())
    assert json.loads((tmp_path / "batched/stats/items.json").read_text()) == whole
    assert whole["rows"] == 399 and whole["columns"][2]["nulls"] == len([i for i in range(1, 400) if i % 7 == 0])
    assert whole["columns"][2]["max"] == max(i for i in range(1, 400) if i % 7) / 8
    assert pl.read_parquet(tmp_path / "batched/tables/items.parquet").equals(
        pl.read_parquet(tmp_path / "whole/tables/items.parquet")
    )


def test_manifest_lists_every_artifact_with_size_and_sha256(tmp_path):
    result = build(release_data(tmp_path / "data"), tmp_path / "out")
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert [a["path"] for a in manifest["artifacts"]] == files
    for artifact in manifest["artifacts"]:
        data = (out / artifact["path"]).read_bytes()
        assert (artifact["size"], artifact["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert {k: manifest[k] for k in ("repo", "sha", "event", "ref", "pr_number", "workflow_name", "created_at")} == {
        "repo": "acme/data",
        "sha": SHA,
        "event": "pull_request",
        "ref": "refs/pull/42/merge",
        "pr_number": 42,
        "workflow_name": "release-data-prep-x7k2p",
        "created_at": CREATED,
    }
    assert manifest["release"] == {"name": "acme-test", "version": "2.0.1", "description": "test release"}
    items = manifest["tables"][0]
    assert items["name"] == "items" and items["rows"] == 4 and items["primary_key"] == ["id"]
    assert items["sha256"] == hashlib.sha256((out / "tables/items.parquet").read_bytes()).hexdigest()
    schema_text = (out / items["schema_file"]).read_bytes()
    assert items["schema_fingerprint"] == hashlib.sha256(schema_text).hexdigest()
    assert pa.DataFrameSchema.from_yaml(schema_text.decode()).columns.keys() == items_schema().columns.keys()
    assert result["tables"] == [
        {"name": "items", "rows": 4, "file": "tables/items.parquet", "sha256": items["sha256"]},
        {"name": "prices", "rows": 30, "file": "tables/prices.parquet", "sha256": manifest["tables"][1]["sha256"]},
    ]


def test_output_is_deterministic(tmp_path):
    data = release_data(tmp_path / "data")
    build(data, tmp_path / "a")
    build(data, tmp_path / "b")
    build(data, tmp_path / "c", created_at="2027-01-01T00:00:00+00:00")

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert files(tmp_path / "a") == files(tmp_path / "b")
    differing = {k for k, v in files(tmp_path / "a").items() if files(tmp_path / "c")[k] != v}
    assert differing == {"manifest.json"}


def test_changed_schema_changes_the_fingerprint(tmp_path):
    data = release_data(tmp_path / "data")
    build(data, tmp_path / "a")
    schema = items_schema()
    schema.columns["name"] = pa.Column(pl.String, pa.Check.str_length(1, 20), name="name")
    (data / "schemas/items.yaml").write_text(schema.to_yaml())
    build(data, tmp_path / "b")
    a, b = (json.loads((tmp_path / d / "manifest.json").read_text())["tables"][0] for d in "ab")
    assert a["schema_fingerprint"] != b["schema_fingerprint"] and a["sha256"] == b["sha256"]


def test_value_that_does_not_convert_is_a_data_error(tmp_path):
    data = release_data(tmp_path / "data", items_csv=ITEMS_CSV + "5,Elder,cheap,2024-01-01,true\n")
    with pytest.raises(DataError, match="items: row 5 column price: 'cheap' is not Float64"):
        build(data, tmp_path / "out")


def test_header_only_table_gives_an_empty_typed_parquet(tmp_path):
    build(release_data(tmp_path / "data", items_csv="id,name,price,day,active\n"), tmp_path / "out")
    items = pq.ParquetFile(tmp_path / "out/tables/items.parquet")
    assert items.metadata.num_rows == 0 and items.schema_arrow.field("day").type == arrow.date32()
    stats = json.loads((tmp_path / "out/stats/items.json").read_text())
    assert stats["rows"] == 0 and stats["columns"][0] == {
        "name": "id",
        "type": "Int64",
        "nulls": 0,
        "min": None,
        "max": None,
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"repo": "acme"}, "OWNER/NAME"),
        ({"sha": "abc123"}, "full lowercase commit sha"),
        ({"pr_number": "x"}, "pr_number"),
    ],
)
def test_malformed_run_parameters(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        build(release_data(tmp_path / "data"), tmp_path / "out", **override)


def test_push_run_has_no_pr_number(tmp_path):
    build(release_data(tmp_path / "data"), tmp_path / "out", event="push", ref="refs/heads/main", pr_number="")
    assert json.loads((tmp_path / "out/manifest.json").read_text())["pr_number"] is None


def test_built_release_publishes_and_registers(tmp_path):
    out = tmp_path / "out"
    build(release_data(tmp_path / "data"), out)
    store = LocalStore(tmp_path / "store")

    published = publish_release(out, store, "releases")
    registered = register_outputs(str(out), str(tmp_path / "store"), key_prefix="releases", run_id="wf-uid")

    manifest = json.loads((out / "manifest.json").read_text())
    assert published["uploaded"] == len(manifest["artifacts"])
    assert (tmp_path / "store/releases/acme/data" / SHA / "tables/items.parquet").read_bytes() == (
        out / "tables/items.parquet"
    ).read_bytes()
    assert (registered["target"], registered["name"]) == ("pulls", "42")
    latest = StoreRegistry(store, "releases").latest("acme/data", "pulls", "42")
    assert latest["manifest_key"] == published["manifest_key"] and latest["version"] == "2.0.1"
