"""The ``argocd-notifications-cm`` ConfigMap: one GitHub service per installation, triggers and templates."""

from __future__ import annotations

from typing import Any, Literal

import yaml

from pipelines.config import Config, RepoRegistration
from pipelines.resources.secrets import notifications_private_key

CONFIGMAP_NAME = "argocd-notifications-cm"
SUBSCRIBE_PREFIX = "notifications.argoproj.io/subscribe"
ENVIRONMENT_ANNOTATION = "gitops-status-matrix/environment"
ENVIRONMENT_URL_ANNOTATION = "gitops-status-matrix/environment-url"
STATUS_CONTEXT_PREFIX = "argocd/"
TRIGGER_DEPLOYED = "gsm-on-deployed"
TRIGGER_FAILED = "gsm-on-failed"
TRIGGERS = (TRIGGER_DEPLOYED, TRIGGER_FAILED)
TEMPLATE_DEPLOYED = "gsm-deployed"
TEMPLATE_SYNC_FAILED = "gsm-sync-failed"
TEMPLATE_DEGRADED = "gsm-degraded"

Reporter = Literal["workflow", "notifications"]

_APP_URL = "{{.context.argocdUrl}}/applications/{{.app.metadata.name}}?operation=true"
_SUCCEEDED = "app.status.operationState != nil and app.status.operationState.phase in ['Succeeded']"
_FAILED = "app.status.operationState != nil and app.status.operationState.phase in ['Error', 'Failed']"


SYNC_OPTIONS_ANNOTATION = "argocd.argoproj.io/sync-options"


def service_name(installation_id: int) -> str:
    """Name of the notifications service of one installation (the ``<name>`` in ``service.github.<name>``)."""
    return f"github-{installation_id}"


def _ids(config: Config, reg: RepoRegistration) -> tuple[int, int]:
    # pipelines.config.conflicts guarantees both for a registration with Applications.
    app_id = config.app_id_for(reg)
    assert reg.installation_id is not None and app_id is not None, f"{reg.name}: checked when the config loads"
    return reg.installation_id, app_id


def installations(config: Config) -> dict[int, int]:
    """Installation id -> GitHub App id for every registration that has Argo CD Applications."""
    return {
        _ids(config, reg)[0]: _ids(config, reg)[1]
        for reg in sorted(config.repo_registrations, key=lambda r: r.name)
        if any(env.argocd_app for env in reg.environments)
    }


def subscription_annotations(config: Config, reg: RepoRegistration) -> dict[str, str]:
    """The ``subscribe.<trigger>.<service>`` annotations of the registration's Applications (empty recipient)."""
    service = service_name(_ids(config, reg)[0])
    return {f"{SUBSCRIBE_PREFIX}.{trigger}.{service}": "" for trigger in TRIGGERS}


def _dump(value: object) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=4096)


def _service(config: Config, installation_id: int, app_id: int) -> str:
    opts: dict[str, object] = {
        "appID": app_id,
        "installationID": installation_id,
        "privateKey": f"${notifications_private_key(installation_id)}",
    }
    if config.github.is_enterprise:
        base = config.github.api_url.rstrip("/")
        opts["enterpriseBaseURL"] = base if base.endswith("/api/v3") else f"{base}/api/v3"
    return _dump(opts)


def _template(message: str, revision_path: str, state: str, deployment_state: str, reporter: Reporter) -> str:
    github: dict[str, object] = {
        "revisionPath": revision_path,
        "status": {"state": state, "label": STATUS_CONTEXT_PREFIX + "{{.app.metadata.name}}", "targetURL": _APP_URL},
    }
    if reporter == "notifications":
        github["deployment"] = {
            "state": deployment_state,
            "environment": f'{{{{index .app.metadata.annotations "{ENVIRONMENT_ANNOTATION}"}}}}',
            "environmentURL": f'{{{{index .app.metadata.annotations "{ENVIRONMENT_URL_ANNOTATION}"}}}}',
            "logURL": _APP_URL,
            "requiredContexts": [],
            "autoMerge": False,
            "transientEnvironment": False,
        }
    return _dump({"message": message, "github": github})


