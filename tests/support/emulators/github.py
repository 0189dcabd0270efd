"""A GitHub REST API emulator: a real HTTP server on 127.0.0.1 that tests talk to instead of GitHub.

It implements the GitHub App endpoints the project uses (installations and access tokens, commit
statuses, deployments and deployment statuses, issue comments, check runs, rate limit, tarballs) at the
root (like https://api.github.com) and under a base path (like GitHub Enterprise Server's
``https://HOST/api/v3``). Every request to an endpoint of the official OpenAPI description
(``tests/support/specs/github-rest-subset.json``, https://github.com/github/rest-api-description) is validated
with openapi-core; the emulator's own answers are validated too. Authentication follows
https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app : RS256 app JWTs,
installation tokens narrowed to repositories and permissions. Faults (errors, rate limits, latency,
dropped connections, expired tokens) can be scripted, and every call is recorded without secrets.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
import math
import re
import secrets
import socket
import string
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import quote, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.responses.exceptions import ResponseNotFound
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SPEC_PATH = Path(__file__).resolve().parent.parent / "specs" / "github-rest-subset.json"
DOCS = "https://docs.github.com/rest"
CODELOAD_PREFIX = "/_codeload"
RECORDED_HEADERS = ("accept", "user-agent", "content-type", "x-github-api-version")
LEVELS = {"read": 1, "write": 2, "admin": 3}
DEFAULT_PERMISSIONS = {
    "checks": "write",
    "contents": "read",
    "deployments": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
}
SHA_RE = re.compile(r"^[0-9a-fA-F]{40}$")
FaultKind = Literal[
    "http_error", "too_many_requests", "secondary_rate_limit", "primary_rate_limit", "latency", "drop", "drop_after"
]
AuthKind = Literal["jwt", "installation", "none"]


@functools.cache
def github_openapi() -> OpenAPI:
    """The OpenAPI object for the GitHub subset, built once per process (building it is slow)."""
    return OpenAPI.from_file_path(str(SPEC_PATH))


@functools.cache
def _docs_urls() -> dict[tuple[str, str], str]:
    """Map (METHOD, spec path template) to the operation's documentation URL, as GitHub reports it."""
    spec = json.loads(SPEC_PATH.read_text())
    return {
        (method.upper(), path): op.get("externalDocs", {}).get("url", DOCS)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if isinstance(op, dict) and "responses" in op
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Call:
    """One request the emulator received (never holds a token or a JWT).

    Attributes:
        method: HTTP method.
        path: the path as sent, including a GHES base path such as ``/api/v3``.
        api_path: the path with the base path stripped (what fault and count regexes search).
        query: query parameters (first value of each; a ``token`` parameter is redacted).
        status: HTTP status answered, 0 when the connection was dropped.
        auth_kind: "jwt", "installation" or "none", from the form of the Authorization header.
        repo: "owner/name" for repository endpoints, else None.
        body: the parsed JSON body, or None.
        headers: a few request headers (lower-case names), never Authorization.
        fault: the kind of the scripted fault applied to this call, or None.
    """

    method: str
    path: str
    api_path: str
    query: dict[str, str]
    status: int
    auth_kind: AuthKind
    repo: str | None
    body: Any
    headers: dict[str, str]
    fault: str | None = None


@dataclass(frozen=True)
class ValidationProblem:
    """A request the emulator refused as invalid, or a response of its own that broke the spec."""

    method: str
    path: str
    detail: str


@dataclass
class Fault:
    """A scripted fault, matched on method and a regex searched in the API path; consumed in order.

    Kinds: ``http_error`` (``status`` with ``body``), ``too_many_requests`` (429 + ``Retry-After``),
    ``secondary_rate_limit`` (403 + ``Retry-After``), ``primary_rate_limit`` (403 with
    ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` = now + ``reset_in``), ``latency`` (sleep
    ``seconds`` then answer normally), ``drop`` (close the connection without any response), ``drop_after``
    (carry the request out, then close the connection without the response: the create happened, the client
    cannot know; what a load balancer's idle reset or a GitHub 502 after the write looks like).
    """

    kind: FaultKind
    method: str | None = None
    path_regex: str = ""
    times: int = 1
    status: int = 502
    body: Any = None
    retry_after: int = 1
    reset_in: int = 60
    seconds: float = 0.0
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {get_args(FaultKind)}")
        self.remaining = self.times

    def matches(self, method: str, api_path: str) -> bool:
        """Whether this fault still applies to a request."""
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and re.search(self.path_regex, api_path) is not None
        )


# --------------------------------------------------------------------------------------------- state


@dataclass
class App:
    """A registered GitHub App."""

    app_id: int
    public_key: RSAPublicKey
    slug: str
    client_id: str


@dataclass
class Installation:
    """An installation of an app on an account, with its repositories and granted permissions."""

    installation_id: int
    app_id: int
    account: str
    account_type: str
    repositories: list[str]
    permissions: dict[str, str]
    created_at: float


@dataclass
class TokenInfo:
    """An issued installation token, without its secret."""

    installation_id: int
    repositories: list[str]
    permissions: dict[str, str]
    expires_at: float
    revoked: bool = False


@dataclass
class CommitStatus:
    """A commit status as stored."""

    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    created_at: float
    creator: str


@dataclass
class DeploymentStatus:
    """A deployment status as stored."""

    id: int
    deployment_id: int
    state: str
    description: str
    environment: str
    target_url: str
    log_url: str
    environment_url: str
    created_at: float
    creator: str
    auto: bool = False  # added by auto_inactive, not by a request


@dataclass
class Deployment:
    """A deployment as stored; ``statuses`` oldest first."""

    id: int
    sha: str
    ref: str
    task: str
    environment: str
    original_environment: str
    description: str | None
    payload: Any
    transient_environment: bool
    production_environment: bool
    auto_merge: bool
    required_contexts: list[str] | None
    created_at: float
    updated_at: float
    creator: str
    statuses: list[DeploymentStatus] = field(default_factory=list)

    @property
    def state(self) -> str | None:
        """The state of the latest status, None without any."""
        return self.statuses[-1].state if self.statuses else None

    @property
    def destroyed(self) -> bool:
        """A transient deployment set inactive is shown as destroyed by GitHub."""
        return self.transient_environment and self.state == "inactive"


@dataclass
class Comment:
    """An issue or pull-request comment as stored."""

    id: int
    issue_number: int
    body: str
    user: str
    user_type: str
    created_at: float
    updated_at: float
    app_id: int | None = None


@dataclass
class CheckRun:
    """A check run as stored; ``annotations`` accumulate over updates."""

    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    details_url: str | None
    external_id: str | None
    started_at: float | None
    completed_at: float | None
    title: str | None
    summary: str | None
    text: str | None
    annotations: list[dict[str, Any]]
    check_suite_id: int
    app_id: int


@dataclass
class _Repo:
    full_name: str
    id: int
    statuses: list[CommitStatus] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    check_runs: list[CheckRun] = field(default_factory=list)
    check_suites: dict[str, int] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    tarballs: dict[str, bytes] = field(default_factory=dict)
    pull_requests: set[int] = field(default_factory=set)
    parents: dict[str, list[str]] = field(default_factory=dict)  # commit graph, for compare


@dataclass
class _Principal:
    kind: AuthKind
    app: App | None = None
    token: TokenInfo | None = None

    @property
    def rate_key(self) -> str:
        if self.token is not None:
            return f"installation:{self.token.installation_id}"
        return f"app:{self.app.app_id}" if self.app else "anonymous"


@dataclass
class _Ctx:
    request: Request
    prefix: str
    api_path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    principal: _Principal
    docs_url: str

    @property
    def api_base(self) -> str:
        return self.request.host_url.rstrip("/") + self.prefix

    @property
    def web_base(self) -> str:
        return self.request.host_url.rstrip("/")

    @property
    def repo(self) -> str:
        return f"{self.params['owner']}/{self.params['repo']}".lower()


