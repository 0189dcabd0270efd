"""The grpc-gateway front shared by the Argo CD and Argo Server emulators, over real HTTP on 127.0.0.1.

Both Argo CD (https://argo-cd.readthedocs.io/en/stable/developer-guide/api-docs/) and the Argo Workflows server
(https://argo-workflows.readthedocs.io/en/latest/rest-api/) expose gRPC services through grpc-gateway
(https://grpc-ecosystem.github.io/grpc-gateway/): JSON bodies, errors as ``{"code", "message"}`` with the HTTP
status derived from the gRPC code, and server streams as newline-delimited ``{"result": ...}`` objects.
``GrpcGatewayEmulator`` is that common front: a threaded werkzeug server on 127.0.0.1, Bearer-token auth,
request and response validation against a Swagger 2.0 subset (``SwaggerSubset`` over tests/support/specs/), and a record
of every call.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
GRPC_HTTP_STATUS = {3: 400, 5: 404, 6: 409, 7: 403, 9: 400, 10: 409, 12: 501, 13: 500, 16: 401}

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
        overrides: definitions to replace when loading (e.g. the IntOrString quirk in tests/support/specs/README.md).
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


__all__ = [
    "GRPC_HTTP_STATUS",
    "SPECS_DIR",
    "Call",
    "GrpcError",
    "GrpcGatewayEmulator",
    "Problem",
    "RequestContext",
    "SwaggerSubset",
    "utc_now",
]
