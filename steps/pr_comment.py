"""The run's summary on the pull request: one comment, edited in place.

Issue comments: https://docs.github.com/en/rest/issues/comments.

``upsert_pr_comment`` finds this project's comment by its hidden marker line, on any page of the pull
request's comments (GitHub pages them with ``Link`` headers,
https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api), and edits it, or
creates it once. Only a comment that starts with the marker *and* was made by this GitHub App is
ever edited: people's and other bots' comments are left alone, whatever they say. A pull request is an
issue, so its comments are issue comments, which GitHub lets a token with ``pull_requests: write`` write
on pull requests (no ``issues`` permission needed).

``report_pr_summary`` is the exit-handler step: it reads the run's validation reports from the
workspace store (``$RELEASE_WORKSPACE``: ``input/release.yaml``, ``reports/<table>.validation.json``,
``summary.json``), then comments on the pull request and/or creates the ``release-data-prep`` check run
with annotations (``steps.check_run``), as the repository's registration asks.
"""

import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

import requests
import yaml
from github.Repository import Repository

from steps.artifact_store import ArtifactStore, open_store
from steps.check_run import PERMISSIONS as CHECK_PERMISSIONS
from steps.check_run import CheckRunResult, check_output, create_check_run
from steps.commit_status import check_target
from steps.errors import ConfigError, InfraError, StepError
from steps.github_app import repo_client
from steps.github_client import RepoClient
from steps.registrations import load_registration
from steps.release_metadata import RELEASE_FILE
from steps.report_policy import (
    COMMENT_LIMIT,
    RunSummary,
    TableOutcome,
    build_annotations,
    check_run_output,
    comment_marker,
    pr_comment_body,
    stopped_stage,
    table_outcome,
)
from steps.settings import GitHubStepSettings, record
from steps.status_policy import final_description, parse_failures
from steps.step import step

log = logging.getLogger(__name__)

PERMISSIONS = {"pull_requests": "write"}
WORKSPACE_ENV = "RELEASE_WORKSPACE"
REPORTS_PREFIX = "reports/"
REPORT_SUFFIX = ".validation.json"
INPUT_PREFIX = "input/"
PUBLISHED_KEY = "summary.json"
MAX_REPORT_BYTES = 16 * 1024 * 1024
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
        return data

    action = "updated" if found is not None else "created"
    data = client.call(f"{'edit' if found else 'create'} the comment on pull request #{pr_number}", write)
    log.info("comment %s on %s#%d %s", data.get("id"), repo, pr_number, action)
    return CommentResult(repo, pr_number, action, data.get("id"), pages, data.get("html_url", ""))


