"""The project's one configuration file, ``hera_config.yaml``: a typed, validated model and its loader."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, StrictBool, StrictInt, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from steps.runtime.registrations import (
    _NAME_RE,
    ArgoCDSource,
    Environment,
    Preview,
    Problems,
    RepoRegistration,
    _Model,
)

DEFAULT_CONFIG = Path("hera_config.yaml")
ENV_PREFIX = "GSM_"


class ConfigFileError(Exception):
    """``hera_config.yaml`` is missing, unreadable or invalid; the message names the file, key path and fix."""


class ArgoSettings(_Model):
    """Where the Argo Server is and how to talk to it."""

    host: str = "https://localhost:2746"
    namespace: str = "argo"
    token_env: str = "ARGO_TOKEN"
    verify_tls: StrictBool = True
    ca_bundle: str | None = None
    ui_url: str | None = None

    @property
    def ui_base(self) -> str:
        """Base URL of the Argo Workflows UI (defaults to the server host)."""
        return (self.ui_url or self.host).rstrip("/")


class ImageSettings(_Model):
    """The runner image; its tag must match the package version (``pyproject.toml``)."""

    repository: str = "ghcr.io/acme/gitops-status-matrix"
    tag: str = "0.1.0"
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"

    @property
    def ref(self) -> str:
        """The full image reference ``repository:tag``."""
        return f"{self.repository}:{self.tag}"


class WorkflowSettings(_Model):
    """Workflow-wide settings of the release-data-prep WorkflowTemplate."""

    template_name: str = Field("release-data-prep", pattern=_NAME_RE)
    service_account: str = "release-data-prep"
    active_deadline_seconds: StrictInt = Field(3600, gt=0)
    ttl_after_success_seconds: StrictInt = Field(86400, ge=0)
    ttl_after_failure_seconds: StrictInt = Field(7 * 86400, ge=0)
    table_parallelism: StrictInt = Field(4, ge=1, le=64)
    retry_limit: StrictInt = Field(3, ge=0, le=10)


class GitHubSettings(_Model):
    """GitHub (or GitHub Enterprise Server) and the default GitHub App."""

    api_url: str = Field("https://api.github.com", pattern=r"^https?://[^\s/]+(/api/v3)?/?$")
    app_id: StrictInt | None = Field(None, gt=0)
    app_slug: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    status_context: str = Field("release-data-prep", min_length=1, max_length=255)
    target_url_template: str = "{argo_ui}/workflows/{namespace}/{workflow}"
    private_key_secret: str = "github-app-{app_id}"
    private_key_secret_key: str = "private-key"
    request_timeout_seconds: float = Field(10.0, gt=0)
    retry_budget_seconds: float = Field(90.0, gt=0)
    required_contexts: list[str] = []

    @property
    def web_host(self) -> str:
        """Host of the web UI that repository URLs use (``github.com`` or the GHES host)."""
        host = re.sub(r"^https?://", "", self.api_url).split("/")[0]
        return "github.com" if host == "api.github.com" else host

    @property
    def is_enterprise(self) -> bool:
        """Whether this is GitHub Enterprise Server (API under ``/api/v3``)."""
        return self.web_host != "github.com"


class S3Settings(_Model):
    """Where released data is published (AWS S3 or MinIO)."""

    bucket: str = "release-data"
    prefix: str = "releases"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    credentials_secret: str | None = "s3-credentials"  # null: no keys mounted; boto3 finds them (e.g. IRSA)

    @property
    def root(self) -> str:
        """The release store's URL, ``s3://BUCKET/PREFIX``."""
        return f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")


class EventsSettings(_Model):
    """Argo Events: where the EventSource and Sensor live and how GitHub reaches the webhook."""

    namespace: str = "argo-events"
    event_source_name: str = Field("github", pattern=_NAME_RE)
    sensor_name: str = Field("gitops-status-matrix", pattern=_NAME_RE)
    event_bus_name: str = "default"
    webhook_port: StrictInt = Field(12000, gt=0, lt=65536)
    webhook_endpoint_prefix: str = Field("/github", pattern=r"^/[A-Za-z0-9/_-]*$")
    webhook_secret_name: str = "github-webhook-secret"
    sensor_service_account: str = "gitops-status-matrix-sensor"


class ArgoCDSettings(_Model):
    """The Argo CD API server that gates deployments, and where Applications are rendered to."""

    server_url: str = "https://argocd-server.argocd.svc"
    ui_url: str | None = None
    deployment_reporter: Literal["workflow", "notifications"] = "workflow"
    app_name: str | None = None
    namespace: str = "argocd"
    project: str = "default"
    token_secret: str = "argocd-token"
    verify_tls: StrictBool = True
    ca_bundle: str | None = None
    stability_seconds: float = Field(30.0, ge=0)
    timeout_seconds: float = Field(900.0, gt=0)

    @property
    def ui_base(self) -> str:
        """Base URL people open for the Argo CD UI (defaults to the server URL)."""
        return (self.ui_url or self.server_url).rstrip("/")


