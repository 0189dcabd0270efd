"""Commit statuses: the first row of the status matrix (https://docs.github.com/en/rest/commits/statuses)."""

import logging
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

from github import GithubObject
from github.Commit import Commit
from github.CommitStatus import CommitStatus
from github.Repository import Repository

from steps.github.app import repo_client
from steps.github.client import RepoClient
from steps.policy.status import (
    STATES,
    clip,
)
from steps.runtime.errors import ConfigError
from steps.runtime.settings import RETRIES_ENV, GitHubStepSettings, record

log = logging.getLogger(__name__)

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9_.-]{1,100}$")
PERMISSIONS = {"statuses": "write"}


def check_target(repo: str, sha: str) -> tuple[str, str]:
    """Validate ``owner/name`` and a full 40-hex commit sha before anything is sent.

    Raises:
        ConfigError: naming the bad value and the expected form.
    """
    if not REPO_RE.fullmatch(repo or ""):
        raise ConfigError(f"repo {repo!r} is not owner/name (e.g. acme/data)")
    sha = (sha or "").strip().lower()
    if not SHA_RE.fullmatch(sha):
        raise ConfigError(f"sha {sha[:50]!r} is not a full 40-character hex commit id")
    return repo, sha


@dataclass(frozen=True)
class StatusResult:
    """What was (or would have been) sent, and whether a POST happened."""

    repo: str
    sha: str
    state: str
    description: str
    context: str
    target_url: str
    posted: bool


def set_commit_status(
    client: RepoClient,
    sha: str,
    state: str,
    description: str,
    *,
    context: str,
    target_url: str = "",
    look_first: bool = True,
) -> StatusResult:
    """Set the commit status of ``sha`` for ``context`` unless its latest status is identical.

    Args:
        client: A client for the repository with ``statuses: write``.
        sha: Full commit id.
        state: One of error, failure, pending, success.
        description: Clipped to 140 characters at a word boundary.
        context: The status context, e.g. ``release-data-prep`` (what branch protection requires).
        target_url: Link shown next to the status (the run in the Argo UI).
        look_first: Read the latest status first and skip an identical one (a retried step); a first
            attempt has posted nothing yet and saves the call.

    Raises:
        ConfigError: bad repo, sha or state, or GitHub refused the request.
        InfraError: GitHub did not answer within the retry budget.
    """
    repo, sha = check_target(client.repository, sha)
    if state not in STATES:
        raise ConfigError(f"commit status state {state!r} is not one of {', '.join(STATES)}")
    description = clip(description)

    def act(repository: Repository) -> bool:
        commit = repository.get_commit(sha)
        latest = _latest(commit, context) if look_first else None
        if (
            latest is not None
            and latest.state == state
            and (latest.description or "") == description
            and (latest.target_url or "") == target_url
        ):
            return False
        commit.create_status(state, target_url or GithubObject.NotSet, description, context)
        return True

    # A repeated status is harmless (the same state again), so a lost POST is simply sent again.
    posted = client.create("set the commit status", act)
    log.info("commit status %s %s@%s: %s%s", context, repo, sha[:7], state, "" if posted else " (unchanged)")
    return StatusResult(repo, sha, state, description, context, target_url, posted)


def _latest(commit: Commit, context: str) -> CommitStatus | None:
    """The newest status of ``context`` on ``commit`` (one GET of the combined status), or None."""
    return next((s for s in commit.get_combined_status().statuses if s.context == context), None)


def latest_status(client: RepoClient, sha: str, context: str) -> tuple[str, str] | None:
    """``(state, target_url)`` of the newest status of ``context`` on ``sha``, or None (one GET, combined status)."""

    def act(repository: Repository) -> tuple[str, str] | None:
        latest = _latest(repository.get_commit(sha), context)
        return None if latest is None else (latest.state, latest.target_url or "")

    return client.call(f"read the {context} status of {sha[:7]}", act)


def post_status(
    repo: str, sha: str, state: str, description: str, installation_id: int | None, app_id: int | None
) -> dict[str, Any]:
    """Set the commit status as a step does: settings from the environment, recorded in local runs."""
    settings = GitHubStepSettings.from_env()
    repo, sha = check_target(repo, sha)
    if settings.record_file:
        description = clip(description)
        record(
            settings.record_file,
            "commit_status",
            repo=repo,
            sha=sha,
            state=state,
            description=description,
            context=settings.status_context,
            target_url=settings.target_url,
        )
        return asdict(
            StatusResult(repo, sha, state, description, settings.status_context, settings.target_url, posted=False)
        )
    client = repo_client(repo, PERMISSIONS, installation_id=installation_id, app_id=app_id, settings=settings)
    first_attempt = os.environ.get(RETRIES_ENV, "").strip() == "0"  # Argo's {{retries}}: nothing posted yet
    result = set_commit_status(
        client,
        sha,
        state,
        description,
        context=settings.status_context,
        target_url=settings.target_url,
        look_first=not first_attempt,
    )
    return asdict(result)


__all__ = [
    "PERMISSIONS",
    "StatusResult",
    "check_target",
    "latest_status",
    "post_status",
    "set_commit_status",
]
