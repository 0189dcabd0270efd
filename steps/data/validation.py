"""Validate one release-data table against its pandera schema in bounded memory.

One Argo Workflows pod per table runs :func:`validate_table` (a fan-out over the output of
``validate_metadata``, https://argo-workflows.readthedocs.io/en/latest/walk-through/loops/); its summary
becomes the GitHub commit status description (https://docs.github.com/en/rest/commits/statuses).

The file is read in batches (Parquet one row group at a time, CSV as a stream of text blocks) and each
batch is checked with pandera's polars backend, lazily, keeping only a capped sample of failures.
Uniqueness (primary key and any ``unique`` in the schema) is checked over the whole file, not per batch:
each batch contributes a 64-bit polars hash per row (8 bytes per row: the only state that grows with
the table), the hashes are sorted once at the end, and rows whose hashes repeat are re-read and compared
by value, so a hash collision is never reported as a duplicate. CSV rows with the wrong number of
fields, bytes that are not UTF-8 and text that does not convert to the declared type are reported per
row, with the data row number (file line = row + 1).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandera.polars as pa
import polars as pl
import pyarrow as arrow
import pyarrow.csv as arrow_csv
import pyarrow.parquet as pq
from pandera.engines import polars_engine
from pandera.errors import SchemaDefinitionError, SchemaError, SchemaErrors

from steps.data.metadata import load_release
from steps.data.schemas import StreamingSchema, prepare_schema, resolve_schema, text_to_dtype
from steps.runtime.errors import SUMMARY_LIMIT, DataError

DEFAULT_BATCH_ROWS = 1_000_000
CONFIRM_LIMIT = 1_000_000
VALUE_CHARS = 120
HEADER_LIMIT = 1 << 20
# pyarrow's streaming CSV reader parses a few blocks ahead, and a block costs several times its size while
# it is decoded, converted and checked. Measured on a 3 M-row, 360 MB CSV: 8 MiB blocks peak at 640 MB,
# 16 MiB at 730 MB, 32 MiB at 850 MB, all equally fast.
CSV_BLOCK_BYTES = 8 << 20
_HASH_SEED = 0x5EED
_NULL_KEY_SEED = 0xBAD
_OPERATORS = {
    "greater_than_or_equal_to": ">=",
    "greater_than": ">",
    "less_than_or_equal_to": "<=",
    "less_than": "<",
    "equal_to": "==",
    "not_equal_to": "!=",
}
_POS, _COLUMN, _LABEL, _VALUE = "pos", "column", "label", "value"
_ROW_FRAME = {_POS: pl.Int64, _COLUMN: pl.String, _LABEL: pl.String, _VALUE: pl.String}

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


class _Unreadable(Exception):
    """The file cannot be read as the table format its name says."""


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def check_label(column: str | None, check: str) -> str:
    """Turn a pandera check name such as ``greater_than_or_equal_to(0)`` into ``price >= 0``.

    Args:
        column: The checked column, or ``None`` for a table-level check.
        check: pandera's check string from ``failure_cases``.
    """
    match = re.fullmatch(r"(\w+)\((.*)\)", check, flags=re.DOTALL)
    name, args = (match.group(1), match.group(2)) if match else (check, "")
    subject = column or "table"
    if name in _OPERATORS:
        return f"{subject} {_OPERATORS[name]} {args}"
    if name == "in_range":
        return f"{subject} in [{args}]"
    if name in {"isin", "notin"}:
        return f"{subject} {'in' if name == 'isin' else 'not in'} {_clip(args, 40)}"
    if name in {"str_matches", "str_contains"}:
        return f"{subject} {name.removeprefix('str_')} {args.strip(chr(39))}"
    if name in {"dtype", "coerce_dtype"}:
        return f"{subject} type {args.strip(chr(39))}"
    if name == "not_nullable":
        return f"{subject} not null"
    return f"{subject} {check}"


class _Failures:
    """Failure counts per check plus a sample capped at ``cap`` entries per check."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.counts: dict[str, int] = {}
        self._samples: dict[str, list[tuple[int | None, int | None, str | None, str | None]]] = {}
        self._seen: set[tuple[str, str | None]] = set()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def keep(self, label: str, pos: int | None, row: int | None, column: str | None, value: Any) -> None:
        """Add one failure to the sample of ``label`` (0-based ``pos`` or 1-based ``row``) if there is room."""
        sample = self._samples.setdefault(label, [])
        if len(sample) < self.cap:
            sample.append((pos, row, column, None if value is None else _clip(str(value), VALUE_CHARS)))

    def add_count(self, label: str, count: int) -> None:
        """Add ``count`` failures of ``label`` without sampling them."""
        self.counts[label] = self.counts.get(label, 0) + count

    def first_value(self, label: str) -> str | None:
        """The first sampled value of ``label``."""
        return self._samples[label][0][3]

    def table_level(self, column: str | None, label: str, value: Any = None) -> None:
        """Record a failure that belongs to the whole table; repeats across batches count once."""
        if (label, None if value is None else str(value)) in self._seen:
            return
        self._seen.add((label, None if value is None else str(value)))
        self.counts[label] = self.counts.get(label, 0) + 1
        self.keep(label, None, None, column, value)

    def at_row(self, row: int, column: str | None, label: str, value: Any) -> None:
        """Record a failure whose 1-based data row number is already known."""
        self.counts[label] = self.counts.get(label, 0) + 1
        self.keep(label, None, row, column, value)

    def at_positions(self, frame: pl.DataFrame) -> None:
        """Record row failures given as a frame of (pos, column, label, value); pos is 0-based."""
        if frame.is_empty():
            return
        for label, count in frame.group_by(_LABEL, maintain_order=True).len().iter_rows():
            self.counts[label] = self.counts.get(label, 0) + count
        kept = frame.group_by(_LABEL, maintain_order=True).head(self.cap)
        for pos, column, label, value in kept.select(_POS, _COLUMN, _LABEL, _VALUE).iter_rows():
            self.keep(label, pos, None, column, value)

    def sample(self, row_of: Callable[[np.ndarray], np.ndarray]) -> list[dict[str, Any]]:
        """Pick at most ``cap`` failures, every failing check represented, ordered by row."""
        queues = [list(entries) for entries in self._samples.values()]
        labels = list(self._samples)
        picked: list[tuple[str, tuple[int | None, int | None, str | None, str | None]]] = []
        depth = 0
        while len(picked) < self.cap and any(depth < len(q) for q in queues):
            for label, queue in zip(labels, queues, strict=True):
                if depth < len(queue) and len(picked) < self.cap:
                    picked.append((label, queue[depth]))
            depth += 1
        positions = np.array([entry[0] for _, entry in picked if entry[0] is not None], dtype=np.int64)
        rows = iter(row_of(positions).tolist())
        out = []
        for label, (pos, row, column, value) in picked:
            number = next(rows) if pos is not None else row
            out.append({"row": number, "column": column, "check": label, "value": value})
        return sorted(out, key=lambda f: (f["row"] is not None, f["row"] or 0))


