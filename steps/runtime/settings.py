"""Settings a step reads from its container environment, set by the WorkflowTemplate from hera_config.yaml."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Argo's {{retries}} in the pod: "0" on a first attempt, which therefore has nothing of its own to look up.
RETRIES_ENV = "STEP_RETRIES"


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "")
    return float(raw) if raw.strip() else default


@dataclass(frozen=True)
class GitHubStepSettings:
    """How steps reach GitHub.

    Attributes:
        api_url: ``GITHUB_API_URL``; ``https://HOST/api/v3`` for GitHub Enterprise Server.
        app_id: ``GITHUB_APP_ID``, used when the run's ``app-id`` argument is empty.
        app_slug: ``GITHUB_APP_SLUG``: the App's slug, whose bot login ``<slug>[bot]`` writes its comments.
        status_context: ``GITHUB_STATUS_CONTEXT`` (default ``release-data-prep``).
        target_url: ``GITHUB_TARGET_URL``: the run's page in the Argo UI (Argo fills in the name).
        timeout: ``GITHUB_TIMEOUT_SECONDS`` per request.
        budget: ``GITHUB_RETRY_BUDGET_SECONDS`` for all retries of one call.
        backoff_factor: ``GITHUB_BACKOFF_FACTOR`` of the exponential backoff.
        record_file: ``GITHUB_RECORD_FILE``: when set, nothing is sent to GitHub; each call that would be
            made is appended to this JSON-lines file (the local runner's embedded default).
    """

    api_url: str = "https://api.github.com"
    app_id: str = ""
    app_slug: str = ""
    status_context: str = "release-data-prep"
    target_url: str = ""
    timeout: float = 10.0
    budget: float = 90.0
    backoff_factor: float = 0.5
    record_file: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GitHubStepSettings:
        """Read the settings from ``environ`` (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        return cls(
            api_url=env.get("GITHUB_API_URL") or cls.api_url,
            app_id=env.get("GITHUB_APP_ID", ""),
            app_slug=env.get("GITHUB_APP_SLUG", ""),
            status_context=env.get("GITHUB_STATUS_CONTEXT") or cls.status_context,
            target_url=env.get("GITHUB_TARGET_URL", ""),
            timeout=_float(env, "GITHUB_TIMEOUT_SECONDS", cls.timeout),
            budget=_float(env, "GITHUB_RETRY_BUDGET_SECONDS", cls.budget),
            backoff_factor=_float(env, "GITHUB_BACKOFF_FACTOR", cls.backoff_factor),
            record_file=env.get("GITHUB_RECORD_FILE", ""),
        )


def record(path: str, kind: str, **fields: Any) -> dict[str, Any]:
    """Append one would-be GitHub call to the JSON-lines file ``path`` and return it."""
    entry = {"kind": kind, "at": round(time.time(), 3), **fields}
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


__all__ = ["RETRIES_ENV", "GitHubStepSettings", "record"]
