"""Argo CD Applications, one per registration environment that names an ``argocdApp``."""

from __future__ import annotations

from typing import Any

from pipelines.config import Config, Environment, RepoRegistration
from pipelines.resources import PART_OF
from pipelines.resources.notifications import (
    ENVIRONMENT_ANNOTATION,
    ENVIRONMENT_URL_ANNOTATION,
    subscription_annotations,
)

REGISTRATION_LABEL = "gitops-status-matrix/registration"
AUTOMATED = {"prune": False, "selfHeal": True}


def application(config: Config, reg: RepoRegistration, env: Environment, name: str) -> dict[str, Any]:
    """The Application ``name`` of one environment of a registration (names are checked when the config loads)."""
    settings = reg.argocd_for(env)
    destination = {"server": settings.destination_server}
    if settings.destination_namespace:
        destination["namespace"] = settings.destination_namespace
    spec: dict[str, Any] = {
        "project": settings.project or config.argocd.project,
        "source": {
            "repoURL": reg.repo_url,
            "path": settings.path,
            "targetRevision": settings.target_revision or env.branch,
        },
        "destination": destination,
    }
    if settings.automated:
        spec["syncPolicy"] = {"automated": dict(AUTOMATED)}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": config.argocd.namespace,
            "labels": {**PART_OF, REGISTRATION_LABEL: reg.name},
            "annotations": {
                ENVIRONMENT_ANNOTATION: env.name,
                ENVIRONMENT_URL_ANNOTATION: env.url or "",
                **subscription_annotations(config, reg),
            },
        },
        "spec": spec,
    }


def resources(config: Config) -> list[dict[str, Any]]:
    """Every static Application, sorted by registration name then environment order."""
    return [
        application(config, reg, env, env.argocd_app)
        for reg in sorted(config.repo_registrations, key=lambda r: r.name)
        for env in reg.environments
        if env.argocd_app
    ]


__all__ = ["AUTOMATED", "REGISTRATION_LABEL", "application", "resources"]
