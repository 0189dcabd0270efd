"""This project's comment on a pull request: one comment, found by its marker and edited in place."""

import logging
from dataclasses import dataclass
from typing import Any

import requests
from github.Repository import Repository

from steps.github.client import RepoClient
from steps.policy.report import COMMENT_LIMIT
from steps.runtime.errors import ConfigError

log = logging.getLogger(__name__)

PERMISSIONS = {"pull_requests": "write"}
PER_PAGE = 100


@dataclass(frozen=True)
class CommentResult:
    """What happened to the pull request's comment.

    Attributes:
        repo: ``owner/name``.
        pr_number: The pull request.
        action: ``created``, ``updated``, ``unchanged`` or ``recorded``.
        comment_id: GitHub's id of the comment (None when recorded).
        pages: Pages of comments read to find it.
        url: The comment's page.
    """

    repo: str
    pr_number: int
    action: str
    comment_id: int | None = None
    pages: int = 0
    url: str = ""


def is_own_comment(comment: dict[str, Any], marker: str, app_id: int, app_slug: str = "") -> bool:
    """Whether ``comment`` (REST JSON) is this project's: first line ``marker``, made by App ``app_id``.

    The App is recognised by ``performed_via_github_app.id``; where GitHub leaves that empty, by the bot
    login ``<app_slug>[bot]`` when the slug is configured (``github.appSlug``). Anyone else's comment,
    even one that copies the marker, is never ours.
    """
    body = comment.get("body") or ""
    app = comment.get("performed_via_github_app") or {}
    user = comment.get("user") or {}
    if body.split("\n", 1)[0].strip() != marker or user.get("type") != "Bot" or not isinstance(app, dict):
        return False
    if app:
        return app.get("id") == app_id
    return bool(app_slug) and user.get("login") == f"{app_slug}[bot]"


def _next_link(headers: dict[str, Any]) -> str | None:
    raw = next((str(v) for k, v in headers.items() if k.lower() == "link"), "")
    for link in requests.utils.parse_header_links(raw) if raw else []:
        if link.get("rel") == "next":
            return link.get("url")
    return None


def find_own_comment(
    client: RepoClient, pr_number: int, marker: str, app_id: int, app_slug: str = ""
) -> tuple[dict[str, Any] | None, int]:
    """Page through the pull request's comments until this project's comment is found.

    Returns:
        The comment's JSON (or None) and the number of pages read.
    """

    def act(repository: Repository) -> tuple[dict[str, Any] | None, int]:
        url: str | None = f"{repository.url}/issues/{pr_number}/comments"
        params: dict[str, Any] | None = {"per_page": PER_PAGE}
        seen: set[str] = set()
        pages = 0
        while url and url not in seen:
            seen.add(url)
            headers, page = repository.requester.requestJsonAndCheck("GET", url, parameters=params)
            pages += 1
            found = next((c for c in page or [] if is_own_comment(c, marker, app_id, app_slug)), None)
            if found is not None:
                return found, pages
            url, params = _next_link(headers), None
        return None, pages

    return client.call(f"list the comments of pull request #{pr_number}", act)


def upsert_pr_comment(
    client: RepoClient, pr_number: int, body: str, *, marker: str, app_id: int, app_slug: str = ""
) -> CommentResult:
    """Edit this project's comment on the pull request, or create it; skip the edit if nothing changed.

    Calls: one GET per page of comments up to the page holding the comment, then at most one PATCH or
    one POST.

    Args:
        client: A client for the repository with ``pull_requests: write``.
        pr_number: The pull request's number.
        body: The full comment, starting with ``marker`` (at most 65536 characters).
        marker: The hidden first line that identifies the comment.
        app_id: This GitHub App's id; only comments it made are edited.
        app_slug: The App's slug, to recognise its comments should GitHub omit ``performed_via_github_app``.

    Raises:
        ConfigError: bad body, or GitHub refused a request (e.g. the token lacks ``pull_requests: write``).
        InfraError: GitHub did not answer within the retry budget.
    """
    if pr_number <= 0:
        raise ConfigError(f"pull request number must be positive, got {pr_number}")
    if not body.startswith(marker + "\n"):
        raise ConfigError("the comment body must start with its marker line, or the next run cannot find it")
    if len(body) > COMMENT_LIMIT:
        raise ConfigError(f"comment has {len(body):,} characters, GitHub takes {COMMENT_LIMIT:,}; truncate it")
    repo = client.repository
    found, pages = find_own_comment(client, pr_number, marker, app_id, app_slug)
    if found is not None and found.get("body") == body:
        log.info("comment %s on %s#%d unchanged", found["id"], repo, pr_number)
        return CommentResult(repo, pr_number, "unchanged", found["id"], pages, found.get("html_url", ""))

    def write(repository: Repository) -> dict[str, Any]:
        if found is not None:
            _, data = repository.requester.requestJsonAndCheck("PATCH", found["url"], input={"body": body})
        else:
            url = f"{repository.url}/issues/{pr_number}/comments"
            _, data = repository.requester.requestJsonAndCheck("POST", url, input={"body": body})
        return dict(data)

    def made_by_us(repository: Repository) -> dict[str, Any] | None:
        # A create whose answer was lost may have posted the comment: find it by its marker before posting again.
        again, _ = find_own_comment(client, pr_number, marker, app_id, app_slug)
        return again if again is not None and again.get("body") == body else None

    action = "updated" if found is not None else "created"
    what = f"{'edit' if found else 'create'} the comment on pull request #{pr_number}"
    data = client.call(what, write) if found is not None else client.create(what, write, made_by_us)
    log.info("comment %s on %s#%d %s", data.get("id"), repo, pr_number, action)
    return CommentResult(repo, pr_number, action, data.get("id"), pages, data.get("html_url", ""))


__all__ = [
    "PERMISSIONS",
    "CommentResult",
    "find_own_comment",
    "is_own_comment",
    "upsert_pr_comment",
]