_CRON_FIELD = r"[0-9*/,?LW#A-Za-z-]+"


class ReconcilerSettings(_Model):
    """The ``release-status-reconciler`` CronWorkflow: it reports runs that ended without their final status."""

    enabled: StrictBool = True
    name: str = Field("release-status-reconciler", pattern=_NAME_RE)
    # Five cron fields (or a @every/@hourly macro), as CronWorkflow.spec.schedules takes them.
    schedule: str = Field("*/10 * * * *", pattern=rf"^(@\w+( \S+)?|{_CRON_FIELD}( {_CRON_FIELD}){{4}})$")
    timezone: str | None = None
    look_back: str = Field("24h", pattern=r"^[0-9]+(\.[0-9]+)?[smhd]$")
    max_repairs: StrictInt = Field(200, gt=0, le=10000)
    budget_seconds: StrictInt = Field(240, gt=0)
    service_account: str = Field("release-status-reconciler", pattern=_NAME_RE)
    # In-cluster URL of the Argo Server; the pod authenticates with its ServiceAccount token (auth mode client).
    argo_server_url: str = "https://argo-server.argo.svc:2746"
    dry_run: StrictBool = False


class Config(_Model):
    """The whole of ``hera_config.yaml``."""

    argo: ArgoSettings = ArgoSettings()
    image: ImageSettings = ImageSettings()
    workflow: WorkflowSettings = WorkflowSettings()
    github: GitHubSettings = GitHubSettings()
    s3: S3Settings = S3Settings()
    argocd: ArgoCDSettings = ArgoCDSettings()
    events: EventsSettings = EventsSettings()
    reconciler: ReconcilerSettings = ReconcilerSettings()
    repo_registrations: list[RepoRegistration] = []

    @model_validator(mode="after")
    def _check(self) -> Config:
        found = conflicts(self)
        if found:
            raise Problems(found)
        return self

    def target_url(self, workflow: str) -> str:
        """The link of run ``workflow`` in the Argo UI (``github.targetUrlTemplate``), as its statuses carry it."""
        return self.github.target_url_template.format(
            argo_ui=self.argo.ui_base, namespace=self.argo.namespace, workflow=workflow
        )

    def registration(self, repo: str) -> RepoRegistration:
        """The registration of ``owner/name`` (case-insensitive).

        Raises:
            KeyError: the repository is not registered.
        """
        for reg in self.repo_registrations:
            if reg.full_name.lower() == repo.lower():
                return reg
        raise KeyError(f"{repo} is not registered in repoRegistrations")

    def app_id_for(self, reg: RepoRegistration) -> int | None:
        """The GitHub App id of a registration: its own, else the global one."""
        return reg.app_id if reg.app_id is not None else self.github.app_id


def _after_cycle(reg: RepoRegistration) -> list[str]:
    after = {e.name: e.after for e in reg.environments}
    for start in after:
        seen, name = [start], after[start]
        while name is not None and name in after:
            if name in seen:
                return [*seen[seen.index(name) :], name]
            seen.append(name)
            name = after[name]
    return []


def _preview_conflicts(reg: RepoRegistration, where: str) -> list[tuple[str, str]]:
    preview = reg.preview
    out: list[tuple[str, str]] = []
    for key, value in (("argocdApp", preview.argocd_app), ("namespace", preview.namespace)):
        if key == "argocdApp" and (not value or "{pr}" not in value):
            out.append((f"{where}.preview.argocdApp", "previews need an Application name with {pr}, e.g. app-pr-{pr}"))
        elif value and not re.fullmatch(_NAME_RE, value.replace("{pr}", "1234567")):
            message = f"{value!r} does not make a Kubernetes name; use a-z, 0-9, '-' and {{pr}}"
            out.append((f"{where}.preview.{key}", message))
    if reg.installation_id is None:
        message = "previews are listed by Argo CD with the installation's GitHub App: set installationId"
        out.append((f"{where}.installationId", message))
    return out


