"""Errors a step raises on purpose, and how each is reported."""

from __future__ import annotations

SUMMARY_LIMIT = 140
# Starts the termination message of a step that ended on an InfraError, so the exit handler reports `error`
# even where the node message carries no exit code (older controllers write the bare message).
INFRA_MARKER = "[infra] "


class StepError(Exception):
    """An expected, explained step failure.

    Args:
        summary: One line naming the cause and, where it helps, the fix. Clipped to 140 characters.
        detail: Everything a person needs to fix it (every problem found, file names, key paths).
    """

    kind = "failure"
    retry = False

    def __init__(self, summary: str, detail: str | None = None) -> None:
        summary = " ".join(summary.split())
        if len(summary) > SUMMARY_LIMIT:
            summary = summary[: SUMMARY_LIMIT - 1].rstrip() + "…"
        super().__init__(summary)
        self.summary = summary
        self.detail = detail or summary


class DataError(StepError):
    """The release data, its metadata or a configuration value is wrong; the author must fix it."""

    kind = "failure"


class InfraError(StepError):
    """A dependency (GitHub, S3, Argo CD) failed after its retry budget; re-running may succeed."""

    kind = "error"
    retry = True


class TimedOut(StepError):
    """A wait that used its whole time budget: reported as ``error``, but final (a retry would wait again)."""

    kind = "error"
    retry = False


class Unconfirmed(StepError):
    """A create whose answer was lost and that cannot be looked up: reported as ``error``, never resent."""

    kind = "error"
    retry = False


class ConfigError(StepError):
    """The step was given settings it cannot work with (missing key file, unknown environment, ...)."""

    kind = "failure"


__all__ = [
    "INFRA_MARKER",
    "SUMMARY_LIMIT",
    "ConfigError",
    "DataError",
    "InfraError",
    "StepError",
    "TimedOut",
    "Unconfirmed",
]
