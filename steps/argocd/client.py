"""Argo CD API server client: wait, event by event, until an Application is live at one commit.

Talks to the Argo CD API server (https://argo-cd.readthedocs.io/en/stable/developer-guide/api-docs/):
``GET /api/v1/applications/{name}`` for a first look (optionally ``?refresh=normal``), then the watch stream
``GET /api/v1/stream/applications?name=...``, whose newline-delimited ``{"result": {"type", "application"}}``
objects (or ``{"error": ...}``) are judged one by one by ``steps.policy.deploy`` (what "deployed at the
commit" means is written there). A dropped stream is reopened with a bounded backoff; only when the stream
endpoint is unavailable (404, 405, 501, or the connection is refused) does the wait poll the application
every ``ARGOCD_POLL_SECONDS`` instead. A stability window holds a deployed verdict until it has stayed
unchanged for ``stability_seconds``; any change in between starts the window again.

Settings come from the container environment (set by the WorkflowTemplate): ``ARGOCD_SERVER_URL``; the
bearer token from the mounted Secret file ``ARGOCD_TOKEN_FILE`` (default ``/var/run/secrets/argocd/token``)
or ``ARGOCD_TOKEN``; TLS verified unless ``ARGOCD_INSECURE=true``, against ``ARGOCD_CA_BUNDLE`` when set.
The token never appears in a log line, a message or a ``repr``.
"""

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from steps.policy.deploy import OutcomeKind, RevisionWatch, timeout_reason
from steps.runtime.errors import ConfigError, InfraError, StepError

log = logging.getLogger(__name__)

SERVER_ENV = "ARGOCD_SERVER_URL"
TOKEN_FILE_ENV = "ARGOCD_TOKEN_FILE"  # noqa: S105 - the name of a variable, not a value
TOKEN_ENV = "ARGOCD_TOKEN"  # noqa: S105 - the name of a variable, not a value
DEFAULT_TOKEN_FILE = "/var/run/secrets/argocd/token"  # noqa: S105 - a path
STREAM_UNAVAILABLE = (404, 405, 501)
RECONNECT_FIRST_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw[:40]!r} is not a number of seconds") from None


