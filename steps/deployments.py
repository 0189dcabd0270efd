"""GitHub Deployments gated on Argo CD health at the exact commit, and preview environments per pull request.

Models https://docs.github.com/en/rest/deployments/deployments and
https://docs.github.com/en/rest/deployments/statuses: one deployment per commit and environment
(``task: deploy``, ``auto_merge: false``, explicit ``required_contexts``), whose statuses follow Argo CD
(``steps.argocd`` waits, ``steps.deploy_policy`` decides): ``in_progress`` while Argo CD rolls the commit
out, then ``success`` (with ``auto_inactive``), ``failure`` (degraded), ``error`` (timed out or Argo CD
unusable) or ``inactive`` (superseded by a newer commit: not a failure).

GitHub calls of ``deploy_environment`` on the happy path (4, the token included):

1. ``POST /app/installations/{id}/access_tokens`` - a token for this repository with ``deployments: write``
   only (the installation id comes from the registration, so no lookup);
2. ``POST /repos/{o}/{r}/deployments`` - a new deployment starts ``pending``, so no ``queued`` status is sent;
3. ``POST /repos/{o}/{r}/deployments/{id}/statuses`` - ``in_progress`` with ``log_url`` (the Argo CD app page)
   and ``environment_url``; then Argo CD is watched (no GitHub calls);
4. ``POST /repos/{o}/{r}/deployments/{id}/statuses`` - the final state.

Idempotence: unless ``$STEP_RETRIES`` is ``0`` (the template sets it to Argo's ``{{retries}}``), step 2 is
preceded by ``GET /repos/{o}/{r}/deployments?sha=&environment=&task=deploy&per_page=1`` and the newest match
is reused, so a retried step never creates a second deployment. An ``after`` environment adds a lookup of
that environment's deployment of the commit and its statuses (2 calls) before anything is created.

With ``$GITHUB_RECORD_FILE`` set (the local runner), nothing is sent to GitHub: each call is appended to that
file, and the lookups read it back.
"""

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from github import GithubException
from github.Repository import Repository