def conflicts(config: Config) -> list[tuple[str, str]]:
    """Every contradiction between settings, each with the key path to fix and how.

    Whatever ``render`` would otherwise trip over is found here, when the file is loaded: two registrations of
    one repository, an Argo CD Application claimed twice (Kubernetes keeps one object per name), a
    GitHub App installation given two App ids, an ``after`` cycle, a repository on another GitHub host.
    """
    out: list[tuple[str, str]] = []
    names: dict[str, int] = {}
    repos: dict[str, int] = {}
    apps: dict[str, str] = {}
    installations: dict[int, tuple[int, str]] = {}
    for i, reg in enumerate(config.repo_registrations):
        where = f"repoRegistrations[{i}]"
        if reg.s3_credentials_secret and not config.s3.credentials_secret:
            out.append(
                (
                    f"{where}.s3CredentialsSecret",
                    "a registration's own S3 Secret replaces s3.credentialsSecret, which is null (credentials from "
                    "the pod's identity); set s3.credentialsSecret or remove s3CredentialsSecret",
                )
            )
        if reg.name in names:
            out.append(
                (
                    f"{where}.name",
                    f"duplicate registration name {reg.name!r} (also repoRegistrations"
                    f"[{names[reg.name]}]); give each registration a unique name",
                )
            )
        names.setdefault(reg.name, i)
        repo = reg.full_name.lower()
        if repo in repos:
            out.append(
                (
                    f"{where}.repoUrl",
                    f"{reg.full_name} is registered twice (also repoRegistrations"
                    f"[{repos[repo]}]); keep one registration per repository",
                )
            )
        repos.setdefault(repo, i)
        host = reg.repo_url.split("/")[2]
        if host != config.github.web_host:
            out.append(
                (
                    f"{where}.repoUrl",
                    f"host {host!r} does not match github.apiUrl ({config.github.api_url});"
                    f" use https://{config.github.web_host}/OWNER/REPO",
                )
            )
        app_id = config.app_id_for(reg)
        if reg.installation_id is None and app_id is None:
            out.append(
                (
                    f"{where}.installationId",
                    "no installationId and no app id to look it up with; set installationId or github.appId",
                )
            )
        has_apps = any(env.argocd_app for env in reg.environments)
        if has_apps and reg.installation_id is None:
            out.append(
                (
                    f"{where}.installationId",
                    "the registration has Argo CD applications, and Argo CD "
                    "notifications need a fixed GitHub App installation per service: set installationId",
                )
            )
        if reg.installation_id is not None and app_id is not None:
            other = installations.setdefault(reg.installation_id, (app_id, where))
            if other[0] != app_id:
                out.append(
                    (
                        f"{where}.appId",
                        f"installation {reg.installation_id} is given app ids {other[0]} "
                        f"({other[1]}) and {app_id}; an installation belongs to one GitHub App",
                    )
                )
        for j, env in enumerate(reg.environments):
            if not env.argocd_app:
                continue
            key = f"{where}.environments[{j}].argocdApp"
            if env.argocd_app in apps:
                out.append(
                    (
                        key,
                        f"Application {env.argocd_app!r} is also used by {apps[env.argocd_app]}; give each"
                        " environment its own Application",
                    )
                )
            apps.setdefault(env.argocd_app, key)
        if reg.preview.enabled:
            out += _preview_conflicts(reg, where)
        cycle = _after_cycle(reg)
        if cycle:
            out.append((f"{where}.environments", f"'after' forms a cycle {' -> '.join(cycle)}; remove one 'after'"))
        out += _deadline_conflicts(config, reg, where)
    return out


# Seconds the data steps and the exit handler get before the deploy steps: fetch + validate + ETL + publish of
# the example data take ~20 s; 300 s leaves room for real tables without letting the deploys eat the deadline.
DATA_RESERVE_SECONDS = 300
BACKOFF_MAX_SECONDS = 120  # the retryStrategy's backoff maxDuration (pipelines/resources/scripts.py)


def deploy_worst_case(config: Config, environments: int) -> float:
    """Seconds the deploy steps of one push can take at worst.

    They run one at a time (``parallelism: 1``) and the attempts of one step share a single Argo CD wait
    budget (steps/deploy.py), so each costs one timeout, the stability window and its retries' backoff.
    """
    each = config.argocd.timeout_seconds + config.argocd.stability_seconds
    each += config.workflow.retry_limit * BACKOFF_MAX_SECONDS
    return environments * each


def _deadline_conflicts(config: Config, reg: RepoRegistration, where: str) -> list[tuple[str, str]]:
    gated = sum(1 for env in reg.environments if env.branch == reg.default_branch and env.argocd_app)
    worst = deploy_worst_case(config, gated)
    budget = config.workflow.active_deadline_seconds - DATA_RESERVE_SECONDS
    if not gated or worst <= budget:
        return []
    need = int(worst) + DATA_RESERVE_SECONDS
    return [
        (
            "workflow.activeDeadlineSeconds",
            f"{reg.name}'s {gated} gated environments may take {int(worst)} s to deploy ({gated} x (argocd."
            f"timeoutSeconds + stabilitySeconds + retryLimit x {BACKOFF_MAX_SECONDS} s backoff)), more than the "
            f"workflow deadline leaves after {DATA_RESERVE_SECONDS} s for the data steps; set "
            f"workflow.activeDeadlineSeconds to at least {need} or lower argocd.timeoutSeconds",
        )
    ]