class _ParquetSource:
    """Reads a Parquet file one row group at a time.

    pyarrow reads the footer (row groups, schema); polars' own reader reads each row group (a slice at
    row-group bounds reads only that group). Measured on 10 M rows x 12 columns: 1.0 s and 425 MB peak,
    against 2.0 s and 540 MB for ``ParquetFile.read_row_group`` plus the conversion to polars;
    ``iter_batches`` would peak about 3x higher.
    """

    def __init__(self, path: Path) -> None:
        try:
            metadata = pq.ParquetFile(path).metadata
            self.dtypes: dict[str, pl.DataType] | None = dict(pl.scan_parquet(path).collect_schema())
        except (arrow.ArrowException, pl.exceptions.PolarsError, OSError) as exc:
            raise _Unreadable(f"not a readable Parquet file ({exc})") from exc
        self._path = path
        self.columns: list[str] = list(self.dtypes)
        self.notes: list[str] = []
        self._group_rows = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        self.expected_rows = metadata.num_rows

    def _group(self, start: int, count: int, columns: list[str]) -> pl.DataFrame:
        if not columns:
            return pl.DataFrame(height=count)
        return pl.scan_parquet(self._path).select(columns).slice(start, count).collect()

    def frames(
        self, columns: list[str], dtypes: dict[str, pl.DataType | None], failures: _Failures | None
    ) -> Iterator[tuple[pl.DataFrame, pl.DataFrame | None]]:
        del dtypes, failures  # Parquet carries its own types; nothing is lost while reading.
        start = 0
        for count in self._group_rows:
            yield self._group(start, count, columns), None
            start += count

    def row_of(self, positions: np.ndarray) -> np.ndarray:
        return positions + 1


