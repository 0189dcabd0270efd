"""Steps that deploy: plan the environments of an event, gate each deployment on Argo CD, retire previews."""

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from steps.argocd.client import ArgoCDClient, OperationRunning
from steps.argocd.settings import ArgoCDSettings, app_ui_url
from steps.argocd.watch import Outcome
from steps.github.compare import PERMISSIONS as COMPARE_PERMISSIONS
from steps.github.compare import compare_status
from steps.github.deployments import GitHubDeployments, RecordedDeployments, deployments_for, required_contexts
from steps.github.statuses import check_target
from steps.policy.deploy import (
    DEPLOYMENT_STATE,
    after_gate,
    in_progress_description,
    is_preview,
    order_by_after,
    outcome_description,
    plan_item,
    preview_environment,
    preview_item,
    short,
)
from steps.policy.status import clip
from steps.runtime.errors import ConfigError, DataError, InfraError, StepError, TimedOut
from steps.runtime.metrics import seconds_since, write_metric
from steps.runtime.registrations import RepoRegistration, load_registration
from steps.runtime.settings import RETRIES_ENV, GitHubStepSettings
from steps.runtime.step import step
from steps.store.workspace import read_deploy_outcome, write_deploy_outcome

log = logging.getLogger(__name__)

# contents: read for GitHub's compare (is the revision Argo CD is at newer than the sha?).
PERMISSIONS = {"deployments": "write", **COMPARE_PERMISSIONS}
REFRESH_ENV = "ARGOCD_REFRESH"
RETIRE_LOOKBACK = 5
PROMOTE_WAIT_SECONDS = 60.0  # for another operation on the app (a manual sync) to finish before promoting


def _api(
    repo: str, registration: RepoRegistration, installation_id: int | None, app_id: int | None
) -> GitHubDeployments | RecordedDeployments:
    return deployments_for(
        repo,
        PERMISSIONS,
        installation_id=installation_id or registration.installation_id,
        app_id=app_id or registration.app_id,
    )


def _check_environment(registration: RepoRegistration, repo: str, environment: str, after: str) -> None:
    names = [e.name for e in registration.environments]
    if is_preview(environment):
        if not registration.preview.enabled:
            raise ConfigError(f"{environment}: previews are not enabled for {repo}; set preview.enabled: true")
    elif environment not in names:
        raise ConfigError(
            f"environment {environment!r} is not registered for {repo} (known: {', '.join(names) or 'none'}); "
            "add it to environments in the registration"
        )
    if after and after not in names:
        raise ConfigError(f"environment {environment!r} comes after unknown environment {after!r} in {repo}")


def _check_after(api: GitHubDeployments | RecordedDeployments, sha: str, environment: str, after: str) -> bool:
    """True when ``after`` succeeded for ``sha``; False when it was superseded (so is this one); else raises.

    This run's own record of ``after`` (the run workspace, written by its deploy step) answers without GitHub;
    without one (another run deployed it, or no workspace), GitHub's deployment statuses do.
    """
    recorded = read_deploy_outcome(after)
    if recorded is not None and recorded.get("sha") == sha and recorded.get("outcome") in ("deployed", "superseded"):
        return bool(recorded["outcome"] == "deployed")
    found = api.find(sha, after)
    states = api.states(found) if found is not None else []
    verdict = after_gate(states) if found is not None else "failed"
    if verdict == "succeeded":
        return True
    if verdict == "superseded":
        return False
    latest = states[0] if states else "no deployment"
    if verdict == "running":
        raise InfraError(f"{after} is still deploying {short(sha)} ({latest}); {environment} waits for it")
    raise DataError(f"{after} did not succeed for {short(sha)} ({latest}); not deploying {environment}")


def _retire_previous(api: GitHubDeployments | RecordedDeployments, environment: str, deployment_id: int) -> int | None:
    """Mark the previous ``success`` of a production or transient environment ``inactive``; return its id.

    GitHub's ``auto_inactive`` skips production and transient environments
    (https://docs.github.com/rest/deployments/statuses#create-a-deployment-status), so their old deployments
    would stay ``success`` beside the new one. Newest first, stop at the first ``success`` (retired) or
    ``inactive`` (older ones were retired by the run that made it); at most ``RETIRE_LOOKBACK`` look-ups.
    """
    for older in api.recent_ids(environment, RETIRE_LOOKBACK + 1):
        if older >= deployment_id:
            continue
        state = api.latest_state(older)
        if state == "success":
            api.set_status(older, "inactive", f"Replaced by deployment {deployment_id}")
            return older
        if state == "inactive":
            return None
    return None


@dataclass(frozen=True)
class DeployResult:
    """What ``deploy_environment`` did."""

    repo: str
    sha: str
    environment: str
    deployment_id: int
    reused: bool
    state: str
    description: str
    outcome: str
    reason: str
    log_url: str
    environment_url: str


