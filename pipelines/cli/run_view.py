"""How ``python -m pipelines run`` shows a run as it goes: a live table on a terminal, log lines otherwise."""

import shutil
import threading
import time
from typing import TextIO

from pipelines.local import FAILED, FINAL, Node, Row

_COLORS = {
    "succeeded": "32",
    "running": "33",
    "failed": "31",
    "error": "31",
    "skipped": "2",
    "omitted": "2",
    "pending": "2",
    "waiting": "36",
    "not run": "2",
}
_PHASE_WORD = {
    "Pending": "pending",
    "Running": "running",
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Error": "error",
    "Skipped": "skipped",
    "Omitted": "omitted",
}


def fmt_seconds(seconds: float | None) -> str:
    """``12.3s`` or ``4m05s``; empty for no time."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class RowState:
    """What one plan row shows: status word, fan-out count, attempts, elapsed time and a message."""

    def __init__(self, row: Row, nodes: list[Node], finished: bool) -> None:
        self.row = row
        mine = [n for n in nodes if n.row == row.key and n.type != "StepGroup"]
        attempts = [n for n in mine if n.attempt is not None]
        logical = [n for n in mine if n.attempt is None]
        group = next((n for n in logical if n.type == "TaskGroup"), None)
        items = [n for n in logical if n.item is not None]
        main = group or (logical[0] if len(logical) == 1 and not items else None)
        if main is not None:
            self.status = _PHASE_WORD[main.phase]
            if main.phase == "Pending" and main.message:
                self.status = "waiting"
        elif items:
            phases = {n.phase for n in items}
            if phases - FINAL:
                self.status = "running"
            elif phases & FAILED:
                self.status = "failed" if "Failed" in phases else "error"
            elif phases <= {"Skipped", "Omitted"}:
                self.status = "skipped"
            else:
                self.status = "succeeded"
        else:
            self.status = "not run" if finished else "pending"
        total = group.expected if group and group.expected else len(items)
        self.count = f"{sum(n.fulfilled for n in items)}/{total}" if row.fan_out and (items or group) else ""
        extra = sum(1 for n in attempts if n.attempt)
        self.retries = extra
        started = [n.started_at for n in mine if n.started_at]
        ended = [n.finished_at or time.time() for n in mine if n.started_at]
        self.elapsed = (max(ended) - min(started)) if started else None
        failed = [n for n in mine if n.phase in FAILED and n.message and n.type in ("Pod", "Skipped")]
        self.message = failed[0].message if failed and self.status in ("failed", "error") else ""
        if self.status == "waiting" and main is not None:
            self.message = main.message
        self.log = next((n.log_path for n in failed if n.log_path), None)

    def label(self) -> str:
        """The row's indented name."""
        depth = len(self.row.key) - 1
        return "  " * depth + self.row.key[-1]


class Progress:
    """Shows a run: a live, redrawn table on a terminal; one line per state change otherwise.

    Args:
        rows: The plan (``pipelines.local.plan_rows``).
        stream: Where to write.
        live: Redraw in place with ANSI escapes (a terminal) instead of printing log lines.
    """

    def __init__(self, rows: list[Row], stream: TextIO, live: bool) -> None:
        self.rows, self.stream, self.live = rows, stream, live
        self.nodes: dict[str, Node] = {}
        self._phases: dict[str, str] = {}
        self._lock = threading.Lock()
        self._drawn = 0
        self.name = ""
        self.started = time.time()

    def on_change(self, node: Node) -> None:
        """Take a node update from the runner (plain mode prints it at once)."""
        with self._lock:
            self.nodes[node.id] = node
            if not self.name and node.row == ():
                self.name = node.name
            if not self.live:
                self._log_line(node)

    def _log_line(self, node: Node) -> None:
        previous = self._phases.get(node.id)
        self._phases[node.id] = node.phase
        if node.type == "StepGroup" or node.row == () or previous == node.phase:
            return
        if node.phase == "Pending" and not node.message:
            return
        if node.type in ("DAG", "Steps") and not node.fulfilled:
            return
        name = node.name[len(self.name) :].lstrip(".") if self.name else node.name
        if node.attempt is not None:  # a retry attempt: its Retry node reports start and end
            if node.phase == "Succeeded" or (node.phase == "Running" and node.attempt == 0):
                return
            name = f"{name.removesuffix(f'({node.attempt})')} attempt {node.attempt + 1}"
        word = "waiting" if node.phase == "Pending" else _PHASE_WORD[node.phase]
        detail = f" ({fmt_seconds(node.duration)})" if node.fulfilled and node.duration is not None else ""
        note = f": {node.message}" if node.message and node.phase != "Succeeded" else ""
        self.stream.write(f"{time.strftime('%H:%M:%S')}  {word:<9}  {name}{detail}{note}\n")
        self.stream.flush()

    def states(self, finished: bool = False) -> list[RowState]:
        """The current state of every plan row."""
        with self._lock:
            nodes = list(self.nodes.values())
        return [RowState(row, nodes, finished) for row in self.rows]

    def redraw(self, phase: str = "Running") -> None:
        """Redraw the live table in place (no-op in plain mode)."""
        if not self.live:
            return
        lines = [f"\x1b[1m{self.name or 'starting'}\x1b[0m  {phase}  {fmt_seconds(time.time() - self.started)}"]
        width = shutil.get_terminal_size((100, 24)).columns - 1
        for state in self.states(finished=phase != "Running"):
            color = _COLORS.get(state.status, "0")
            extra = "  ".join(x for x in (state.count, f"retried {state.retries}x" if state.retries else "") if x)
            plain = f"  {state.status:<9}  {state.label():<34} {fmt_seconds(state.elapsed):>7}"
            plain += f"  {extra}" if extra else ""
            text = f"  \x1b[{color}m{state.status:<9}\x1b[0m" + plain[11:width]
            room = width - len(plain) - 2
            if state.message and room > 10:
                text += f"  \x1b[2m{clip(state.message, room)}\x1b[0m"
            lines.append(text)
        out = ""
        if self._drawn:
            out += f"\x1b[{self._drawn}F\x1b[J"
        out += "\n".join(lines) + "\n"
        self._drawn = len(lines)
        self.stream.write(out)
        self.stream.flush()


def clip(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, ending in an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["Progress", "RowState", "clip", "fmt_seconds"]