def _read_token(env: Mapping[str, str]) -> str:
    path = env.get(TOKEN_FILE_ENV, "").strip()
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            secret = env.get("ARGOCD_TOKEN_SECRET", "")
            what = f"Secret {secret} (missing, or without that key)" if secret else "the token Secret"
            raise ConfigError(
                f"Argo CD token file {path} cannot be read ({exc.strerror}); mount {what} there"
            ) from None
        source = path
    elif env.get(TOKEN_ENV, "").strip():
        token, source = env[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    elif Path(DEFAULT_TOKEN_FILE).is_file():
        token, source = Path(DEFAULT_TOKEN_FILE).read_text(encoding="utf-8").strip(), DEFAULT_TOKEN_FILE
    else:
        raise ConfigError(f"no Argo CD token: mount it and set {TOKEN_FILE_ENV}, or set {TOKEN_ENV}")
    if not token:
        raise ConfigError(f"the Argo CD token from {source} is empty; put an API token of the Argo CD account there")
    return token


@dataclass(frozen=True)
class ArgoCDSettings:
    """How to reach the Argo CD API server.

    Attributes:
        server_url: ``ARGOCD_SERVER_URL``, e.g. ``https://argocd-server.argocd.svc``.
        token: The bearer token (never shown).
        verify: TLS verification: True, a CA bundle path (``ARGOCD_CA_BUNDLE``), or False
            (``ARGOCD_INSECURE=true``).
        ui_url: ``ARGOCD_UI_URL``, the Argo CD web UI for links (default: the server URL).
        namespace: ``ARGOCD_NAMESPACE``, where Applications live (part of UI links).
        project: ``ARGOCD_PROJECT``, the default AppProject (tells a missing app from a forbidden one).
        stability_seconds: ``ARGOCD_STABILITY_SECONDS`` (default 30).
        timeout_seconds: ``ARGOCD_TIMEOUT_SECONDS`` (default 900).
        poll_seconds: ``ARGOCD_POLL_SECONDS``, the polling interval when the stream is unavailable (default 5).
        request_timeout: ``ARGOCD_REQUEST_TIMEOUT_SECONDS`` per request (default 10).
        idle_seconds: ``ARGOCD_STREAM_IDLE_SECONDS``: a silent stream is reopened after this long (default 60).
    """

    server_url: str
    token: str = field(repr=False)
    verify: bool | str = True
    ui_url: str = ""
    namespace: str = ""
    project: str = ""
    stability_seconds: float = 30.0
    timeout_seconds: float = 900.0
    poll_seconds: float = 5.0
    request_timeout: float = 10.0
    idle_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ArgoCDSettings":
        """Read the settings from ``environ`` (``os.environ`` by default).

        Raises:
            ConfigError: no or a malformed server URL, no token, a CA bundle that does not exist, or a bad number.
        """
        env = os.environ if environ is None else environ
        server = env.get(SERVER_ENV, "").strip().rstrip("/")
        if not server.startswith(("https://", "http://")):
            raise ConfigError(
                f"{SERVER_ENV}={server[:80]!r} is not an http(s) URL; set it to the Argo CD API server "
                "(argocd.serverUrl in hera_config.yaml)"
            )
        verify: bool | str = True
        if env.get("ARGOCD_INSECURE", "").strip().lower() in ("1", "true", "yes"):
            verify = False
            log.warning("TLS verification of %s is off (ARGOCD_INSECURE)", server)
        elif env.get("ARGOCD_CA_BUNDLE", "").strip():
            verify = env["ARGOCD_CA_BUNDLE"].strip()
            if not Path(verify).is_file():
                raise ConfigError(f"ARGOCD_CA_BUNDLE {verify} does not exist; mount the CA certificate there")
        return cls(
            server_url=server,
            token=_read_token(env),
            verify=verify,
            ui_url=env.get("ARGOCD_UI_URL", "").strip().rstrip("/"),
            namespace=env.get("ARGOCD_NAMESPACE", "").strip(),
            project=env.get("ARGOCD_PROJECT", "").strip(),
            stability_seconds=_float(env, "ARGOCD_STABILITY_SECONDS", cls.stability_seconds),
            timeout_seconds=_float(env, "ARGOCD_TIMEOUT_SECONDS", cls.timeout_seconds),
            poll_seconds=_float(env, "ARGOCD_POLL_SECONDS", cls.poll_seconds),
            request_timeout=_float(env, "ARGOCD_REQUEST_TIMEOUT_SECONDS", cls.request_timeout),
            idle_seconds=_float(env, "ARGOCD_STREAM_IDLE_SECONDS", cls.idle_seconds),
        )


def app_ui_url(app: str, *, ui_url: str, namespace: str = "") -> str:
    """The Application's page in the Argo CD UI: ``{ui}/applications/{namespace}/{app}`` (namespace optional)."""
    return f"{ui_url.rstrip('/')}/applications/{namespace + '/' if namespace else ''}{app}"


@dataclass(frozen=True)
class Outcome:
    """How a wait for a commit ended.

    Attributes:
        kind: deployed, degraded, superseded or timed_out.
        reason: Argo CD's message or what was last seen, for people.
        app: The Application.
        sha: The commit waited for.
        revision: The revision Argo CD compared to at the end ("" when unknown).
        elapsed_seconds: How long the wait took.
        via: "stream" or "poll" (the stream endpoint was unavailable).
        reconnects: How often a dropped stream was reopened.
    """

    kind: OutcomeKind
    reason: str
    app: str
    sha: str
    revision: str = ""
    elapsed_seconds: float = 0.0
    via: str = "stream"
    reconnects: int = 0


class StreamUnavailable(Exception):
    """The watch endpoint cannot be used here (404, 405, 501 or connection refused): poll instead."""


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message") or body.get("error") or "") if isinstance(body, dict) else ""


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
            return ConfigError(
                f"Argo CD answered 403 for application {name!r}: either it does not exist or the token lacks "
                "'applications, get' permission on it (Argo CD hides which); check the app name and the RBAC, "
                "or set the AppProject (ARGOCD_PROJECT / argocd.project) to tell them apart"
            )
        if response.status_code == 403:
            return ConfigError(
                f"the Argo CD token lacks permission to get application {project}/{name} (403 {message}); grant "
                f"'applications, get, {project}/{name}' to its account"
            )
        if response.status_code == 404:
            return ConfigError(
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
        try:
            response = self._session.get(url, params=params, timeout=self.settings.request_timeout)
        except requests.RequestException as exc:
            raise InfraError(f"Argo CD at {self.settings.server_url} unreachable: {type(exc).__name__}") from None
        if response.status_code == 200:
            return response.json()
        error = self._refused(response, name, project)
        if response.status_code == 400:
            error = ConfigError(f"Argo CD refused the request for application {name!r}: {_error_message(response)}")
        raise error

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
    ) -> Outcome:
        """Wait until ``app`` is deployed at ``sha``, degraded, superseded, or the timeout passes.

        Args:
            app: The Application name.
            sha: The full commit id.
            stability_seconds: How long a deployed state must hold unchanged (0: report at once).
            timeout_seconds: When to give up (``timed_out``).
            refresh: Ask Argo CD to refresh the app first (``?refresh=normal``).
            project: The AppProject; lets a 403 be told apart from a missing app.

        Raises:
            ConfigError: the token is refused, or the app is missing or forbidden (see ``get_application``).
        """
        return _Wait(self, app, sha.lower(), stability_seconds, timeout_seconds, project or None).run(refresh)


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


def _abort(holder: list[requests.Response]) -> None:
    """Wake a thread blocked reading a stream by shutting its socket down."""
    for response in list(holder):
        raw = response.raw
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        if sock is None:  # http.client took the socket over ("Connection: close"): fp -> SocketIO -> socket
            sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Feed(threading.Thread):
    """Background reader: watch events (reconnecting), or polls when the stream is unavailable, into a queue."""

    def __init__(self, client: ArgoCDClient, app: str, project: str | None, out: "queue.Queue[tuple]") -> None:
        super().__init__(name=f"argocd-watch-{app}", daemon=True)
        self.client, self.app, self.project, self.out = client, app, project, out
        self.stop = threading.Event()
        self.holder: list[requests.Response] = []
        self.via = "stream"
        self.reconnects = 0

    def close(self) -> None:
        self.stop.set()
        for _ in range(4):  # a stream opened while stopping is aborted on the next round
            _abort(self.holder)
            self.join(timeout=0.5)
            if not self.is_alive():
                return

    def run(self) -> None:
        try:
            if not self._stream():
                self._poll()
        except StepError as exc:
            self.out.put(("error", exc))
        except Exception as exc:  # a bug must not leave the waiter hanging until its timeout
            self.out.put(("error", InfraError(f"Argo CD watch failed: {type(exc).__name__}: {exc}")))

    def _stream(self) -> bool:
        """Follow the stream until stopped (True) or until it proves unavailable (False)."""
        delay = RECONNECT_FIRST_SECONDS
        while not self.stop.is_set():
            delivered = False
            try:
                for kind, application in self.client.watch(self.app, project=self.project, holder=self.holder):
                    delivered = True
                    self.out.put(("event", kind, application))
                    if self.stop.is_set():
                        return True
                reason = "ended"
            except StreamUnavailable as exc:
                log.warning(
                    "Argo CD watch stream unavailable (%s); polling every %g s instead",
                    exc,
                    self.client.settings.poll_seconds,
                )
                return False
            except (requests.RequestException, Urllib3Error, OSError, InfraError) as exc:
                reason = type(exc).__name__
            if self.stop.is_set():
                return True
            delay = RECONNECT_FIRST_SECONDS if delivered else min(delay * 2, RECONNECT_MAX_SECONDS)
            self.reconnects += 1
            log.info("Argo CD watch stream %s; reconnecting in %.1f s", reason, delay)
            self.stop.wait(delay)
        return True

    def _poll(self) -> None:
        self.via = "poll"
        interval = self.client.settings.poll_seconds
        while not self.stop.wait(interval):
            try:
                self.out.put(("event", "POLL", self.client.get_application(self.app, project=self.project)))
            except InfraError as exc:
                log.warning("polling Argo CD failed (%s); trying again in %g s", exc.summary, interval)


@dataclass
class _Wait:
    client: ArgoCDClient
    app: str
    sha: str
    stability: float
    timeout: float
    project: str | None
    started: float = field(default=0.0, init=False)
    deadline: float = field(default=0.0, init=False)
    last_error: str = field(default="", init=False)

    def outcome(self, kind: OutcomeKind, reason: str, feed: _Feed | None, revision: str = "") -> Outcome:
        return Outcome(
            kind,
            reason,
            self.app,
            self.sha,
            revision,
            round(time.monotonic() - self.started, 3),
            feed.via if feed else "stream",
            feed.reconnects if feed else 0,
        )

    def first_look(self, refresh: bool) -> dict[str, Any] | None:
        delay = 0.5
        while True:
            try:
                mode = "normal" if refresh else None
                return self.client.get_application(self.app, project=self.project, refresh=mode)
            except InfraError as exc:
                if time.monotonic() + delay >= self.deadline:
                    self.last_error = exc.summary
                    return None
                log.warning("%s; trying again in %.1f s", exc.summary, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def run(self, refresh: bool) -> Outcome:
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout
        watch = RevisionWatch(self.sha)
        first = self.first_look(refresh)
        if first is None:
            return self.outcome("timed_out", f"Argo CD unreachable for {self.timeout:g} s: {self.last_error}", None)
        events: queue.Queue[tuple] = queue.Queue()
        feed: _Feed | None = None
        stable_key: tuple[str, ...] | None = None
        stable_since = 0.0
        item: tuple | None = ("event", "GET", first)
        try:
            while True:
                if item is not None and item[0] == "error":
                    raise item[1]
                if item is not None:
                    kind, application = item[1], item[2]
                    if kind == "DELETED":
                        return self.outcome("degraded", f"Argo CD application {self.app} was deleted", feed)
                    verdict = watch.observe(application)
                    revision = verdict.snapshot.sync_revisions[0] if verdict.snapshot.sync_revisions else ""
                    if verdict.state in ("degraded", "superseded"):
                        return self.outcome(verdict.state, verdict.reason, feed, revision)
                    if verdict.state == "deployed":
                        if verdict.snapshot.fingerprint != stable_key:
                            stable_key, stable_since = verdict.snapshot.fingerprint, time.monotonic()
                    else:
                        stable_key = None
                now = time.monotonic()
                if stable_key is not None and now - stable_since >= self.stability:
                    return self.outcome("deployed", watch.last.reason if watch.last else "", feed, self.sha)
                if now >= self.deadline:
                    reason = timeout_reason(self.app, self.sha, self.timeout, watch.last)
                    last = watch.last.snapshot.sync_revisions if watch.last else ()
                    return self.outcome("timed_out", reason, feed, last[0] if last else "")
                if feed is None:
                    feed = _Feed(self.client, self.app, self.project, events)
                    feed.start()
                wait = self.deadline - now
                if stable_key is not None:
                    wait = min(wait, stable_since + self.stability - now)
                try:
                    item = events.get(timeout=max(wait, 0.0))
                except queue.Empty:
                    item = None
        finally:
            if feed is not None:
                feed.close()


__all__ = [
    "DEFAULT_TOKEN_FILE",
    "SERVER_ENV",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "ArgoCDClient",
    "ArgoCDSettings",
    "Outcome",
    "StreamUnavailable",
    "app_ui_url",
]
