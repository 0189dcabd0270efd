"""ETL of a release: each table to typed, zstd-compressed Parquet, with statistics, checksums and a manifest."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import polars as pl
import pyarrow as arrow
import pyarrow.csv as arrow_csv
import pyarrow.parquet as pq

from steps.data.metadata import RELEASE_FILE, TableSpec, load_release
from steps.data.schemas import prepare_schema, resolve_schema, text_to_dtype
from steps.runtime.errors import ConfigError, DataError
from steps.store.checksums import sha256_and_crc32
from steps.store.publish import MANIFEST_NAME

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
# pyarrow's streaming CSV reader parses ahead; 8 MiB blocks kept a 165 MB, 3 M-row CSV at 510 MB peak RSS
# (32 MiB: 710 MB). Batches are gathered into row groups of ROW_GROUP_ROWS rows.
CSV_BLOCK_BYTES = 8 * 1024 * 1024
ROW_GROUP_ROWS = 1_000_000
_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass
class ColumnStats:
    """Running statistics of one column."""

    name: str
    dtype: str
    nulls: int = 0
    min: Any = None
    max: Any = None
    ordered: bool = True

    def update(self, series: pl.Series) -> None:
        """Fold one batch of the column into the statistics."""
        self.nulls += series.null_count()
        if not self.ordered or series.null_count() == series.len():
            return
        low, high = series.min(), series.max()
        self.min = low if self.min is None or low < self.min else self.min
        self.max = high if self.max is None or high > self.max else self.max

    def to_dict(self) -> dict[str, Any]:
        """JSON form: name, type, nulls, min, max (dates and times as ISO 8601 text)."""
        return {
            "name": self.name,
            "type": self.dtype,
            "nulls": self.nulls,
            "min": _json_value(self.min),
            "max": _json_value(self.max),
        }


@dataclass
class TableStats:
    """Row count and per-column statistics of one table."""

    table: str
    rows: int = 0
    columns: list[ColumnStats] = field(default_factory=list)

    def update(self, frame: pl.DataFrame) -> None:
        """Fold one batch into the statistics."""
        if not self.columns:
            self.columns = [
                ColumnStats(name, str(dtype), ordered=not (dtype.is_nested() or dtype == pl.Binary))
                for name, dtype in frame.schema.items()
            ]
        self.rows += frame.height
        for stats in self.columns:
            stats.update(frame.get_column(stats.name))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"table": self.table, "rows": self.rows, "columns": [c.to_dict() for c in self.columns]}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _csv_columns(path: Path) -> list[str]:
    with path.open("rb") as fh:
        line = fh.readline().removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n")
    try:
        return next(csv.reader(io.StringIO(line.decode("utf-8"))), [])
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: header is not UTF-8; validate the table first") from exc


def _lost_values(text: pl.DataFrame, typed: pl.DataFrame, table: str, done: int) -> None:
    for name in typed.columns:
        if typed.schema[name] == pl.String:
            continue
        lost = text.get_column(name).is_not_null() & typed.get_column(name).is_null()
        if lost.any():
            row = int(lost.arg_true()[0]) + done + 1
            value = text.get_column(name).filter(lost)[0]
            raise DataError(
                f"{table}: row {row} column {name}: {value!r} is not {typed.schema[name]}; validate the table first",
                "build_release converts each column to its schema type; run validate_table to list every problem.",
            )


def _csv_frames(path: Path, dtypes: dict[str, pl.DataType | None], table: str) -> Iterator[pl.DataFrame]:
    columns = _csv_columns(path)
    reader = arrow_csv.open_csv(
        path,
        read_options=arrow_csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=arrow_csv.ConvertOptions(
            column_types={name: arrow.string() for name in columns},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    done = 0
    for batch in reader:
        text = _frame(batch)
        typed = text.select(text_to_dtype(name, dtypes.get(name)).alias(name) for name in text.columns)
        _lost_values(text, typed, table, done)
        done += text.height
        yield typed


def _frame(data: arrow.Table | arrow.RecordBatch) -> pl.DataFrame:
    # pl.from_arrow is typed DataFrame | Series; a Table or RecordBatch always converts to a DataFrame.
    return cast(pl.DataFrame, pl.from_arrow(data))


def _parquet_frames(path: Path, dtypes: dict[str, pl.DataType | None], table: str) -> Iterator[pl.DataFrame]:
    source = pq.ParquetFile(path)
    for index in range(source.num_row_groups):
        frame = _frame(source.read_row_group(index))
        casts = [
            pl.col(name).cast(dtype, strict=True)
            for name in frame.columns
            if (dtype := dtypes.get(name)) is not None and frame.schema[name] != dtype
        ]
        try:
            yield frame.with_columns(casts) if casts else frame
        except pl.exceptions.PolarsError as exc:
            raise DataError(f"{table}: row group {index} does not convert to the schema's types: {exc}") from exc


def _empty_frame(spec: TableSpec, path: Path, dtypes: dict[str, pl.DataType | None]) -> pl.DataFrame:
    if spec.format == "parquet":
        return _frame(pq.read_schema(path).empty_table())
    return pl.DataFrame(schema={name: dtypes.get(name) or pl.String for name in _csv_columns(path)})


def _write_full_row_groups(writer: pq.ParquetWriter, pending: list[arrow.Table]) -> list[arrow.Table]:
    """Write ``ROW_GROUP_ROWS``-row groups while enough rows are pending; return what is left."""
    rows = sum(t.num_rows for t in pending)
    if rows < ROW_GROUP_ROWS:
        return pending
    combined = arrow.concat_tables(pending)
    while combined.num_rows >= ROW_GROUP_ROWS:
        writer.write_table(combined.slice(0, ROW_GROUP_ROWS))
        combined = combined.slice(ROW_GROUP_ROWS)
    return [combined] if combined.num_rows else []


def write_table(spec: TableSpec, data_dir: Path, out_path: Path) -> TableStats:
    """Convert one table to typed, zstd-compressed Parquet, batch by batch, and return its statistics.

    Args:
        spec: The table's entry in ``release.yaml``.
        data_dir: The release-data directory.
        out_path: The Parquet file to write.

    Raises:
        DataError: A value does not convert to its column's schema type.
    """
    source = data_dir / spec.file
    dtypes = prepare_schema(resolve_schema(spec.schema_ref, data_dir), list(spec.primary_key)).dtypes
    frames = (
        _csv_frames(source, dtypes, spec.name) if spec.format == "csv" else _parquet_frames(source, dtypes, spec.name)
    )
    stats = TableStats(spec.name)
    writer: pq.ParquetWriter | None = None
    pending: list[arrow.Table] = []
    try:
        try:
            for frame in frames:
                table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
                if writer is None:
                    writer = pq.ParquetWriter(
                        out_path, table.schema, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL
                    )
                pending.append(table.cast(writer.schema))
                stats.update(frame)
                pending = _write_full_row_groups(writer, pending)
        except (arrow.ArrowInvalid, UnicodeDecodeError) as exc:
            raise DataError(f"{spec.name}: cannot read {spec.file}: {exc}; validate the table first") from exc
        if writer is None:
            empty = _empty_frame(spec, source, dtypes)
            writer = pq.ParquetWriter(
                out_path,
                empty.to_arrow(compat_level=pl.CompatLevel.oldest()).schema,
                compression=COMPRESSION,
                compression_level=COMPRESSION_LEVEL,
            )
            stats.update(empty)
        elif pending:
            writer.write_table(arrow.concat_tables(pending))
    finally:
        if writer is not None:
            writer.close()
    return stats


def _artifact(out: Path, rel: str) -> dict[str, Any]:
    path = out / rel
    # One read for both: the SHA-256 the manifest promises, and the CRC32 an upload checks the file against
    # from the CRC32s its parts are sent with (no second read of a large file at upload time).
    sha256, crc32 = sha256_and_crc32(path)
    return {"path": rel, "size": path.stat().st_size, "sha256": sha256, "crc32": f"{crc32:08x}"}


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")


def _pr_number(value: int | str | None) -> int | None:
    if value in (None, "", 0, "0"):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"pr_number must be a pull request number or empty, got {value!r}") from None
    if number < 0:
        raise ConfigError(f"pr_number must be positive, got {number}")
    return number


def build_release(
    data_dir: str,
    out_dir: str,
    *,
    repo: str,
    sha: str,
    event: str,
    ref: str,
    pr_number: int | str | None,
    workflow_name: str,
    created_at: str | None = None,
) -> dict[str, Any]:
    """Step: build the release directory (Parquet tables, statistics, schemas, manifest) from release data.

    ``out_dir`` receives ``tables/<name>.parquet`` (typed, zstd), ``stats/<name>.json`` (rows, nulls,
    min and max per column), ``schemas/<name>.yaml`` (the canonical schema text the fingerprint is taken
    of), a copy of ``release.yaml`` and ``manifest.json``, which lists every other file with its size and
    SHA-256.

    Args:
        data_dir: Release-data directory holding ``release.yaml``.
        out_dir: Output directory; created, and emptied first if it exists.
        repo: ``owner/name`` of the repository.
        sha: Full commit sha the data comes from.
        event: GitHub event that started the run (``push``, ``pull_request``, ...).
        ref: Git ref of the run (``refs/heads/main``, ``refs/pull/42/merge``).
        pr_number: Pull request number, or None / "" when the run is not for a pull request.
        workflow_name: Name of the Argo workflow doing the build.
        created_at: ISO 8601 time to record (default: now, UTC); pass the workflow's creation time to
            keep every step of a run consistent.

    Returns:
        ``manifest`` (path), ``release``, ``version``, ``tables`` (name, rows, file, sha256),
        ``artifacts`` (count) and ``bytes`` (total size).

    Raises:
        DataError: ``release.yaml`` or a table is wrong.
        ConfigError: ``repo``, ``sha`` or ``pr_number`` is malformed.
    """
    if not _REPO.match(repo):
        raise ConfigError(f"repo must be OWNER/NAME, got {repo!r}")
    if not _SHA.match(sha):
        raise ConfigError(f"sha must be a full lowercase commit sha, got {sha!r}")
    source = Path(data_dir)
    release = load_release(source)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    for sub in ("tables", "stats", "schemas"):
        (out / sub).mkdir(parents=True)
    shutil.copyfile(source / RELEASE_FILE, out / RELEASE_FILE)

    tables = []
    for spec in release.tables:
        parquet_rel, stats_rel, schema_rel = (
            f"tables/{spec.name}.parquet",
            f"stats/{spec.name}.json",
            f"schemas/{spec.name}.yaml",
        )
        stats = write_table(spec, source, out / parquet_rel)
        _write_json(out / stats_rel, stats.to_dict())
        schema_text = resolve_schema(spec.schema_ref, source).to_yaml() or ""
        (out / schema_rel).write_text(schema_text, encoding="utf-8")
        parquet = _artifact(out, parquet_rel)
        tables.append(
            {
                "name": spec.name,
                "source_file": spec.file,
                "file": parquet_rel,
                "size": parquet["size"],
                "sha256": parquet["sha256"],
                "rows": stats.rows,
                "columns": [{"name": c.name, "type": c.dtype} for c in stats.columns],
                "primary_key": list(spec.primary_key),
                "schema": spec.schema_ref,
                "schema_file": schema_rel,
                "schema_fingerprint": hashlib.sha256(schema_text.encode("utf-8")).hexdigest(),
                "stats_file": stats_rel,
            }
        )
        log.info("table %s: %d rows -> %s (%d bytes)", spec.name, stats.rows, parquet_rel, parquet["size"])

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    artifacts = [_artifact(out, rel) for rel in files]
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "release": {"name": release.name, "version": release.version, "description": release.description},
        "repo": repo,
        "sha": sha,
        "event": event,
        "ref": ref,
        "pr_number": _pr_number(pr_number),
        "workflow_name": workflow_name,
        "created_at": created_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tables": tables,
        "artifacts": artifacts,
    }
    _write_json(out / MANIFEST_NAME, manifest)
    return {
        "manifest": str(out / MANIFEST_NAME),
        "release": release.name,
        "version": release.version,
        "tables": [{k: t[k] for k in ("name", "rows", "file", "sha256")} for t in tables],
        "artifacts": len(artifacts),
        "bytes": sum(a["size"] for a in artifacts),
    }


__all__ = [
    "COMPRESSION",
    "MANIFEST_VERSION",
    "ColumnStats",
    "TableStats",
    "build_release",
    "write_table",
]
