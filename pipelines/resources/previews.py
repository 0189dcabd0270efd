"""Preview environments' Argo CD side: an ApplicationSet with the pull-request generator per registration."""

from __future__ import annotations

from typing import Any

from pipelines.config import Config, RepoRegistration
from pipelines.resources import PART_OF
from pipelines.resources.argocd import REGISTRATION_LABEL
from pipelines.resources.notifications import ENVIRONMENT_ANNOTATION, ENVIRONMENT_URL_ANNOTATION
from pipelines.resources.secrets import repo_creds_secret

# Go templates (goTemplate: true) of the generator's parameters: number, head_sha, branch, ...
NUMBER = "{{ .number }}"
RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io"


def _go(template: str) -> str:
    return template.replace("{pr}", NUMBER)


def application_set(config: Config, reg: RepoRegistration) -> dict[str, Any]:
    """The ApplicationSet of one registration's previews (``preview.enabled``; checked when the config loads)."""
    preview = reg.preview
    assert preview.argocd_app and reg.installation_id is not None, f"{reg.name}: checked when the config loads"
    github: dict[str, Any] = {
        "owner": reg.owner,
        "repo": reg.full_name.split("/")[1],
        "appSecretName": repo_creds_secret(reg.installation_id),
    }
    if config.github.is_enterprise:
        github["api"] = config.github.api_url.rstrip("/")
    if preview.require_label:
        github["labels"] = [preview.require_label]
    annotations = {ENVIRONMENT_ANNOTATION: f"preview/pr-{NUMBER}", ENVIRONMENT_URL_ANNOTATION: _go(preview.url or "")}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {
            "name": f"{reg.name}-previews",
            "namespace": config.argocd.namespace,
            "labels": {**PART_OF, REGISTRATION_LABEL: reg.name},
        },
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"pullRequest": {"github": github, "requeueAfterSeconds": preview.requeue_after_seconds}}],
            "template": {
                "metadata": {
                    "name": _go(preview.argocd_app),
                    "labels": {**PART_OF, REGISTRATION_LABEL: reg.name},
                    "annotations": annotations,
                    "finalizers": [RESOURCES_FINALIZER],
                },
                "spec": {
                    "project": reg.argocd.project or config.argocd.project,
                    "source": {"repoURL": reg.repo_url, "path": reg.argocd.path, "targetRevision": "{{ .head_sha }}"},
                    "destination": {
                        "server": reg.argocd.destination_server,
                        "namespace": _go(preview.namespace or preview.argocd_app),
                    },
                    "syncPolicy": {
                        "automated": {"prune": True, "selfHeal": True},
                        "syncOptions": ["CreateNamespace=true"],
                    },
                },
            },
        },
    }


def resources(config: Config) -> list[dict[str, Any]]:
    """One ApplicationSet per registration with ``preview.enabled``, by registration name."""
    return [
        application_set(config, reg)
        for reg in sorted(config.repo_registrations, key=lambda r: r.name)
        if reg.preview.enabled
    ]


__all__ = ["application_set", "resources"]
