"""The ``@step`` decorator: logging, secret scrubbing, and failure reporting for functions run in pods.

In a pod (``python -m hera.workflows.runner -e steps.<module>:<function>``) a failing step writes its
one-line summary to the container's termination message, which Argo turns into the node message that
``{{workflow.failures}}`` carries to the exit handler
(https://argo-workflows.readthedocs.io/en/latest/variables/#exit-handler), and exits with a code that the
template's ``retryStrategy`` reads: data and configuration errors are final, infrastructure errors retry.
Called directly (tests, the library), a decorated function just raises.

In a pod an empty list or dict result is returned as its JSON text: Hera's runner prints nothing for a
falsy result, and Argo cannot parse an empty ``outputs.result`` as the JSON list a ``withParam`` needs.
"""

import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from steps.runtime.errors import StepError

TERMINATION_LOG_ENV = "STEP_TERMINATION_LOG"
EXIT_FINAL = 2  # bad data or configuration: a retry cannot help
EXIT_RETRY = 75  # EX_TEMPFAIL: a dependency failed; the retryStrategy may try again
EXIT_CRASH = 1  # an unexpected exception (a bug)

F = TypeVar("F", bound=Callable[..., Any])

_SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9_]{16,}|github_pat_[A-Za-z0-9_]{20,})"),
    re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]{16,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
]


def scrub(text: str) -> str:
    """Replace anything shaped like a private key, token or JWT with ``[redacted]``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs secrets from every record's rendered message (defence in depth)."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        rendered = record.getMessage()
        cleaned = scrub(rendered)
        if cleaned != rendered:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str | None = None) -> None:
    """Log to stderr (stdout carries the step's result to Argo) through the scrubbing filter, once."""
    root = logging.getLogger()
    if any(isinstance(f, ScrubbingFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubbingFilter())
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("STEP_LOG_LEVEL", "INFO"))


def _terminate(summary: str, code: int) -> None:
    path = os.environ.get(TERMINATION_LOG_ENV, "")
    if not path:
        return
    try:
        Path(path).write_text(scrub(summary)[:4096], encoding="utf-8")
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write the termination message to %s: %s", path, exc)
    sys.stderr.flush()
    raise SystemExit(code)


def step(fn: F) -> F:
    """Mark ``fn`` as a step: configure logging, and in a pod report failures as described above."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        configure_logging()
        log = logging.getLogger(fn.__module__)
        try:
            result = fn(*args, **kwargs)
        except StepError as exc:
            log.error("%s failed: %s", fn.__name__, exc.detail)
            _terminate(exc.summary, EXIT_RETRY if exc.kind == "error" else EXIT_FINAL)
            raise
        except Exception as exc:
            summary = f"{fn.__name__} crashed: {type(exc).__name__}: {scrub(str(exc))}"
            log.exception("%s", summary)
            _terminate(summary[:140], EXIT_CRASH)
            raise
        if os.environ.get(TERMINATION_LOG_ENV) and isinstance(result, (list, dict)) and not result:
            return json.dumps(result)
        return result

    return wrapper  # type: ignore[return-value]


__all__ = ["EXIT_CRASH", "EXIT_FINAL", "EXIT_RETRY", "ScrubbingFilter", "configure_logging", "scrub", "step"]
