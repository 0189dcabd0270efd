"""GitHub App authentication: the app's JWT and short-lived installation tokens scoped to one repository."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from github import Github, GithubException, UnknownObjectException

from steps.github.client import RepoClient, github_for
from steps.runtime.errors import ConfigError, InfraError
from steps.runtime.registrations import mounted_registration
from steps.runtime.settings import GitHubStepSettings

log = logging.getLogger(__name__)

KEY_PATH_ENV = "GITHUB_APP_PRIVATE_KEY_PATH"
KEY_PEM_ENV = "GITHUB_APP_PRIVATE_KEY"
KEY_SECRET_ENV = "GITHUB_APP_PRIVATE_KEY_SECRET"  # noqa: S105 - names the Secret/key the file comes from
DEFAULT_KEY_PATH = "/var/run/secrets/github-app/private-key"
JWT_LIFETIME_SECONDS = 540
CLOCK_SKEW_SECONDS = 60
PERMISSION_LEVELS = {"read", "write"}
KNOWN_PERMISSIONS = {"statuses", "deployments", "issues", "pull_requests", "checks", "contents", "metadata"}


@dataclass(frozen=True)
class PrivateKey:
    """A GitHub App private key whose text never shows in ``repr`` or ``str``.

    Args:
        key: The loaded RSA key.
        source: Where it came from (a path or an env var name), for messages.
    """

    key: RSAPrivateKey = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"<GitHub App private key from {self.source}>"


def load_private_key(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None, app_id: int | None = None
) -> PrivateKey:
    """Load the App's PEM private key from a mounted file or an environment variable.

    Order: ``path`` if given, else ``$GITHUB_APP_PRIVATE_KEY_PATH`` (``{app_id}`` in it replaced by ``app_id``),
    else ``$GITHUB_APP_PRIVATE_KEY`` (the PEM itself), else the Kubernetes Secret mount
    ``/var/run/secrets/github-app/private-key``.

    Raises:
        ConfigError: no key found, unreadable, or not a PEM RSA private key. The message names the source
            only, never the content.
    """
    environ = os.environ if environ is None else environ
    if path is None and environ.get(KEY_PATH_ENV):
        # "{app_id}" in the path: one mounted key per App (the reconciler reports for every App's repositories).
        path = environ[KEY_PATH_ENV].replace("{app_id}", str(app_id or ""))
    if path is not None:
        source = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            secret = environ.get(KEY_SECRET_ENV, "").replace("{app_id}", str(app_id or ""))
            where = f"Secret {secret} (missing, or without that key)" if secret else "the App's key"
            raise ConfigError(
                f"GitHub App private key file {source} cannot be read ({exc.strerror}); mount {where} there"
            ) from None
    elif environ.get(KEY_PEM_ENV):
        source, data = f"${KEY_PEM_ENV}", environ[KEY_PEM_ENV].encode()
    elif Path(DEFAULT_KEY_PATH).exists():
        source, data = DEFAULT_KEY_PATH, Path(DEFAULT_KEY_PATH).read_bytes()
    else:
        raise ConfigError(
            f"no GitHub App private key: set {KEY_PATH_ENV} to the PEM file or {KEY_PEM_ENV} to its content"
        )
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, Exception):  # cryptography raises several kinds; none may echo the key
        raise ConfigError(
            f"GitHub App private key from {source} is not a PEM private key; download a new one from the App settings"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"GitHub App private key from {source} is not an RSA key; GitHub Apps sign with RS256")
    return PrivateKey(key=key, source=source)


def app_jwt(app_id: int | str, private_key: PrivateKey, *, now: float | None = None) -> str:
    """Sign the App's JWT: RS256, ``iat`` 60 s in the past, ``exp`` 9 minutes ahead, ``iss`` the app id."""
    now = int(time.time() if now is None else now)
    claims = {"iat": now - CLOCK_SKEW_SECONDS, "exp": now + JWT_LIFETIME_SECONDS, "iss": str(app_id)}
    return jwt.encode(claims, private_key.key, algorithm="RS256")


@dataclass(frozen=True)
class InstallationToken:
    """An installation access token; ``repr`` and ``str`` show its scope, never its value."""

    token: str = field(repr=False)
    installation_id: int
    repository: str
    permissions: dict[str, str]
    expires_at: datetime | None = None

    def __str__(self) -> str:
        return f"<installation token {self.installation_id} for {self.repository} {self.permissions}>"


def _check_permissions(permissions: Mapping[str, str]) -> dict[str, str]:
    if not permissions:
        raise ConfigError("an installation token needs at least one permission (e.g. statuses: write)")
    for name, level in permissions.items():
        if name not in KNOWN_PERMISSIONS or level not in PERMISSION_LEVELS:
            raise ConfigError(f"unknown token permission {name}: {level}; use e.g. statuses: write, contents: read")
    return dict(sorted(permissions.items()))


