"""Collecting a table's validation failures: counts per check and a capped sample, with readable check labels."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

VALUE_CHARS = 120
_OPERATORS = {
    "greater_than_or_equal_to": ">=",
    "greater_than": ">",
    "less_than_or_equal_to": "<=",
    "less_than": "<",
    "equal_to": "==",
    "not_equal_to": "!=",
}
POS, COLUMN, LABEL, VALUE = "pos", "column", "label", "value"
ROW_FRAME = {POS: pl.Int64, COLUMN: pl.String, LABEL: pl.String, VALUE: pl.String}


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
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
        return f"{subject} {'in' if name == 'isin' else 'not in'} {clip(args, 40)}"
    if name in {"str_matches", "str_contains"}:
        return f"{subject} {name.removeprefix('str_')} {args.strip(chr(39))}"
    if name in {"dtype", "coerce_dtype"}:
        return f"{subject} type {args.strip(chr(39))}"
    if name == "not_nullable":
        return f"{subject} not null"
    return f"{subject} {check}"


class Failures:
    """Failure counts per check plus a sample capped at ``cap`` entries per check."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.counts: dict[str, int] = {}
        self._samples: dict[str, list[tuple[int | None, int | None, str | None, str | None]]] = {}
        self._seen: set[tuple[str, str | None]] = set()

    @property
    def total(self) -> int:
        """Every failure counted so far."""
        return sum(self.counts.values())

    def keep(self, label: str, pos: int | None, row: int | None, column: str | None, value: Any) -> None:
        """Add one failure to the sample of ``label`` (0-based ``pos`` or 1-based ``row``) if there is room."""
        sample = self._samples.setdefault(label, [])
        if len(sample) < self.cap:
            sample.append((pos, row, column, None if value is None else clip(str(value), VALUE_CHARS)))

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
        for label, count in frame.group_by(LABEL, maintain_order=True).len().iter_rows():
            self.counts[label] = self.counts.get(label, 0) + count
        kept = frame.group_by(LABEL, maintain_order=True).head(self.cap)
        for pos, column, label, value in kept.select(POS, COLUMN, LABEL, VALUE).iter_rows():
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


__all__ = [
    "COLUMN",
    "Failures",
    "LABEL",
    "POS",
    "ROW_FRAME",
    "VALUE",
    "VALUE_CHARS",
    "check_label",
    "clip",
]