_FIXES = {
    "extra_forbidden": "remove it or check its spelling",
    "int_type": "write a plain integer without quotes",
    "int_parsing": "write a plain integer without quotes",
    "bool_type": "write true or false",
    "string_type": "write a string",
    "missing": "add it",
    "literal_error": "use one of the allowed values",
    "string_pattern_mismatch": "use the allowed form (Kubernetes names: lower-case letters, digits, '-', '.')",
    "list_type": "write a YAML list",
}


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "list[", "literal[")):
            continue
        else:
            out += ("." if out else "") + to_camel(str(part))
    return out or "(top level)"


def format_errors(source: str, error: ValidationError) -> str:
    """Render pydantic errors as ``file: key.path: problem (got X); fix: ...`` lines."""
    lines: list[str] = []
    for err in error.errors(include_url=False):
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, Problems):
            prefix = _key_path(err["loc"]) if err["loc"] else ""
            for where, message in cause.items:
                joined = prefix + ("" if not prefix or where.startswith("[") else ".") + where
                lines.append(f"  {source}: {joined}: {message}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        got = "" if err["type"] in {"missing", "value_error"} else f" (got {err.get('input')!r})"
        fix = _FIXES.get(err["type"])
        lines.append(f"  {source}: {_key_path(err['loc'])}: {msg}{got}" + (f"; fix: {fix}" if fix else ""))
    return "\n".join([f"{source}: {len(lines)} problem(s):", *lines])


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Collect ``GSM_<SECTION>_<KEY>`` overrides of scalar settings.

    Returns:
        A nested dict ``{section: {key: value}}`` with values parsed as YAML scalars.

    Raises:
        ConfigFileError: a ``GSM_`` variable names no scalar setting.
    """
    environ = os.environ if environ is None else environ
    sections = {
        name: field.annotation
        for name, field in Config.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, _Model)
    }
    out: dict[str, dict[str, Any]] = {}
    for var, raw in sorted(environ.items()):
        if not var.startswith(ENV_PREFIX):
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        for section, model in sections.items():
            key = rest.removeprefix(section + "_")
            if rest.startswith(section + "_") and key in model.model_fields:
                try:
                    value = yaml.safe_load(raw) if raw else None
                except yaml.YAMLError:
                    value = raw  # not a YAML scalar (e.g. a cron "*/5 * * * *"): the text as it is
                if isinstance(value, (dict, list)):
                    value = raw
                out.setdefault(to_camel(section), {})[to_camel(key)] = value
                break
        else:
            raise ConfigFileError(
                f"environment variable {var} names no setting; use GSM_<SECTION>_<KEY>, e.g. GSM_GITHUB_API_URL"
            )
    return out


def load_config(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Load, override from the environment and validate a config file.

    Args:
        path: The YAML file; ``hera_config.yaml`` in the working directory by default. A missing default
            file yields the built-in defaults (no registrations).
        environ: Environment for ``GSM_*`` overrides (``os.environ`` by default).

    Raises:
        ConfigFileError: unreadable file, bad YAML, or invalid settings; the message names the file,
            every key path and the fix.
    """
    source = Path(path) if path is not None else DEFAULT_CONFIG
    data: dict[str, Any] = {}
    if source.exists():
        try:
            loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigFileError(f"{source}: cannot read YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigFileError(f"{source}: the top level must be a mapping of sections, not {type(loaded).__name__}")
        data = loaded or {}
    elif path is not None:
        raise ConfigFileError(f"{source}: no such file; pass --config PATH to an existing hera_config.yaml")
    for section, values in env_overrides(environ).items():
        current = data.get(section) or {}
        if not isinstance(current, dict):
            raise ConfigFileError(f"{source}: {section} must be a mapping")
        data[section] = {**current, **values}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError(format_errors(str(source), exc)) from None


InstallationId = Annotated[int, Field(gt=0)]

__all__ = [
    "ArgoCDSettings",
    "ArgoCDSource",
    "ArgoSettings",
    "Config",
    "ConfigFileError",
    "Environment",
    "EventsSettings",
    "GitHubSettings",
    "ImageSettings",
    "InstallationId",
    "Preview",
    "RepoRegistration",
    "ReconcilerSettings",
    "S3Settings",
    "WorkflowSettings",
    "conflicts",
    "env_overrides",
    "format_errors",
    "load_config",
]
