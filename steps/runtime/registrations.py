"""Repository registrations: which repositories run release-data-prep, with which installation, where to."""

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from steps.runtime.errors import ConfigError

log = logging.getLogger(__name__)
REGISTRATIONS_ENV = "STEP_REGISTRATIONS_FILE"
DEFAULT_DATA_PATH = "release-data/"
DEFAULT_REGISTRATIONS = "/etc/gitops-status-matrix/registrations-0/registrations.json"
# Per ConfigMap: Argo CD's client-side apply copies the object into a last-applied annotation, and all
# annotations of an object together must stay under 256 KiB; 200 KiB leaves room for the rest.
SHARD_BYTES = 200 * 1024
_EMPTY_BYTES = len('{"repoRegistrations":[]}')
_NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# A Kubernetes object name (DNS-1123 subdomain), as an Argo CD Application's metadata.name must be.
_OBJECT_NAME_RE = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"


class Problems(ValueError):
    """Settings that are each valid alone but wrong together; ``items`` are ``(key path, message)`` pairs.

    Key paths are relative to the model that raised it; ``pipelines.config.format_errors`` prefixes them.
    """

    def __init__(self, items: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{where}: {message}" for where, message in items))
        self.items = items


def full_name_of(repo_url: str) -> str:
    """``owner/name`` of a repository URL (``https://github.com/owner/name[.git]``)."""
    parts = repo_url.rstrip("/").removesuffix(".git").split("/")
    return "/".join(parts[-2:])


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, validate_default=True
    )


class ArgoCDSource(_Model):
    """Source and destination of the registration's Argo CD Application."""

    path: str = "deploy"
    target_revision: str | None = None
    destination_namespace: str | None = None
    destination_server: str = "https://kubernetes.default.svc"
    project: str | None = None
    automated: StrictBool = True


class ArgoCDOverride(_Model):
    """Per-environment changes to the registration's ``argocd`` block (only the keys given change)."""

    path: str | None = None
    target_revision: str | None = None
    destination_namespace: str | None = None
    destination_server: str | None = None
    project: str | None = None
    automated: StrictBool | None = None


class Environment(_Model):
    """One GitHub deployment environment, fed by one branch and backed by one Argo CD Application."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    branch: str = "main"
    argocd_app: str | None = Field(None, pattern=_OBJECT_NAME_RE)
    url: str | None = None
    production: StrictBool = False
    after: str | None = None
    argocd: ArgoCDOverride = ArgoCDOverride()  # this environment's own Application settings


class Preview(_Model):
    """Opt-in preview environments ``preview/pr-N`` for pull requests; ``{pr}`` in a field is the PR number."""

    enabled: StrictBool = False
    argocd_app: str | None = None
    url: str | None = None
    delete_on_close: StrictBool = False
    namespace: str | None = None  # the preview's destination namespace; default: the Application's name
    require_label: str | None = None  # only pull requests with this label get a preview (e.g. from forks)
    requeue_after_seconds: StrictInt = Field(300, ge=30)  # how often Argo CD lists the pull requests


class RepoRegistration(_Model):
    """A repository whose pushes and pull requests run release-data-prep."""

    name: str = Field(pattern=_NAME_RE)
    repo_url: str
    installation_id: StrictInt | None = Field(None, gt=0)
    app_id: StrictInt | None = Field(None, gt=0)
    default_branch: str = Field("main", min_length=1)
    data_path: str = DEFAULT_DATA_PATH
    events: list[Literal["push", "pull_request"]] = Field(["push", "pull_request"], min_length=1)
    argocd: ArgoCDSource = ArgoCDSource()
    environments: list[Environment] = []  # no Application, no deployment record (never a fake success)
    preview: Preview = Preview()
    pr_comment: StrictBool = True
    check_run: StrictBool = False
    # Pull requests from forks: "ignore" (default) triggers nothing; "validate" checks their data in one pod
    # that holds only the App key (no S3), publishes nothing and deploys nothing.
    forks: Literal["ignore", "validate"] = "ignore"
    # This registration's own S3 credentials (a Secret in the workflow namespace, keys as s3.credentialsSecret),
    # scoped by a bucket policy to its own prefix; its pods then never mount the shared Secret.
    s3_credentials_secret: str | None = Field(None, pattern=_OBJECT_NAME_RE)

    @property
    def full_name(self) -> str:
        """``owner/name`` of the repository."""
        return full_name_of(self.repo_url)

    def argocd_for(self, env: Environment) -> ArgoCDSource:
        """The Application settings of ``env``: the registration's block with the environment's changes.

        An environment with ``after:`` is promoted by the deploy step (a sync to the commit once the one it
        follows succeeded), so its Application is never auto-synced.
        """
        merged = self.argocd.model_copy(update=env.argocd.model_dump(exclude_none=True))
        return merged.model_copy(update={"automated": False}) if env.after is not None else merged

    @property
    def owner(self) -> str:
        """The organization or user that owns the repository."""
        return self.full_name.split("/")[0]

    @model_validator(mode="after")
    def _check(self) -> "RepoRegistration":
        found: list[tuple[str, str]] = []
        if not re.fullmatch(r"https://[^\s/]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?(\.git)?/?", self.repo_url):
            found.append(("repoUrl", f"{self.repo_url!r} is not a GitHub HTTPS URL; use https://github.com/OWNER/REPO"))
        names = [e.name for e in self.environments]
        for j, env in enumerate(self.environments):
            if names.index(env.name) != j:
                found.append((f"environments[{j}].name", f"duplicate environment name {env.name!r}; rename one"))
            if env.after is not None and env.after not in names:
                found.append(
                    (f"environments[{j}].after", f"{env.name!r} comes after unknown environment {env.after!r}")
                )
        targets: dict[tuple[str | None, ...], str] = {}
        for j, env in enumerate(self.environments):
            if env.after is not None and env.argocd.automated:
                found.append(
                    (
                        f"environments[{j}].argocd.automated",
                        f"{env.name!r} is promoted after {env.after!r} by a sync "
                        "to the commit; it cannot also auto-sync: remove automated",
                    )
                )
            if not env.argocd_app:
                continue
            a = self.argocd_for(env)
            key = (a.path, a.target_revision or env.branch, a.destination_server, a.destination_namespace)
            if key in targets:
                found.append(
                    (
                        f"environments[{j}].argocd",
                        f"{env.name!r} and {targets[key]!r} would deploy the same path and revision to the same "
                        "destination and fight over it; give one its own argocd.destinationNamespace (or path)",
                    )
                )
            targets.setdefault(key, env.name)
        if self.data_path.startswith("/") or ".." in Path(self.data_path).parts:
            found.append(("dataPath", f"{self.data_path!r} must be a relative path inside the repository"))
        if found:
            raise Problems(found)
        return self


def _entry(registration: RepoRegistration) -> dict[str, Any]:
    return registration.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def dump_registrations(registrations: list[RepoRegistration]) -> str:
    """Serialise registrations for a ConfigMap: compact JSON, camelCase keys, defaults left out."""
    return json.dumps({"repoRegistrations": [_entry(r) for r in registrations]}, separators=(",", ":"), sort_keys=True)


def shard_registrations(registrations: list[RepoRegistration], limit: int = SHARD_BYTES) -> list[str]:
    """Split registrations (sorted by name) into as few ``dump_registrations`` documents of ``limit`` bytes or less.

    Raises:
        ValueError: one registration alone is larger than ``limit``.
    """
    shards: list[list[dict[str, Any]]] = [[]]
    size = _EMPTY_BYTES
    for registration in sorted(registrations, key=lambda r: r.name):
        entry = _entry(registration)
        # As stored: a JSON string inside the ConfigMap's JSON (quotes escaped), which is what the annotation holds.
        entry_size = len(json.dumps(json.dumps(entry, separators=(",", ":"), sort_keys=True))) - 1  # + a comma
        if entry_size + _EMPTY_BYTES > limit:
            raise ValueError(f"registration {registration.name!r} alone is {entry_size} bytes, over {limit}")
        if shards[-1] and size + entry_size > limit:
            shards.append([])
            size = _EMPTY_BYTES
        shards[-1].append(entry)
        size += entry_size
    return [json.dumps({"repoRegistrations": s}, separators=(",", ":"), sort_keys=True) for s in shards]


def registration_files(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The mounted registrations files: ``$STEP_REGISTRATIONS_FILE`` and its shards ``..._1``, ``..._2``, ..."""
    env = os.environ if environ is None else environ
    files = [Path(env.get(REGISTRATIONS_ENV) or DEFAULT_REGISTRATIONS)]
    index = 1
    while env.get(f"{REGISTRATIONS_ENV}_{index}"):
        files.append(Path(env[f"{REGISTRATIONS_ENV}_{index}"]))
        index += 1
    return files


