"""Commit order from GitHub's compare API: is one commit ahead of another on its branch."""

from __future__ import annotations

import logging

from github import UnknownObjectException
from github.Repository import Repository

from steps.github.client import RepoClient

log = logging.getLogger(__name__)

PERMISSIONS = {"contents": "read"}  # GET /repos/{owner}/{repo}/compare/{basehead}


def compare_status(client: RepoClient, base: str, head: str) -> str | None:
    """``identical``, ``ahead`` (head descends from base), ``behind`` or ``diverged``; None for an unknown commit.

    https://docs.github.com/rest/commits/commits#compare-two-commits (404 when GitHub does not know a commit,
    e.g. one force-pushed away and collected).
    """

    def status(repo: Repository) -> str | None:
        try:
            return str(repo.compare(base, head).status)
        except UnknownObjectException:
            return None

    return client.call(f"compare {base[:12]}...{head[:12]}", status)


def is_newer(client: RepoClient, current: str, new: str, branch: str | None = None) -> bool:
    """Whether ``new`` should replace ``current`` as the latest commit of a branch or pull request.

    ``ahead``/``identical``: yes; ``behind``: no (an older run finishing last). ``diverged`` (a force push): yes
    when ``new`` is in the history ``branch`` points at now (one more compare), or when no branch is given
    (pull requests: the last run wins, as before). An unknown ``current`` (force-pushed away): yes.
    """
    status = compare_status(client, current, new)
    if status in (None, "ahead", "identical"):
        return True
    if status == "behind":
        return False
    if branch is None:
        log.warning("%s and %s diverged (a force push?); the later registration wins", current[:12], new[:12])
        return True
    return compare_status(client, new, branch) in ("ahead", "identical")


__all__ = ["PERMISSIONS", "compare_status", "is_newer"]
