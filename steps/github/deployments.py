"""GitHub Deployments and their statuses for one repository, or their record in a local run."""

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from github import GithubException
from github.Repository import Repository

from steps.github.app import repo_client
from steps.github.client import RepoClient
from steps.policy.deploy import short
from steps.policy.status import clip
from steps.runtime.errors import ConfigError, DataError
from steps.runtime.settings import GitHubStepSettings, record

log = logging.getLogger(__name__)

TASK = "deploy"
UNFINISHED = ("queued", "pending", "in_progress")
REQUIRED_CONTEXTS_ENV = "GITHUB_REQUIRED_CONTEXTS"


class GitHubDeployments:
    """Deployments of one repository through a ``RepoClient`` (needs ``deployments: write``).

    Args:
        client: The repository's client.
    """

    def __init__(self, client: RepoClient) -> None:
        self.client = client

    def _request(self, action: str, method: str, path: str, **kw: Any) -> Any:
        act = self._act(action, method, path, **kw)
        # A deployment status sent twice is harmless: a lost POST is sent again (creates go through create()).
        return self.client.create(action, act) if method == "POST" else self.client.call(action, act)

    def _act(self, action: str, method: str, path: str, **kw: Any) -> Callable[[Repository], Any]:
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

        return act

    def find(self, sha: str, environment: str) -> int | None:
        """The id of the newest ``deploy`` deployment of ``sha`` to ``environment``, or None."""
        found = self.find_with_age(sha, environment)
        return found[0] if found else None

    def find_with_age(self, sha: str, environment: str) -> tuple[int, float] | None:
        """Like ``find``, with the deployment's age in seconds (from GitHub's ``created_at``)."""
        found = self._request(
            f"find the {environment} deployment of {short(sha)}",
            "GET",
            "/deployments",
            parameters={"sha": sha, "environment": environment, "task": TASK, "per_page": 1},
        )
        if not found:
            return None
        created = dt.datetime.fromisoformat(str(found[0]["created_at"]).replace("Z", "+00:00"))
        return int(found[0]["id"]), max(0.0, (dt.datetime.now(dt.UTC) - created).total_seconds())

    def create(
        self,
        sha: str,
        environment: str,
        *,
        production: bool,
        transient: bool,
        payload: dict[str, Any],
        required_contexts: list[str],
        description: str,
    ) -> int:
        """Create a deployment (``auto_merge: false``, explicit ``required_contexts``); return its id."""
        body = {
            "ref": sha,
            "task": TASK,
            "auto_merge": False,
            "required_contexts": required_contexts,
            "payload": payload,
            "environment": environment,
            "description": description,
            "production_environment": production,
            "transient_environment": transient,
        }
        action = f"create the {environment} deployment of {short(sha)}"
        query = {"sha": sha, "environment": environment, "task": TASK, "per_page": 10}
        lookup = self._act(
            f"find the {environment} deployments of {short(sha)}", "GET", "/deployments", parameters=query
        )

        def made_by_us(repository: Repository) -> dict[str, Any] | None:
            # The payload names this run (workflow), so a lost attempt's deployment is told from other runs'.
            return next((d for d in lookup(repository) if d.get("payload") == payload), None)

        data = self.client.create(action, self._act(action, "POST", "/deployments", input=body), made_by_us)
        return int(data["id"])

    def set_status(
        self,
        deployment_id: int,
        state: str,
        description: str,
        *,
        log_url: str = "",
        environment_url: str = "",
        auto_inactive: bool | None = None,
    ) -> None:
        """Add a status (description clipped to 140 characters at a word boundary)."""
        body: dict[str, Any] = {"state": state, "description": clip(description)}
        if log_url:
            body["log_url"] = log_url
        if environment_url:
            body["environment_url"] = environment_url
        if auto_inactive is not None:
            body["auto_inactive"] = auto_inactive
        self._request(
            f"set deployment {deployment_id} {state}", "POST", f"/deployments/{deployment_id}/statuses", input=body
        )

    def states(self, deployment_id: int) -> list[str]:
        """The states of a deployment's statuses, newest first."""
        found = self._request(
            f"read the statuses of deployment {deployment_id}",
            "GET",
            f"/deployments/{deployment_id}/statuses",
            parameters={"per_page": 100},
        )
        return [str(s["state"]) for s in found]

    def recent_ids(self, environment: str, limit: int) -> list[int]:
        """The ids of the newest ``limit`` ``deploy`` deployments of ``environment``, newest first (one request)."""
        found = self._request(
            f"list the recent {environment} deployments",
            "GET",
            "/deployments",
            parameters={"environment": environment, "task": TASK, "per_page": limit},
        )
        return [int(d["id"]) for d in found]

    def latest_state(self, deployment_id: int) -> str | None:
        """The state of a deployment's newest status, or None without one (one request)."""
        found = self._request(
            f"read the latest status of deployment {deployment_id}",
            "GET",
            f"/deployments/{deployment_id}/statuses",
            parameters={"per_page": 1},
        )
        return str(found[0]["state"]) if found else None

    def unfinished_of_run(self, sha: str, workflow: str) -> list[tuple[int, str]]:
        """``(id, environment)`` of the deployments of ``sha`` made by ``workflow`` still queued or in progress."""
        found = self._request(
            f"find the deployments of {short(sha)} by {workflow}",
            "GET",
            "/deployments",
            parameters={"sha": sha, "task": TASK, "per_page": 100},
        )
        ours = [d for d in found if (d.get("payload") or {}).get("workflow") == workflow]
        return [
            (int(d["id"]), str(d["environment"]))
            for d in ours
            if self.latest_state(int(d["id"])) in (None, *UNFINISHED)
        ]

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
        found = self.find_with_age(sha, environment)
        return found[0] if found else None

    def find_with_age(self, sha: str, environment: str) -> tuple[int, float] | None:
        """Same as ``GitHubDeployments.find_with_age``."""
        found = [e for e in self._live() if e["sha"] == sha and e["environment"] == environment]
        return (int(found[-1]["id"]), max(0.0, time.time() - float(found[-1]["at"]))) if found else None

    def create(
        self,
        sha: str,
        environment: str,
        *,
        production: bool,
        transient: bool,
        payload: dict[str, Any],
        required_contexts: list[str],
        description: str,
    ) -> int:
        """Same as ``GitHubDeployments.create``."""
        new_id = len(self._entries("deployment")) + 1
        record(
            self.path,
            "deployment",
            repo=self.repo,
            id=new_id,
            sha=sha,
            ref=sha,
            task=TASK,
            environment=environment,
            auto_merge=False,
            required_contexts=required_contexts,
            payload=payload,
            description=description,
            production_environment=production,
            transient_environment=transient,
        )
        return new_id

    def set_status(
        self,
        deployment_id: int,
        state: str,
        description: str,
        *,
        log_url: str = "",
        environment_url: str = "",
        auto_inactive: bool | None = None,
    ) -> None:
        """Same as ``GitHubDeployments.set_status``."""
        deployment = next(e for e in self._entries("deployment") if e["id"] == deployment_id)
        record(
            self.path,
            "deployment_status",
            repo=self.repo,
            deployment_id=deployment_id,
            sha=deployment["sha"],
            environment=deployment["environment"],
            state=state,
            description=clip(description),
            log_url=log_url,
            environment_url=environment_url,
            auto_inactive=auto_inactive,
        )

    def states(self, deployment_id: int) -> list[str]:
        """Same as ``GitHubDeployments.states``."""
        return [e["state"] for e in reversed(self._entries("deployment_status")) if e["deployment_id"] == deployment_id]

    def recent_ids(self, environment: str, limit: int) -> list[int]:
        """Same as ``GitHubDeployments.recent_ids``."""
        return self.ids(environment)[:limit]

    def latest_state(self, deployment_id: int) -> str | None:
        """Same as ``GitHubDeployments.latest_state``."""
        states = self.states(deployment_id)
        return states[0] if states else None

    def unfinished_of_run(self, sha: str, workflow: str) -> list[tuple[int, str]]:
        """Same as ``GitHubDeployments.unfinished_of_run``."""
        ours = [e for e in self._live() if e["sha"] == sha and (e.get("payload") or {}).get("workflow") == workflow]
        return [
            (int(e["id"]), e["environment"]) for e in ours if self.latest_state(int(e["id"])) in (None, *UNFINISHED)
        ]

    def ids(self, environment: str) -> list[int]:
        """Same as ``GitHubDeployments.ids``."""
        return [int(e["id"]) for e in reversed(self._live()) if e["environment"] == environment]

    def delete(self, deployment_id: int) -> None:
        """Same as ``GitHubDeployments.delete``."""
        record(self.path, "deployment_delete", repo=self.repo, deployment_id=deployment_id)


def deployments_for(
    repo: str,
    permissions: Mapping[str, str],
    *,
    installation_id: int | None = None,
    app_id: int | None = None,
    settings: GitHubStepSettings | None = None,
) -> GitHubDeployments | RecordedDeployments:
    """A step's deployments of ``repo``: recorded to ``GITHUB_RECORD_FILE`` in local runs, else on GitHub."""
    settings = settings or GitHubStepSettings.from_env()
    if settings.record_file:
        return RecordedDeployments(settings.record_file, repo)
    client = repo_client(repo, permissions, installation_id=installation_id, app_id=app_id, settings=settings)
    return GitHubDeployments(client)


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
        raise ConfigError(f'{REQUIRED_CONTEXTS_ENV} must be a JSON list of strings, e.g. ["ci/build"]')
    return value


__all__ = ["TASK", "GitHubDeployments", "RecordedDeployments", "deployments_for", "required_contexts"]