from steps.argocd import ArgoCDClient, ArgoCDSettings, Outcome, app_ui_url
from steps.commit_status import check_target
from steps.deploy_policy import (
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
from steps.errors import ConfigError, DataError, InfraError, StepError
from steps.github_app import repo_client
from steps.github_client import RepoClient
from steps.registrations import RepoRegistration, load_registration
from steps.settings import GitHubStepSettings, record
from steps.status_policy import clip
from steps.step import step

log = logging.getLogger(__name__)

PERMISSIONS = {"deployments": "write"}
TASK = "deploy"
RETRIES_ENV = "STEP_RETRIES"
REQUIRED_CONTEXTS_ENV = "GITHUB_REQUIRED_CONTEXTS"
REFRESH_ENV = "ARGOCD_REFRESH"


class GitHubDeployments:
    """Deployments of one repository through a ``RepoClient`` (needs ``deployments: write``).

    Args:
        client: The repository's client.
    """

    def __init__(self, client: RepoClient) -> None:
        self.client = client

    def _request(self, action: str, method: str, path: str, **kw: Any) -> Any:
        def act(repository: Repository) -> Any:
            try:
                _, data = repository.requester.requestJsonAndCheck(method, f"{repository.url}{path}", **kw)
            except GithubException as exc:
                if exc.status == 409:
                    raise DataError(
                        f"GitHub refused to {action}: required status contexts are not all successful",
                        detail=f"{action}: {exc.data}",
                    ) from None
                raise
            return data

        return self.client.call(action, act)

    def find(self, sha: str, environment: str) -> int | None:
        """The id of the newest ``deploy`` deployment of ``sha`` to ``environment``, or None."""
        found = self._request(
            f"find the {environment} deployment of {short(sha)}", "GET", "/deployments",
            parameters={"sha": sha, "environment": environment, "task": TASK, "per_page": 1},
        )
        return int(found[0]["id"]) if found else None

    def create(self, sha: str, environment: str, *, production: bool, transient: bool, payload: dict[str, Any],
               required_contexts: list[str], description: str) -> int:
        """Create a deployment (``auto_merge: false``, explicit ``required_contexts``); return its id."""
        body = {
            "ref": sha, "task": TASK, "auto_merge": False, "required_contexts": required_contexts,
            "payload": payload, "environment": environment, "description": description,
            "production_environment": production, "transient_environment": transient,
        }
        data = self._request(f"create the {environment} deployment of {short(sha)}", "POST", "/deployments",
                             input=body)
        return int(data["id"])

    def set_status(self, deployment_id: int, state: str, description: str, *, log_url: str = "",
                   environment_url: str = "", auto_inactive: bool | None = None) -> None:
        """Add a status (description clipped to 140 characters at a word boundary)."""
        body: dict[str, Any] = {"state": state, "description": clip(description)}
        if log_url:
            body["log_url"] = log_url
        if environment_url:
            body["environment_url"] = environment_url
        if auto_inactive is not None:
            body["auto_inactive"] = auto_inactive
        self._request(f"set deployment {deployment_id} {state}", "POST", f"/deployments/{deployment_id}/statuses",
                      input=body)

    def states(self, deployment_id: int) -> list[str]:
        """The states of a deployment's statuses, newest first."""
        found = self._request(f"read the statuses of deployment {deployment_id}", "GET",
                              f"/deployments/{deployment_id}/statuses", parameters={"per_page": 100})
        return [str(s["state"]) for s in found]

    def ids(self, environment: str) -> list[int]:
        """The ids of every deployment of ``environment``, newest first (all pages)."""

        def act(repository: Repository) -> list[int]:
            return [d.id for d in repository.get_deployments(environment=environment)]

        return self.client.call(f"list the {environment} deployments", act)

    def delete(self, deployment_id: int) -> None:
        """Delete a deployment (GitHub refuses an active one unless it is the environment's only one)."""
        self._request(f"delete deployment {deployment_id}", "DELETE", f"/deployments/{deployment_id}")


class RecordedDeployments:
    """``GitHubDeployments``' operations, same signatures and meaning, on a ``GITHUB_RECORD_FILE`` (JSON lines).

    Args:
        path: The record file (appended to, and read back by the lookups).
        repo: ``owner/name``.
    """

    def __init__(self, path: str, repo: str) -> None:
        self.path, self.repo = path, repo

    def _entries(self, kind: str) -> list[dict[str, Any]]:
        file = Path(self.path)
        if not file.exists():
            return []
        entries = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [e for e in entries if e.get("kind") == kind and e.get("repo") == self.repo]

    def _live(self) -> list[dict[str, Any]]:
        deleted = {e["deployment_id"] for e in self._entries("deployment_delete")}
        return [e for e in self._entries("deployment") if e["id"] not in deleted]

    def find(self, sha: str, environment: str) -> int | None:
        """Same as ``GitHubDeployments.find``."""
        found = [e for e in self._live() if e["sha"] == sha and e["environment"] == environment]
        return int(found[-1]["id"]) if found else None

    def create(self, sha: str, environment: str, *, production: bool, transient: bool, payload: dict[str, Any],
               required_contexts: list[str], description: str) -> int:
        """Same as ``GitHubDeployments.create``."""
        new_id = len(self._entries("deployment")) + 1
        record(self.path, "deployment", repo=self.repo, id=new_id, sha=sha, ref=sha, task=TASK,
               environment=environment, auto_merge=False, required_contexts=required_contexts, payload=payload,
               description=description, production_environment=production, transient_environment=transient)
        return new_id

    def set_status(self, deployment_id: int, state: str, description: str, *, log_url: str = "",
                   environment_url: str = "", auto_inactive: bool | None = None) -> None:
        """Same as ``GitHubDeployments.set_status``."""
        deployment = next(e for e in self._entries("deployment") if e["id"] == deployment_id)
        record(self.path, "deployment_status", repo=self.repo, deployment_id=deployment_id, sha=deployment["sha"],
               environment=deployment["environment"], state=state, description=clip(description), log_url=log_url,
               environment_url=environment_url, auto_inactive=auto_inactive)

    def states(self, deployment_id: int) -> list[str]:
        """Same as ``GitHubDeployments.states``."""
        return [e["state"] for e in reversed(self._entries("deployment_status")) if e["deployment_id"] == deployment_id]

    def ids(self, environment: str) -> list[int]:
        """Same as ``GitHubDeployments.ids``."""
        return [int(e["id"]) for e in reversed(self._live()) if e["environment"] == environment]

    def delete(self, deployment_id: int) -> None:
        """Same as ``GitHubDeployments.delete``."""
        record(self.path, "deployment_delete", repo=self.repo, deployment_id=deployment_id)


def _api(
    repo: str, registration: RepoRegistration, installation_id: str, app_id: str
) -> GitHubDeployments | RecordedDeployments:
    settings = GitHubStepSettings.from_env()
    if settings.record_file:
        return RecordedDeployments(settings.record_file, repo)
    client = repo_client(
        repo,
        PERMISSIONS,
        installation_id=installation_id or registration.installation_id or "",
        app_id=app_id or registration.app_id or "",
        settings=settings,
    )
    return GitHubDeployments(client)


def _flag(name: str, value: str) -> bool:
    text = (value or "false").strip().lower()
    if text not in ("true", "false"):
        raise ConfigError(f"{name}={value[:20]!r} must be 'true' or 'false'")
    return text == "true"


def required_contexts(environ: Mapping[str, str] | None = None) -> list[str]:
    """``$GITHUB_REQUIRED_CONTEXTS``: a JSON list of commit status contexts a deployment requires (default [])."""
    raw = (os.environ if environ is None else environ).get(REQUIRED_CONTEXTS_ENV, "").strip()
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ConfigError(f"{REQUIRED_CONTEXTS_ENV} must be a JSON list of strings, e.g. [\"ci/build\"]")
    return value


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


def _check_after(api: GitHubDeployments | RecordedDeployments, sha: str, environment: str, after: str) -> None:
    found = api.find(sha, after)
    states = api.states(found) if found is not None else []
    verdict = after_gate(states) if found is not None else "failed"
    if verdict == "succeeded":
        return
    latest = states[0] if states else "no deployment"
    if verdict == "running":
        raise InfraError(f"{after} is still deploying {short(sha)} ({latest}); {environment} waits for it")
    raise DataError(f"{after} did not succeed for {short(sha)} ({latest}); not deploying {environment}")


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
def plan_deployments(repo: str, event: str, ref: str, pr_number: str = "") -> list[dict]:
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
            ordered = order_by_after([e for e in registration.environments if e.branch == branch])
        except ValueError as exc:
            raise ConfigError(f"{repo}: {exc}") from None
        items = [plan_item(env) for env in ordered]
    elif event == "pull_request" and registration.preview.enabled:
        if not pr_number.strip().isdigit():
            raise ConfigError(f"pull_request run without a PR number (pr-number={pr_number[:20]!r})")
        items = [preview_item(registration.preview, int(pr_number))]
    else:
        items = []
    log.info("%s %s %s: deploying to %s", repo, event, ref, [i["environment"] for i in items] or "nothing")
    return items


def _wait(argocd: ArgoCDSettings, app: str, sha: str, project: str | None) -> Outcome:
    refresh = os.environ.get(REFRESH_ENV, "true").strip().lower() != "false"
    return ArgoCDClient(argocd).wait_for_revision(
        app,
        sha,
        stability_seconds=argocd.stability_seconds,
        timeout_seconds=argocd.timeout_seconds,
        refresh=refresh,
        project=project,
    )


@step
def deploy_environment(
    repo: str,
    sha: str,
    environment: str,
    argocd_app: str = "",
    url: str = "",
    production: str = "false",
    transient: str = "false",
    after: str = "",
    installation_id: str = "",
    app_id: str = "",
    workflow_name: str = "",
) -> dict:
    """Step: create (or on a retry reuse) the GitHub deployment of ``sha`` and report Argo CD's verdict on it.

    Args:
        repo: ``owner/name``.
        sha: Full commit id.
        environment: A registered environment or ``preview/pr-N``.
        argocd_app: The Argo CD Application; empty reports success at once, with a note.
        url: The environment's URL (``environment_url``).
        production: "true" for a production environment.
        transient: "true" for a preview.
        after: An environment whose deployment of ``sha`` must have succeeded first.
        installation_id: The registration's installation id (from the registration when empty).
        app_id: The App id (registration, then ``$GITHUB_APP_ID``, when empty).
        workflow_name: The Argo workflow, named in the deployment's payload.

    Raises:
        DataError: Argo CD reports the commit degraded, or ``after`` did not succeed.
        InfraError: Argo CD did not settle in time, or ``after`` is still deploying.
        ConfigError: unknown environment, bad settings, missing app or token refused.
    """
    repo, sha = check_target(repo, sha)
    registration = load_registration(repo)
    _check_environment(registration, repo, environment, after)
    is_production, is_transient = _flag("production", production), _flag("transient", transient)
    contexts = required_contexts()
    argocd = ArgoCDSettings.from_env() if argocd_app else None
    github = GitHubStepSettings.from_env()
    api = _api(repo, registration, installation_id, app_id)
    if after:
        _check_after(api, sha, environment, after)

    first_attempt = os.environ.get(RETRIES_ENV, "").strip() == "0"
    deployment_id = None if first_attempt else api.find(sha, environment)
    reused = deployment_id is not None
    if deployment_id is None:
        payload = {"workflow": workflow_name, "argo_ui": github.target_url}
        description = clip(f"{short(sha)} to {environment}" + (f" by {workflow_name}" if workflow_name else ""))
        deployment_id = api.create(sha, environment, production=is_production, transient=is_transient,
                                   payload=payload, required_contexts=contexts, description=description)
    log.info("%s deployment %s of %s@%s", "reusing" if reused else "created", deployment_id, repo, short(sha))

    log_url = github.target_url
    if argocd is not None:
        log_url = app_ui_url(argocd_app, ui_url=argocd.ui_url or argocd.server_url, namespace=argocd.namespace)

    def report(state: str, text: str) -> str:
        text = clip(text)
        api.set_status(deployment_id, state, text, log_url=log_url, environment_url=url,
                       auto_inactive=True if state == "success" else None)
        return text

    def result(state: str, text: str, outcome: str, reason: str) -> dict:
        return asdict(DeployResult(repo, sha, environment, deployment_id, reused, state, text, outcome, reason,
                                   log_url, url))

    if argocd is None:
        text = report("success", f"No Argo CD application for {environment}: marked deployed without a health check")
        return result("success", text, "deployed", "no argocd_app")
    try:
        report("in_progress", in_progress_description(argocd_app, sha))
        project = registration.argocd.project or argocd.project or None
        outcome = _wait(argocd, argocd_app, sha, project)
    except StepError as exc:
        try:
            report("error" if exc.kind == "error" else "failure", exc.summary)
        except StepError as also:
            log.error("could not mark deployment %s as failed: %s", deployment_id, also.detail)
        raise
    state = DEPLOYMENT_STATE[outcome.kind]
    text = report(state, outcome_description(outcome.kind, argocd_app, sha, outcome.reason))
    log.info("%s %s@%s: %s via %s in %.1f s (%s)", environment, repo, short(sha), outcome.kind, outcome.via,
             outcome.elapsed_seconds, outcome.reason)
    if outcome.kind == "degraded":
        raise DataError(f"{environment}: {text}", detail=outcome.reason)
    if outcome.kind == "timed_out":
        raise InfraError(f"{environment}: {text}", detail=outcome.reason)
    return result(state, text, outcome.kind, outcome.reason)


@step
def deactivate_preview(repo: str, pr_number: str, installation_id: str = "", app_id: str = "") -> dict:
    """Step (PR closed): mark every deployment of ``preview/pr-N`` inactive, and delete it if registered so.

    Raises:
        ConfigError: bad repository or PR number, or the repository is not registered.
    """
    if not pr_number.strip().isdigit():
        raise ConfigError(f"pr-number {pr_number[:20]!r} is not a pull request number")
    registration = load_registration(repo)
    environment = preview_environment(int(pr_number))
    api = _api(repo, registration, installation_id, app_id)
    ids = api.ids(environment)
    delete = registration.preview.delete_on_close
    for deployment_id in ids:
        api.set_status(deployment_id, "inactive", f"Pull request #{int(pr_number)} closed; preview retired")
        if delete:
            api.delete(deployment_id)
    log.info("%s %s: %d deployments inactive%s", repo, environment, len(ids), ", deleted" if delete else "")
    return {"repo": repo, "environment": environment, "deactivated": len(ids), "deleted": len(ids) if delete else 0}


__all__ = [
    "PERMISSIONS",
    "RETRIES_ENV",
    "TASK",
    "DeployResult",
    "GitHubDeployments",
    "RecordedDeployments",
    "deactivate_preview",
    "deploy_environment",
    "plan_deployments",
    "required_contexts",
]
