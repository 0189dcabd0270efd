"""Validate one release-data table against its pandera schema in bounded memory (one Argo pod per table)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandera.polars as pa
import polars as pl
import pyarrow as arrow
from pandera.engines import polars_engine
from pandera.errors import SchemaDefinitionError, SchemaError, SchemaErrors

from steps.data.failures import COLUMN, LABEL, POS, VALUE, Failures, check_label, clip
from steps.data.fused import fused_checks
from steps.data.keys import KeyHashes, check_unique, key_hash
from steps.data.metadata import load_release
from steps.data.readers import CsvSource, ParquetSource, Unreadable, open_source
from steps.data.schemas import StreamingSchema, prepare_schema, resolve_schema
from steps.runtime.errors import SUMMARY_LIMIT, DataError

DEFAULT_BATCH_ROWS = 1_000_000

SchemaLike = pa.DataFrameSchema | type[pa.DataFrameModel] | str | Path


@dataclass
class TableReport:
    """Outcome of validating one table file.

    Attributes:
        table: Table name.
        file: The file that was read.
        rows: Data rows read (CSV rows with the wrong number of fields are not counted).
        valid: Whether no check failed.
        failure_count: Failed (row, check) pairs plus table-level failures.
        check_counts: Failures per check, keyed by a readable label such as ``price >= 0``.
        failures: A capped sample of ``{"row", "column", "check", "value"}``; ``row`` is the 1-based data
            row (CSV file line = row + 1) or ``None`` for a table-level failure.
        elapsed: Seconds spent.
        summary: One line of at most 140 characters.
        notes: How the result was reached where that matters (e.g. duplicates counted by hash).
    """

    table: str
    file: str
    rows: int
    valid: bool
    failure_count: int
    check_counts: dict[str, int]
    failures: list[dict[str, Any]]
    elapsed: float
    summary: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dict."""
        return asdict(self)


def _record_pandera(cases: pl.DataFrame, start: int, bad_cells: pl.DataFrame | None, failures: Failures) -> None:
    """Fold pandera's ``failure_cases`` for one batch into the failure counts and sample."""
    cases = cases.with_columns(pl.col("failure_case").cast(pl.String), pl.col("column").cast(pl.String))
    for column, check, value in (
        cases.filter(pl.col("index").is_null()).select("column", "check", "failure_case").iter_rows()
    ):
        if check == "column_in_schema":
            failures.table_level(value, f"column {value} declared", value)
        else:
            failures.table_level(column, check_label(column, check), value)
    rows = cases.filter(pl.col("index").is_not_null())
    if rows.is_empty():
        return
    if bad_cells is not None:
        # A cell that was not UTF-8 or not of the declared type is already reported; pandera sees it as null.
        rows = rows.join(
            bad_cells.select(pl.col(COLUMN).alias("column"), (pl.col(POS) - start).alias("index")).with_columns(
                pl.lit("not_nullable").alias("check"), pl.col("index").cast(rows.schema["index"])
            ),
            on=["column", "check", "index"],
            how="anti",
        )
    pairs = rows.select("column", "check").unique()
    labels = pairs.with_columns(pl.Series(LABEL, [check_label(c, k) for c, k in pairs.iter_rows()], dtype=pl.String))
    failures.at_positions(
        rows.join(labels, on=["column", "check"], how="left").select(
            (pl.col("index").cast(pl.Int64) + start).alias(POS),
            pl.col("column").alias(COLUMN),
            pl.col(LABEL),
            pl.col("failure_case").alias(VALUE),
        )
    )