class ApiError(Exception):
    """An error answer; handlers raise it to short-circuit."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(f"{status}: {body.get('message')}")
        self.status = status
        self.body = body
        self.headers = headers or {}


class _Dropped(Exception):
    """Raised to drop the connection without any response."""


def _error(status: int, message: str, docs: str = DOCS, **extra: Any) -> ApiError:
    return ApiError(status, {"message": message, "documentation_url": docs, "status": str(status), **extra})


def _validation_failed(resource: str, field_name: str, message: str, docs: str, code: str = "custom") -> ApiError:
    error = {"resource": resource, "field": field_name, "code": code, "message": message}
    return ApiError(422, {"message": "Validation Failed", "errors": [error], "documentation_url": docs})


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Callable[[_Ctx], Response]
    auth: Literal["jwt", "installation", "any", "codeload"]
    permission: str | None
    spec_template: str | None  # the operation of the OpenAPI description that validates this route


class _SpecRequest(WerkzeugOpenAPIRequest):
    """The werkzeug request as openapi-core should see it: on api.github.com, base path stripped."""

    def __init__(self, request: Request, spec_path: str):
        super().__init__(request)
        self._spec_path = spec_path

    @property
    def host_url(self) -> str:
        return "https://api.github.com"

    @property
    def path(self) -> str:
        return self._spec_path

    @property
    def content_type(self) -> str:
        # GitHub parses any request body as JSON whatever its Content-Type.
        return "application/json" if self.request.get_data() else super().content_type


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Keep test output clean: no access log."""


def _describe(exc: Exception) -> str:
    cause = exc.__cause__
    errors = getattr(cause, "schema_errors", None) or []
    parts = []
    for err in errors:
        where = "/".join(str(p) for p in err.absolute_path) or "body"
        message = err.message if len(err.message) <= 200 else err.message[:200] + "..."
        parts.append(f"For '{where}', {message}")
    if not parts:
        parts.append(f"{exc}" + (f": {cause}" if cause else ""))
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------- emulator


