"""Argo CD Applications, one per registration environment that names an ``argocdApp``.

Each Application (https://argo-cd.readthedocs.io/en/stable/operator-manual/declarative-setup/#applications)
deploys ``argocd.path`` of the registration's repository at the environment's branch (or
``argocd.targetRevision``), and subscribes to the notifications triggers of ``pipelines.resources.notifications``
through the service of the registration's own GitHub App installation. The environment name and URL ride
along as annotations, which the notification templates read.

Preview environments are not rendered here: they exist per pull request, so an ApplicationSet with the
pull-request generator (https://argo-cd.readthedocs.io/en/stable/operator-manual/applicationset/Generators-Pull-Request/)
or the preview workflow creates them; see docs/ops.md.
"""

from __future__ import annotations

import re

from pipelines.config import Config, Environment, RepoRegistration
from pipelines.resources.notifications import (
    ENVIRONMENT_ANNOTATION,
    ENVIRONMENT_URL_ANNOTATION,
    subscription_annotations,
)

REGISTRATION_LABEL = "gitops-status-matrix/registration"
PART_OF = {"app.kubernetes.io/part-of": "gitops-status-matrix"}
AUTOMATED = {"prune": False, "selfHeal": True}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def application(config: Config, reg: RepoRegistration, env: Environment) -> dict:
    """The Application of one environment of a registration.

    Raises:
        ValueError: the environment names no ``argocdApp`` or an invalid one, or the registration has no
            installation id for its notifications subscription.
    """
    name = env.argocd_app
    if not name or not _DNS_SUBDOMAIN.fullmatch(name):
        raise ValueError(
            f"registration {reg.name!r}, environment {env.name!r}: argocdApp {name!r} is not a Kubernetes name; "
            "use lower-case letters, digits, '-' and '.'"
        )
    destination = {"server": reg.argocd.destination_server}
    if reg.argocd.destination_namespace:
        destination["namespace"] = reg.argocd.destination_namespace
    spec: dict = {
        "project": reg.argocd.project or config.argocd.project,
        "source": {
            "repoURL": reg.repo_url,
            "path": reg.argocd.path,
            "targetRevision": reg.argocd.target_revision or env.branch,
        },
        "destination": destination,
    }
    if reg.argocd.automated:
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


def resources(config: Config) -> list[dict]:
    """Every static Application, sorted by registration name then environment order.

    Raises:
        ValueError: two environments name the same Application, or :func:`application` refuses one.
    """
    apps: list[dict] = []
    owners: dict[str, str] = {}
    for reg in sorted(config.repo_registrations, key=lambda r: r.name):
        for env in reg.environments:
            if not env.argocd_app:
                continue
            where = f"{reg.name}/{env.name}"
            if env.argocd_app in owners:
                raise ValueError(
                    f"argocdApp {env.argocd_app!r} is used by {owners[env.argocd_app]} and {where}; "
                    "give each environment its own Application"
                )
            owners[env.argocd_app] = where
            apps.append(application(config, reg, env))
    return apps


__all__ = ["AUTOMATED", "REGISTRATION_LABEL", "application", "resources"]