def _triggers() -> dict[str, list[dict[str, object]]]:
    return {
        TRIGGER_DEPLOYED: [
            {
                "description": "Synced and Healthy at the revision the last sync operation applied",
                "when": f"{_SUCCEEDED} and app.status.health.status == 'Healthy' and "
                "app.status.sync.status == 'Synced' and "
                "app.status.sync.revision == app.status.operationState.syncResult.revision",
                "oncePer": "app.status.sync.revision",
                "send": [TEMPLATE_DEPLOYED],
            }
        ],
        TRIGGER_FAILED: [
            {
                "description": "The sync operation failed",
                "when": _FAILED,
                "oncePer": "app.status.operationState.operation.sync.revision",
                "send": [TEMPLATE_SYNC_FAILED],
            },
            {
                "description": "Synced but Degraded",
                "when": "app.status.sync.status == 'Synced' and app.status.health.status == 'Degraded'",
                "oncePer": "app.status.sync.revision",
                "send": [TEMPLATE_DEGRADED],
            },
        ],
    }


def configmap(config: Config, *, reporter: Reporter | None = None) -> dict[str, Any]:
    """The ``argocd-notifications-cm`` ConfigMap for every installation that has Applications."""
    reporter = reporter or config.argocd.deployment_reporter
    data: dict[str, str] = {"context": _dump({"argocdUrl": config.argocd.ui_base})}
    for installation_id, app_id in sorted(installations(config).items()):
        data[f"service.github.{service_name(installation_id)}"] = _service(config, installation_id, app_id)
    data[f"template.{TEMPLATE_DEPLOYED}"] = _template(
        "{{.app.metadata.name}} is Synced and Healthy at this commit",
        "{{.app.status.operationState.syncResult.revision}}",
        "success",
        "success",
        reporter,
    )
    data[f"template.{TEMPLATE_SYNC_FAILED}"] = _template(
        "Argo CD could not sync {{.app.metadata.name}} to this commit",
        "{{.app.status.operationState.operation.sync.revision}}",
        "error",
        "error",
        reporter,
    )
    data[f"template.{TEMPLATE_DEGRADED}"] = _template(
        "{{.app.metadata.name}} is Synced but Degraded at this commit",
        "{{.app.status.sync.revision}}",
        "failure",
        "failure",
        reporter,
    )
    for name, conditions in _triggers().items():
        data[f"trigger.{name}"] = _dump(conditions)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP_NAME,
            "namespace": config.argocd.namespace,
            "labels": {"app.kubernetes.io/name": CONFIGMAP_NAME, "app.kubernetes.io/part-of": "argocd"},
            # Argo CD installs this ConfigMap itself (often with the triggers catalog). Server-side apply owns
            # only the keys rendered here and leaves every other key alone, the way Argo CD's own docs install
            # the catalog (kubectl apply --server-side); a client-side apply would fight the installer's.
            "annotations": {SYNC_OPTIONS_ANNOTATION: "ServerSideApply=true"},
        },
        "data": dict(sorted(data.items())),
    }


def resources(config: Config) -> list[dict[str, Any]]:
    """The notifications ConfigMap, or nothing when no registration has Argo CD Applications."""
    return [configmap(config)] if installations(config) else []


__all__ = [
    "CONFIGMAP_NAME",
    "ENVIRONMENT_ANNOTATION",
    "ENVIRONMENT_URL_ANNOTATION",
    "STATUS_CONTEXT_PREFIX",
    "SUBSCRIBE_PREFIX",
    "TRIGGERS",
    "TRIGGER_DEPLOYED",
    "TRIGGER_FAILED",
    "Reporter",
    "configmap",
    "installations",
    "resources",
    "service_name",
    "subscription_annotations",
]
