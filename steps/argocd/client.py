"""Argo CD API server client: get an Application, follow its watch stream, wait until it is live at one commit."""

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import requests

from steps.argocd.settings import ArgoCDSettings
from steps.argocd.watch import AppNotFound, Outcome, StreamUnavailable, Wait
from steps.runtime.errors import ConfigError, InfraError, StepError

log = logging.getLogger(__name__)

STREAM_UNAVAILABLE = (404, 405, 501)
# Argo CD's GET with ?refresh= patches the refresh annotation and then blocks until the controller has
# reconciled the app (server/application/application.go, Get: "waitSync" on the informer), which takes as long
# as the reconcile: seconds to minutes for a large app. The refresh is requested with this short timeout; when
# it does not answer in time the refresh is still under way, and a plain GET plus the watch stream follow it.
REFRESH_TIMEOUT_SECONDS = 3.0


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message") or body.get("error") or "") if isinstance(body, dict) else ""


class OperationRunning(InfraError):
    """Argo CD refused a sync because another operation on the app is still running."""


class ArgoCDClient:
    """A small Argo CD API client (one ``requests`` session, bearer token, TLS as configured).

    Args:
        settings: Where and how to connect.
        session: A session to use (a new one by default).
    """

    def __init__(self, settings: ArgoCDSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self._session = session or requests.Session()
        self._session.verify = settings.verify
        self._session.headers["Authorization"] = f"Bearer {settings.token}"

    def _refused(self, response: requests.Response, name: str, project: str | None) -> StepError:
        message = _error_message(response)
        if response.status_code == 401:
            return ConfigError(
                f"Argo CD at {self.settings.server_url} rejected the token (401 {message}); "
                "renew the API token in the token Secret"
            )
        if response.status_code == 403 and not project:
            return AppNotFound(
                f"Argo CD answered 403 for application {name!r}: either it does not exist or the token lacks "
                "'applications, get' permission on it (Argo CD hides which); check the app name and the RBAC, "
                "or set the AppProject (ARGOCD_PROJECT / argocd.project) to tell them apart"
            )
        if response.status_code == 403:
            return AppNotFound(
                f"the Argo CD token lacks permission to get application {project}/{name} (403 {message}); grant "
                f"'applications, get, {project}/{name}' to its account"
            )
        if response.status_code == 404:
            return AppNotFound(
                f"Argo CD has no application {name!r}"
                + (f" in project {project!r}" if project else "")
                + "; check argocdApp in the registration and that the Application was synced"
            )
        return InfraError(f"Argo CD answered {response.status_code} for application {name!r}: {message}".strip())

    def get_application(self, name: str, *, project: str | None = None, refresh: str | None = None) -> dict[str, Any]:
        """``GET /api/v1/applications/{name}`` (``refresh``: "normal" or "hard" asks for a reconcile first).

        Raises:
            ConfigError: 401, 403 (missing app or no permission, see the message), 404, 400.
            InfraError: Argo CD unreachable or answering 5xx.
        """
        params = {k: v for k, v in (("projects", project), ("refresh", refresh)) if v}
        url = f"{self.settings.server_url}/api/v1/applications/{name}"
        timeout = (
            min(self.settings.request_timeout, REFRESH_TIMEOUT_SECONDS) if refresh else self.settings.request_timeout
        )
        try:
            response = self._session.get(url, params=params, timeout=timeout)
        except requests.ReadTimeout:
            if not refresh:
                raise InfraError(f"Argo CD at {self.settings.server_url} did not answer in {timeout:g} s") from None
            log.info("Argo CD is still refreshing %s after %g s; reading it without waiting", name, timeout)
            return self.get_application(name, project=project)
        except requests.RequestException as exc:
            raise InfraError(f"Argo CD at {self.settings.server_url} unreachable: {type(exc).__name__}") from None
        if response.status_code == 200:
            app: dict[str, Any] = response.json()
            return app
        error = self._refused(response, name, project)
        if response.status_code == 400:
            error = ConfigError(f"Argo CD refused the request for application {name!r}: {_error_message(response)}")
        raise error

    def sync(self, name: str, revision: str, *, project: str | None = None) -> dict[str, Any]:
        """``POST /api/v1/applications/{name}/sync`` to ``revision``: promote a commit to an app without auto-sync.

        Needs the token's account to hold ``applications, sync, <project>/<name>`` in Argo CD RBAC.

        Raises:
            OperationRunning: another sync operation is in progress (FailedPrecondition, HTTP 400).
            ConfigError: 401, 403 (missing app, or no ``sync`` permission: the message names the RBAC line).
            InfraError: Argo CD unreachable or answering 5xx.
        """
        url = f"{self.settings.server_url}/api/v1/applications/{name}/sync"
        body: dict[str, Any] = {"revision": revision, "prune": False}
        if project:
            body["project"] = project
        try:
            response = self._session.post(url, json=body, timeout=self.settings.request_timeout)
        except requests.RequestException as exc:
            raise InfraError(f"Argo CD at {self.settings.server_url} unreachable: {type(exc).__name__}") from None
        if response.status_code == 200:
            app: dict[str, Any] = response.json()
            return app
        message = _error_message(response)
        if response.status_code == 400 and "another operation is already in progress" in message:
            raise OperationRunning(
                f"Argo CD is already running an operation on {name}; the sync to {revision[:7]} waits"
            )
        if response.status_code == 403 and "sync" in message:
            where = f"{project or '<project>'}/{name}"
            raise ConfigError(
                f"Argo CD token may not sync {name}: add 'p, <role>, applications, sync, {where}, allow' to "
                f"argocd-rbac-cm for its account",
                detail=f"403 {message}",
            )
        raise self._refused(response, name, project)

    def watch(
        self, name: str, *, project: str | None = None, holder: list[requests.Response] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow one watch stream of application ``name``, yielding ``(event type, application)``.

        Ends when the server ends or drops the stream (the caller reconnects). ``holder`` receives the open
        response so another thread can abort it.

        Raises:
            StreamUnavailable: the endpoint answered 404, 405 or 501, or the connection was refused.
            ConfigError: 401 or 403, or a stream error with one of those codes.
        """
        params = {"name": name, **({"projects": project} if project else {})}
        try:
            response = self._session.get(
                f"{self.settings.server_url}/api/v1/stream/applications",
                params=params,
                stream=True,
                headers={"Accept-Encoding": "identity"},  # a compressed stream would be buffered
                timeout=(self.settings.request_timeout, self.settings.idle_seconds),
            )
        except requests.ConnectionError as exc:
            if "refused" in str(exc).lower():
                raise StreamUnavailable(f"connection refused ({type(exc).__name__})") from None
            raise
        if holder is not None:
            holder[:] = [response]
        try:
            if response.status_code in STREAM_UNAVAILABLE:
                raise StreamUnavailable(f"HTTP {response.status_code}")
            if response.status_code in (401, 403):
                raise self._refused(response, name, project)
            if response.status_code != 200:
                raise InfraError(f"Argo CD watch stream answered {response.status_code}: {_error_message(response)}")
            for line in _lines(response):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    log.warning("skipping a watch line that is not JSON (%d bytes)", len(line))
                    continue
                if item.get("error"):
                    error = item["error"]
                    code = int(error.get("http_code") or 0) if isinstance(error, dict) else 0
                    if code in (401, 403):
                        raise ConfigError(f"Argo CD watch stream refused: {error.get('message', '')}")
                    log.warning("Argo CD watch stream error: %s", error)
                    return
                result = item.get("result") or {}
                application = result.get("application")
                if isinstance(application, dict) and (application.get("metadata") or {}).get("name") == name:
                    yield str(result.get("type") or ""), application
        finally:
            response.close()

    def wait_for_revision(
        self,
        app: str,
        sha: str,
        *,
        stability_seconds: float,
        timeout_seconds: float,
        refresh: bool = False,
        project: str | None = None,
        wait_for_app: bool = False,
        is_newer: Callable[[str], bool] | None = None,
    ) -> Outcome:
        """Wait until ``app`` is deployed at ``sha``, degraded, superseded, or the timeout passes.

        Args:
            app: The Application name.
            sha: The full commit id.
            stability_seconds: How long a deployed state must hold unchanged (0: report at once).
            timeout_seconds: When to give up (``timed_out``).
            refresh: Ask Argo CD to refresh the app first (``?refresh=normal``).
            project: The AppProject; lets a 403 be told apart from a missing app.
            wait_for_app: A missing app (403/404) is "not there yet": poll for it until the timeout. For
                previews, which an ApplicationSet's pull-request generator creates minutes after the push.
            is_newer: Whether a revision descends from ``sha`` (GitHub's compare): Synced at a newer commit
                is ``superseded`` at once, not only when a new sync starts during the wait.

        Raises:
            ConfigError: the token is refused, or the app is missing or forbidden (see ``get_application``).
        """
        wait = Wait(self, app, sha.lower(), stability_seconds, timeout_seconds, project or None)
        wait.wait_for_app = wait_for_app
        wait.is_newer = is_newer
        return wait.run(refresh)


def _lines(response: requests.Response) -> Iterator[bytes]:
    """Split the raw stream into lines as bytes arrive (``iter_lines`` waits for full 512-byte chunks)."""
    raw = response.raw
    buffer = b""
    while True:
        chunk = raw.read1(65536)
        if not chunk:
            if buffer:
                yield buffer
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        yield from lines


__all__ = [
    "REFRESH_TIMEOUT_SECONDS",
    "AppNotFound",
    "ArgoCDClient",
    "OperationRunning",
    "STREAM_UNAVAILABLE",
]
