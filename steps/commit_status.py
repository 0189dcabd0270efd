"""Commit statuses: the first row of the status matrix (https://docs.github.com/en/rest/commits/statuses).

``set_commit_status`` posts ``pending``/``success``/``failure``/``error`` for one sha and context, and
skips the POST when the latest status of that context already says the same (saving calls and keeping
GitHub's 1000-statuses-per-context limit far away). ``report_pending`` and ``report_final`` are the step
functions the WorkflowTemplate runs first and in its exit handler.
"""

import logging
import re
from dataclasses import asdict, dataclass

from github import GithubObject
from github.Repository import Repository

from steps.errors import ConfigError, StepError
from steps.github_app import repo_client
from steps.github_client import RepoClient
from steps.settings import GitHubStepSettings, record
from steps.status_policy import (
    STATES,
    clip,
    final_description,
    github_state,
    parse_failures,
    pending_description,
)
from steps.step import step

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
    client: RepoClient, sha: str, state: str, description: str, *, context: str, target_url: str = ""
) -> StatusResult:
    """Set the commit status of ``sha`` for ``context`` unless its latest status is identical.

    Args:
        client: A client for the repository with ``statuses: write``.
        sha: Full commit id.
        state: One of error, failure, pending, success.
        description: Clipped to 140 characters at a word boundary.
        context: The status context, e.g. ``release-data-prep`` (what branch protection requires).
        target_url: Link shown next to the status (the run in the Argo UI).

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
        latest = next((s for s in commit.get_combined_status().statuses if s.context == context), None)
        if (
            latest is not None
            and latest.state == state
            and (latest.description or "") == description
            and (latest.target_url or "") == target_url
        ):
            return False
        commit.create_status(state, target_url or GithubObject.NotSet, description, context)
        return True

    posted = client.call("set the commit status", act)
    log.info("commit status %s %s@%s: %s%s", context, repo, sha[:7], state, "" if posted else " (unchanged)")
    return StatusResult(repo, sha, state, description, context, target_url, posted)


def _send(repo: str, sha: str, state: str, description: str, installation_id: str, app_id: str) -> dict:
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
    result = set_commit_status(
        client, sha, state, description, context=settings.status_context, target_url=settings.target_url
    )
    return asdict(result)


@step
def report_pending(repo: str, sha: str, installation_id: str = "", app_id: str = "", workflow_name: str = "") -> dict:
    """Step: mark the commit ``pending`` as soon as the run starts."""
    return _send(repo, sha, "pending", pending_description(workflow_name), installation_id, app_id)


@step
def report_final(
    repo: str,
    sha: str,
    workflow_status: str,
    workflow_failures: str = "",
    installation_id: str = "",
    app_id: str = "",
    summary: str = "",
) -> dict:
    """Step (exit handler): post the final state from ``{{workflow.status}}`` and ``{{workflow.failures}}``.

    Args:
        repo: ``owner/name``.
        sha: Full commit id.
        workflow_status: Succeeded, Failed or Error.
        workflow_failures: ``{{workflow.failures}}`` as Argo hands it over (Go-quoted JSON or ``null``).
        installation_id: The registration's installation id (looked up when empty).
        app_id: The App id (``$GITHUB_APP_ID`` when empty).
        summary: Optional success text (e.g. tables and rows released).
    """
    state = github_state(workflow_status)
    failures = parse_failures(workflow_failures)
    if state == "success" and not summary:
        from steps.release_steps import read_summary, summary_text  # the data layer, only when needed

        try:
            summary = summary_text(read_summary())
        except StepError as exc:  # the status matters more than its wording
            log.warning("no release summary for the description: %s", exc.summary)
    for failure in failures:
        log.error("failed node %s (%s): %s", failure.display_name, failure.template_name, failure.message)
    return _send(repo, sha, state, final_description(workflow_status, failures, summary), installation_id, app_id)


__all__ = [
    "PERMISSIONS",
    "StatusResult",
    "check_target",
    "report_final",
    "report_pending",
    "set_commit_status",
]