class _CsvSource:
    """Streams a CSV file as text blocks with pyarrow, converts each column to its declared type.

    Only empty cells are null, and a blank line is a row of empty cells. Rows with the wrong number of
    fields are reported and skipped, and remembered so that later rows keep their numbers. Row numbers
    count records: where a quoted value spans lines, the file line is no longer row + 1 (a note says so).
    """

    def __init__(self, path: Path, batch_rows: int) -> None:
        self._path = path
        with path.open("rb") as handle:
            head = handle.read(HEADER_LIMIT)
        if not head:
            raise _Unreadable("file is empty; a CSV table needs a header line")
        line = head.split(b"\n", 1)[0].removeprefix(b"\xef\xbb\xbf").rstrip(b"\r")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Unreadable(
                f"header (line 1) is not UTF-8 at byte offset {exc.start}; save the file as UTF-8"
            ) from exc
        self.columns = next(csv.reader(io.StringIO(text)), [])
        empty = [i + 1 for i, name in enumerate(self.columns) if not name.strip()]
        duplicated = sorted({name for name in self.columns if self.columns.count(name) > 1})
        if not self.columns or empty:
            raise _Unreadable(f"header (line 1) has empty column names at positions {empty or [1]}")
        if duplicated:
            raise _Unreadable(f"header (line 1) repeats column names {duplicated}")
        bytes_per_row = max(len(head) / max(head.count(b"\n"), 1), 1.0)
        self.expected_rows = int(path.stat().st_size / bytes_per_row * 1.1)
        self._block_size = int(min(max(batch_rows * bytes_per_row * 1.1, 4 << 20), CSV_BLOCK_BYTES))
        self.dtypes: dict[str, pl.DataType] | None = None  # every column is converted to its declared type
        self.skipped = array("q")
        self.failures: _Failures | None = None
        self.notes: list[str] = []
        self._swallowed = 0

    def _note_line_breaks(self, after: int) -> None:
        if not self.notes:
            self.notes.append(
                f"quoted values span lines after data row {after:,}: from there a row's file line is not "
                "row + 1, and row numbers count records"
            )

    def _on_invalid_row(self, row: arrow_csv.InvalidRow) -> str:
        if self.failures is not None:
            # An unterminated quote makes one bad row of several lines; later rows keep their numbers.
            number = row.number - 1 - self._swallowed
            self._swallowed += row.text.count("\n")
            if "\n" in row.text:
                self._note_line_breaks(number)
            self.skipped.append(number)
            self.failures.at_row(
                number,
                None,
                f"rows have {row.expected_columns} fields",
                f"{row.actual_columns} fields: {row.text}",
            )
        return "skip"

    def frames(
        self, columns: list[str], dtypes: dict[str, pl.DataType | None], failures: _Failures | None
    ) -> Iterator[tuple[pl.DataFrame, pl.DataFrame | None]]:
        self.failures = failures
        reader = arrow_csv.open_csv(
            self._path,
            read_options=arrow_csv.ReadOptions(use_threads=False, block_size=self._block_size),
            parse_options=arrow_csv.ParseOptions(invalid_row_handler=self._on_invalid_row, ignore_empty_lines=False),
            convert_options=arrow_csv.ConvertOptions(
                column_types={name: arrow.binary() for name in self.columns},
                include_columns=columns,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        done = 0
        for batch in reader:
            raw = pl.from_arrow(batch)
            if not isinstance(raw, pl.DataFrame) or not raw.width:
                raw = pl.DataFrame(height=batch.num_rows)
            if failures is not None and raw.width and not self.notes and _has_line_break(raw):
                self._note_line_breaks(done)
            text, bad_text = _decode(raw, done)
            typed, bad_type = _convert(text, dtypes, done)
            bad = [part for part in (bad_text, bad_type) if part is not None]
            cells = pl.concat(bad) if bad else None
            if cells is not None and failures is not None:
                failures.at_positions(cells)
            done += raw.height
            yield typed, cells

    def row_of(self, positions: np.ndarray) -> np.ndarray:
        """Map 0-based positions among the rows read to 1-based data rows, skipping dropped rows."""
        ordinals = positions.astype(np.int64) + 1
        if not len(self.skipped):
            return ordinals
        skipped = np.frombuffer(self.skipped, dtype=np.int64)
        rows = ordinals.copy()
        while True:
            moved = ordinals + np.searchsorted(skipped, rows, side="right")
            if np.array_equal(moved, rows):
                return rows
            rows = moved


def _has_line_break(raw: pl.DataFrame) -> bool:
    return any(raw.select(pl.all().bin.contains(b"\n").any()).row(0))


def _decode(raw: pl.DataFrame, done: int) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Decode binary CSV cells as UTF-8; cells that are not UTF-8 become null and are reported."""
    try:
        return raw.select(pl.all().cast(pl.String)), None
    except pl.exceptions.ComputeError:
        pass
    columns, bad = [], []
    for series in raw.iter_columns():
        try:
            columns.append(series.cast(pl.String))
            continue
        except pl.exceptions.ComputeError:
            pass
        values: list[str | None] = []
        for index, cell in enumerate(series.to_list()):
            try:
                values.append(None if cell is None else cell.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(None)
                shown = cell.decode("utf-8", errors="backslashreplace")
                bad.append((done + index, series.name, f"{series.name} valid UTF-8", shown))
        columns.append(pl.Series(series.name, values, dtype=pl.String))
    return pl.DataFrame(columns), pl.DataFrame(bad, schema=_ROW_FRAME, orient="row")


def _convert(
    text: pl.DataFrame, dtypes: dict[str, pl.DataType | None], done: int
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Convert text columns to their declared types; text that does not convert is reported."""
    targets = {name: dtypes.get(name) for name in text.columns}
    typed = text.select(text_to_dtype(name, dtype).alias(name) for name, dtype in targets.items())
    checked = [name for name, dtype in targets.items() if dtype is not None and dtype != pl.String]
    if not checked:
        return typed, None
    lost = [text.get_column(name).is_not_null() & typed.get_column(name).is_null() for name in checked]
    if not any(mask.any() for mask in lost):
        return typed, None
    parts = [
        pl.DataFrame(
            {
                _POS: (pl.arange(0, text.height, eager=True).filter(mask) + done).cast(pl.Int64),
                _COLUMN: name,
                _LABEL: f"{name} type {targets[name]}",
                _VALUE: text.get_column(name).filter(mask),
            },
            schema=_ROW_FRAME,
        )
        for name, mask in zip(checked, lost, strict=True)
        if mask.any()
    ]
    return typed, pl.concat(parts)


def _open(path: Path, batch_rows: int) -> _ParquetSource | _CsvSource:
    if not path.is_file():
        raise _Unreadable("file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _CsvSource(path, batch_rows)
    if suffix in {".parquet", ".pq"}:
        return _ParquetSource(path)
    raise _Unreadable(f"unsupported file type '{suffix}'; use .csv or .parquet")


def _key_hash(batch: pl.DataFrame, key: list[str], start: int) -> pl.Series:
    """64-bit hash per row of the key columns; rows with a null key get a hash of their position."""
    if len(key) == 1:
        hashes = batch.get_column(key[0]).hash(seed=_HASH_SEED)
    else:
        hashes = batch.select(key).hash_rows(seed=_HASH_SEED)
    nulls = batch.select(pl.any_horizontal(pl.col(key).is_null())).to_series()
    if nulls.any():
        positions = pl.int_range(start, start + batch.height, dtype=pl.Int64, eager=True)
        hashes = pl.select(pl.when(nulls).then(positions.hash(seed=_NULL_KEY_SEED)).otherwise(hashes)).to_series()
    return hashes


class _KeyHashes:
    """The key hashes of every row read so far: 8 bytes per row in one buffer sized from the file.

    At the end one multi-threaded polars sort (a copy: another 8 bytes per row while it lasts) brings
    repeated hashes next to each other. Positions are not kept: the rare rows whose hash repeats are
    found again by re-reading the key columns.
    """

    def __init__(self, expected_rows: int) -> None:
        self._buffer = np.empty(max(expected_rows, 1024), dtype=np.uint64)
        self._size = 0

    def add(self, hashes: pl.Series) -> None:
        """Append one batch's hashes (the buffer grows by half when the size estimate was low)."""
        end = self._size + hashes.len()
        if end > len(self._buffer):
            self._buffer = np.resize(self._buffer, max(end, len(self._buffer) * 3 // 2))
        self._buffer[self._size : end] = hashes.to_numpy()
        self._size = end

    def repeats(self) -> tuple[pl.Series, int]:
        """The hash values that occur more than once, and how many rows repeat an earlier row's hash."""
        ordered = pl.Series(self._buffer[: self._size]).sort().to_numpy()
        self._buffer, self._size = np.empty(0, dtype=np.uint64), 0
        same = ordered[1:] == ordered[:-1]
        return pl.Series(ordered[1:][same], dtype=pl.UInt64).unique(), int(same.sum())


def _candidates(
    source: _ParquetSource | _CsvSource, key: list[str], repeated: pl.Series, dtypes: dict[str, Any], limit: int
) -> tuple[pl.DataFrame, bool]:
    """Re-read the key columns and keep the rows whose hash repeats (at most about ``limit``).

    Returns the rows (position and key values, in file order) and whether every such row was kept.
    """
    parts, start, kept = [], 0, 0
    wanted = repeated.implode()
    for frame, _ in source.frames(key, dtypes, None):
        hit = _key_hash(frame, key, start).is_in(wanted)
        if hit.any():
            part = frame.with_columns(pl.int_range(start, start + frame.height, dtype=pl.Int64).alias(_POS))
            parts.append(part.filter(hit))
            kept += parts[-1].height
        start += frame.height
        if kept > limit:
            return pl.concat(parts), False
    return pl.concat(parts), True


def _key_text(row: tuple[Any, ...]) -> str:
    return str(row[0]) if len(row) == 1 else "(" + ", ".join(str(v) for v in row) + ")"


def _check_unique(
    key: list[str],
    hashes: _KeyHashes,
    source: _ParquetSource | _CsvSource,
    plan: StreamingSchema,
    failures: _Failures,
    notes: list[str],
) -> None:
    """Report rows whose key repeats an earlier row's key, comparing the rows by value."""
    repeated, later_by_hash = hashes.repeats()
    if not later_by_hash:
        return
    column = ", ".join(key)
    label = f"unique {column}" if len(key) == 1 else f"unique ({column})"
    rows, complete = _candidates(source, key, repeated, plan.dtypes, CONFIRM_LIMIT)
    rows = rows.drop_nulls(key).with_columns(pl.col(_POS).min().over(key).alias("first"))
    later = rows.filter(pl.col(_POS) != pl.col("first"))
    if complete:
        if later.is_empty():
            notes.append(f"{later_by_hash} rows shared a 64-bit hash of ({column}) with other values")
            return
    else:
        # Too many to hold by value: count by hash (a false repeat among the 64-bit hashes of n rows has
        # probability about n^2 / 2^65) and show rows compared by value among the first ones read.
        notes.append(f"{later_by_hash:,} rows repeat a 64-bit hash of ({column}); repeats counted by hash")
        failures.add_count(label, later_by_hash - min(later.height, failures.cap))
        later = later.head(failures.cap)
    first_rows = source.row_of(later.get_column("first").to_numpy())
    shown = [
        f"{_key_text(tuple(row))} (first in row {first})"
        for row, first in zip(later.select(key).iter_rows(), first_rows.tolist(), strict=True)
    ]
    failures.at_positions(
        pl.DataFrame({_POS: later.get_column(_POS), _COLUMN: column, _LABEL: label, _VALUE: shown}, schema=_ROW_FRAME)
    )


def _record_pandera(cases: pl.DataFrame, start: int, bad_cells: pl.DataFrame | None, failures: _Failures) -> None:
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
            bad_cells.select(pl.col(_COLUMN).alias("column"), (pl.col(_POS) - start).alias("index")).with_columns(
                pl.lit("not_nullable").alias("check"), pl.col("index").cast(rows.schema["index"])
            ),
            on=["column", "check", "index"],
            how="anti",
        )
    pairs = rows.select("column", "check").unique()
    labels = pairs.with_columns(pl.Series(_LABEL, [check_label(c, k) for c, k in pairs.iter_rows()], dtype=pl.String))
    failures.at_positions(
        rows.join(labels, on=["column", "check"], how="left").select(
            (pl.col("index").cast(pl.Int64) + start).alias(_POS),
            pl.col("column").alias(_COLUMN),
            pl.col(_LABEL),
            pl.col("failure_case").alias(_VALUE),
        )
    )


def _summary(table: str, file: Path, rows: int, failures: _Failures) -> str:
    if "file readable" in failures.counts:
        reason = failures.first_value("file readable") or ""
        return _clip(f"{table}: cannot read {file.name}: {reason}", SUMMARY_LIMIT)
    if not failures.counts:
        return _clip(f"{table}: {rows:,} rows valid", SUMMARY_LIMIT)
    if rows == 0 and list(failures.counts) == ["table not empty"]:
        return _clip(f"{table}: {file.name} has no data rows; add rows or remove the table", SUMMARY_LIMIT)
    total = failures.total
    head = f"{table}: {total:,} failure{'s' if total != 1 else ''} in {rows:,} rows"
    parts = [f"{label}: {count:,}" for label, count in sorted(failures.counts.items(), key=lambda kv: -kv[1])]
    for shown in range(len(parts), 0, -1):
        rest = f", +{len(parts) - shown} more" if shown < len(parts) else ""
        text = f"{head} ({', '.join(parts[:shown])}{rest})"
        if len(text) <= SUMMARY_LIMIT:
            return text
    return _clip(head, SUMMARY_LIMIT)


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
    failures = _Failures(sample_cap)
    notes: list[str] = []
    rows = 0
    source: _ParquetSource | _CsvSource | None = None
    try:
        source = _open(path, batch_rows)
    except _Unreadable as exc:
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
    found: dict[str, pl.DataType], present: list[str], plan: StreamingSchema, failures: _Failures
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
    source: _ParquetSource | _CsvSource,
    plan: StreamingSchema,
    failures: _Failures,
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
    keys = [list(key) for key in plan.unique_keys if all(c in source.columns for c in key)]
    hashes = [_KeyHashes(source.expected_rows) for _ in keys]
    rows = 0
    try:
        for frame, bad_cells in source.frames(present, plan.dtypes, failures):
            for offset in range(0, frame.height, batch_rows):
                batch = frame.slice(offset, batch_rows)
                try:
                    batch_schema.validate(batch, lazy=True)
                except SchemaErrors as exc:
                    _record_pandera(exc.failure_cases, rows, bad_cells, failures)
                except (SchemaError, SchemaDefinitionError) as exc:
                    raise DataError(f"the schema cannot be applied to {source.columns}: {exc}", repr(exc)) from exc
                for key, seen in zip(keys, hashes, strict=True):
                    seen.add(_key_hash(batch, key, rows))
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
        _check_unique(key, seen, source, plan, failures, notes)
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
    "CONFIRM_LIMIT",
    "DEFAULT_BATCH_ROWS",
    "TableReport",
    "check_label",
    "validate_table",
    "validate_table_file",
]
