"""Validate rendered resources against the official schemas, Hera's models, admission rules and an Argo Server."""

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from hera.workflows import models as hera_models
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic import ValidationError

from pipelines.admission import admission_problems

_SCHEMAS = Path(__file__).resolve().parent / "schemas"  # shipped as package data
# Core objects are validated as this Kubernetes release defines them (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.32.0"
_CRDS = {"Application": "argocd-application-crd.yaml", "ApplicationSet": "argocd-applicationset-crd.yaml"}


@dataclass(frozen=True)
class Problem:
    """One lint finding: where, and what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@functools.cache
def _json_schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((_SCHEMAS / name).read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator(api_version: str, kind: str) -> Draft7Validator | Draft202012Validator | None:
    if api_version == "argoproj.io/v1alpha1" and kind in {"Workflow", "WorkflowTemplate", "CronWorkflow"}:
        doc = _json_schema("argo-workflows-schema.json")
        return Draft202012Validator(
            {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": doc["definitions"]}
        )
    if api_version == "argoproj.io/v1alpha1" and kind in {"EventSource", "Sensor", "EventBus"}:
        doc = _json_schema("argo-events-schema.json")
        return Draft7Validator({"$ref": f"#/definitions/io.argoproj.events.v1alpha1.{kind}", **doc})
    if api_version == "argoproj.io/v1alpha1" and kind in _CRDS:
        crd = yaml.safe_load((_SCHEMAS / _CRDS[kind]).read_text(encoding="utf-8"))
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
        return Draft7Validator(version["schema"]["openAPIV3Schema"])
    return None


def _check_core(resource: dict[str, Any], where: str) -> list[Problem]:
    """A core Kubernetes object, strictly (unknown fields are errors), against the official schema."""
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        known = f"{resource['apiVersion']} {resource['kind']}"
        return [Problem(where, f"{known} is not a kind of Kubernetes {KUBERNETES_VERSION}")]
    except kubernetes_validate.ValidationError as exc:  # a jsonschema ValidationError, with the same fields
        path = ".".join(str(p) for p in exc.absolute_path) or "(root)"
        return [Problem(where, f"{path}: {exc.message[:300]}")]
    return []


def _check_kustomization(resource: dict[str, Any], where: str) -> list[Problem]:
    entries = resource.get("resources")
    if not isinstance(entries, list) or not all(isinstance(e, str) and not e.startswith("/") for e in entries):
        return [Problem(where, "resources must be a list of relative paths")]
    return []


def _dropped_keys(original: Any, kept: Any, path: str = "") -> list[str]:
    """Keys of ``original`` that a model round trip did not keep (unknown fields, silently dropped)."""
    if isinstance(original, dict) and isinstance(kept, dict):
        out = []
        for key, value in original.items():
            where = f"{path}.{key}" if path else str(key)
            out += [where] if key not in kept else _dropped_keys(value, kept[key], where)
        return out
    if isinstance(original, list) and isinstance(kept, list):
        return [
            k for i, (a, b) in enumerate(zip(original, kept, strict=False)) for k in _dropped_keys(a, b, f"{path}.{i}")
        ]
    return []


def _check_hera(resource: dict[str, Any], where: str) -> list[Problem]:
    model = getattr(hera_models, resource["kind"], None)
    if model is None or resource.get("apiVersion") != "argoproj.io/v1alpha1":
        return []
    try:
        kept = model.model_validate(resource).model_dump(by_alias=True, exclude_none=True, mode="json")
    except ValidationError as exc:
        return [Problem(where, f"Hera model {resource['kind']}: {err['msg']} at {err['loc']}") for err in exc.errors()]
    return [
        Problem(where, f"{key}: not a field of {resource['kind']} (Hera's model drops it)")
        for key in _dropped_keys(resource, kept)
    ]


def lint_resource(resource: dict[str, Any], where: str) -> list[Problem]:
    """Validate one resource against its official schema (and Hera's model for Argo Workflows kinds)."""
    api_version, kind = resource.get("apiVersion", ""), resource.get("kind", "")
    if kind == "Kustomization":
        return _check_kustomization(resource, where)
    if not api_version or not kind or not (resource.get("metadata") or {}).get("name"):
        return [Problem(where, "not a Kubernetes resource: apiVersion, kind and metadata.name are required")]
    problems = [Problem(where, message) for message in admission_problems(resource)]
    if not api_version.startswith("argoproj.io/"):
        return _check_core(resource, where) + problems
    validator = _validator(api_version, kind)
    if validator is None:
        return [Problem(where, f"no schema known for {api_version} {kind}; add one to pipelines/lint.py")]
    for error in sorted(validator.iter_errors(resource), key=lambda e: list(e.absolute_path)):
        error = best_match([error])
        path = ".".join(str(p) for p in error.absolute_path) or "(root)"
        problems.append(Problem(where, f"{path}: {error.message[:300]}"))
    if kind in {"Workflow", "WorkflowTemplate", "CronWorkflow"}:
        problems.extend(_check_hera(resource, where))
    return problems


def load_files(paths: Iterable[Path]) -> list[tuple[str, dict[str, Any]]]:
    """Read every YAML document of the given files as ``(where, resource)`` pairs."""
    out = []
    for path in paths:
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if doc is not None:
                out.append((f"{path}#{index}" if index else str(path), doc))
    return out


def lint_all(resources: Iterable[tuple[str, dict[str, Any]]]) -> list[Problem]:
    """Lint every ``(where, resource)`` pair; returns all problems found."""
    problems: list[Problem] = []
    for where, resource in resources:
        problems.extend(lint_resource(resource, where))
    return problems


__all__ = ["KUBERNETES_VERSION", "Problem", "lint_all", "lint_resource", "load_files"]
