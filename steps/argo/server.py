"""A small client of the Argo Server REST API: submit from a WorkflowTemplate, list and follow runs, lint."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

FINAL_PHASES = ("Succeeded", "Failed", "Error")


class ArgoServerError(Exception):
    """The Argo Server refused or could not be reached; the message says which and what to do."""


@dataclass
class ArgoServer:
    """Where the server is and how to authenticate.

    Args:
        host: Base URL, e.g. ``https://argo-server.argo.svc:2746``.
        namespace: Namespace of the WorkflowTemplate and the runs.
        token: Bearer token (with or without the ``Bearer`` prefix, as ``argo auth token`` prints it).
        verify: TLS verification: True, False or a CA bundle path.
        timeout: Seconds per request.
    """

    host: str
    namespace: str
    token: str = field(default="", repr=False)
    verify: bool | str = True
    timeout: float = 15.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.token:
            token = self.token.strip()
            headers["Authorization"] = token if token.lower().startswith("bearer ") else f"Bearer {token}"
        url = self.host.rstrip("/") + path
        try:
            resp = self.session.request(
                method, url, json=body, params=params, headers=headers, timeout=self.timeout, verify=self.verify
            )
        except requests.ConnectionError:
            raise ArgoServerError(
                f"cannot reach the Argo Server at {self.host}; check argo.host in hera_config.yaml "
                "(or GSM_ARGO_HOST) and that the server is port-forwarded or exposed"
            ) from None
        except requests.Timeout:
            raise ArgoServerError(f"the Argo Server at {self.host} did not answer within {self.timeout:g} s") from None
        if resp.status_code == 401:
            raise ArgoServerError(
                "the Argo Server refused the token (401); set the env var named by argo.tokenEnv "
                "to the output of `argo auth token`"
            )
        if resp.status_code == 403:
            raise ArgoServerError(
                f"the token may not {method} {path} (403); grant its service account that verb in "
                f"namespace {self.namespace}"
            )
        try:
            data = resp.json()
        except ValueError:
            data = {"message": resp.text[:200]}
        if resp.status_code == 404:
            raise ArgoServerError(f"not found: {data.get('message', path)}")
        if resp.status_code >= 400:
            raise ArgoServerError(f"Argo Server answered {resp.status_code}: {data.get('message', '')}")
        if not isinstance(data, dict):
            raise ArgoServerError(f"Argo Server answered {resp.status_code} with a non-object body")
        return data

    def submit(self, template: str, parameters: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Submit a Workflow from the WorkflowTemplate ``template`` with ``parameters``; returns the Workflow."""
        options: dict[str, Any] = {"parameters": [f"{k}={v}" for k, v in parameters.items()]}
        if labels:
            options["labels"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        body = {
            "namespace": self.namespace,
            "resourceKind": "WorkflowTemplate",
            "resourceName": template,
            "submitOptions": options,
        }
        try:
            return self._request("POST", f"/api/v1/workflows/{self.namespace}/submit", body)
        except ArgoServerError as exc:
            if "not found" in str(exc):
                raise ArgoServerError(
                    f"WorkflowTemplate {template!r} is not in namespace {self.namespace}; let Argo CD sync "
                    "manifests/ (or kubectl apply -f manifests/workflows/) first"
                ) from None
            raise

    def get(self, name: str) -> dict[str, Any]:
        """The Workflow ``name``."""
        return self._request("GET", f"/api/v1/workflows/{self.namespace}/{name}")

    def list_workflows(
        self, label_selector: str, *, page_size: int = 100, archived: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every Workflow matching ``label_selector``, one page of ``page_size`` per request.

        With ``archived`` the Workflow archive instead (``GET /api/v1/archived-workflows``): a server without
        an archive answers an empty list (upstream ``persist/sqldb/null_workflow_archive.go``).
        """
        path = "/api/v1/archived-workflows" if archived else f"/api/v1/workflows/{self.namespace}"
        params = {"listOptions.labelSelector": label_selector, "listOptions.limit": str(page_size)}
        if archived:
            params["namespace"] = self.namespace
        while True:
            page = self._request("GET", path, params=params)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            params["listOptions.continue"] = token

    def lint_template(self, template: dict[str, Any]) -> dict[str, Any]:
        """Ask the server to lint a WorkflowTemplate; raises ``ArgoServerError`` with its message when invalid."""
        body = {"namespace": self.namespace, "template": template}
        return self._request("POST", f"/api/v1/workflow-templates/{self.namespace}/lint", body)

    def wait(
        self,
        name: str,
        *,
        poll: float = 2.0,
        timeout: float | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Follow a run until Succeeded, Failed or Error (Pending and Running are not final).

        Args:
            name: The Workflow name.
            poll: Seconds between polls.
            timeout: Give up after this many seconds (None: never).
            on_change: Called with the Workflow whenever its phase or a node's phase changes.

        Raises:
            ArgoServerError: the timeout passed first.
        """
        started = time.monotonic()
        seen: tuple[Any, ...] | None = None
        while True:
            workflow = self.get(name)
            status = workflow.get("status") or {}
            nodes = status.get("nodes") or {}
            state = (status.get("phase"), tuple(sorted((k, v.get("phase")) for k, v in nodes.items())))
            if state != seen and on_change is not None:
                on_change(workflow)
            seen = state
            if status.get("phase") in FINAL_PHASES:
                return workflow
            if timeout is not None and time.monotonic() - started > timeout:
                raise ArgoServerError(f"{name} is still {status.get('phase') or 'Pending'} after {timeout:g} s")
            time.sleep(poll)


__all__ = ["FINAL_PHASES", "ArgoServer", "ArgoServerError"]