def _release_tables(store: ArtifactStore) -> list[tuple[str, str]] | None:
    """``(name, file)`` of each table in the workspace's release.yaml, or None if it cannot be read."""
    found = store.get(INPUT_PREFIX + RELEASE_FILE)
    if found is None:
        return None
    try:
        document = yaml.safe_load(found[0].decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    tables = document.get("tables") if isinstance(document, dict) else None
    if not isinstance(tables, list):
        return None
    return [
        (t["name"], str(t.get("file") or "")) for t in tables if isinstance(t, dict) and isinstance(t.get("name"), str)
    ]


def _reports(store: ArtifactStore) -> dict[str, TableOutcome]:
    reports: dict[str, TableOutcome] = {}
    for key, size in sorted(store.list_sizes(REPORTS_PREFIX).items()):
        if not key.endswith(REPORT_SUFFIX):
            continue
        if size > MAX_REPORT_BYTES:
            log.warning("skipping report %s: %s bytes is more than a validation report can be", key, size)
            continue
        found = store.get(key)
        if found is None:
            continue
        try:
            outcome = table_outcome(json.loads(found[0]), store.url_for(key))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            log.warning("skipping report %s: %s", key, exc)
            continue
        reports[outcome.table] = outcome
    return reports


def read_run(
    store: ArtifactStore,
    *,
    repo: str,
    sha: str,
    workflow_status: str = "",
    workflow_failures: str = "",
    target_url: str = "",
    data_path: str = "",
    web_url: str = "",
) -> RunSummary:
    """Read what a run left in its workspace store into a :class:`RunSummary`.

    Tables are ordered as in release.yaml (reports of tables it does not list come last); tables it lists
    without a report are ``missing``. When the run failed, the stage it stopped in is read from what is
    there, and the cause (the failed step and its message) from ``workflow_failures``.

    Raises:
        InfraError: the store did not answer.
    """
    reports = _reports(store)
    listed = _release_tables(store)
    order = [name for name, _ in listed or []]
    tables = [reports[n] for n in order if n in reports] + [r for n, r in reports.items() if n not in order]
    files = dict(listed or [])
    tables = [t if t.file or not files.get(t.table) else _with_file(t, files[t.table]) for t in tables]
    missing = tuple(n for n in order if n not in reports)
    stage = stopped_stage(
        workflow_status,
        has_input=bool(store.list_sizes(INPUT_PREFIX)),
        reports=tables,
        missing=missing,
        published=store.head(PUBLISHED_KEY) is not None,
    )
    failed = parse_failures(workflow_failures) if workflow_status in ("Failed", "Error") else []
    cause = final_description(workflow_status, failed) if failed else ""
    return RunSummary(
        repo=repo,
        sha=sha,
        workflow_status=workflow_status,
        tables=tuple(tables),
        missing=missing,
        stopped_at=stage,
        cause=cause,
        target_url=target_url,
        reports_url=store.url_for(REPORTS_PREFIX) if reports else "",
        data_path=data_path,
        web_url=web_url,
    )


def _with_file(table: TableOutcome, file: str) -> TableOutcome:
    return TableOutcome(**{**asdict(table), "file": file})


def _workspace() -> ArtifactStore:
    url = os.environ.get(WORKSPACE_ENV, "").strip()
    if not url:
        raise ConfigError(
            f"${WORKSPACE_ENV} is not set; the WorkflowTemplate sets it from the s3 section of hera_config"
        )
    return open_store(url)


def _pr_number(event: str, pr_number: str) -> int:
    text = str(pr_number).strip()
    if not text.isdigit() or int(text) <= 0:
        raise ConfigError(f"{event} run has pr-number {text[:20]!r}; pass the pull request number (e.g. 42)")
    return int(text)


def _comment(run: RunSummary, number: int, ids: tuple[str, str], settings: GitHubStepSettings) -> CommentResult:
    marker = comment_marker(settings.status_context)
    body = pr_comment_body(run, context=settings.status_context)
    if settings.record_file:
        record(settings.record_file, "pr_comment", repo=run.repo, pr_number=number, marker=marker, body=body)
        return CommentResult(run.repo, number, "recorded")
    installation_id, app_id = ids
    client = repo_client(run.repo, PERMISSIONS, installation_id=installation_id, app_id=app_id, settings=settings)
    return upsert_pr_comment(client, number, body, marker=marker, app_id=int(app_id), app_slug=settings.app_slug)


def _check_run(run: RunSummary, ids: tuple[str, str], settings: GitHubStepSettings) -> CheckRunResult:
    output = check_run_output(run, context=settings.status_context)
    annotations = build_annotations(run.tables, run.data_path)
    name = settings.status_context
    if settings.record_file:
        title, summary = check_output(output["title"], output["summary"])
        record(
            settings.record_file,
            "check_run",
            repo=run.repo,
            sha=run.sha,
            name=name,
            conclusion=run.conclusion,
            title=title,
            summary=summary,
            details_url=settings.target_url,
            annotations=annotations,
        )
        return CheckRunResult(run.repo, run.sha, name, run.conclusion, len(annotations), 0)
    installation_id, app_id = ids
    client = repo_client(run.repo, CHECK_PERMISSIONS, installation_id=installation_id, app_id=app_id, settings=settings)
    return create_check_run(
        client,
        run.sha,
        name=name,
        conclusion=run.conclusion,
        title=output["title"],
        summary=output["summary"],
        annotations=annotations,
        details_url=settings.target_url,
    )


@step
def report_pr_summary(
    repo: str,
    sha: str,
    event: str,
    pr_number: str = "",
    workflow_status: str = "",
    installation_id: str = "",
    app_id: str = "",
    workflow_failures: str = "",
) -> dict:
    """Step (exit handler): summarise the run on the pull request and/or in a check run.

    What is sent follows the repository's registration: ``prComment`` comments on pull requests
    (``event`` ``pull_request``), ``checkRun`` creates a check run on ``sha`` for every event. A run that
    stopped before validating still gets a comment saying where it stopped. With ``GITHUB_RECORD_FILE``
    set nothing is sent; each would-be call is recorded (kinds ``pr_comment`` and ``check_run``).

    Args:
        repo: ``owner/name``.
        sha: Full commit id (the pull request's head for pull requests).
        event: ``push`` or ``pull_request``.
        pr_number: The pull request's number (pull requests only).
        workflow_status: ``{{workflow.status}}``: Succeeded, Failed or Error.
        installation_id: The installation (the registration's, or looked up, when empty).
        app_id: The App id (the registration's, or ``$GITHUB_APP_ID``, when empty).
        workflow_failures: ``{{workflow.failures}}`` as Argo hands it over, to name the failed step.

    Returns:
        ``{"state", "tables", "failures", "comment", "check_run"}``; ``comment``/``check_run`` are None
        when not sent.

    Raises:
        ConfigError: bad arguments, unregistered repository, or GitHub refused a request.
        InfraError: GitHub or the workspace store did not answer (both actions are tried first).
    """
    settings = GitHubStepSettings.from_env()
    repo, sha = check_target(repo, sha)
    if workflow_status not in ("", "Succeeded", "Failed", "Error"):
        raise ConfigError(f"workflow status {workflow_status!r} is not Succeeded, Failed or Error")
    registration = load_registration(repo)
    want_comment = event == "pull_request" and registration.pr_comment
    number = _pr_number(event, pr_number) if want_comment else 0
    result: dict[str, Any] = {"comment": None, "check_run": None}
    if not want_comment and not registration.check_run:
        log.info("%s: neither a comment (%s event) nor a check run is asked for", repo, event)
        return {"state": "", "tables": 0, "failures": 0, **result}
    run = read_run(
        _workspace(),
        repo=repo,
        sha=sha,
        workflow_status=workflow_status,
        workflow_failures=workflow_failures,
        target_url=settings.target_url,
        data_path=registration.data_path,
        web_url=registration.repo_url.rstrip("/").removesuffix(".git"),
    )
    ids = (
        str(installation_id or registration.installation_id or ""),
        str(app_id or registration.app_id or settings.app_id or "").strip(),
    )
    if not settings.record_file and not ids[1].isdigit():
        raise ConfigError("no GitHub App id: pass app-id or set GITHUB_APP_ID (github.appId in hera_config.yaml)")
    errors: list[StepError] = []
    if want_comment:
        try:
            result["comment"] = asdict(_comment(run, number, ids, settings))
        except StepError as exc:
            errors.append(exc)
    if registration.check_run:
        try:
            result["check_run"] = asdict(_check_run(run, ids, settings))
        except StepError as exc:
            errors.append(exc)
    if errors:
        retryable = [e for e in errors if isinstance(e, InfraError)]
        raise (retryable or errors)[0]
    failures = sum(t.failure_count for t in run.tables)
    return {"state": run.state, "tables": len(run.tables), "failures": failures, **result}


__all__ = [
    "PERMISSIONS",
    "CommentResult",
    "find_own_comment",
    "is_own_comment",
    "read_run",
    "report_pr_summary",
    "upsert_pr_comment",
]
