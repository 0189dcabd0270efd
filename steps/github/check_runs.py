"""A check run with annotations on the failing lines (https://docs.github.com/en/rest/checks/runs)."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from github import GithubObject
from github.Repository import Repository

from steps.github.client import LostAnswer, RepoClient
from steps.github.statuses import check_target
from steps.policy.report import CHECK_SUMMARY_LIMIT, CHECK_TITLE_LIMIT, annotation_batches
from steps.runtime.errors import ConfigError, Unconfirmed

log = logging.getLogger(__name__)

PERMISSIONS = {"checks": "write"}
CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out")


@dataclass(frozen=True)
class CheckRunResult:
    """What was (or would have been) sent.

    Attributes:
        repo: ``owner/name``.
        sha: The commit the check run is on.
        name: The check run's name (what branch protection can require).
        conclusion: success, failure, ...
        annotations: Annotations sent.
        requests: Requests made (1 create + 1 update per further 50 annotations); 0 when recorded.
        check_run_id: GitHub's id of the check run, None when recorded.
        url: The check run's page, ``""`` when recorded.
    """

    repo: str
    sha: str
    name: str
    conclusion: str
    annotations: int
    requests: int
    check_run_id: int | None = None
    url: str = ""


def check_output(title: str, summary: str) -> tuple[str, str]:
    """Validate a check run's output title and summary against GitHub's limits.

    Raises:
        ConfigError: empty title, or a summary over 65535 characters (the policy must truncate it).
    """
    if not title.strip() or len(title) > CHECK_TITLE_LIMIT:
        raise ConfigError(f"check run title must have 1 to {CHECK_TITLE_LIMIT} characters, got {len(title)}")
    if len(summary) > CHECK_SUMMARY_LIMIT:
        raise ConfigError(
            f"check run summary has {len(summary):,} characters, GitHub takes {CHECK_SUMMARY_LIMIT:,}; truncate it"
        )
    return title, summary


def create_check_run(
    client: RepoClient,
    sha: str,
    *,
    name: str,
    conclusion: str,
    title: str,
    summary: str,
    annotations: Sequence[dict[str, Any]] = (),
    details_url: str = "",
) -> CheckRunResult:
    """Create a completed check run on ``sha`` and attach ``annotations`` 50 per request.

    Args:
        client: A client for the repository with ``checks: write``.
        sha: Full commit id.
        name: The check run's name, e.g. ``release-data-prep``.
        conclusion: One of :data:`CONCLUSIONS`.
        title: Output title (at most 255 characters).
        summary: Output summary in markdown (at most 65535 characters).
        annotations: GitHub annotation objects (path, start_line, end_line, annotation_level, message, ...).
        details_url: Link to the run (the Argo UI).

    Returns:
        The result; ``requests`` is ``1 + ceil((len(annotations) - 50) / 50)`` for more than 50 annotations.

    Raises:
        ConfigError: bad repo, sha, conclusion or output, or GitHub refused a request.
        InfraError: GitHub did not answer within the retry budget.
    """
    repo, sha = check_target(client.repository, sha)
    if conclusion not in CONCLUSIONS:
        raise ConfigError(f"check run conclusion {conclusion!r} is not one of {', '.join(CONCLUSIONS)}")
    title, summary = check_output(title, summary)
    batches = annotation_batches(list(annotations))
    first: dict[str, Any] = {"title": title, "summary": summary, **({"annotations": batches[0]} if batches else {})}

    def create(repository: Repository) -> tuple[int, str]:
        run = repository.create_check_run(
            name=name,
            head_sha=sha,
            conclusion=conclusion,
            details_url=details_url or GithubObject.NotSet,
            output=first,
        )
        return run.id, run.html_url

    try:
        run_id, url = client.call("create the check run", create)
    except LostAnswer as exc:
        # GitHub may have created it; the check-run list is not in the API subset this project holds, so it
        # cannot be looked up: end without resending (a missing check run beats a duplicate one).
        raise Unconfirmed(f"{exc.summary}; the check run may exist, not resent", exc.detail) from None
    for number, batch in enumerate(batches[1:], start=2):

        def append(repository: Repository, batch: list[dict[str, Any]] = batch) -> None:
            repository.requester.requestJsonAndCheck(
                "PATCH",
                f"{repository.url}/check-runs/{run_id}",
                input={"output": {"title": title, "summary": summary, "annotations": batch}},
            )

        client.call(f"add annotations (request {number} of {len(batches)}) to check run {run_id}", append)
    log.info(
        "check run %s on %s@%s: %s with %d annotations in %d requests",
        name,
        repo,
        sha[:7],
        conclusion,
        len(annotations),
        max(1, len(batches)),
    )
    return CheckRunResult(repo, sha, name, conclusion, len(annotations), max(1, len(batches)), run_id, url)


__all__ = ["CONCLUSIONS", "PERMISSIONS", "CheckRunResult", "check_output", "create_check_run"]
