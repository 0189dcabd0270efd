"""ServiceAccounts, Roles and RoleBindings for everything the project runs, each with the least it needs."""

from __future__ import annotations

from typing import Any

from pipelines.config import Config
from pipelines.resources import PART_OF

RBAC_API = "rbac.authorization.k8s.io/v1"

WORKFLOW_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
]
# The Sensor's k8s triggers use operation patch (argo-events standard-k8s.go): get the Workflow named after
# the delivery, create it when missing, else merge-patch it with the same content (a redelivery is a no-op).
SENSOR_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "get", "patch"]},
]

#: The reconciler lists runs through the Argo Server, which (auth mode client) acts with its ServiceAccount's
#: token: list and get Workflows (the archive asks the same "list workflows" question,
#: server/workflowarchive/archived_workflow_server.go), plus what Argo's executor needs in its own pod.
RECONCILER_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "list"]},
    *WORKFLOW_RULES,
]


def _meta(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(PART_OF)}


def service_account(name: str, namespace: str) -> dict[str, Any]:
    """A ServiceAccount."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace)}


def role(name: str, namespace: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """A Role with exactly ``rules``."""
    return {"apiVersion": RBAC_API, "kind": "Role", "metadata": _meta(name, namespace), "rules": rules}


def role_binding(name: str, namespace: str, account: str, account_namespace: str) -> dict[str, Any]:
    """Binds Role ``name`` in ``namespace`` to ServiceAccount ``account`` of ``account_namespace``."""
    return {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}],
    }


def grant(account: str, account_namespace: str, namespace: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding giving ``account`` exactly ``rules`` in ``namespace``."""
    return [
        service_account(account, account_namespace),
        role(account, namespace, rules),
        role_binding(account, namespace, account, account_namespace),
    ]


def resources(config: Config) -> list[dict[str, Any]]:
    """RBAC for the workflow pods, the Sensor (when there are registrations to trigger) and the reconciler."""
    workflows = config.argo.namespace
    out = grant(config.workflow.service_account, workflows, workflows, WORKFLOW_RULES)
    if config.repo_registrations:
        out += grant(config.events.sensor_service_account, config.events.namespace, workflows, SENSOR_RULES)
    if config.reconciler.enabled:
        out += grant(config.reconciler.service_account, workflows, workflows, RECONCILER_RULES)
    return out


__all__ = [
    "RECONCILER_RULES",
    "SENSOR_RULES",
    "WORKFLOW_RULES",
    "grant",
    "resources",
    "role",
    "role_binding",
    "service_account",
]
