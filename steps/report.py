"""Steps that report a run to GitHub: the commit status when it starts and ends, and the pull-request summary."""

import logging
from dataclasses import asdict
from typing import Any

from steps.github.app import repo_client
from steps.github.check_runs import PERMISSIONS as CHECK_PERMISSIONS
from steps.github.check_runs import CheckRunResult, check_output, create_check_run
from steps.github.comments import PERMISSIONS as COMMENT_PERMISSIONS
from steps.github.comments import CommentResult, upsert_pr_comment
from steps.github.deployments import deployments_for
from steps.github.statuses import check_target, post_status
from steps.policy.deploy import superseded_note
from steps.policy.report import RunSummary, build_annotations, check_run_output, comment_marker, pr_comment_body
from steps.policy.status import final_description, final_state, parse_failures, pending_description
from steps.runtime.errors import ConfigError, InfraError, StepError
from steps.runtime.metrics import seconds_since, write_metric
from steps.runtime.registrations import load_registration
from steps.runtime.settings import GitHubStepSettings, record
from steps.runtime.step import step
from steps.store.workspace import read_deploy_outcomes, read_run, read_summary, summary_text, workspace

log = logging.getLogger(__name__)


@step
def report_pending(
    repo: str, sha: str, installation_id: int | None = None, app_id: int | None = None, workflow_name: str = ""
) -> dict[str, Any]:
    """Step: mark the commit ``pending`` as soon as the run starts."""
    return post_status(repo, sha, "pending", pending_description(workflow_name), installation_id, app_id)


@step
def report_final(
    repo: str,
    sha: str,
    workflow_status: str,
    workflow_failures: str = "",
    installation_id: int | None = None,
    app_id: int | None = None,
    summary: str = "",
    workflow_name: str = "",
    run_created: str = "",
) -> dict[str, Any]:
    """Step (exit handler): post the final state from ``{{workflow.status}}`` and ``{{workflow.failures}}``.

    A run that did not succeed may have left deployments ``in_progress`` (a deploy pod killed by the deadline
    or a node loss never reports): after the commit status, this run's unfinished deployments end ``error``.

    Args:
        repo: ``owner/name``.
        sha: Full commit id.
        workflow_status: Succeeded, Failed or Error.
        workflow_failures: ``{{workflow.failures}}`` as Argo hands it over (Go-quoted JSON or ``null``).
        installation_id: The registration's installation id (looked up when empty).
        app_id: The App id (``$GITHUB_APP_ID`` when empty).
        summary: Optional success text (e.g. tables and rows released).
        workflow_name: ``{{workflow.name}}``, the ``payload.workflow`` of this run's deployments.
        run_created: ``{{workflow.creationTimestamp}}``: the ``pending`` status went out as the run started, so
            the time since is ``release_pending_to_final_seconds``.
    """
    failures = parse_failures(workflow_failures)
    state = final_state(workflow_status, failures)
    if state == "success" and not summary:
        try:
            note = superseded_note(read_deploy_outcomes())
            summary = "; ".join(t for t in (summary_text(read_summary()), note) if t)
        except Exception as exc:  # noqa: BLE001 - the status matters more than its wording, whatever S3 did
            log.warning("no release summary for the description: %s", getattr(exc, "summary", type(exc).__name__))
    for failure in failures:
        log.error("failed node %s (%s): %s", failure.display_name, failure.template_name, failure.message)
    description = final_description(workflow_status, failures, summary)
    posted = post_status(repo, sha, state, description, installation_id, app_id)
    write_metric("final-state", state)
    if (elapsed := seconds_since(run_created)) is not None:
        write_metric("pending-to-final-seconds", elapsed)
    if workflow_status != "Succeeded" and workflow_name:
        posted["deployments_ended"] = _end_unfinished(repo, sha, workflow_name, installation_id, app_id)
    return posted


def _end_unfinished(repo: str, sha: str, workflow: str, installation_id: int | None, app_id: int | None) -> list[int]:
    """Turn this run's queued or in-progress deployments ``error``; best effort (the status is already out)."""
    try:
        api = deployments_for(repo, {"deployments": "write"}, installation_id=installation_id, app_id=app_id)
        ended = []
        for deployment_id, environment in api.unfinished_of_run(sha, workflow):
            api.set_status(deployment_id, "error", f"{workflow} ended before {environment} reported; see the run")
            ended.append(deployment_id)
        if ended:
            log.warning("%s: ended %d unfinished deployment(s) of %s as error", repo, len(ended), workflow)
        return ended
    except StepError as exc:
        log.error("could not end the unfinished deployments of %s: %s", workflow, exc.summary)
        return []


def _pr_number(event: str, pr_number: int | None) -> int:
    if pr_number is None or pr_number <= 0:
        raise ConfigError(f"{event} run has pr-number {pr_number!r}; pass the pull request number (e.g. 42)")
    return pr_number


def _comment(run: RunSummary, number: int, ids: tuple[int | None, int], settings: GitHubStepSettings) -> CommentResult:
    marker = comment_marker(settings.status_context)
    body = pr_comment_body(run, context=settings.status_context)
    if settings.record_file:
        record(settings.record_file, "pr_comment", repo=run.repo, pr_number=number, marker=marker, body=body)
        return CommentResult(run.repo, number, "recorded")
    installation_id, app_id = ids
    client = repo_client(
        run.repo, COMMENT_PERMISSIONS, installation_id=installation_id, app_id=app_id, settings=settings
    )
    return upsert_pr_comment(client, number, body, marker=marker, app_id=app_id, app_slug=settings.app_slug)


def _check_run(run: RunSummary, ids: tuple[int | None, int], settings: GitHubStepSettings) -> CheckRunResult:
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
    pr_number: int | None = None,
    workflow_status: str = "",
    installation_id: int | None = None,
    app_id: int | None = None,
    workflow_failures: str = "",
) -> dict[str, Any]:
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
        workspace(),
        repo=repo,
        sha=sha,
        workflow_status=workflow_status,
        workflow_failures=workflow_failures,
        target_url=settings.target_url,
        data_path=registration.data_path,
        web_url=registration.repo_url.rstrip("/").removesuffix(".git"),
    )
    app = app_id or registration.app_id or (int(settings.app_id) if settings.app_id.strip().isdigit() else None)
    if app is None and not settings.record_file:
        raise ConfigError("no GitHub App id: pass app-id or set GITHUB_APP_ID (github.appId in hera_config.yaml)")
    ids = (installation_id or registration.installation_id, app or 0)
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


__all__ = ["report_final", "report_pending", "report_pr_summary"]
