"""The ``@step`` decorator: typed arguments, scrubbed logging, and failure reporting for functions run in pods."""

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from steps.runtime.errors import INFRA_MARKER, StepError
from steps.runtime.logs import configure_logging, scrub
from steps.runtime.params import coerce, runner_signature

TERMINATION_LOG_ENV = "STEP_TERMINATION_LOG"
EXIT_FINAL = 2  # bad data or configuration: a retry cannot help
EXIT_RETRY = 75  # EX_TEMPFAIL: a dependency failed; the retryStrategy may try again
EXIT_CRASH = 1  # an unexpected exception (a bug)

F = TypeVar("F", bound=Callable[..., Any])


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
            result = fn(**coerce(fn, args, kwargs))
        except StepError as exc:
            log.error("%s failed: %s", fn.__name__, exc.detail)
            if exc.kind == "error":  # reported as `error` by the exit handler; retried only when it may help
                _terminate(INFRA_MARKER + exc.summary, EXIT_RETRY if exc.retry else EXIT_FINAL)
            _terminate(exc.summary, EXIT_FINAL)
            raise
        except Exception as exc:
            summary = f"{fn.__name__} crashed: {type(exc).__name__}: {scrub(str(exc))}"
            log.exception("%s", summary)
            _terminate(summary[:140], EXIT_CRASH)
            raise
        if os.environ.get(TERMINATION_LOG_ENV) and isinstance(result, (list, dict)) and not result:
            return json.dumps(result)
        return result

    wrapper.__signature__, wrapper.__annotations__ = runner_signature(fn)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


__all__ = ["EXIT_CRASH", "EXIT_FINAL", "EXIT_RETRY", "step"]