def _summary(table: str, file: Path, rows: int, failures: Failures) -> str:
    if "file readable" in failures.counts:
        reason = failures.first_value("file readable") or ""
        return clip(f"{table}: cannot read {file.name}: {reason}", SUMMARY_LIMIT)
    if not failures.counts:
        return clip(f"{table}: {rows:,} rows valid", SUMMARY_LIMIT)
    if rows == 0 and list(failures.counts) == ["table not empty"]:
        return clip(f"{table}: {file.name} has no data rows; add rows or remove the table", SUMMARY_LIMIT)
    total = failures.total
    head = f"{table}: {total:,} failure{'s' if total != 1 else ''} in {rows:,} rows"
    parts = [f"{label}: {count:,}" for label, count in sorted(failures.counts.items(), key=lambda kv: -kv[1])]
    for shown in range(len(parts), 0, -1):
        rest = f", +{len(parts) - shown} more" if shown < len(parts) else ""
        text = f"{head} ({', '.join(parts[:shown])}{rest})"
        if len(text) <= SUMMARY_LIMIT:
            return text
    return clip(head, SUMMARY_LIMIT)


def _as_schema(schema: SchemaLike) -> pa.DataFrameSchema:
    if isinstance(schema, pa.DataFrameSchema):
        return schema
    if isinstance(schema, type) and issubclass(schema, pa.DataFrameModel):
        return schema.to_schema()
    return resolve_schema(str(schema), Path.cwd())


def validate_table_file(
    path: Path,
    schema: SchemaLike,
    primary_key: list[str],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    sample_cap: int = 100,
    table: str | None = None,
) -> TableReport:
    """Validate a CSV or Parquet file against a pandera schema, batch by batch.

    Problems in the data (unreadable file, wrong field counts, bad encoding, wrong types, failed checks,
    duplicate keys, missing columns, no rows) are returned in the report, never raised.

    Args:
        path: A ``.csv`` or ``.parquet`` file.
        schema: A pandera polars schema or model, ``builtin:<name>``, or the path of a pandera YAML schema.
        primary_key: Columns whose combined values must be present and unique over the whole file.
        batch_rows: Rows validated at a time (Parquet is also read one row group at a time).
        sample_cap: Most failures kept in the report's sample.
        table: Name used in the report (defaults to the file name without suffix).

    Returns:
        The report; ``valid`` tells whether the file passed.

    Raises:
        DataError: The schema cannot be used (unknown reference, primary key not declared, ...).
    """
    started = time.perf_counter()
    path = Path(path)
    name = table or path.stem
    plan = prepare_schema(_as_schema(schema), list(primary_key))
    failures = Failures(sample_cap)
    notes: list[str] = []
    rows = 0
    source: ParquetSource | CsvSource | None = None
    try:
        source = open_source(path, batch_rows)
    except Unreadable as exc:
        failures.table_level(None, "file readable", str(exc))
    if source is not None:
        rows = _scan(source, plan, failures, notes, batch_rows)
    row_of = source.row_of if source is not None else (lambda positions: positions + 1)
    return TableReport(
        table=name,
        file=str(path),
        rows=rows,
        valid=not failures.counts,
        failure_count=failures.total,
        check_counts=dict(failures.counts),
        failures=failures.sample(row_of),
        elapsed=round(time.perf_counter() - started, 3),
        summary=_summary(name, path, rows, failures),
        notes=notes,
    )


def _type_mismatches(
    found: dict[str, pl.DataType], present: list[str], plan: StreamingSchema, failures: Failures
) -> list[str]:
    """Report columns whose stored type differs from the declared one (once, not per batch)."""
    wrong = []
    for name in present:
        column = plan.schema.columns[name]
        if name not in found or column.dtype is None or column.coerce or plan.schema.coerce:
            continue
        if not column.dtype.check(polars_engine.Engine.dtype(found[name])):
            failures.table_level(name, f"{name} type {column.dtype}", f"found {found[name]}")
            wrong.append(name)
    return wrong


