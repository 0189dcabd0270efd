"""Argo CD API server emulator over real HTTP, built on the grpc-gateway front of ``grpc_gateway``.

``ArgoCDEmulator`` models the Argo CD API server (https://argo-cd.readthedocs.io/en/stable/developer-guide/api-docs/)
for the operations of tests/support/specs/argocd-swagger-subset.json: list/get applications (with the
403-for-a-missing-app trap of argo-cd ``getAppEnforceRBAC``), the application watch stream, and session login.
Applications follow scripted timelines of sync status, health and sync operation
(https://argo-cd.readthedocs.io/en/stable/operator-manual/health/). Query parameters the subset declares but the
emulator does not act on (``resourceVersion``; ``refresh`` on list and watch) are accepted and ignored.
Default health and operation messages are realistic examples, not strings checked against upstream.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from tests.support.emulators.grpc_gateway import (
    SPECS_DIR,
    GrpcError,
    GrpcGatewayEmulator,
    Problem,
    RequestContext,
    SwaggerSubset,
    utc_now,
)


class _Keep(Enum):
    KEEP = "keep"


_KEEP = _Keep.KEEP
CHART_REPO_URL = "https://charts.example.org"
CHART_VERSION = "1.4.2"
_HEALTH_MESSAGES = {
    "Progressing": "Waiting for rollout to finish: 0 of 1 updated replicas are available...",
    "Degraded": 'Deployment "{name}" exceeded its progress deadline',
}
_OPERATION_MESSAGES = {
    "Running": "one or more tasks are running",
    "Succeeded": "successfully synced (all tasks run)",
    "Failed": "one or more synchronization tasks completed unsuccessfully",
    "Error": "one or more synchronization tasks are not valid",
}
_TERMINAL_OPERATION = {"Succeeded", "Failed", "Error"}
_STATE_KEYS = frozenset(
    {"sync", "revision", "revisions", "health", "health_message", "operation_phase", "message", "operation_revision"}
)
Timeline = list[tuple[float, dict[str, Any]]]


@dataclass
class _App:
    name: str
    project: str
    multi_source: bool
    repo_url: str
    labels: dict[str, str]
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=utc_now)
    resource_version: int = 0
    sync: str = "Synced"
    revisions: list[str] = field(default_factory=list)
    health: str = "Healthy"
    health_message: str | None = None
    health_since: str = field(default_factory=utc_now)
    operation_phase: str | None = "Succeeded"
    operation_message: str | None = None
    operation_revisions: list[str] = field(default_factory=list)
    operation_started: str = field(default_factory=utc_now)
    operation_finished: str | None = None
    reconciled_at: str = field(default_factory=utc_now)
    history: list[dict[str, Any]] = field(default_factory=list)

    def sources(self) -> list[dict[str, Any]]:
        own = {"repoURL": self.repo_url, "path": "overlays/production", "targetRevision": "HEAD"}
        if not self.multi_source:
            return [own]
        return [own, {"repoURL": CHART_REPO_URL, "chart": "platform-base", "targetRevision": CHART_VERSION}]


def _with_revisions(target: dict[str, Any], app: _App, revisions: list[str]) -> dict[str, Any]:
    """Put ``revision`` (single source) or ``revisions`` (multi-source) into ``target``, as Argo CD does."""
    if app.multi_source:
        target["revisions"] = list(revisions)
    else:
        target["revision"] = revisions[0]
    return target


def _with_sources(target: dict[str, Any], app: _App) -> dict[str, Any]:
    if app.multi_source:
        target["sources"] = app.sources()
    else:
        target["source"] = app.sources()[0]
    return target


class ArgoCDEmulator(GrpcGatewayEmulator):
    """The Argo CD API server: applications with scripted state, the watch stream, sessions.

    A token added with ``allowed=False`` behaves like one without RBAC rights: GET of an app answers 403
    "permission denied", while list and watch answer 200 without the apps (Argo CD filters, it does not refuse).

    Args:
        namespace: the namespace Argo CD's Applications live in (``metadata.namespace``).
    """

    spec = SwaggerSubset(SPECS_DIR / "argocd-swagger-subset.json")
    public_operations = frozenset({"SessionService_Create"})

    def __init__(self, namespace: str = "argocd") -> None:
        super().__init__()
        self.namespace = namespace
        self.users: dict[str, str] = {}
        self.refresh_requests: list[tuple[str, str]] = []
        # Seconds a GET with ?refresh= blocks before answering, like the real server waiting for the controller
        # to reconcile the app (argo-cd server/application/application.go, Get with a refresh).
        self.refresh_delay = 0.0
        # POST .../sync: (app, revision) asked for; apps whose sync the token may not run ('applications, sync').
        self.sync_requests: list[tuple[str, str]] = []
        self.sync_denied: set[str] = set()
        self.sync_step_s = 0.02  # the pace of the rollout a sync starts
        self.stream_connections = 0
        self.stream_unavailable = False
        self.stream_unavailable_status = 501
        self._apps: dict[str, _App] = {}
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._resource_version = 1000
        self._active_streams = 0
        self._drop_after: int | None = None
        self._drops_left: int | None = 0
        self._timelines: list[threading.Thread] = []
        self.handlers.update(
            {
                "ApplicationService_List": self._list,
                "ApplicationService_Get": self._get,
                "ApplicationService_Watch": self._watch,
                "ApplicationService_Sync": self._sync,
                "SessionService_Create": self._session,
            }
        )

    # ------------------------------------------------------------------ scripting API

    def add_user(self, username: str, password: str) -> None:
        """Let ``POST /api/v1/session`` log in ``username`` with ``password`` (each login mints a new token)."""
        with self._lock:
            self.users[username] = password

    def add_app(
        self,
        name: str,
        project: str = "default",
        multi_source: bool = False,
        *,
        repo_url: str | None = None,
        revision: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create an Application, Synced and Healthy at ``revision`` after a Succeeded sync, and announce it.

        Args:
            name: ``metadata.name``.
            project: ``spec.project``.
            multi_source: use ``spec.sources`` (the app's Git repo plus a Helm chart) instead of ``spec.source``;
                the status then carries ``revisions`` lists, the app repo's revision first.
            repo_url: the app's Git repository (default ``https://github.com/example-org/<name>-deploy.git``).
            revision: the commit it is synced to (default: a sha derived from the name).
            labels: ``metadata.labels``.

        Returns:
            The Application as the API serves it.
        """
        sha = revision or hashlib.sha1(f"{name}-initial".encode(), usedforsecurity=False).hexdigest()
        app = _App(
            name,
            project,
            multi_source,
            repo_url or f"https://github.com/example-org/{name}-deploy.git",
            dict(labels or {}),
        )
        app.revisions = [sha, CHART_VERSION] if multi_source else [sha]
        app.operation_revisions = list(app.revisions)
        app.operation_message = _OPERATION_MESSAGES["Succeeded"]
        app.operation_finished = app.operation_started
        self._add_history(app)
        with self._changed:
            if name in self._apps:
                raise ValueError(f"application {name!r} already exists in the emulator; use set_state() to change it")
            self._apps[name] = app
            return self._emit("ADDED", app)

    def delete_app(self, name: str) -> None:
        """Remove an Application; watchers get a DELETED event."""
        with self._changed:
            app = self._app(name)
            del self._apps[name]
            self._emit("DELETED", app)

    def app(self, name: str) -> dict[str, Any]:
        """Return the Application ``name`` as the API serves it now."""
        with self._lock:
            return self._app_json(self._app(name))

    def set_state(
        self,
        name: str,
        *,
        sync: str | _Keep = _KEEP,
        revision: str | _Keep = _KEEP,
        revisions: list[str] | _Keep = _KEEP,
        health: str | _Keep = _KEEP,
        health_message: str | None | _Keep = _KEEP,
        operation_phase: str | None | _Keep = _KEEP,
        message: str | None | _Keep = _KEEP,
        operation_revision: str | _Keep = _KEEP,
    ) -> dict[str, Any]:
        """Change an Application's status and notify stream watchers at once (a MODIFIED event).

        Only the arguments given change. Each change bumps ``metadata.resourceVersion`` and ``reconciledAt``.

        Args:
            name: the Application.
            sync: ``status.sync.status``: "Synced", "OutOfSync" or "Unknown".
            revision: the app repo's commit that ``status.sync`` compares to (first of ``revisions`` when
                multi-source).
            revisions: all revisions at once (multi-source apps).
            health: ``status.health.status``: "Healthy", "Progressing", "Degraded", "Suspended", "Missing",
                "Unknown". Without ``health_message``, a realistic message is set for Progressing/Degraded.
            health_message: ``status.health.message`` (None clears it).
            operation_phase: ``status.operationState.phase``: "Running", "Succeeded", "Failed", "Error"; None
                removes the operation state. A phase after a finished operation starts a new operation
                (new ``startedAt``) for the current sync revision; a terminal phase sets ``finishedAt``, and
                Succeeded adds a ``status.history`` entry.
            message: ``status.operationState.message`` (default: Argo CD's usual text for the phase).
            operation_revision: the revision the operation syncs (default: the sync revision); lets a test
                script an operation for an older commit than the one compared.

        Returns:
            The Application as the API serves it after the change.
        """
        changes = {k: v for k, v in locals().items() if k in _STATE_KEYS and v is not _KEEP}
        with self._changed:
            app = self._app(name)
            self._apply(app, changes)
            return self._emit("MODIFIED", app)

    def play(self, name: str, steps: Timeline) -> threading.Thread:
        """Apply ``[(delay_s, set_state kwargs), ...]`` one after the other on a background thread.

        Each delay is counted from the previous step. The thread stops early when the emulator stops.

        Returns:
            The started thread (``join()`` it to wait for the timeline's end).
        """
        self._app(name)
        for _, kwargs in steps:
            unknown = set(kwargs) - _STATE_KEYS
            if unknown:
                raise ValueError(f"unknown set_state arguments {sorted(unknown)}; use {sorted(_STATE_KEYS)}")

        def run() -> None:
            for delay, kwargs in steps:
                if self._stopping.wait(delay):
                    return
                self.set_state(name, **kwargs)

        thread = threading.Thread(target=run, name=f"argocd-timeline-{name}", daemon=True)
        self._timelines.append(thread)
        thread.start()
        return thread

    def drop_streams_after(self, n_events: int | None, times: int | None = 1) -> None:
        """Cut watch streams abruptly (no final chunk) once they have sent ``n_events`` lines.

        Args:
            n_events: lines a stream may send before it is cut; None switches the fault off.
            times: how many streams to cut (the next ones to reach the limit, open or new); None for all.
        """
        with self._changed:
            self._drop_after = n_events
            self._drops_left = times
            self._changed.notify_all()

    @property
    def active_streams(self) -> int:
        """Watch streams open right now."""
        with self._lock:
            return self._active_streams

    def stop(self) -> None:
        """Stop timelines, end streams and stop the server."""
        super().stop()
        for thread in self._timelines:
            thread.join(timeout=5)
        self._timelines.clear()

    # ------------------------------------------------------------------ state

    def _app(self, name: str) -> _App:
        with self._lock:
            app = self._apps.get(name)
        if app is None:
            raise KeyError(f"no application {name!r} in the emulator; add it first with add_app({name!r})")
        return app

    def _apply(self, app: _App, changes: dict[str, Any]) -> None:
        now = utc_now()
        if "sync" in changes:
            app.sync = changes["sync"]
        if "revisions" in changes:
            app.revisions = list(changes["revisions"])
        if "revision" in changes:
            app.revisions = [changes["revision"], *app.revisions[1:]]
        if "health" in changes:
            if changes["health"] != app.health:
                app.health_since = now
            app.health = changes["health"]
            template = _HEALTH_MESSAGES.get(app.health)
            app.health_message = template.format(name=app.name) if template else None
        if "health_message" in changes:
            app.health_message = changes["health_message"]
        if "operation_phase" in changes:
            phase = changes["operation_phase"]
            if phase is not None and (app.operation_phase in _TERMINAL_OPERATION or app.operation_phase is None):
                app.operation_started = now
                app.operation_finished = None
                app.operation_revisions = list(app.revisions)
            app.operation_phase = phase
            app.operation_message = _OPERATION_MESSAGES.get(phase or "")
            if phase in _TERMINAL_OPERATION:
                app.operation_finished = now
        if "operation_revision" in changes:
            app.operation_revisions = [changes["operation_revision"], *app.operation_revisions[1:]]
        if "message" in changes:
            app.operation_message = changes["message"]
        if changes.get("operation_phase") == "Succeeded":
            self._add_history(app)
        app.reconciled_at = now

    def _add_history(self, app: _App) -> None:
        entry = {
            "id": len(app.history),
            "deployStartedAt": app.operation_started,
            "deployedAt": app.operation_finished or utc_now(),
            "initiatedBy": {"automated": True},
        }
        app.history.append(_with_sources(_with_revisions(entry, app, app.operation_revisions), app))
        del app.history[:-10]  # revisionHistoryLimit defaults to 10

    def _emit(self, kind: str, app: _App) -> dict[str, Any]:
        """Bump the resourceVersion, validate, log the event for watchers and wake them (lock held)."""
        self._resource_version += 1
        app.resource_version = self._resource_version
        snapshot = self._app_json(app)
        self.check_emitted("v1alpha1Application", snapshot, f"application {app.name}")
        self._events.append((kind, snapshot))
        self._changed.notify_all()
        return snapshot

    def _app_json(self, app: _App) -> dict[str, Any]:
        destination = {"server": "https://kubernetes.default.svc", "namespace": app.name}
        metadata: dict[str, Any] = {
            "name": app.name,
            "namespace": self.namespace,
            "uid": app.uid,
            "resourceVersion": str(app.resource_version),
            "generation": len(app.history) + 1,
            "creationTimestamp": app.created,
        }
        if app.labels:
            metadata["labels"] = dict(app.labels)
        spec = _with_sources(
            {
                "project": app.project,
                "destination": destination,
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            },
            app,
        )
        health: dict[str, Any] = {"status": app.health, "lastTransitionTime": app.health_since}
        if app.health_message:
            health["message"] = app.health_message
        status: dict[str, Any] = {
            "sync": _with_revisions(
                {"status": app.sync, "comparedTo": _with_sources({"destination": destination}, app)}, app, app.revisions
            ),
            "health": health,
            "reconciledAt": app.reconciled_at,
            "controllerNamespace": self.namespace,
            "resources": [
                {
                    "group": "apps",
                    "version": "v1",
                    "kind": "Deployment",
                    "namespace": app.name,
                    "name": app.name,
                    "status": app.sync,
                    "health": {"status": app.health},
                },
                {
                    "version": "v1",
                    "kind": "Service",
                    "namespace": app.name,
                    "name": app.name,
                    "status": app.sync,
                    "health": {"status": "Healthy"},
                },
            ],
            "summary": {"images": [f"ghcr.io/example-org/{app.name}:{app.revisions[0][:12]}"]},
            "history": [dict(entry) for entry in app.history],
        }
        if app.multi_source:
            status["sourceTypes"] = ["Kustomize", "Helm"]
        else:
            status["sourceType"] = "Kustomize"
        document: dict[str, Any] = {"metadata": metadata, "spec": spec, "status": status}
        if app.operation_phase is not None:
            operation = {
                "sync": _with_revisions({}, app, app.operation_revisions),
                "initiatedBy": {"automated": True},
                "retry": {"limit": 5},
            }
            state: dict[str, Any] = {
                "operation": operation,
                "phase": app.operation_phase,
                "startedAt": app.operation_started,
                "syncResult": _with_sources(_with_revisions({}, app, app.operation_revisions), app),
            }
            if app.operation_message:
                state["message"] = app.operation_message
            if app.operation_finished:
                state["finishedAt"] = app.operation_finished
            status["operationState"] = state
            if app.operation_phase == "Running":
                document["operation"] = operation
        return document

    def _visible(self, app: dict[str, Any], query: MultiDict[str, str]) -> bool:
        """Apply the ApplicationQuery filters the list and watch endpoints honour."""
        projects = query.getlist("projects") or query.getlist("project")
        name = query.get("name")
        checks = [
            not name or app["metadata"]["name"] == name,
            not projects or app["spec"]["project"] in projects,
            not query.get("appNamespace") or query.get("appNamespace") == self.namespace,
            not query.get("repo")
            or query.get("repo") in [s["repoURL"] for s in app["spec"].get("sources") or [app["spec"]["source"]]],
        ]
        for term in filter(None, (query.get("selector") or "").split(",")):
            key, _, value = term.partition("=")
            checks.append(app["metadata"].get("labels", {}).get(key.strip()) == value.strip().lstrip("="))
        return all(checks)

    # ------------------------------------------------------------------ handlers

    def _session(self, ctx: RequestContext) -> dict[str, Any]:
        username, password = ctx.body.get("username", ""), ctx.body.get("password", "")
        with self._lock:
            known = username in self.users and secrets.compare_digest(self.users[username], password)
            if not known:
                raise GrpcError(16, "Invalid username or password")
            token = secrets.token_urlsafe(24)
            self._tokens[token] = True
        return {"token": token}

    def redact(self, operation_id: str, body: Any) -> Any:
        """Hide login secrets from the call record."""
        if operation_id == "SessionService_Create" and isinstance(body, dict):
            return {k: ("<redacted>" if k in ("password", "token") else v) for k, v in body.items()}
        return body

    def _list(self, ctx: RequestContext) -> dict[str, Any]:
        with self._lock:
            items = [self._app_json(app) for app in self._apps.values()] if ctx.allowed else []
            version = str(self._resource_version)
        # Real Argo CD filters out apps the caller may not see instead of answering 403.
        return {"metadata": {"resourceVersion": version}, "items": [a for a in items if self._visible(a, ctx.query)]}

    def _get(self, ctx: RequestContext) -> dict[str, Any]:
        name = ctx.path_args["name"]
        projects = ctx.query.getlist("projects") or ctx.query.getlist("project")
        if len(projects) > 1:
            raise GrpcError(3, "multiple projects specified - the get endpoint accepts either zero or one project")
        project = projects[0] if projects else ""
        not_found = GrpcError(5, f'applications.argoproj.io "{name}" not found')
        if not ctx.allowed:
            raise GrpcError(7, "permission denied")
        app_namespace = ctx.query.get("appNamespace") or self.namespace
        with self._changed:
            app = self._apps.get(name) if app_namespace == self.namespace else None
            if app is None:
                # getAppEnforceRBAC: without a project the server cannot tell "missing" from "forbidden".
                raise not_found if project else GrpcError(7, "permission denied")
            if project and app.project != project:
                raise not_found
            refresh = ctx.query.get("refresh")
            if refresh is None:
                return self._app_json(app)
            self.refresh_requests.append((name, "hard" if refresh == "hard" else "normal"))
        if self.refresh_delay:
            time.sleep(self.refresh_delay)  # outside the lock: other requests go on meanwhile
        with self._changed:
            app.reconciled_at = utc_now()
            return self._emit("MODIFIED", app)

    def _sync(self, ctx: RequestContext) -> dict[str, Any]:
        """``POST /api/v1/applications/{name}/sync``: start a sync operation to ``revision`` and roll it out.

        Like argo-cd server/application/application.go Sync: the app must be visible (403 otherwise, as for a
        get), the token needs ``applications, sync``, and an operation already running is FailedPrecondition
        "another operation is already in progress". The rollout then plays: Running, Synced + Progressing,
        Healthy, at ``sync_step_s`` intervals.
        """
        name = ctx.path_args["name"]
        body = ctx.body or {}
        if not ctx.allowed:
            raise GrpcError(7, "permission denied")
        with self._changed:
            app = self._apps.get(name)
            if app is None or (body.get("project") and body["project"] != app.project):
                raise GrpcError(7, "permission denied")
            if name in self.sync_denied:
                raise GrpcError(7, f"permission denied: applications, sync, {app.project}/{name}")
            if app.operation_phase == "Running":
                raise GrpcError(9, "another operation is already in progress")
            revision = str(body.get("revision") or app.revision)
            self.sync_requests.append((name, revision))
            self._apply(app, {"sync": "OutOfSync", "revision": revision})
            self._apply(app, {"operation_phase": "Running"})
            answer = self._emit("MODIFIED", app)
        step = self.sync_step_s
        self.play(
            name,
            [
                (step, {"sync": "Synced", "operation_phase": "Succeeded", "health": "Progressing"}),
                (step, {"health": "Healthy"}),
            ],
        )
        return answer

    def _watch(self, ctx: RequestContext) -> Response:
        if self.stream_unavailable:
            if self.stream_unavailable_status == 404:
                raise GrpcError(5, "Not Found")
            raise GrpcError(
                12,
                "streaming is not available here: poll GET /api/v1/applications/{name} instead",
                http_status=self.stream_unavailable_status,
            )
        with self._lock:
            self.stream_connections += 1
            self._active_streams += 1
            cursor = len(self._events)
            pending = [("ADDED", self._app_json(app)) for app in self._apps.values()]
        sock: socket.socket = ctx.environ["werkzeug.socket"]
        return Response(
            self._stream(ctx, sock, cursor, pending), status=200, mimetype="application/json", direct_passthrough=True
        )

    def _stream(
        self,
        ctx: RequestContext,
        sock: socket.socket,
        cursor: int,
        pending: list[tuple[str, dict[str, Any]]],
    ) -> Iterator[bytes]:
        """Yield watch events as grpc-gateway lines until the client leaves, the server stops or a fault cuts."""
        sent = 0
        limit: int | None = None
        try:
            while True:
                for kind, app in pending:
                    if not (ctx.allowed and self._visible(app, ctx.query)):
                        continue
                    limit = limit if limit is not None else self._claim_drop()
                    if limit is not None and sent >= limit:
                        sock.shutdown(socket.SHUT_RDWR)
                        return
                    line = {"result": {"type": kind, "application": app}}
                    self._check_stream_line(line)
                    yield json.dumps(line).encode() + b"\n"
                    sent += 1
                with self._changed:
                    while cursor == len(self._events):
                        limit = limit if limit is not None else self._claim_drop()
                        if limit is not None and sent >= limit:
                            sock.shutdown(socket.SHUT_RDWR)
                            return
                        if self._stopping.is_set() or _peer_closed(sock):
                            return
                        self._changed.wait(0.05)
                    pending = self._events[cursor:]
                    cursor = len(self._events)
        finally:
            with self._lock:
                self._active_streams -= 1

    def _claim_drop(self) -> int | None:
        with self._lock:
            if self._drop_after is None or self._drops_left == 0:
                return None
            if self._drops_left is not None:
                self._drops_left -= 1
            return self._drop_after

    def _check_stream_line(self, line: dict[str, Any]) -> None:
        schema = self.spec.response_schema("ApplicationService_Watch", 200) or {}
        problem = self.spec.schema_error(schema, line, strict=True)
        if problem is not None:
            with self._lock:
                self.invalid_responses.append(Problem("GET", "/api/v1/stream/applications", problem))


