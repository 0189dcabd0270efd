"""Repository registrations: which repositories run release-data-prep, with which installation, where to."""

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from steps.runtime.errors import ConfigError

REGISTRATIONS_ENV = "STEP_REGISTRATIONS_FILE"
DEFAULT_REGISTRATIONS = "/etc/gitops-status-matrix/registrations.yaml"
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


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True, validate_default=True
    )


class Environment(_Model):
    """One GitHub deployment environment, fed by one branch and backed by one Argo CD Application."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    branch: str = "main"
    argocd_app: str | None = Field(None, pattern=_OBJECT_NAME_RE)
    url: str | None = None
    production: StrictBool = False
    after: str | None = None


class Preview(_Model):
    """Opt-in preview environments ``preview/pr-N`` for pull requests; ``{pr}`` in a field is the PR number."""

    enabled: StrictBool = False
    argocd_app: str | None = None
    url: str | None = None
    delete_on_close: StrictBool = False
    namespace: str | None = None  # the preview's destination namespace; default: the Application's name
    require_label: str | None = None  # only pull requests with this label get a preview (e.g. from forks)
    requeue_after_seconds: StrictInt = Field(300, ge=30)  # how often Argo CD lists the pull requests


class ArgoCDSource(_Model):
    """Source and destination of the registration's Argo CD Application."""

    path: str = "deploy"
    target_revision: str | None = None
    destination_namespace: str | None = None
    destination_server: str = "https://kubernetes.default.svc"
    project: str | None = None
    automated: StrictBool = True


class RepoRegistration(_Model):
    """A repository whose pushes and pull requests run release-data-prep."""

    name: str = Field(pattern=_NAME_RE)
    repo_url: str
    installation_id: StrictInt | None = Field(None, gt=0)
    app_id: StrictInt | None = Field(None, gt=0)
    default_branch: str = Field("main", min_length=1)
    data_path: str = "release-data/"
    events: list[Literal["push", "pull_request"]] = Field(["push", "pull_request"], min_length=1)
    argocd: ArgoCDSource = ArgoCDSource()
    environments: list[Environment] = []  # no Application, no deployment record (never a fake success)
    preview: Preview = Preview()
    pr_comment: StrictBool = True
    check_run: StrictBool = False

    @property
    def full_name(self) -> str:
        """``owner/name`` of the repository."""
        parts = self.repo_url.rstrip("/").removesuffix(".git").split("/")
        return f"{parts[-2]}/{parts[-1]}"

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
        if self.data_path.startswith("/") or ".." in Path(self.data_path).parts:
            found.append(("dataPath", f"{self.data_path!r} must be a relative path inside the repository"))
        if found:
            raise Problems(found)
        return self


def dump_registrations(registrations: list[RepoRegistration]) -> str:
    """Serialise registrations for the ConfigMap (camelCase keys, as in hera_config.yaml)."""
    data = [r.model_dump(mode="json", by_alias=True) for r in registrations]
    return yaml.safe_dump({"repoRegistrations": data}, sort_keys=True)


def load_registration(repo: str, path: str | os.PathLike[str] | None = None) -> RepoRegistration:
    """The registration of ``owner/name`` from the mounted registrations file.

    Raises:
        ConfigError: the file is missing or invalid, or the repository is not registered.
    """
    path = Path(path or os.environ.get(REGISTRATIONS_ENV) or DEFAULT_REGISTRATIONS)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        items = [RepoRegistration.model_validate(item) for item in data.get("repoRegistrations") or []]
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(
            f"cannot read registrations from {path}: {type(exc).__name__}; re-render and sync the ConfigMap",
            detail=str(exc),
        ) from None
    for item in items:
        if item.full_name.lower() == repo.lower():
            return item
    raise ConfigError(f"{repo} is not registered in {path}; add it to repoRegistrations and re-render")


__all__ = [
    "DEFAULT_REGISTRATIONS",
    "REGISTRATIONS_ENV",
    "ArgoCDSource",
    "Environment",
    "Preview",
    "Problems",
    "RepoRegistration",
    "dump_registrations",
    "load_registration",
]