def _scan(
    source: ParquetSource | CsvSource,
    plan: StreamingSchema,
    failures: Failures,
    notes: list[str],
    batch_rows: int,
) -> int:
    """Read every batch, validate it, collect key hashes, then check uniqueness; return the row count."""
    present = [c for c in plan.dtypes if c in source.columns]
    missing = [c for c in plan.required if c not in source.columns]
    for column in missing:
        failures.table_level(column, f"column {column} present")
    if plan.strict:
        for column in source.columns:
            if column not in plan.dtypes:
                failures.table_level(column, f"column {column} declared", column)
    if plan.ordered and [c for c in source.columns if c in plan.dtypes] != present:
        failures.table_level(None, "columns in schema order", ", ".join(source.columns))
    absent = [c for c in plan.schema.columns if c not in source.columns]
    absent += _type_mismatches(source.dtypes or {}, present, plan, failures)
    batch_schema = plan.schema.remove_columns(absent) if absent else plan.schema
    # One parallel polars pass per batch decides whether pandera has anything to find (it only runs then).
    fused = fused_checks(batch_schema)
    keys = [list(key) for key in plan.unique_keys if all(c in source.columns for c in key)]
    hashes = [KeyHashes(source.expected_rows) for _ in keys]
    rows = 0
    try:
        for frame, bad_cells in source.frames(present, plan.dtypes, failures):
            for offset in range(0, frame.height, batch_rows):
                batch = frame.slice(offset, batch_rows)
                try:
                    if fused is None or not fused.passes(batch):
                        batch_schema.validate(batch, lazy=True)
                except SchemaErrors as exc:
                    _record_pandera(exc.failure_cases, rows, bad_cells, failures)
                except (SchemaError, SchemaDefinitionError) as exc:
                    raise DataError(f"the schema cannot be applied to {source.columns}: {exc}", repr(exc)) from exc
                for key, seen in zip(keys, hashes, strict=True):
                    seen.add(key_hash(batch, key, rows))
                rows += batch.height
                del batch
            del frame, bad_cells  # release this batch before the next one is read
    except (arrow.ArrowException, pl.exceptions.PolarsError, OSError) as exc:
        failures.table_level(None, "file readable", f"read failed after {rows:,} rows: {exc}")
        return rows
    if rows == 0:
        failures.table_level(None, "table not empty", "0 data rows")
    arrow.default_memory_pool().release_unused()  # the batches are gone; the hash sort should not stack on them
    for key, seen in zip(keys, hashes, strict=True):
        check_unique(key, seen, source, plan, failures, notes)
    notes += source.notes
    return rows


def _detail(report: TableReport, report_path: Path) -> str:
    lines = [report.summary, f"file: {report.file}", f"report: {report_path}", "failures per check:"]
    lines += [f"  {label}: {count:,}" for label, count in report.check_counts.items()]
    lines.append(f"first failures (row = data row; CSV file line = row + 1), {len(report.failures)} kept:")
    lines += [
        f"  row {f['row'] if f['row'] is not None else '-'}: {f['check']}: {f['value']!r}" for f in report.failures[:30]
    ]
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def validate_table(data_dir: str, table: str, report_dir: str) -> dict[str, Any]:
    """Step function: validate one table of a release-data directory and write its report.

    Args:
        data_dir: Directory holding ``release.yaml``.
        table: Name of the table in ``release.yaml``.
        report_dir: Where ``<table>.validation.json`` is written.

    Returns:
        ``{"table", "file", "rows", "valid", "failure_count", "summary", "report"}``.

    Raises:
        DataError: ``release.yaml`` is wrong, the table is unknown, or the data fails validation (raised
            after the report is written; its summary is the report's).
    """
    root = Path(data_dir)
    release = load_release(root)
    spec = next((t for t in release.tables if t.name == table), None)
    if spec is None:
        known = ", ".join(t.name for t in release.tables)
        raise DataError(f"table '{table}' is not in {root / 'release.yaml'}; tables are: {known}")
    schema = resolve_schema(spec.schema_ref, root)
    report = validate_table_file(root / spec.file, schema, spec.primary_key, table=spec.name)
    report.file = spec.file
    out = Path(report_dir) / f"{spec.name}.validation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report.to_dict(), "schema": spec.schema_ref}, indent=2, default=str) + "\n")
    if not report.valid:
        raise DataError(report.summary, _detail(report, out))
    return {
        "table": report.table,
        "file": spec.file,
        "rows": report.rows,
        "valid": report.valid,
        "failure_count": report.failure_count,
        "summary": report.summary,
        "report": str(out),
    }


__all__ = [
    "DEFAULT_BATCH_ROWS",
    "TableReport",
    "validate_table",
    "validate_table_file",
]
