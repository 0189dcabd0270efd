"""What a cluster admits beyond the schemas: label syntax, object sizes, and Pod Security "restricted" for pods."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

ANNOTATION_BUDGET = 256 * 1024
CONFIGMAP_DATA_LIMIT = 1024 * 1024
SENSOR_ENV_LIMIT = 128 * 1024 * 3 // 4 - 64  # base64 of the JSON, plus the variable's name, in 128 KiB

_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_POD_KINDS = {"Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow"}


def label_problems(labels: Mapping[str, Any] | None, where: str) -> list[str]:
    """Label keys and values Kubernetes would refuse."""
    out = []
    for key, value in (labels or {}).items():
        prefix, _, name = str(key).rpartition("/")
        if not name or not _LABEL_NAME.fullmatch(name) or (prefix and not _DNS_SUBDOMAIN.fullmatch(prefix)):
            out.append(f"{where}: label key {key!r} is not a valid label key")
        text = str(value)
        if not isinstance(value, str) or len(text) > 63 or not _LABEL_NAME.fullmatch(text):
            out.append(
                f"{where}: label {key}={text[:80]!r} is not a valid label value "
                "(at most 63 characters, alphanumeric at both ends, '-', '_' and '.' inside)"
            )
    return out


def size_problems(resource: Mapping[str, Any]) -> list[str]:
    """Objects too large to sync, store or hand to their pod."""
    size = len(json.dumps(resource, separators=(",", ":"), sort_keys=True).encode())
    out = []
    if size >= ANNOTATION_BUDGET:
        out.append(
            f"object is {size:,} bytes; client-side apply keeps it in an annotation and annotations must stay "
            f"under {ANNOTATION_BUDGET:,} bytes: make it smaller or split it"
        )
    if resource.get("kind") == "Sensor" and size >= SENSOR_ENV_LIMIT:
        out.append(
            f"Sensor is {size:,} bytes of JSON; the sensor pod receives it base64-encoded in one environment "
            f"variable (at most 128 KiB), so it must stay under {SENSOR_ENV_LIMIT:,} bytes"
        )
    if resource.get("kind") == "ConfigMap":
        data = sum(len(str(k)) + len(str(v).encode()) for k, v in (resource.get("data") or {}).items())
        if data > CONFIGMAP_DATA_LIMIT:
            out.append(f"ConfigMap data is {data:,} bytes; Kubernetes stores at most {CONFIGMAP_DATA_LIMIT:,}")
    return out


def _pods(resource: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """``(where, pod-level security context, template)`` of every template that makes a pod."""
    spec = resource.get("spec") or {}
    if resource.get("kind") == "CronWorkflow":
        spec = spec.get("workflowSpec") or {}
    pod_context = spec.get("securityContext") or {}
    for i, template in enumerate(spec.get("templates") or []):
        if any(k in template for k in ("script", "container", "containerSet")):
            context = {**pod_context, **(template.get("securityContext") or {})}
            yield f"templates[{i}] ({template.get('name')!r})", context, template


def _containers(template: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in ("script", "container"):
        if key in template:
            yield key, template[key]
    for key in ("initContainers", "sidecars"):
        for i, container in enumerate(template.get(key) or []):
            yield f"{key}[{i}]", container
    for i, container in enumerate((template.get("containerSet") or {}).get("containers") or []):
        yield f"containerSet.containers[{i}]", container


def restricted_problems(resource: Mapping[str, Any]) -> list[str]:
    """Where a pod of this Argo resource would be refused in a namespace enforcing Pod Security "restricted"."""
    if resource.get("kind") not in _POD_KINDS:
        return []
    out = []
    for where, pod, template in _pods(resource):
        for i, volume in enumerate(template.get("volumes") or []):
            kind = next((k for k in volume if k != "name"), "")
            if kind not in _RESTRICTED_VOLUMES:
                out.append(f"{where}.volumes[{i}]: {kind} volumes are not allowed")
        for name, container in _containers(template):
            ctx = container.get("securityContext") or {}
            at = f"{where}.{name}"
            if ctx.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
                out.append(f"{at}: runAsNonRoot must be true (pod or container securityContext)")
            if 0 in (ctx.get("runAsUser"), pod.get("runAsUser")):
                out.append(f"{at}: runAsUser must not be 0")
            seccomp = (ctx.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                out.append(f"{at}: seccompProfile.type must be RuntimeDefault or Localhost")
            if ctx.get("allowPrivilegeEscalation") is not False:
                out.append(f"{at}: allowPrivilegeEscalation must be false")
            capabilities = ctx.get("capabilities") or {}
            if "ALL" not in (capabilities.get("drop") or []):
                out.append(f"{at}: capabilities.drop must include ALL")
            if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
                out.append(f"{at}: capabilities.add may only hold NET_BIND_SERVICE")
            if ctx.get("privileged"):
                out.append(f"{at}: privileged containers are not allowed")
    return out


def admission_problems(resource: Mapping[str, Any]) -> list[str]:
    """Everything above for one resource."""
    metadata = resource.get("metadata") or {}
    out = label_problems(metadata.get("labels"), "metadata.labels") + size_problems(resource)
    spec = resource.get("spec") or {}
    out += label_problems((spec.get("workflowMetadata") or {}).get("labels"), "spec.workflowMetadata.labels")
    for i, template in enumerate(spec.get("templates") or []):
        out += label_problems((template.get("metadata") or {}).get("labels"), f"templates[{i}].metadata.labels")
    return out + restricted_problems(resource)


__all__ = [
    "ANNOTATION_BUDGET",
    "CONFIGMAP_DATA_LIMIT",
    "SENSOR_ENV_LIMIT",
    "admission_problems",
    "label_problems",
    "restricted_problems",
    "size_problems",
]
