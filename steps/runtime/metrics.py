"""Numbers a step hands to Argo's Prometheus metrics: one file per output parameter in ``$STEP_METRICS_DIR``."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from pathlib import Path

METRICS_DIR_ENV = "STEP_METRICS_DIR"

log = logging.getLogger(__name__)


def write_metric(name: str, value: float | int | str) -> None:
    """Write ``value`` where the template's output parameter ``name`` reads it; a metric never fails a step."""
    directory = os.environ.get(METRICS_DIR_ENV, "").strip()
    if not directory:
        return
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        (Path(directory) / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        log.warning("could not write the metric %s: %s", name, exc)


def seconds_since(timestamp: str, *, now: float | None = None) -> float | None:
    """Seconds from an RFC 3339 time (``{{workflow.creationTimestamp}}``) to now; None when empty or unreadable."""
    try:
        then = datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return max(0.0, (time.time() if now is None else now) - then)


__all__ = ["METRICS_DIR_ENV", "seconds_since", "write_metric"]