@dataclass
class GitHubApp:
    """A GitHub App that mints installation tokens.

    Args:
        app_id: The App's id.
        private_key: Its private key.
        api_url: REST API base, ``https://api.github.com`` or ``https://HOST/api/v3``.
        timeout: Seconds per request.
        budget: Seconds all retries of one call may take.
    """

    app_id: int
    private_key: PrivateKey = field(repr=False)
    api_url: str = "https://api.github.com"
    timeout: float = 10.0
    budget: float = 90.0

    def _app_client(self) -> Github:
        return github_for(
            self.api_url,
            jwt_token=app_jwt(self.app_id, self.private_key),
            timeout=self.timeout,
            budget=self.budget,
        )

    def find_installation(self, repository: str) -> int:
        """Look up the installation that covers ``owner/name`` (``GET /repos/{o}/{r}/installation``).

        Raises:
            ConfigError: the App is not installed on that repository.
            InfraError: GitHub did not answer within the retry budget.
        """
        owner, name = repository.split("/", 1)
        try:
            _, data = self._app_client().requester.requestJsonAndCheck("GET", f"/repos/{owner}/{name}/installation")
        except UnknownObjectException:
            raise ConfigError(
                f"GitHub App {self.app_id} is not installed on {repository}; install it or set installationId"
            ) from None
        except GithubException as exc:
            raise _app_error(exc, f"look up the installation of {repository}") from None
        return int(data["id"])

    def installation_token(
        self, installation_id: int, repository: str, permissions: Mapping[str, str]
    ) -> InstallationToken:
        """Mint a token for one repository with only the named permissions.

        Args:
            installation_id: The installation that covers ``repository``.
            repository: ``owner/name``; the token is narrowed to it.
            permissions: e.g. ``{"statuses": "write"}``; GitHub always adds ``metadata: read``.

        Raises:
            ConfigError: unknown installation, repository outside it, or a permission the App lacks.
            InfraError: GitHub did not answer within the retry budget.
        """
        wanted = _check_permissions(permissions)
        body = {"repositories": [repository.split("/", 1)[1]], "permissions": wanted}
        try:
            _, data = self._app_client().requester.requestJsonAndCheck(
                "POST", f"/app/installations/{int(installation_id)}/access_tokens", input=body
            )
        except UnknownObjectException:
            raise ConfigError(
                f"GitHub App {self.app_id} has no installation {installation_id}; check installationId of {repository}"
            ) from None
        except GithubException as exc:
            raise _app_error(exc, f"mint a token for {repository} (installation {installation_id})") from None
        expires = data.get("expires_at")
        log.info("minted installation token for %s with %s", repository, wanted)
        return InstallationToken(
            token=data["token"],
            installation_id=int(installation_id),
            repository=repository,
            permissions=dict(data.get("permissions") or wanted),
            expires_at=datetime.fromisoformat(expires.replace("Z", "+00:00")) if expires else None,
        )


def _app_error(exc: GithubException, action: str) -> Exception:
    message = exc.data.get("message", "") if isinstance(exc.data, dict) else ""
    if exc.status == 401:
        return ConfigError(f"GitHub rejected the App JWT trying to {action}: {message}; check appId and the key")
    if exc.status in (403, 422):
        return ConfigError(f"GitHub refused to {action}: {message}")
    return InfraError(f"GitHub failed to {action}: HTTP {exc.status} {message}".strip())


def _id(value: int | str | None) -> int | None:
    """A GitHub id given as an int or a decimal string; None when empty or absent."""
    if isinstance(value, int):
        return value
    text = str(value or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ConfigError(f"{text[:20]!r} is not a GitHub id (a positive integer)")
    return int(text)


def token_source(
    repository: str,
    permissions: Mapping[str, str],
    *,
    installation_id: int | str | None = None,
    app_id: int | str | None = None,
    settings: GitHubStepSettings | None = None,
) -> Callable[[], str]:
    """A function that mints a fresh token for one repository with only ``permissions`` each time it is called.

    Args:
        repository: ``owner/name``.
        permissions: The least permissions the caller needs, e.g. ``{"contents": "read"}``.
        installation_id: When empty: the mounted registration's, else looked up with the App JWT.
        app_id: The App of that installation; when empty the mounted registration's, else ``$GITHUB_APP_ID``.
        settings: GitHub settings; from the environment by default.

    Raises:
        ConfigError: no app id or no private key, or registrations are mounted and do not know ``repository``.
    """
    settings = settings or GitHubStepSettings.from_env()
    if _id(installation_id) is None or _id(app_id) is None:
        # The Sensor leaves them empty (it does not grow per repository): the registration knows them.
        registration = mounted_registration(repository)
        if registration is not None:
            installation_id = _id(installation_id) or registration.installation_id
            app_id = _id(app_id) or registration.app_id
    app = _id(app_id) or _id(settings.app_id)
    if app is None:
        raise ConfigError("no GitHub App id: pass app-id or set GITHUB_APP_ID (github.appId in hera_config.yaml)")
    client = GitHubApp(app, load_private_key(app_id=app), settings.api_url, settings.timeout, settings.budget)
    wanted = _check_permissions(permissions)
    known = _id(installation_id)

    def mint() -> str:
        installation = known if known is not None else client.find_installation(repository)
        return client.installation_token(installation, repository, wanted).token

    return mint


def repo_client(
    repository: str,
    permissions: Mapping[str, str],
    *,
    installation_id: int | str | None = None,
    app_id: int | str | None = None,
    settings: GitHubStepSettings | None = None,
) -> RepoClient:
    """A PyGithub client for one repository whose token is minted on first use (see ``token_source``)."""
    settings = settings or GitHubStepSettings.from_env()
    mint = token_source(repository, permissions, installation_id=installation_id, app_id=app_id, settings=settings)
    return RepoClient(
        settings.api_url,
        repository,
        mint,
        timeout=settings.timeout,
        budget=settings.budget,
        backoff_factor=settings.backoff_factor,
    )


__all__ = [
    "GitHubApp",
    "InstallationToken",
    "PrivateKey",
    "app_jwt",
    "load_private_key",
    "repo_client",
    "token_source",
]