@step
def plan_deployments(repo: str, event: str, ref: str, pr_number: int | None = None) -> list[dict[str, str]]:
    """Step: the environments this event deploys to, as ``withParam`` items (all values strings).

    A push to the default branch deploys every environment whose ``branch`` is that branch, each one with
    ``after: X`` after X; a pull request deploys its preview ``preview/pr-N`` when previews are enabled;
    anything else deploys nothing.

    Raises:
        ConfigError: the repository is not registered, a bad PR number, or an ``after`` cycle.
    """
    registration = load_registration(repo)
    branch = registration.default_branch
    if event == "push" and ref == f"refs/heads/{branch}":
        try:
            # Only environments backed by an Argo CD Application: without one there is nothing to gate on, and
            # a deployment `success` "without a health check" would be a fake (no Application, no record).
            ordered = order_by_after([e for e in registration.environments if e.branch == branch and e.argocd_app])
        except ValueError as exc:
            raise ConfigError(f"{repo}: {exc}") from None
        items = [plan_item(env) for env in ordered]
    elif event == "pull_request" and registration.preview.enabled:
        if pr_number is None or pr_number <= 0:
            raise ConfigError(f"pull_request run without a PR number (pr-number={pr_number!r})")
        items = [preview_item(registration.preview, pr_number)]
    else:
        items = []
    log.info("%s %s %s: deploying to %s", repo, event, ref, [i["environment"] for i in items] or "nothing")
    return items


def _promote(argocd: ArgoCDSettings, app: str, sha: str, project: str | None) -> None:
    """Ask Argo CD to sync ``app`` to ``sha``, waiting (up to ``PROMOTE_WAIT_SECONDS``) for a running operation."""
    client = ArgoCDClient(argocd)
    deadline = time.monotonic() + PROMOTE_WAIT_SECONDS
    while True:
        try:
            client.sync(app, sha, project=project)
            log.info("asked Argo CD to sync %s to %s (promotion)", app, short(sha))
            return
        except OperationRunning as exc:
            if time.monotonic() + argocd.poll_seconds > deadline:
                log.warning("%s; waiting for Argo CD without a sync of our own", exc.summary)
                return
            time.sleep(argocd.poll_seconds)


def _newer_than(api: GitHubDeployments | RecordedDeployments, sha: str) -> Callable[[str], bool] | None:
    """Whether a revision descends from ``sha`` (GitHub's compare ``ahead``); None in recorded (local) runs."""
    if not isinstance(api, GitHubDeployments):
        return None
    client = api.client
    return lambda revision: compare_status(client, sha, revision) == "ahead"


def _wait(
    argocd: ArgoCDSettings,
    app: str,
    sha: str,
    project: str | None,
    timeout: float,
    preview: bool,
    is_newer: Callable[[str], bool] | None,
) -> Outcome:
    refresh = os.environ.get(REFRESH_ENV, "true").strip().lower() != "false"
    return ArgoCDClient(argocd).wait_for_revision(
        app,
        sha,
        stability_seconds=argocd.stability_seconds,
        timeout_seconds=timeout,
        wait_for_app=preview,
        refresh=refresh,
        project=project,
        is_newer=is_newer,
    )