class GitHubEmulator:
    """An emulated GitHub REST API on 127.0.0.1 (see the module docstring).

    Args:
        base_path: where the API is also served, like GitHub Enterprise Server's ``/api/v3``.
        status_limit: how many commit statuses a sha and context may hold (GitHub: 1000).
        tarball_redirect: answer tarball requests with a 302 to a codeload-like path (like GitHub).
    """

    def __init__(self, base_path: str = "/api/v3", status_limit: int = 1000, tarball_redirect: bool = True):
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.status_limit = status_limit
        self.tarball_redirect = tarball_redirect
        self.clock_offset = 0.0
        self._lock = threading.RLock()
        self._apps: dict[int, App] = {}
        self._installations: dict[int, Installation] = {}
        self._repos: dict[str, _Repo] = {}
        self._tokens: dict[str, TokenInfo] = {}  # sha256(token) -> info
        self._codeload: dict[str, tuple[str, str, float]] = {}  # sha256(token) -> (repo, ref, expiry)
        self._rate_used: dict[str, int] = {}
        self._faults: list[Fault] = []
        self._calls: list[Call] = []
        self.invalid_requests: list[ValidationProblem] = []
        self.invalid_responses: list[ValidationProblem] = []
        self._ids = {
            name: 10**9 * (i + 1)
            for i, name in enumerate(
                ("repo", "status", "deployment", "deployment_status", "comment", "check_run", "check_suite")
            )
        }
        self._routes = self._build_routes()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------- lifecycle

    def start(self) -> GitHubEmulator:
        """Start serving on an ephemeral port of 127.0.0.1; returns self."""
        github_openapi()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="github-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> GitHubEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Root URL, the equivalent of https://api.github.com."""
        if self._server is None:
            raise RuntimeError("the GitHub emulator is not started: call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def ghes_url(self) -> str:
        """URL under the base path, the equivalent of https://HOST/api/v3 on GitHub Enterprise Server."""
        return self.url + self.base_path

    def now(self) -> float:
        """The emulator's clock: wall time plus ``clock_offset`` (see ``advance_clock``)."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward, e.g. past a token's one-hour lifetime."""
        self.clock_offset += seconds

    # ---------------------------------------------------------------------------------- setup

    def add_app(self, app_id: int, public_key: RSAPublicKey | bytes | str, slug: str | None = None) -> App:
        """Register a GitHub App by id with its RSA public key (object or PEM)."""
        if not isinstance(public_key, RSAPublicKey):
            loaded = load_pem_public_key(public_key.encode() if isinstance(public_key, str) else public_key)
            if not isinstance(loaded, RSAPublicKey):
                raise TypeError("a GitHub App key must be an RSA public key")
            public_key = loaded
        app = App(app_id, public_key, slug or f"app-{app_id}", f"Iv23li{app_id:014d}")
        with self._lock:
            self._apps[app_id] = app
        return app

    def add_installation(
        self,
        installation_id: int,
        app_id: int,
        account: str = "acme",
        repositories: list[str] | None = None,
        permissions: dict[str, str] | None = None,
        account_type: str = "Organization",
    ) -> Installation:
        """Install an app on an account with a selection of repositories ("owner/name").

        ``permissions`` defaults to write on statuses, deployments, issues, pull_requests, checks and
        read on contents and metadata.
        """
        if app_id not in self._apps:
            raise ValueError(f"app {app_id} is not registered: call add_app({app_id}, public_key) first")
        repos = [r.lower() for r in (repositories or [])]
        for full_name in repos:
            if "/" not in full_name:
                raise ValueError(f"repository {full_name!r} must be written 'owner/name'")
        installation = Installation(
            installation_id,
            app_id,
            account,
            account_type,
            repos,
            dict(permissions or DEFAULT_PERMISSIONS),
            self.now(),
        )
        with self._lock:
            self._installations[installation_id] = installation
            for full_name in repos:
                self._repo(full_name)
        return installation

    def add_pull_request(self, repo: str, number: int) -> None:
        """Declare that issue ``number`` is a pull request (its comments then accept pull_requests)."""
        with self._lock:
            self._repo(repo).pull_requests.add(number)

    def set_ref(self, repo: str, ref: str, sha: str) -> None:
        """Point a branch or tag name at a commit, for deployments and commit lookups by ref."""
        with self._lock:
            self._repo(repo).refs[ref] = sha.lower()

    def add_commits(self, repo: str, *shas: str, parent: str | None = None) -> list[str]:
        """Add a chain of commits (each the parent of the next; the first's parent is ``parent``) for compare."""
        with self._lock:
            graph = self._repo(repo).parents
            previous = parent.lower() if parent else None
            for sha in shas:
                graph[sha.lower()] = [previous] if previous else []
                previous = sha.lower()
        return [sha.lower() for sha in shas]

    def set_tarball(self, repo: str, ref_or_sha: str, content: dict[str, bytes] | bytes, sha: str | None = None) -> str:
        """Serve an archive for ``GET /repos/{repo}/tarball/{ref_or_sha}``; returns the commit sha.

        ``content`` is either a mapping of paths to file bytes, archived as GitHub does (gzip tar, one
        top directory ``{owner}-{repo}-{sha[:7]}/``, paths used as given so tests can build hostile
        archives), or raw bytes served unchanged.
        """
        with self._lock:
            state = self._repo(repo)
            if SHA_RE.match(ref_or_sha):
                commit = ref_or_sha.lower()
            else:
                commit = (
                    sha
                    or state.refs.get(ref_or_sha)
                    or hashlib.sha1(  # noqa: S324 - fake commit id
                        f"{repo}@{ref_or_sha}".encode()
                    ).hexdigest()
                ).lower()
                state.refs[ref_or_sha] = commit
            if isinstance(content, bytes):
                data = content
            else:
                owner, name = repo.lower().split("/")
                data = _tarball(f"{owner}-{name}-{commit[:7]}", content, commit)
            state.tarballs[ref_or_sha] = data
            state.tarballs[commit] = data
        return commit

    def add_comment(
        self, repo: str, issue_number: int, body: str, user: str = "other-bot[bot]", user_type: str = "Bot"
    ) -> Comment:
        """Seed a comment written by someone else (another bot or a person)."""
        with self._lock:
            now = self.now()
            comment = Comment(self._next_id("comment"), issue_number, body, user, user_type, now, now)
            self._repo(repo).comments.append(comment)
            return copy.deepcopy(comment)

    def add_fault(self, fault: Fault) -> Fault:
        """Script a fault; faults are tried in the order added and each is used ``times`` times."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def expire_tokens(self) -> None:
        """Make every installation token issued so far answer 401 Bad credentials."""
        with self._lock:
            for info in self._tokens.values():
                info.revoked = True

    # ------------------------------------------------------------------------------ accessors

    @property
    def calls(self) -> list[Call]:
        """Every call received so far, in order."""
        with self._lock:
            return list(self._calls)

    def count(self, method: str | None = None, path_regex: str | None = None) -> int:
        """How many calls match a method and a regex searched in the API path (base path stripped)."""
        return sum(
            1
            for c in self.calls
            if (method is None or c.method == method.upper())
            and (path_regex is None or re.search(path_regex, c.api_path))
        )

    def statuses(self, repo: str, sha: str) -> list[CommitStatus]:
        """Commit statuses of a commit, oldest first."""
        with self._lock:
            return copy.deepcopy([s for s in self._repo(repo).statuses if s.sha == sha.lower()])

    def deployments(self, repo: str) -> list[Deployment]:
        """Deployments of a repository (with their statuses), oldest first."""
        with self._lock:
            return copy.deepcopy(self._repo(repo).deployments)

    def deployment_statuses(self, repo: str, deployment_id: int) -> list[DeploymentStatus]:
        """Statuses of one deployment, oldest first."""
        with self._lock:
            return copy.deepcopy(self._deployment(self._repo(repo), deployment_id).statuses)

    def comments(self, repo: str, issue_number: int) -> list[Comment]:
        """Comments on an issue or pull request, oldest first."""
        with self._lock:
            return copy.deepcopy([c for c in self._repo(repo).comments if c.issue_number == issue_number])

    def check_runs(self, repo: str) -> list[CheckRun]:
        """Check runs of a repository, oldest first."""
        with self._lock:
            return copy.deepcopy(self._repo(repo).check_runs)

    def tokens_issued(self) -> list[TokenInfo]:
        """The scopes of every installation token issued so far (never the secrets)."""
        with self._lock:
            return copy.deepcopy(list(self._tokens.values()))

    # --------------------------------------------------------------------------------- routing

    def _build_routes(self) -> list[_Route]:
        table: list[tuple[str, str, Callable[[_Ctx], Response], str, str | None, bool | str]] = [
            ("GET", "/app/installations", self._list_installations, "jwt", None, True),
            ("POST", "/app/installations/{installation_id}/access_tokens", self._create_token, "jwt", None, True),
            ("GET", "/repos/{owner}/{repo}/installation", self._repo_installation, "jwt", None, True),
            ("POST", "/repos/{owner}/{repo}/statuses/{sha}", self._create_status, "installation", "statuses", True),
            (
                "GET",
                "/repos/{owner}/{repo}/commits/{ref}/statuses",
                self._list_statuses,
                "installation",
                "statuses",
                True,
            ),
            (
                "GET",
                "/repos/{owner}/{repo}/commits/{ref}/status",
                self._combined_status,
                "installation",
                "statuses",
                True,
            ),
            # Legacy alias still served by GitHub and used by PyGithub's Commit.get_statuses().
            (
                "GET",
                "/repos/{owner}/{repo}/statuses/{ref}",
                self._list_statuses,
                "installation",
                "statuses",
                "/repos/{owner}/{repo}/commits/{ref}/statuses",
            ),
            ("GET", "/repos/{owner}/{repo}/deployments", self._list_deployments, "installation", "deployments", True),
            ("POST", "/repos/{owner}/{repo}/deployments", self._create_deployment, "installation", "deployments", True),
            (
                "DELETE",
                "/repos/{owner}/{repo}/deployments/{deployment_id}",
                self._delete_deployment,
                "installation",
                "deployments",
                True,
            ),
            (
                "GET",
                "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
                self._list_deployment_statuses,
                "installation",
                "deployments",
                True,
            ),
            (
                "POST",
                "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
                self._create_deployment_status,
                "installation",
                "deployments",
                True,
            ),
            (
                "GET",
                "/repos/{owner}/{repo}/issues/{issue_number}/comments",
                self._list_comments,
                "installation",
                None,
                True,
            ),
            (
                "POST",
                "/repos/{owner}/{repo}/issues/{issue_number}/comments",
                self._create_comment,
                "installation",
                None,
                True,
            ),
            (
                "GET",
                "/repos/{owner}/{repo}/issues/comments/{comment_id}",
                self._get_comment,
                "installation",
                None,
                True,
            ),
            (
                "PATCH",
                "/repos/{owner}/{repo}/issues/comments/{comment_id}",
                self._update_comment,
                "installation",
                None,
                True,
            ),
            ("POST", "/repos/{owner}/{repo}/check-runs", self._create_check_run, "installation", "checks", True),
            (
                "PATCH",
                "/repos/{owner}/{repo}/check-runs/{check_run_id}",
                self._update_check_run,
                "installation",
                "checks",
                True,
            ),
            (
                "GET",
                "/repos/{owner}/{repo}/compare/{basehead}",
                self._compare,
                "installation",
                "contents",
                True,
            ),
            ("GET", "/rate_limit", self._rate_limit, "any", None, True),
            ("GET", "/repos/{owner}/{repo}/tarball/{ref}", self._tarball, "installation", "contents", False),
            (
                "GET",
                CODELOAD_PREFIX + "/{owner}/{repo}/legacy.tar.gz/{ref}",
                self._codeload_get,
                "codeload",
                None,
                False,
            ),
        ]
        return [
            _Route(
                method,
                template,
                re.compile("^" + re.sub(r"\{(\w+)\}", _param_regex, template) + "$"),
                handler,
                auth,
                permission,  # type: ignore[arg-type]
                template if spec is True else spec or None,
            )
            for method, template, handler, auth, permission, spec in table
        ]

    def _match(self, method: str, api_path: str) -> tuple[_Route, dict[str, str]] | None:
        for route in self._routes:
            found = route.regex.match(api_path)
            if route.method == method and found:
                return route, found.groupdict()
        return None

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        try:
            response = self._handle(request)
        except _Dropped:
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            raise ConnectionAbortedError("connection dropped by a scripted fault") from None
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        method = request.method.upper()
        prefix = ""
        api_path = request.path
        if self.base_path and (api_path == self.base_path or api_path.startswith(self.base_path + "/")):
            prefix, api_path = self.base_path, api_path[len(self.base_path) :] or "/"
        raw = request.get_data()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        secret = _authorization(request)
        auth_kind: AuthKind = "none" if secret is None else ("jwt" if secret.count(".") == 2 else "installation")
        matched = self._match(method, api_path)
        repo = None
        if matched and "owner" in matched[1]:
            repo = f"{matched[1]['owner']}/{matched[1]['repo']}".lower()
        status = 0
        fault = None
        try:
            with self._lock:
                fault = next((f for f in self._faults if f.matches(method, api_path)), None)
                if fault is not None:
                    fault.remaining -= 1
            response = self._apply_fault(fault) if fault and fault.kind != "drop_after" else None
            if response is None:
                response = self._dispatch(request, prefix, api_path, matched, body, raw, secret)
            status = response.status_code
            if fault is not None and fault.kind == "drop_after":
                status = 0
                raise _Dropped
            return response
        finally:
            query = {k: ("<redacted>" if k == "token" else v) for k, v in request.args.items()}
            headers = {h: request.headers[h] for h in RECORDED_HEADERS if h in request.headers}
            call = Call(
                method,
                request.path,
                api_path,
                query,
                status,
                auth_kind,
                repo,
                body,
                headers,
                fault.kind if fault else None,
            )
            with self._lock:
                self._calls.append(call)

    def _apply_fault(self, fault: Fault) -> Response | None:
        if fault.kind == "latency":
            time.sleep(fault.seconds)
            return None
        if fault.kind == "drop":
            raise _Dropped
        now = int(self.now())
        if fault.kind == "http_error":
            body = fault.body if fault.body is not None else {"message": "Server Error", "status": str(fault.status)}
            return self._json(fault.status, body, {})
        if fault.kind == "too_many_requests":
            body = {"message": "Too Many Requests", "documentation_url": DOCS, "status": "429"}
            return self._json(429, body, {"Retry-After": str(fault.retry_after)})
        if fault.kind == "secondary_rate_limit":
            body = {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
                "again. If you reach out to GitHub Support for help, please include the request ID "
                f"{secrets.token_hex(8).upper()}.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                "#about-secondary-rate-limits",
                "status": "403",
            }
            return self._json(403, body, {"Retry-After": str(fault.retry_after)})
        body = {
            "message": "API rate limit exceeded for installation.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            "status": "403",
        }
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(now + fault.reset_in),
            "x-ratelimit-resource": "core",
        }
        return self._json(403, body, headers)

    def _dispatch(
        self,
        request: Request,
        prefix: str,
        api_path: str,
        matched: tuple[_Route, dict[str, str]] | None,
        body: Any,
        raw: bytes,
        secret: str | None,
    ) -> Response:
        method = request.method.upper()
        if matched is None:
            self._invalid(method, request.path, "no such endpoint in the GitHub emulator")
            return self._json(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, {})
        route, params = matched
        docs = _docs_urls().get((method, route.spec_template or route.template), DOCS)
        principal = _Principal("none")
        spec_request = None
        try:
            if raw and body is None:
                self._invalid(method, request.path, "request body is not JSON")
                raise _error(400, "Problems parsing JSON", docs)
            principal = self._authenticate(route, secret)
            ctx = _Ctx(request, prefix, api_path, params, dict(request.args.items()), body, principal, docs)
            if route.auth == "installation":
                self._authorize(ctx, route.permission)
            if route.spec_template is not None:
                spec_path = route.spec_template
                for name, value in params.items():
                    spec_path = spec_path.replace("{" + name + "}", quote(value, safe=""))
                spec_request = _SpecRequest(request, spec_path)
                try:
                    github_openapi().validate_request(spec_request)
                except OpenAPIError as exc:
                    detail = _describe(exc)
                    self._invalid(method, request.path, detail)
                    raise _error(422, "Invalid request.\n\n" + detail, docs) from None
            with self._lock:
                response = route.handler(ctx)
        except ApiError as err:
            response = self._json(err.status, err.body, err.headers)
        except Exception as exc:  # an emulator bug: answer 500 and make it visible to the test
            with self._lock:
                self.invalid_responses.append(ValidationProblem(method, request.path, f"emulator crashed: {exc!r}"))
            return self._json(500, {"message": "GitHub emulator bug", "status": "500"}, {})
        self._rate_headers(response, principal)
        if spec_request is not None:
            self._check_response(method, request.path, spec_request, response)
        return response

    def _check_response(self, method: str, path: str, spec_request: _SpecRequest, response: Response) -> None:
        try:
            github_openapi().validate_response(spec_request, WerkzeugOpenAPIResponse(response))
        except ResponseNotFound:
            return  # a status GitHub answers but the description does not list (401, 403, ...)
        except OpenAPIError as exc:
            if isinstance(exc.__cause__, ResponseNotFound):
                return
            with self._lock:
                self.invalid_responses.append(
                    ValidationProblem(method, path, f"{response.status_code}: {_describe(exc)}")
                )

    def _invalid(self, method: str, path: str, detail: str) -> None:
        with self._lock:
            self.invalid_requests.append(ValidationProblem(method, path, detail))

    def _json(self, status: int, body: Any, headers: dict[str, str]) -> Response:
        response = Response(json.dumps(body), status=status, mimetype="application/json")
        response.headers["X-GitHub-Request-Id"] = secrets.token_hex(8).upper()
        response.headers["X-GitHub-Media-Type"] = "github.v3; format=json"
        response.headers.update(headers)
        return response

    def _rate_headers(self, response: Response, principal: _Principal) -> None:
        key = principal.rate_key
        limit = 60 if key == "anonymous" else 5000
        with self._lock:
            self._rate_used[key] = self._rate_used.get(key, 0) + 1
            used = self._rate_used[key]
        reset = int(self.now()) // 3600 * 3600 + 3600
        for name, value in (("limit", limit), ("remaining", max(limit - used, 0)), ("used", used), ("reset", reset)):
            response.headers.setdefault(f"x-ratelimit-{name}", str(value))
        response.headers.setdefault("x-ratelimit-resource", "core")

    # ---------------------------------------------------------------------------- auth checks

    def _authenticate(self, route: _Route, secret: str | None) -> _Principal:
        is_jwt = secret is not None and secret.count(".") == 2
        if route.auth == "codeload":
            return _Principal("none")
        if route.auth == "jwt":
            if secret is None or not is_jwt:
                raise _error(401, "A JSON web token could not be decoded")
            return _Principal("jwt", app=self._verify_jwt(secret))
        if secret is None:
            if route.auth == "any":
                return _Principal("none")
            raise _error(401, "Requires authentication")
        if is_jwt:
            app = self._verify_jwt(secret)
            if route.auth == "any":
                return _Principal("jwt", app=app)
            raise _error(403, "Resource not accessible by integration")
        with self._lock:
            info = self._tokens.get(hashlib.sha256(secret.encode()).hexdigest())
        if info is None or info.revoked or info.expires_at <= self.now():
            raise _error(401, "Bad credentials")
        return _Principal("installation", token=info)

    def _verify_jwt(self, raw: str) -> App:
        undecodable = _error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(raw, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise undecodable from None
        iss = claims.get("iss")
        with self._lock:
            app = next((a for a in self._apps.values() if str(iss) in (str(a.app_id), a.client_id)), None)
        if app is None:
            raise _error(401, "Integration not found")
        try:
            jwt.decode(
                raw,
                app.public_key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            raise undecodable from None
        now = self.now()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or iat > now + 60:
            raise _error(
                401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
            )
        if not isinstance(exp, int | float) or exp <= now or exp <= iat:
            raise _error(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future "
                "time at which the assertion expires",
            )
        if exp > now + 600:
            raise _error(401, "'Expiration time' claim ('exp') is too far in the future")
        return app

    def _authorize(self, ctx: _Ctx, permission: str | None) -> None:
        token = ctx.principal.token
        assert token is not None
        if ctx.repo not in token.repositories:
            raise _error(403, "Resource not accessible by integration", ctx.docs_url)
        if permission is None:
            return
        level = "read" if ctx.request.method in ("GET", "HEAD") else "write"
        if LEVELS.get(token.permissions.get(permission, ""), 0) < LEVELS[level]:
            raise _error(403, "Resource not accessible by integration", ctx.docs_url)

    def _authorize_comment(self, ctx: _Ctx, issue_number: int) -> None:
        accepted = ["issues"]
        if issue_number in self._repo(ctx.repo).pull_requests:
            accepted.append("pull_requests")
        denied = None
        for permission in accepted:
            try:
                self._authorize(ctx, permission)
                return
            except ApiError as err:
                denied = err
        assert denied is not None
        raise denied

    # ------------------------------------------------------------------------------ state help

    def _next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _repo(self, full_name: str) -> _Repo:
        key = full_name.lower()
        if key not in self._repos:
            self._repos[key] = _Repo(key, self._next_id("repo"))
        return self._repos[key]

    def _deployment(self, state: _Repo, deployment_id: int) -> Deployment:
        found = next((d for d in state.deployments if d.id == deployment_id), None)
        if found is None:
            raise _error(404, "Not Found")
        return found

    def _resolve(self, state: _Repo, ref: str) -> str | None:
        if SHA_RE.match(ref):
            return ref.lower()
        return state.refs.get(ref) or state.refs.get(ref.removeprefix("refs/heads/").removeprefix("refs/tags/"))

    def _paginate(self, ctx: _Ctx, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        per_page = min(max(int(ctx.query.get("per_page", 30)), 1), 100)
        page = max(int(ctx.query.get("page", 1)), 1)
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]

        def link(number: int, rel: str) -> str:
            query = {**ctx.query, "per_page": str(per_page), "page": str(number)}
            return f'<{ctx.api_base}{ctx.api_path}?{urlencode(query)}>; rel="{rel}"'

        links = []
        if page > 1:
            links.append(link(min(page - 1, last), "prev"))
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links.append(link(1, "first"))
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # --------------------------------------------------------------------------- JSON shapes

    def _user(self, ctx: _Ctx, login: str, user_type: str = "Bot") -> dict[str, Any]:
        user_id = int(hashlib.sha256(login.encode()).hexdigest()[:8], 16)
        api, web = f"{ctx.api_base}/users/{quote(login)}", f"{ctx.web_base}/{quote(login)}"
        return {
            "login": login,
            "id": user_id,
            "node_id": f"U_{user_id}",
            "type": user_type,
            "site_admin": False,
            "avatar_url": f"{ctx.web_base}/avatars/u/{user_id}",
            "gravatar_id": "",
            "url": api,
            "html_url": web,
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
        }

    def _bot_login(self, principal: _Principal) -> str:
        token = principal.token
        assert token is not None
        app = self._apps[self._installations[token.installation_id].app_id]
        return f"{app.slug}[bot]"

    def _integration(self, ctx: _Ctx, app: App) -> dict[str, Any]:
        created = _iso(0)
        return {
            "id": app.app_id,
            "slug": app.slug,
            "node_id": f"A_{app.app_id}",
            "client_id": app.client_id,
            "owner": self._user(ctx, "acme", "Organization"),
            "name": app.slug,
            "description": None,
            "external_url": f"{ctx.web_base}/apps/{app.slug}",
            "html_url": f"{ctx.web_base}/apps/{app.slug}",
            "created_at": created,
            "updated_at": created,
            "permissions": dict(DEFAULT_PERMISSIONS),
            "events": [],
        }

    def _installation_json(self, ctx: _Ctx, inst: Installation) -> dict[str, Any]:
        app = self._apps[inst.app_id]
        account = self._user(ctx, inst.account, inst.account_type)
        return {
            "id": inst.installation_id,
            "account": account,
            "repository_selection": "selected",
            "access_tokens_url": f"{ctx.api_base}/app/installations/{inst.installation_id}/access_tokens",
            "repositories_url": f"{ctx.api_base}/installation/repositories",
            "html_url": f"{ctx.web_base}/organizations/{inst.account}/settings/installations/{inst.installation_id}",
            "app_id": inst.app_id,
            "client_id": app.client_id,
            "app_slug": app.slug,
            "target_id": account["id"],
            "target_type": inst.account_type,
            "permissions": dict(inst.permissions),
            "events": [],
            "created_at": _iso(inst.created_at),
            "updated_at": _iso(inst.created_at),
            "single_file_name": None,
            "suspended_by": None,
            "suspended_at": None,
        }

    def _repo_json(self, ctx: _Ctx, full_name: str) -> dict[str, Any]:
        state = self._repo(full_name)
        owner, name = full_name.split("/")
        api, web = f"{ctx.api_base}/repos/{full_name}", f"{ctx.web_base}/{full_name}"
        templated = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "statuses_url": "/statuses/{sha}",
            "trees_url": "/git/trees{/sha}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "hooks_url": "/hooks",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "stargazers_url": "/stargazers",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
        }
        created = _iso(0)
        return {
            "id": state.id,
            "node_id": f"R_{state.id}",
            "name": name,
            "full_name": full_name,
            "owner": self._user(ctx, owner, "Organization"),
            "private": True,
            "html_url": web,
            "description": None,
            "fork": False,
            "url": api,
            **{k: api + v for k, v in templated.items()},
            "git_url": f"git://{ctx.request.host}/{full_name}.git",
            "ssh_url": f"git@{ctx.request.host}:{full_name}.git",
            "clone_url": f"{web}.git",
            "svn_url": web,
            "mirror_url": None,
            "homepage": None,
            "language": None,
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "size": 0,
            "default_branch": "main",
            "open_issues": 0,
            "open_issues_count": 0,
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_downloads": False,
            "archived": False,
            "disabled": False,
            "license": None,
            "pushed_at": created,
            "created_at": created,
            "updated_at": created,
            "visibility": "private",
        }

    def _status_json(self, ctx: _Ctx, status: CommitStatus, full: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "url": f"{ctx.api_base}/repos/{ctx.repo}/statuses/{status.sha}",
            "avatar_url": f"{ctx.web_base}/avatars/u/{status.creator}",
            "id": status.id,
            "node_id": f"SC_{status.id}",
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": _iso(status.created_at),
            "updated_at": _iso(status.created_at),
        }
        if full:
            body["creator"] = self._user(ctx, status.creator)
        return body

    def _deployment_json(self, ctx: _Ctx, dep: Deployment) -> dict[str, Any]:
        url = f"{ctx.api_base}/repos/{ctx.repo}/deployments/{dep.id}"
        return {
            "url": url,
            "id": dep.id,
            "node_id": f"DE_{dep.id}",
            "sha": dep.sha,
            "ref": dep.ref,
            "task": dep.task,
            "payload": dep.payload,
            "original_environment": dep.original_environment,
            "environment": dep.environment,
            "description": dep.description,
            "creator": self._user(ctx, dep.creator),
            "created_at": _iso(dep.created_at),
            "updated_at": _iso(dep.updated_at),
            "statuses_url": f"{url}/statuses",
            "repository_url": f"{ctx.api_base}/repos/{ctx.repo}",
            "transient_environment": dep.transient_environment,
            "production_environment": dep.production_environment,
        }

    def _deployment_status_json(self, ctx: _Ctx, st: DeploymentStatus) -> dict[str, Any]:
        dep_url = f"{ctx.api_base}/repos/{ctx.repo}/deployments/{st.deployment_id}"
        return {
            "url": f"{dep_url}/statuses/{st.id}",
            "id": st.id,
            "node_id": f"DES_{st.id}",
            "state": st.state,
            "creator": self._user(ctx, st.creator),
            "description": st.description,
            "environment": st.environment,
            "target_url": st.target_url,
            "log_url": st.log_url,
            "environment_url": st.environment_url,
            "created_at": _iso(st.created_at),
            "updated_at": _iso(st.created_at),
            "deployment_url": dep_url,
            "repository_url": f"{ctx.api_base}/repos/{ctx.repo}",
        }

    def _comment_json(self, ctx: _Ctx, comment: Comment) -> dict[str, Any]:
        kind = "pull" if comment.issue_number in self._repo(ctx.repo).pull_requests else "issues"
        body: dict[str, Any] = {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{ctx.api_base}/repos/{ctx.repo}/issues/comments/{comment.id}",
            "body": comment.body,
            "html_url": f"{ctx.web_base}/{ctx.repo}/{kind}/{comment.issue_number}#issuecomment-{comment.id}",
            "user": self._user(ctx, comment.user, comment.user_type),
            "created_at": _iso(comment.created_at),
            "updated_at": _iso(comment.updated_at),
            "issue_url": f"{ctx.api_base}/repos/{ctx.repo}/issues/{comment.issue_number}",
            "author_association": "NONE",
        }
        if comment.app_id is not None:
            body["performed_via_github_app"] = self._integration(ctx, self._apps[comment.app_id])
        return body

    def _check_run_json(self, ctx: _Ctx, run: CheckRun) -> dict[str, Any]:
        url = f"{ctx.api_base}/repos/{ctx.repo}/check-runs/{run.id}"
        return {
            "id": run.id,
            "head_sha": run.head_sha,
            "node_id": f"CR_{run.id}",
            "external_id": run.external_id,
            "url": url,
            "html_url": f"{ctx.web_base}/{ctx.repo}/runs/{run.id}",
            "details_url": run.details_url,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": _iso(run.started_at) if run.started_at else None,
            "completed_at": _iso(run.completed_at) if run.completed_at else None,
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": run.text,
                "annotations_count": len(run.annotations),
                "annotations_url": f"{url}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": run.check_suite_id},
            "app": self._integration(ctx, self._apps[run.app_id]),
            "pull_requests": [],
        }

    def _rate(self, key: str, limit: int) -> dict[str, int]:
        used = self._rate_used.get(key, 0)
        return {
            "limit": limit,
            "used": used,
            "remaining": max(limit - used, 0),
            "reset": int(self.now()) // 3600 * 3600 + 3600,
        }

    # ---------------------------------------------------------------------------- handlers

    def _list_installations(self, ctx: _Ctx) -> Response:
        assert ctx.principal.app is not None
        mine = [i for i in self._installations.values() if i.app_id == ctx.principal.app.app_id]
        page, headers = self._paginate(ctx, [self._installation_json(ctx, i) for i in mine])
        return self._json(200, page, headers)

    def _create_token(self, ctx: _Ctx) -> Response:
        assert ctx.principal.app is not None
        inst = self._installations.get(int(ctx.params["installation_id"]))
        if inst is None or inst.app_id != ctx.principal.app.app_id:
            raise _error(404, "Not Found", ctx.docs_url)
        body = ctx.body or {}
        repos = list(inst.repositories)
        narrowed = bool(body.get("repositories") or body.get("repository_ids"))
        if narrowed:
            by_name = {r.split("/")[1]: r for r in inst.repositories}
            by_id = {self._repo(r).id: r for r in inst.repositories}
            wanted = [by_name.get(n.lower().split("/")[-1]) for n in body.get("repositories", [])]
            wanted += [by_id.get(i) for i in body.get("repository_ids", [])]
            if None in wanted:
                raise _error(
                    422,
                    "There is at least one repository that does not exist or is not accessible to "
                    "the parent installation.",
                    ctx.docs_url,
                )
            repos = sorted({r for r in wanted if r is not None})
        permissions = dict(body.get("permissions") or inst.permissions)
        for name, level in permissions.items():
            if LEVELS.get(inst.permissions.get(name, ""), 0) < LEVELS.get(level, 99):
                raise _error(422, "The permissions requested are not granted to this installation.", ctx.docs_url)
        permissions["metadata"] = inst.permissions.get("metadata", "read")
        length = 36 + secrets.randbelow(40)
        token = "ghs_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))
        info = TokenInfo(inst.installation_id, repos, permissions, self.now() + 3600)
        self._tokens[hashlib.sha256(token.encode()).hexdigest()] = info
        answer: dict[str, Any] = {
            "token": token,
            "expires_at": _iso(info.expires_at),
            "permissions": permissions,
            "repository_selection": "selected",
        }
        if narrowed:
            answer["repositories"] = [self._repo_json(ctx, r) for r in repos]
        return self._json(201, answer, {})

    def _repo_installation(self, ctx: _Ctx) -> Response:
        assert ctx.principal.app is not None
        for inst in self._installations.values():
            if inst.app_id == ctx.principal.app.app_id and ctx.repo in inst.repositories:
                return self._json(200, self._installation_json(ctx, inst), {})
        raise _error(404, "Not Found", ctx.docs_url)

    def _create_status(self, ctx: _Ctx) -> Response:
        sha = ctx.params["sha"]
        if not SHA_RE.match(sha):
            raise _error(422, f"No commit found for SHA: {sha}", ctx.docs_url)
        body = ctx.body
        description = body.get("description")
        if description is not None and len(description) > 140:
            raise _validation_failed(
                "Status", "description", "description is too long (maximum is 140 characters)", ctx.docs_url
            )
        context = body.get("context") or "default"
        state = self._repo(ctx.repo)
        same = [s for s in state.statuses if s.sha == sha.lower() and s.context.lower() == context.lower()]
        if len(same) >= self.status_limit:
            raise ApiError(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "resource": "Status",
                            "code": "custom",
                            "message": "This SHA and context has reached the maximum number of statuses.",
                        }
                    ],
                    "documentation_url": ctx.docs_url,
                },
            )
        status = CommitStatus(
            self._next_id("status"),
            sha.lower(),
            body["state"],
            context,
            description,
            body.get("target_url"),
            self.now(),
            self._bot_login(ctx.principal),
        )
        state.statuses.append(status)
        answer = self._status_json(ctx, status)
        return self._json(201, answer, {"Location": answer["url"]})

    def _commit_statuses(self, ctx: _Ctx) -> tuple[str, list[CommitStatus]]:
        state = self._repo(ctx.repo)
        sha = self._resolve(state, ctx.params["ref"])
        if sha is None:
            raise _error(404, f"No commit found for SHA: {ctx.params['ref']}", ctx.docs_url)
        return sha, [s for s in state.statuses if s.sha == sha]

    def _list_statuses(self, ctx: _Ctx) -> Response:
        _, found = self._commit_statuses(ctx)
        page, headers = self._paginate(ctx, list(reversed(found)))
        return self._json(200, [self._status_json(ctx, s) for s in page], headers)

    def _combined_status(self, ctx: _Ctx) -> Response:
        sha, found = self._commit_statuses(ctx)
        latest: dict[str, CommitStatus] = {}
        for status in reversed(found):
            latest.setdefault(status.context.lower(), status)
        states = {s.state for s in latest.values()}
        combined = (
            "failure"
            if states & {"error", "failure"}
            else "pending"
            if not states or "pending" in states
            else "success"
        )
        page, headers = self._paginate(ctx, list(latest.values()))
        return self._json(
            200,
            {
                "state": combined,
                "statuses": [self._status_json(ctx, s, full=False) for s in page],
                "sha": sha,
                "total_count": len(latest),
                "repository": self._repo_json(ctx, ctx.repo),
                "commit_url": f"{ctx.api_base}/repos/{ctx.repo}/commits/{sha}",
                "url": f"{ctx.api_base}/repos/{ctx.repo}/commits/{sha}/status",
            },
            headers,
        )

    def _list_deployments(self, ctx: _Ctx) -> Response:
        found = [
            d
            for d in reversed(self._repo(ctx.repo).deployments)
            if all(ctx.query.get(k) in (None, getattr(d, k)) for k in ("sha", "ref", "task", "environment"))
        ]
        page, headers = self._paginate(ctx, found)
        return self._json(200, [self._deployment_json(ctx, d) for d in page], headers)

    def _create_deployment(self, ctx: _Ctx) -> Response:
        body, state = ctx.body, self._repo(ctx.repo)
        sha = self._resolve(state, body["ref"])
        if sha is None:
            raise _error(422, f"No ref found for: {body['ref']}", ctx.docs_url)
        latest: dict[str, CommitStatus] = {}
        for status in reversed([s for s in state.statuses if s.sha == sha]):
            latest.setdefault(status.context.lower(), status)
        required = body.get("required_contexts")
        checked = latest.keys() if required is None else [c.lower() for c in required]
        failing = [c for c in checked if c not in latest or latest[c].state != "success"]
        if failing:
            contexts = [{"context": c, "state": latest[c].state if c in latest else "missing"} for c in failing]
            raise ApiError(
                409,
                {
                    "message": f"Conflict: Commit status checks failed for {body['ref']}.",
                    "errors": [
                        {
                            "contexts": contexts,
                            "resource": "Deployment",
                            "field": "required_contexts",
                            "code": "invalid",
                        }
                    ],
                    "documentation_url": ctx.docs_url,
                    "status": "409",
                },
            )
        environment = body.get("environment", "production")
        now = self.now()
        dep = Deployment(
            id=self._next_id("deployment"),
            sha=sha,
            ref=body["ref"],
            task=body.get("task", "deploy"),
            environment=environment,
            original_environment=environment,
            description=body.get("description", ""),
            payload=body.get("payload", {}),
            transient_environment=body.get("transient_environment", False),
            production_environment=body.get("production_environment", environment == "production"),
            auto_merge=body.get("auto_merge", True),
            required_contexts=required,
            created_at=now,
            updated_at=now,
            creator=self._bot_login(ctx.principal),
        )
        state.deployments.append(dep)
        return self._json(201, self._deployment_json(ctx, dep), {})

    def _delete_deployment(self, ctx: _Ctx) -> Response:
        state = self._repo(ctx.repo)
        dep = self._deployment(state, int(ctx.params["deployment_id"]))
        if dep.state != "inactive" and len(state.deployments) > 1:
            raise ApiError(
                422,
                {
                    "message": "We cannot delete an active deployment unless it is the only deployment in a given "
                    "environment.",
                    "documentation_url": ctx.docs_url,
                },
            )
        state.deployments.remove(dep)
        return Response(status=204)

    def _list_deployment_statuses(self, ctx: _Ctx) -> Response:
        dep = self._deployment(self._repo(ctx.repo), int(ctx.params["deployment_id"]))
        page, headers = self._paginate(ctx, list(reversed(dep.statuses)))
        return self._json(200, [self._deployment_status_json(ctx, s) for s in page], headers)

    def _create_deployment_status(self, ctx: _Ctx) -> Response:
        state = self._repo(ctx.repo)
        dep = self._deployment(state, int(ctx.params["deployment_id"]))
        body = ctx.body
        description = body.get("description", "")
        if len(description) > 140:
            raise _validation_failed(
                "DeploymentStatus", "description", "description is too long (maximum is 140 characters)", ctx.docs_url
            )
        environment = body.get("environment") or (dep.statuses[-1].environment if dep.statuses else dep.environment)
        log_url = body.get("log_url", "")
        now = self.now()
        creator = self._bot_login(ctx.principal)
        status = DeploymentStatus(
            self._next_id("deployment_status"),
            dep.id,
            body["state"],
            description,
            environment,
            log_url or body.get("target_url", ""),
            log_url,
            body.get("environment_url", ""),
            now,
            creator,
        )
        dep.statuses.append(status)
        dep.environment, dep.updated_at = environment, now
        if status.state == "success" and body.get("auto_inactive", True):
            for prior in state.deployments:
                if (
                    prior.id < dep.id
                    and prior.environment == environment
                    and not prior.transient_environment
                    and not prior.production_environment
                    and prior.state != "inactive"
                    and any(s.state == "success" for s in prior.statuses)
                ):
                    prior.statuses.append(
                        DeploymentStatus(
                            self._next_id("deployment_status"),
                            prior.id,
                            "inactive",
                            "",
                            environment,
                            "",
                            "",
                            "",
                            now,
                            creator,
                            auto=True,
                        )
                    )
                    prior.updated_at = now
        answer = self._deployment_status_json(ctx, status)
        return self._json(201, answer, {"Location": answer["url"]})

    def _list_comments(self, ctx: _Ctx) -> Response:
        number = int(ctx.params["issue_number"])
        self._authorize_comment(ctx, number)
        found = [c for c in self._repo(ctx.repo).comments if c.issue_number == number]
        if "since" in ctx.query:
            since = datetime.fromisoformat(ctx.query["since"].replace("Z", "+00:00")).timestamp()
            found = [c for c in found if c.updated_at >= since]
        page, headers = self._paginate(ctx, found)
        return self._json(200, [self._comment_json(ctx, c) for c in page], headers)

    def _check_comment_body(self, ctx: _Ctx) -> str:
        body = ctx.body["body"]
        if len(body) > 65536:
            raise _validation_failed(
                "IssueComment",
                "data",
                "Body is too long (maximum is 65536 characters)",
                ctx.docs_url,
                code="unprocessable",
            )
        return body

    def _create_comment(self, ctx: _Ctx) -> Response:
        number = int(ctx.params["issue_number"])
        self._authorize_comment(ctx, number)
        text = self._check_comment_body(ctx)
        now = self.now()
        assert ctx.principal.token is not None
        app_id = self._installations[ctx.principal.token.installation_id].app_id
        comment = Comment(
            self._next_id("comment"), number, text, self._bot_login(ctx.principal), "Bot", now, now, app_id
        )
        self._repo(ctx.repo).comments.append(comment)
        answer = self._comment_json(ctx, comment)
        return self._json(201, answer, {"Location": answer["url"]})

    def _find_comment(self, ctx: _Ctx) -> Comment:
        wanted = int(ctx.params["comment_id"])
        comment = next((c for c in self._repo(ctx.repo).comments if c.id == wanted), None)
        if comment is None:
            self._authorize(ctx, "issues")
            raise _error(404, "Not Found", ctx.docs_url)
        self._authorize_comment(ctx, comment.issue_number)
        return comment

    def _get_comment(self, ctx: _Ctx) -> Response:
        return self._json(200, self._comment_json(ctx, self._find_comment(ctx)), {})

    def _update_comment(self, ctx: _Ctx) -> Response:
        comment = self._find_comment(ctx)
        comment.body = self._check_comment_body(ctx)
        comment.updated_at = self.now()
        return self._json(200, self._comment_json(ctx, comment), {})

    def _apply_check_run(self, run: CheckRun, body: dict[str, Any]) -> None:
        for name in ("name", "details_url", "external_id", "status"):
            if name in body:
                setattr(run, name, body[name])
        for name in ("started_at", "completed_at"):
            if name in body:
                setattr(run, name, datetime.fromisoformat(body[name].replace("Z", "+00:00")).timestamp())
        if "conclusion" in body:
            run.conclusion, run.status = body["conclusion"], "completed"
        if run.status == "completed" and run.completed_at is None:
            run.completed_at = self.now()
        output = body.get("output") or {}
        for name in ("title", "summary", "text"):
            if name in output:
                setattr(run, name, output[name])
        run.annotations.extend(output.get("annotations", []))

    def _create_check_run(self, ctx: _Ctx) -> Response:
        state, body = self._repo(ctx.repo), ctx.body
        assert ctx.principal.token is not None
        app_id = self._installations[ctx.principal.token.installation_id].app_id
        suite = state.check_suites.setdefault(body["head_sha"], self._next_id("check_suite"))
        run = CheckRun(
            self._next_id("check_run"),
            body["name"],
            body["head_sha"],
            "queued",
            None,
            None,
            None,
            self.now(),
            None,
            None,
            None,
            None,
            [],
            suite,
            app_id,
        )
        self._apply_check_run(run, body)
        state.check_runs.append(run)
        return self._json(201, self._check_run_json(ctx, run), {})

    def _update_check_run(self, ctx: _Ctx) -> Response:
        wanted = int(ctx.params["check_run_id"])
        run = next((r for r in self._repo(ctx.repo).check_runs if r.id == wanted), None)
        if run is None:
            raise _error(404, "Not Found", ctx.docs_url)
        self._apply_check_run(run, ctx.body)
        return self._json(200, self._check_run_json(ctx, run), {})

    def _rate_limit(self, ctx: _Ctx) -> Response:
        principal = ctx.principal
        key = principal.rate_key
        core = self._rate(key, 60 if key == "anonymous" else 5000)
        resources = {
            "core": core,
            "search": self._rate(key + ":search", 30),
            "graphql": self._rate(key + ":graphql", 5000),
        }
        headers = {f"X-RateLimit-{k.title()}": str(core[k]) for k in ("limit", "remaining", "reset")}
        return self._json(200, {"resources": resources, "rate": core}, headers)

    def _ancestors(self, graph: dict[str, list[str]], sha: str) -> dict[str, int]:
        """Every ancestor of ``sha`` (itself included) with its distance in commits."""
        seen, frontier = {sha: 0}, [sha]
        while frontier:
            current = frontier.pop()
            for parent in graph.get(current, []):
                if parent not in seen:
                    seen[parent] = seen[current] + 1
                    frontier.append(parent)
        return seen

    def _commit_json(self, ctx: _Ctx, sha: str, parents: list[str]) -> dict[str, Any]:
        api, web = f"{ctx.api_base}/repos/{ctx.repo}", f"{ctx.web_base}/{ctx.repo}"
        who = {"name": "Monalisa Octocat", "email": "octocat@github.com", "date": "2026-01-01T00:00:00Z"}
        return {
            "url": f"{api}/commits/{sha}",
            "sha": sha,
            "node_id": f"C_{sha[:12]}",
            "html_url": f"{web}/commit/{sha}",
            "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{sha}",
                "author": who,
                "committer": who,
                "message": f"commit {sha[:7]}",
                "comment_count": 0,
                "tree": {"sha": hashlib.sha1(sha.encode()).hexdigest(), "url": f"{api}/git/trees/{sha}"},  # noqa: S324
            },
            "author": self._user(ctx, "octocat", "User"),
            "committer": self._user(ctx, "octocat", "User"),
            "parents": [{"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{web}/commit/{p}"} for p in parents],
        }

    def _compare(self, ctx: _Ctx) -> Response:
        """``GET /repos/{owner}/{repo}/compare/{base}...{head}``: how head relates to base in the commit graph.

        ``status`` is ``identical``, ``ahead`` (base is an ancestor of head), ``behind`` (head is an ancestor
        of base) or ``diverged``; an unknown commit is 404 (https://docs.github.com/rest/commits/commits#compare-two-commits).
        """
        base_ref, sep, head_ref = ctx.params["basehead"].partition("...")
        state = self._repo(ctx.repo)
        base, head = self._resolve(state, base_ref), self._resolve(state, head_ref)
        docs = "https://docs.github.com/rest/commits/commits#compare-two-commits"
        if not sep or base is None or head is None or base not in state.parents or head not in state.parents:
            raise _error(404, "Not Found", docs)
        base_up, head_up = self._ancestors(state.parents, base), self._ancestors(state.parents, head)
        common = [c for c in head_up if c in base_up]
        merge_base = min(common, key=lambda c: head_up[c]) if common else base
        ahead_by, behind_by = head_up.get(merge_base, 0), base_up.get(merge_base, 0)
        if base == head:
            status = "identical"
        elif merge_base == base:
            status = "ahead"
        elif merge_base == head:
            status = "behind"
        else:
            status = "diverged"
        new = sorted((c for c in head_up if c not in base_up), key=lambda c: -head_up[c])
        api, web = f"{ctx.api_base}/repos/{ctx.repo}", f"{ctx.web_base}/{ctx.repo}"
        body = {
            "url": f"{api}/compare/{base_ref}...{head_ref}",
            "html_url": f"{web}/compare/{base_ref}...{head_ref}",
            "permalink_url": f"{web}/compare/{ctx.repo.split('/')[0]}:{base[:7]}...{ctx.repo.split('/')[0]}:{head[:7]}",
            "diff_url": f"{web}/compare/{base_ref}...{head_ref}.diff",
            "patch_url": f"{web}/compare/{base_ref}...{head_ref}.patch",
            "base_commit": self._commit_json(ctx, base, state.parents[base]),
            "merge_base_commit": self._commit_json(ctx, merge_base, state.parents.get(merge_base, [])),
            "status": status,
            "ahead_by": ahead_by,
            "behind_by": behind_by,
            "total_commits": ahead_by,
            "commits": [self._commit_json(ctx, c, state.parents.get(c, [])) for c in new],
            "files": [],
        }
        return self._json(200, body, {})

    def _tarball(self, ctx: _Ctx) -> Response:
        ref = ctx.params["ref"]
        if ctx.body is not None or not re.fullmatch(r"[\w.\-/]+", ref) or ".." in ref:
            self._invalid(ctx.request.method, ctx.request.path, f"tarball: bad ref {ref!r} or unexpected body")
            raise _error(422, "Invalid request.", ctx.docs_url)
        state = self._repo(ctx.repo)
        if ref not in state.tarballs:
            raise _error(
                404, "Not Found", "https://docs.github.com/rest/repos/contents#download-a-repository-archive-tar"
            )
        if not self.tarball_redirect:
            return self._archive(ctx.repo, ref, state.tarballs[ref])
        token = secrets.token_urlsafe(24)
        self._codeload[hashlib.sha256(token.encode()).hexdigest()] = (ctx.repo, ref, self.now() + 300)
        location = f"{ctx.web_base}{CODELOAD_PREFIX}/{ctx.repo}/legacy.tar.gz/{ref}?token={token}"
        return Response(status=302, headers={"Location": location})

    def _codeload_get(self, ctx: _Ctx) -> Response:
        token = ctx.request.args.get("token", "")
        grant = self._codeload.get(hashlib.sha256(token.encode()).hexdigest())
        ref = ctx.params["ref"]
        if grant is None or grant[:2] != (ctx.repo, ref) or grant[2] <= self.now():
            raise ApiError(404, {"message": "Not Found"})
        return self._archive(ctx.repo, ref, self._repo(ctx.repo).tarballs[ref])

    def _archive(self, repo: str, ref: str, data: bytes) -> Response:
        commit = self._resolve(self._repo(repo), ref) or ref
        name = f"{repo.replace('/', '-')}-{commit[:7]}.tar.gz"
        return Response(
            data,
            status=200,
            mimetype="application/x-gzip",
            headers={"Content-Disposition": f"attachment; filename={name}"},
        )


def _param_regex(found: re.Match[str]) -> str:
    name = found.group(1)
    if name.endswith("_id") or name == "issue_number":
        return rf"(?P<{name}>\d+)"
    if name == "ref":
        return rf"(?P<{name}>.+?)"
    return rf"(?P<{name}>[^/]+)"


def _authorization(request: Request) -> str | None:
    """The credential of an ``Authorization: Bearer ...`` or ``Authorization: token ...`` header."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return None


def _tarball(top: str, files: dict[str, bytes], commit: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": commit}
    ) as archive:
        directories = {top}
        for path in files:
            parts = path.split("/")[:-1]
            directories.update(f"{top}/{'/'.join(parts[: i + 1])}" for i in range(len(parts)))
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o775, 1_700_000_000
            archive.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{top}/{path}")
            info.size, info.mode, info.mtime = len(data), 0o664, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


__all__ = [
    "App",
    "ApiError",
    "Call",
    "CheckRun",
    "Comment",
    "CommitStatus",
    "Deployment",
    "DeploymentStatus",
    "Fault",
    "GitHubEmulator",
    "Installation",
    "TokenInfo",
    "ValidationProblem",
    "github_openapi",
]