def _peer_closed(sock: socket.socket) -> bool:
    """Tell whether the client has closed its end (readable with nothing to read)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0)) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


# --------------------------------------------------------------------------------------------- timelines


def rollout_timeline(revision: str, step_s: float = 0.05) -> Timeline:
    """OutOfSync at ``revision`` -> sync Running -> Synced + Progressing -> Healthy (a normal rollout)."""
    return [
        (0.0, {"sync": "OutOfSync", "revision": revision}),
        (step_s, {"operation_phase": "Running"}),
        (step_s, {"sync": "Synced", "operation_phase": "Succeeded", "health": "Progressing"}),
        (step_s, {"health": "Healthy"}),
    ]


def degraded_timeline(revision: str, step_s: float = 0.05, message: str | None = None) -> Timeline:
    """A rollout of ``revision`` whose sync succeeds but whose health ends Degraded."""
    ending = {"health": "Degraded"} if message is None else {"health": "Degraded", "health_message": message}
    return [*rollout_timeline(revision, step_s)[:3], (step_s, ending)]


def sync_failed_timeline(
    revision: str,
    step_s: float = 0.05,
    message: str = "one or more objects failed to apply, reason: admission webhook denied the request",
) -> Timeline:
    """A sync of ``revision`` whose operation Fails; the app stays OutOfSync and the old pods stay Healthy."""
    return [*rollout_timeline(revision, step_s)[:2], (step_s, {"operation_phase": "Failed", "message": message})]


def superseded_timeline(revision: str, newer_revision: str, step_s: float = 0.05) -> Timeline:
    """``revision`` starts rolling out, then the app moves on to ``newer_revision`` and becomes Healthy there."""
    return [*rollout_timeline(revision, step_s)[:3], *rollout_timeline(newer_revision, step_s)]


def flapping_timeline(revision: str, flaps: int = 2, step_s: float = 0.05) -> Timeline:
    """A rollout of ``revision`` to Healthy, then health flapping Progressing/Healthy ``flaps`` times."""
    flapping = [(step_s, {"health": health}) for _ in range(flaps) for health in ("Progressing", "Healthy")]
    return [*rollout_timeline(revision, step_s), *flapping]


__all__ = [
    "CHART_REPO_URL",
    "CHART_VERSION",
    "ArgoCDEmulator",
    "Timeline",
    "degraded_timeline",
    "flapping_timeline",
    "rollout_timeline",
    "superseded_timeline",
    "sync_failed_timeline",
]
