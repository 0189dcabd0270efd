"""Argo CD API server emulator over real HTTP, and the grpc-gateway plumbing shared with the Argo Server emulator.

Both Argo CD (https://argo-cd.readthedocs.io/en/stable/developer-guide/api-docs/) and the Argo Workflows server
(https://argo-workflows.readthedocs.io/en/latest/rest-api/) expose gRPC services through grpc-gateway
(https://grpc-ecosystem.github.io/grpc-gateway/): JSON bodies, errors as ``{"code", "message"}`` with the HTTP
status derived from the gRPC code, and server streams as newline-delimited ``{"result": ...}`` objects.
``GrpcGatewayEmulator`` is that common front: a threaded werkzeug server on 127.0.0.1, Bearer-token auth,
request and response validation against a Swagger 2.0 subset (tests/specs/), and a record of every call.

``ArgoCDEmulator`` models the Argo CD API server for the operations of tests/specs/argocd-swagger-subset.json:
list/get applications (with the 403-for-a-missing-app trap of argo-cd ``getAppEnforceRBAC``), the application
watch stream, and session login. Applications follow scripted timelines of sync status, health and sync
operation (https://argo-cd.readthedocs.io/en/stable/operator-manual/health/). Query parameters the subset declares
but the emulator does not act on (``resourceVersion``; ``refresh`` on list and watch) are accepted and ignored.
Default health and operation messages are realistic examples, not strings checked against upstream.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import select
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Self

from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"

#: HTTP status per gRPC code, as grpc-gateway's ``runtime.HTTPStatusFromCode`` maps them.
GRPC_HTTP_STATUS = {3: 400, 5: 404, 6: 409, 7: 403, 10: 409, 12: 501, 13: 500, 16: 401}

_PATH_PARAM = re.compile(r"\{([^}]+)\}")


def utc_now() -> str:
    """Return the current time as a Kubernetes ``metav1.Time`` string (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GrpcError(Exception):
    """A gRPC status error; the emulator answers it the way grpc-gateway writes it.

    Args:
        code: gRPC status code (3 InvalidArgument, 5 NotFound, 7 PermissionDenied, 16 Unauthenticated, ...).
        message: the status message, sent as ``message``.
        http_status: overrides the HTTP status derived from ``code`` (grpc-gateway routing errors do).
    """

    def __init__(self, code: int, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status or GRPC_HTTP_STATUS[code]


@dataclass(frozen=True)
class Call:
    """One request the emulator answered (the Authorization header is never kept)."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    body: Any = None


@dataclass(frozen=True)
class Problem:
    """A request or response that does not match the swagger subset."""

    method: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.reason}"


@dataclass(frozen=True)
class RequestContext:
    """What an operation handler gets: path arguments, query, parsed body and the caller's permission."""

    operation_id: str
    path_args: dict[str, str]
    query: MultiDict[str, str]
    body: Any
    allowed: bool
    environ: dict[str, Any]


def _strict(schema: Any) -> Any:
    """Copy a schema so that objects with declared ``properties`` reject undeclared keys."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "definitions") and isinstance(value, dict):
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        else:
            out[key] = _strict(value)
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


def _json_path(parts: Iterable[Any]) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)
    return text.lstrip(".") or "(root)"


class SwaggerSubset:
    """Routes and validators for a Swagger 2.0 document (openapi-core does not read Swagger 2.0).

    Args:
        path: the swagger JSON file.
        overrides: definitions to replace when loading (e.g. the IntOrString quirk in tests/specs/README.md).
    """

    def __init__(self, path: Path, overrides: Mapping[str, Any] | None = None) -> None:
        doc = json.loads(path.read_text(encoding="utf-8"))
        self.definitions: dict[str, Any] = {**doc["definitions"], **(overrides or {})}
        self._strict_definitions = _strict(self.definitions)
        self.operations: dict[str, dict[str, Any]] = {}
        rules = []
        for template, item in doc["paths"].items():
            for method, operation in item.items():
                self.operations[operation["operationId"]] = operation
                rules.append(
                    Rule(
                        _PATH_PARAM.sub(r"<\1>", template), methods=[method.upper()], endpoint=operation["operationId"]
                    )
                )
        self.url_map = Map(rules)
        self._validators: dict[tuple[str, bool], Draft4Validator] = {}
        self._lock = threading.Lock()

    def schema_error(self, schema: dict[str, Any], instance: Any, *, strict: bool) -> str | None:
        """Return the most relevant validation error of ``instance`` as ``path: message``, or None.

        Args:
            schema: a schema using ``#/definitions/...`` references, e.g. ``{"$ref": "#/definitions/X"}``.
            instance: the JSON value to check.
            strict: also reject keys that the schema does not declare.
        """
        key = (json.dumps(schema, sort_keys=True), strict)
        with self._lock:
            validator = self._validators.get(key)
            if validator is None:
                root = _strict(schema) if strict else dict(schema)
                root["definitions"] = self._strict_definitions if strict else self.definitions
                validator = Draft4Validator(root, format_checker=Draft4Validator.FORMAT_CHECKER)
                self._validators[key] = validator
            error = best_match(validator.iter_errors(instance))
        if error is None:
            return None
        message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
        return f"{_json_path(error.absolute_path)}: {message}"

    def body_schema(self, operation_id: str) -> dict[str, Any] | None:
        """Return the schema of the operation's body parameter, or None if it takes no body."""
        for parameter in self.operations[operation_id].get("parameters", []):
            if parameter["in"] == "body":
                return parameter["schema"]
        return None

    def response_schema(self, operation_id: str, status: int) -> dict[str, Any] | None:
        """Return the schema the operation declares for ``status`` (or its ``default`` response)."""
        responses = self.operations[operation_id]["responses"]
        response = responses.get(str(status)) or responses.get("default") or {}
        return response.get("schema")

    def query_problems(self, operation_id: str, query: MultiDict[str, str]) -> list[str]:
        """List what is wrong with the query string: undeclared, repeated, mistyped or missing parameters."""
        declared = {p["name"]: p for p in self.operations[operation_id].get("parameters", []) if p["in"] == "query"}
        problems = []
        for name in query:
            values = query.getlist(name)
            parameter = declared.get(name)
            if parameter is None:
                problems.append(f"unknown query parameter {name!r} (declared: {', '.join(sorted(declared))})")
            elif parameter.get("type") != "array" and len(values) > 1:
                problems.append(f"query parameter {name!r} is not an array but was given {len(values)} times")
            elif parameter.get("type") == "boolean" and values[0] not in ("true", "false"):
                problems.append(f"query parameter {name!r} must be true or false, got {values[0]!r}")
            elif parameter.get("type") == "integer" and not values[0].lstrip("-").isdigit():
                problems.append(f"query parameter {name!r} must be an integer, got {values[0]!r}")
        for name, parameter in declared.items():
            if parameter.get("required") and name not in query:
                problems.append(f"required query parameter {name!r} is missing")
        return problems


class _QuietHandler(WSGIRequestHandler):
    """Request handler that leaves request logging to the emulator's call record."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Skip werkzeug's per-request log line."""


class GrpcGatewayEmulator:
    """A grpc-gateway style REST server on 127.0.0.1 that validates traffic against a swagger subset.

    Subclasses set ``spec``, register handlers in ``self.handlers`` (operationId -> callable taking a
    ``RequestContext`` and returning a JSON payload or a streaming ``Response``), and may list operations
    that need no token in ``public_operations`` and operations whose body is the thing being checked (lint) in
    ``handler_validated_bodies``: for those only a JSON object is required, the handler answers schema errors.
    """

    spec: SwaggerSubset
    public_operations: frozenset[str] = frozenset()
    handler_validated_bodies: frozenset[str] = frozenset()
    #: Argo CD writes ``error`` next to ``code``/``message``; the Argo Workflows server does not.
    error_field: bool = True
    missing_token_message = "no session information"
    invalid_token_message = "invalid session: failed to verify the token"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.invalid_requests: list[Problem] = []
        self.invalid_responses: list[Problem] = []
        self.handlers: dict[str, Callable[[RequestContext], Any]] = {}
        self._tokens: dict[str, bool] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def add_token(self, token: str, *, allowed: bool = True) -> None:
        """Accept ``token`` as ``Authorization: Bearer <token>``; ``allowed=False`` makes it lack permission."""
        with self._lock:
            self._tokens[token] = allowed

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Self:
        """Start serving on an ephemeral port of 127.0.0.1 and return self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._stopping.clear()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End open streams and background timelines, then stop the server."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        """Return the recorded calls with this method whose path starts with ``path_prefix``."""
        with self._lock:
            return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    def check_emitted(self, definition: str, instance: Any, where: str) -> None:
        """Validate an object the emulator is about to send; record a mismatch in ``invalid_responses``."""
        error = self.spec.schema_error({"$ref": f"#/definitions/{definition}"}, instance, strict=True)
        if error is not None:
            with self._lock:
                self.invalid_responses.append(Problem("EMIT", where, f"{definition}: {error}"))

    def redact(self, operation_id: str, body: Any) -> Any:
        """Return the request body as it may be recorded; subclasses hide passwords here."""
        return body

    def error_body(self, error: GrpcError) -> dict[str, Any]:
        """Return the grpc-gateway JSON error body for ``error``."""
        body: dict[str, Any] = {"code": error.code, "message": error.message}
        if self.error_field:
            body = {"error": error.message, **body}
        return body

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        response = self._respond(Request(environ))
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        adapter = self.spec.url_map.bind_to_environ(request.environ)
        try:
            operation_id, path_args = adapter.match()
        except (NotFound, RequestRedirect):
            error = GrpcError(5, "Not Found")
            return self._reject(request, None, error, "no operation of the swagger subset has this path")
        except MethodNotAllowed:
            error = GrpcError(12, "Method Not Allowed", http_status=405)
            return self._reject(request, None, error, "the swagger subset has this path but not this method")
        problems = self.spec.query_problems(operation_id, request.args)
        body, body_problem = self._parse_body(request, operation_id)
        if body_problem:
            problems.append(body_problem)
        if problems:
            return self._reject(request, operation_id, GrpcError(3, "; ".join(problems)), "; ".join(problems))
        allowed = True
        if operation_id not in self.public_operations:
            try:
                allowed = self._authenticate(request.headers.get("Authorization"))
            except GrpcError as error:
                return self._finish(request, operation_id, body, error=error)
        ctx = RequestContext(operation_id, dict(path_args), request.args, body, allowed, request.environ)
        try:
            result = self.handlers[operation_id](ctx)
        except GrpcError as error:
            return self._finish(request, operation_id, body, error=error)
        except Exception as exc:  # an emulator bug: answer Internal and make the fixture's teardown fail
            with self._lock:
                self.invalid_responses.append(Problem(request.method, request.path, f"emulator error: {exc!r}"))
            return self._finish(request, operation_id, body, error=GrpcError(13, f"emulator error: {exc}"))
        if isinstance(result, Response):
            self._record(request, operation_id, body, result.status_code)
            return result
        return self._finish(request, operation_id, body, payload=result)

    def _parse_body(self, request: Request, operation_id: str) -> tuple[Any, str | None]:
        schema = self.spec.body_schema(operation_id)
        if schema is None:
            return None, None
        text = request.get_data(as_text=True)
        if not text:
            return None, "the operation requires a JSON body and none was sent"
        try:
            body = json.loads(text)
        except ValueError as exc:
            return None, f"the body is not JSON: {exc}"
        if operation_id in self.handler_validated_bodies:
            return body, None if isinstance(body, dict) else "the body must be a JSON object"
        error = self.spec.schema_error(schema, body, strict=False)
        if error is not None:
            return body, f"body: {error}"
        strict_error = self.spec.schema_error(schema, body, strict=True)
        if strict_error is not None:
            # The real servers ignore unknown fields (encoding/json), so serve the call, but flag the client bug.
            with self._lock:
                self.invalid_requests.append(
                    Problem(request.method, request.path, f"body has a field the API does not know: {strict_error}")
                )
        return body, None

    def _authenticate(self, header: str | None) -> bool:
        if not header:
            raise GrpcError(16, self.missing_token_message)
        scheme, _, token = header.partition(" ")
        with self._lock:
            allowed = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if allowed is None:
            raise GrpcError(16, self.invalid_token_message)
        return allowed

    def _reject(self, request: Request, operation_id: str | None, error: GrpcError, reason: str) -> Response:
        with self._lock:
            self.invalid_requests.append(Problem(request.method, request.path, reason))
        return self._finish(request, operation_id, None, error=error)

    def _finish(
        self,
        request: Request,
        operation_id: str | None,
        body: Any,
        *,
        payload: Any = None,
        error: GrpcError | None = None,
    ) -> Response:
        status = error.http_status if error is not None else 200
        if error is not None:
            payload = self.error_body(error)
        schema = self.spec.response_schema(operation_id, status) if operation_id is not None else None
        if schema is not None:
            problem = self.spec.schema_error(schema, payload, strict=True)
            if problem is not None:
                with self._lock:
                    self.invalid_responses.append(Problem(request.method, request.path, f"{status}: {problem}"))
        self._record(request, operation_id, body, status)
        return Response(json.dumps(payload), status=status, mimetype="application/json")

    def _record(self, request: Request, operation_id: str | None, body: Any, status: int) -> None:
        recorded = self.redact(operation_id, body) if operation_id is not None else None
        call = Call(request.method, request.path, {k: request.args.getlist(k) for k in request.args}, status, recorded)
        with self._lock:
            self.calls.append(call)


# --------------------------------------------------------------------------------------------- Argo CD


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
            if refresh is not None:
                self.refresh_requests.append((name, "hard" if refresh == "hard" else "normal"))
                app.reconciled_at = utc_now()
                return self._emit("MODIFIED", app)
            return self._app_json(app)

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
    "GRPC_HTTP_STATUS",
    "SPECS_DIR",
    "ArgoCDEmulator",
    "Call",
    "GrpcError",
    "GrpcGatewayEmulator",
    "Problem",
    "RequestContext",
    "SwaggerSubset",
    "Timeline",
    "degraded_timeline",
    "flapping_timeline",
    "rollout_timeline",
    "superseded_timeline",
    "sync_failed_timeline",
    "utc_now",
]