@step
def deploy_environment(
    repo: str,
    sha: str,
    environment: str,
    argocd_app: str = "",
    url: str = "",
    production: bool = False,
    transient: bool = False,
    after: str = "",
    installation_id: int | None = None,
    app_id: int | None = None,
    workflow_name: str = "",
    run_created: str = "",
) -> dict[str, Any]:
    """Step: create (or on a retry reuse) the GitHub deployment of ``sha`` and report Argo CD's verdict on it.

    Args:
        repo: ``owner/name``.
        sha: Full commit id.
        environment: A registered environment or ``preview/pr-N``.
        argocd_app: The Argo CD Application that gates the deployment (required).
        url: The environment's URL (``environment_url``).
        production: A production environment.
        transient: A preview, removed when its pull request closes.
        after: An environment whose deployment of ``sha`` must have succeeded first.
        installation_id: The registration's installation id (from the registration when empty).
        app_id: The App id (registration, then ``$GITHUB_APP_ID``, when empty).
        workflow_name: The Argo workflow, named in the deployment's payload.
        run_created: ``{{workflow.creationTimestamp}}`` (the push reached the project then): the time to
            ``success`` is ``release_deployment_lead_time_seconds``.

    Raises:
        DataError: Argo CD reports the commit degraded, or ``after`` did not succeed.
        InfraError: Argo CD did not settle in time, or ``after`` is still deploying.
        ConfigError: unknown environment, bad settings, missing app or token refused.
    """
    repo, sha = check_target(repo, sha)
    registration = load_registration(repo)
    _check_environment(registration, repo, environment, after)
    contexts = required_contexts()
    if not argocd_app:
        raise ConfigError(
            f"{environment} of {repo} has no argocdApp: nothing to gate a deployment on; set argocdApp on the "
            "environment (plan-deployments never plans one without it)"
        )
    argocd = ArgoCDSettings.from_env()
    github = GitHubStepSettings.from_env()
    api = _api(repo, registration, installation_id, app_id)
    if after and not _check_after(api, sha, environment, after):
        # Not deployed and not a failure: no deployment record for a rollout that will never happen.
        text = clip(f"Superseded: {after} moved on to a newer commit; {short(sha)} is not promoted to {environment}")
        log.info("%s %s@%s: %s", environment, repo, short(sha), text)
        write_deploy_outcome(environment, {"environment": environment, "outcome": "superseded", "sha": sha})
        return asdict(DeployResult(repo, sha, environment, 0, False, "", text, "superseded", text, "", url))

    first_attempt = os.environ.get(RETRIES_ENV, "").strip() == "0"
    found = None if first_attempt else api.find_with_age(sha, environment)
    deployment_id, age = found if found else (None, 0.0)
    reused = deployment_id is not None
    if deployment_id is None:
        payload = {"workflow": workflow_name, "argo_ui": github.target_url}
        description = clip(f"{short(sha)} to {environment}" + (f" by {workflow_name}" if workflow_name else ""))
        deployment_id = api.create(
            sha,
            environment,
            production=production,
            transient=transient,
            payload=payload,
            required_contexts=contexts,
            description=description,
        )
    log.info("%s deployment %s of %s@%s", "reusing" if reused else "created", deployment_id, repo, short(sha))

    log_url = app_ui_url(argocd_app, ui_url=argocd.ui_url or argocd.server_url, namespace=argocd.namespace)

    def report(state: str, text: str) -> str:
        text = clip(text)
        api.set_status(
            deployment_id,
            state,
            text,
            log_url=log_url,
            environment_url=url,
            auto_inactive=True if state == "success" else None,
        )
        return text

    def result(state: str, text: str, outcome: str, reason: str) -> dict[str, Any]:
        return asdict(
            DeployResult(repo, sha, environment, deployment_id, reused, state, text, outcome, reason, log_url, url)
        )

    try:
        report("in_progress", in_progress_description(argocd_app, sha))
        project = registration.argocd.project or argocd.project or None
        if after:  # a promotion: this Application does not auto-sync; sync it to the commit now
            _promote(argocd, argocd_app, sha, project)
        # A retried attempt waits only for what is left of the first attempt's budget, so the worst case of
        # the step is one timeout plus the retries' backoff (checked against the workflow deadline at load).
        budget = max(argocd.timeout_seconds - age, 0.0)
        outcome = _wait(argocd, argocd_app, sha, project, budget, transient, _newer_than(api, sha))
    except StepError as exc:
        try:
            report("error" if exc.kind == "error" else "failure", exc.summary)
        except StepError as also:
            log.error("could not mark deployment %s as failed: %s", deployment_id, also.detail)
        raise
    state = DEPLOYMENT_STATE[outcome.kind]
    text = report(state, outcome_description(outcome.kind, argocd_app, sha, outcome.reason))
    write_metric("environment-class", "preview" if transient else environment)  # never preview/pr-N: cardinality
    if state == "success" and (lead := seconds_since(run_created)) is not None:
        write_metric("lead-time-seconds", lead)
    record = {"environment": environment, "outcome": outcome.kind, "sha": sha, "revision": outcome.revision}
    write_deploy_outcome(environment, record)
    if state == "success" and (production or transient):
        try:
            _retire_previous(api, environment, deployment_id)
        except StepError as exc:  # this deployment's success stands; the old one is retired next time
            log.warning("could not retire the previous %s deployment: %s", environment, exc.summary)
    log.info(
        "%s %s@%s: %s via %s in %.1f s (%s)",
        environment,
        repo,
        short(sha),
        outcome.kind,
        outcome.via,
        outcome.elapsed_seconds,
        outcome.reason,
    )
    if outcome.kind == "degraded":
        raise DataError(f"{environment}: {text}", detail=outcome.reason)
    if outcome.kind == "timed_out":  # final: a retry would hold the mutex for another full wait
        raise TimedOut(f"{environment}: {text}", detail=outcome.reason)
    return result(state, text, outcome.kind, outcome.reason)


@step
def deactivate_preview(
    repo: str, pr_number: int, installation_id: int | None = None, app_id: int | None = None
) -> dict[str, Any]:
    """Step (PR closed): mark every deployment of ``preview/pr-N`` inactive, and delete it if registered so.

    Raises:
        ConfigError: bad repository or PR number, or the repository is not registered.
    """
    if pr_number <= 0:
        raise ConfigError(f"pr-number {pr_number!r} is not a pull request number")
    registration = load_registration(repo)
    environment = preview_environment(pr_number)
    api = _api(repo, registration, installation_id, app_id)
    ids = api.ids(environment)
    delete = registration.preview.delete_on_close
    for deployment_id in ids:
        api.set_status(deployment_id, "inactive", f"Pull request #{pr_number} closed; preview retired")
        if delete:
            api.delete(deployment_id)
    log.info("%s %s: %d deployments inactive%s", repo, environment, len(ids), ", deleted" if delete else "")
    return {"repo": repo, "environment": environment, "deactivated": len(ids), "deleted": len(ids) if delete else 0}


__all__ = ["DeployResult", "deactivate_preview", "deploy_environment", "plan_deployments"]