def load_registration(repo: str, path: str | os.PathLike[str] | None = None) -> RepoRegistration:
    """The registration of ``owner/name`` from the mounted registrations files (JSON, or YAML as written by hand).

    Only the matching entry is validated: a pod of a run looks up one repository among a thousand.

    Raises:
        ConfigError: a file is missing or invalid, or the repository is not registered.
    """
    files = [Path(path)] if path is not None else registration_files()
    wanted = repo.lower()
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                data = yaml.safe_load(text)
            items = (data or {}).get("repoRegistrations") or []
            match = next((i for i in items if full_name_of(str(i.get("repoUrl", ""))).lower() == wanted), None)
            if match is not None:
                return RepoRegistration.model_validate(match)
        except (OSError, AttributeError, yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(
                f"cannot read registrations from {file}: {type(exc).__name__}; re-render and sync the ConfigMap",
                detail=str(exc),
            ) from None
    where = str(files[0]) + (f" and {len(files) - 1} more shard(s)" if len(files) > 1 else "")
    raise ConfigError(f"{repo} is not registered in {where}; add it to repoRegistrations and re-render")


def registrations_mounted() -> bool:
    """Whether the pod mounts registrations (``$STEP_REGISTRATIONS_FILE`` is set)."""
    return bool(os.environ.get(REGISTRATIONS_ENV))


def mounted_registration(repo: str) -> RepoRegistration | None:
    """The registration of ``repo`` when registrations are mounted, else None.

    None when ``$STEP_REGISTRATIONS_FILE`` is unset or (an optional mount whose ConfigMap is missing) none of
    the files exists; callers then fall back to a look-up.

    Raises:
        ConfigError: the registrations are mounted but do not know ``repo`` (an event the Sensor should not
            have let through, or a ConfigMap older than the Sensor), or a file is unreadable.
    """
    if not registrations_mounted():
        return None
    files = registration_files()
    if not any(f.exists() for f in files):
        log.warning("no registrations mounted at %s; looking the installation up instead", files[0])
        return None
    return load_registration(repo)


__all__ = [
    "DEFAULT_DATA_PATH",
    "DEFAULT_REGISTRATIONS",
    "REGISTRATIONS_ENV",
    "ArgoCDOverride",
    "ArgoCDSource",
    "Environment",
    "Preview",
    "Problems",
    "RepoRegistration",
    "dump_registrations",
    "full_name_of",
    "load_registration",
    "mounted_registration",
    "registration_files",
    "registrations_mounted",
    "shard_registrations",
]
