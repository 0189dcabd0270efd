"""How to reach the Argo CD API server, read from the step's environment: server URL, token, TLS and timings."""

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from steps.runtime.errors import ConfigError

log = logging.getLogger(__name__)

SERVER_ENV = "ARGOCD_SERVER_URL"
TOKEN_FILE_ENV = "ARGOCD_TOKEN_FILE"  # noqa: S105 - the name of a variable, not a value
TOKEN_ENV = "ARGOCD_TOKEN"  # noqa: S105 - the name of a variable, not a value
DEFAULT_TOKEN_FILE = "/var/run/secrets/argocd/token"  # noqa: S105 - a path


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


__all__ = [
    "ArgoCDSettings",
    "DEFAULT_TOKEN_FILE",
    "SERVER_ENV",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "app_ui_url",
]
