"""Step logging: everything goes to stderr through a scrubber that redacts keys, tokens and JWTs."""

import logging
import os
import re
import sys
import traceback
from types import TracebackType

_SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9_]{16,}|github_pat_[A-Za-z0-9_]{20,})"),
    re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]{16,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)\b(aws_secret_access_key|secret[_-]?access[_-]?key)(['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9/+=]{16,}"),
]


def scrub(text: str) -> str:
    """Replace anything shaped like a private key, token, JWT or AWS secret key with ``[redacted]``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


class ScrubbingFilter(logging.Filter):
    """Scrubs every record's rendered message, exception text and stack before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        rendered = record.getMessage()
        cleaned = scrub(rendered)
        if cleaned != rendered:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None:
            # Format once here, scrubbed; Formatter.format prints exc_text and skips exc_info when it is set.
            record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def _scrubbed_excepthook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:  # pragma: no cover - runs only as the interpreter dies
    sys.stderr.write(scrub("".join(traceback.format_exception(kind, value, tb))))


def configure_logging(level: str | None = None) -> None:
    """Log to stderr through the scrubbing filter, and scrub uncaught exceptions too; once per process."""
    root = logging.getLogger()
    if any(isinstance(f, ScrubbingFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubbingFilter())
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("STEP_LOG_LEVEL", "INFO"))
    sys.excepthook = _scrubbed_excepthook


__all__ = ["ScrubbingFilter", "configure_logging", "scrub"]
