"""Argo Workflows server emulator over real HTTP: workflow templates, submit/create/get/list workflows, lint.

Models the Argo Server REST API (https://argo-workflows.readthedocs.io/en/latest/rest-api/) for the operations of
tests/support/specs/argo-workflows-swagger-subset.json. Submitting a WorkflowTemplate
(https://argo-workflows.readthedocs.io/en/latest/workflow-templates/) creates a Workflow the way
``common.NewWorkflowFromWorkflowTemplate`` + ``util.ApplySubmitOpts`` do upstream; each workflow then follows a
scripted phase timeline (Pending, queued on its mutex -> Running with nodes appearing -> Succeeded, Failed or
Error), computed from the time elapsed since creation, so no thread runs per workflow.

Lint, create and update check manifests against pipelines/schemas/argo-workflows-schema.json (with the
IntOrString override described in tests/support/specs/README.md) and answer InvalidArgument (code 3) with the first
schema error. Messages the emulator invents where upstream wording was not checked say so where they are raised.
Declared query parameters it does not act on (``getOptions.resourceVersion``, ``fields``, ``uid``, and every
``listOptions.*`` but ``labelSelector``, ``limit`` and ``continue``) are accepted and ignored. Lists page like the
real server: live Workflows with an opaque ``continue`` token, the archive with an offset (upstream
``server/workflowarchive/archived_workflow_server.go``), and without an archive that list is empty, not an error
(``persist/sqldb/null_workflow_archive.go``).

Beyond the timeline, tests can put a Workflow in any state (``put_workflow``), ``terminate`` one as ``argo
terminate`` does (``spec.shutdown: Terminate``; the exit handler never runs, upstream ``operator.go``:
``ShouldExecute(true)`` is false for Terminate), ``delete_workflow`` one, or ``archive_workflow`` it.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from tests.support.emulators.grpc_gateway import (
    SPECS_DIR,
    GrpcError,
    GrpcGatewayEmulator,
    RequestContext,
    SwaggerSubset,
    utc_now,
)

WORKFLOWS_SCHEMA = Path(__file__).resolve().parents[3] / "pipelines" / "schemas" / "argo-workflows-schema.json"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
#: Kubernetes and Argo accept an int or a string; both upstream documents type it as string only.
INT_OR_STRING_SCHEMA = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
API_VERSION = "argoproj.io/v1alpha1"
WORKFLOW_TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error")
TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Error"})
_TEMPLATE_KINDS = frozenset({"WorkflowTemplate", "workflowtemplate", "workflowtemplates", "wftmpl"})
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName suffix alphabet
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_VERBS = {"Create": "create", "Submit": "create", "Lint": "create", "Get": "get", "List": "list", "Update": "update"}
#: lint operation -> (kind checked, body field holding the manifest, Kubernetes resource)
_LINTS = {
    "WorkflowService_LintWorkflow": ("Workflow", "workflow", "workflows"),
    "WorkflowTemplateService_LintWorkflowTemplate": ("WorkflowTemplate", "template", "workflowtemplates"),
    "CronWorkflowService_LintCronWorkflow": ("CronWorkflow", "cronWorkflow", "cronworkflows"),
    "ClusterWorkflowTemplateService_LintClusterWorkflowTemplate": (
        "ClusterWorkflowTemplate",
        "template",
        "clusterworkflowtemplates",
    ),
}


def _first_schema_error(validator: Draft202012Validator, manifest: Any) -> str | None:
    error = best_match(validator.iter_errors(manifest))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
    return f"{where or '(root)'}: {message}"


class ManifestSchema:
    """The official Argo Workflows JSON schema, pinned to one kind, with the IntOrString override."""

    def __init__(self, path: Path = WORKFLOWS_SCHEMA) -> None:
        doc = json.loads(path.read_text(encoding="utf-8"))
        definitions = {**doc["definitions"], INT_OR_STRING: INT_OR_STRING_SCHEMA}
        self._validators = {
            kind: Draft202012Validator(
                {"$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}", "definitions": definitions}
            )
            for kind in ("Workflow", "WorkflowTemplate", "CronWorkflow", "ClusterWorkflowTemplate")
        }
        self._lock = threading.Lock()

    def first_error(self, kind: str, manifest: Any) -> str | None:
        """Return the most relevant schema error of a manifest of ``kind`` (e.g. "WorkflowTemplate"), or None."""
        with self._lock:
            return _first_schema_error(self._validators[kind], manifest)


def label_problem(kind: str, name: str, labels: Mapping[str, str]) -> str | None:
    """Return the Kubernetes validation message for the first invalid label key or value, or None.

    The text follows apimachinery's ``metadata.labels: Invalid value`` errors, shortened.
    """
    for key, value in labels.items():
        prefix, _, short = key.rpartition("/")
        if not short or len(short) > 63 or not _LABEL_NAME.match(short) or (prefix and not _LABEL_PREFIX.match(prefix)):
            return (
                f'{kind}.argoproj.io "{name}" is invalid: metadata.labels: Invalid value: "{key}": name part '
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character (at most 63 characters)"
            )
        if len(value) > 63 or not _LABEL_NAME.match(value):
            return (
                f'{kind}.argoproj.io "{name}" is invalid: metadata.labels: Invalid value: "{value}": a valid '
                "label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (at most 63 characters)"
            )
    return None


def label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """A Kubernetes equality-based label selector (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, comma = and)."""
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "!=" in term:
            key, _, value = term.partition("!=")
            tests.append(lambda labels, k=key.strip(), v=value.strip(): labels.get(k) != v)
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            tests.append(lambda labels, k=key.strip(), v=value.strip(): labels.get(k) == v)
        elif term.startswith("!"):
            tests.append(lambda labels, k=term[1:].strip(): k not in labels)
        else:
            tests.append(lambda labels, k=term: k in labels)
    return lambda labels: all(test(labels) for test in tests)


def _decode_continue(token: str) -> int:
    """The offset inside an opaque continue token this emulator issued; any other token is refused."""
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise GrpcError(10, "The provided continue parameter is too old to display a consistent list result.") from None


def _pairs(text: str, what: str) -> dict[str, str]:
    """Parse ``k=v,k2=v2`` as ``argo submit --labels`` does."""
    pairs = {}
    for term in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = term.partition("=")
        if not sep or not key:
            raise GrpcError(3, f"expected {what} of the form: NAME1=VALUE2,NAME2=VALUE2. Received: {text}")
        pairs[key] = value
    return pairs


def apply_submit_options(workflow: dict[str, Any], options: Mapping[str, Any]) -> None:
    """Apply ``SubmitOpts`` to a workflow manifest in place, like upstream ``util.ApplySubmitOpts``."""
    metadata, spec = workflow["metadata"], workflow["spec"]
    for key, target in (("generateName", "generateName"), ("name", "name")):
        if options.get(key):
            metadata[target] = options[key]
    for key, target in (
        ("entryPoint", "entrypoint"),
        ("serviceAccount", "serviceAccountName"),
        ("podPriorityClassName", "podPriorityClassName"),
        ("priority", "priority"),
    ):
        if options.get(key) not in (None, ""):
            spec[target] = options[key]
    if options.get("labels"):
        metadata.setdefault("labels", {}).update(_pairs(options["labels"], "labels"))
    if options.get("annotations"):
        metadata.setdefault("annotations", {}).update(_pairs(options["annotations"], "annotations"))
    if options.get("ownerReference"):
        metadata["ownerReferences"] = [options["ownerReference"]]
    parameters = spec.setdefault("arguments", {}).setdefault("parameters", [])
    for term in options.get("parameters") or []:
        name, sep, value = term.partition("=")
        if not sep:
            raise GrpcError(3, f"expected parameter of the form: NAME=VALUE. Received: {term}")
        existing = next((p for p in parameters if p["name"] == name), None)
        if existing is None:
            parameters.append({"name": name, "value": value})
        else:
            existing["value"] = value
    if not parameters:
        del spec["arguments"]["parameters"]
    if not spec["arguments"]:
        del spec["arguments"]


def simple_template(
    name: str,
    steps: Sequence[str] = ("prepare", "publish"),
    *,
    parameters: Mapping[str, str | None] | None = None,
    mutex: str | None = None,
    dag: bool = False,
) -> dict[str, Any]:
    """Build a small, schema-valid WorkflowTemplate manifest: an entrypoint running ``steps`` in sequence.

    Args:
        name: ``metadata.name``.
        steps: one container template per name, run one after the other (as steps, or as a DAG chain).
        parameters: ``spec.arguments.parameters``; a None value declares a parameter the submitter must give.
        mutex: name of a workflow-level mutex (``spec.synchronization.mutexes``).
        dag: use a ``dag`` entrypoint instead of ``steps``.
    """
    leaves = [
        {"name": s, "container": {"image": "python:3.12-slim", "command": ["python", "-c", "print()"]}} for s in steps
    ]
    if dag:
        tasks = [
            {"name": s, "template": s, **({"dependencies": [steps[i - 1]]} if i else {})} for i, s in enumerate(steps)
        ]
        entry: dict[str, Any] = {"name": "main", "dag": {"tasks": tasks}}
    else:
        entry = {"name": "main", "steps": [[{"name": s, "template": s}] for s in steps]}
    spec: dict[str, Any] = {"entrypoint": "main", "templates": [entry, *leaves]}
    if parameters:
        spec["arguments"] = {
            "parameters": [{"name": k, **({} if v is None else {"value": v})} for k, v in parameters.items()]
        }
    if mutex:
        spec["synchronization"] = {"mutexes": [{"name": mutex}]}
    return {"apiVersion": API_VERSION, "kind": "WorkflowTemplate", "metadata": {"name": name}, "spec": spec}


def _fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


@dataclass
class _Node:
    name: str
    display: str
    type: str
    template: str
    children: list[_Node] = field(default_factory=list)

    def pods(self) -> list[_Node]:
        return [self] if self.type == "Pod" else [p for c in self.children for p in c.pods()]


def _plan_nodes(
    templates: Mapping[str, dict[str, Any]], template: str, name: str, display: str, depth: int = 0
) -> _Node:
    """Build the node tree Argo would create for ``template`` (steps, DAG or a pod)."""
    body = templates.get(template, {})
    if depth < 5 and body.get("steps"):
        node = _Node(name, display, "Steps", template)
        for i, group in enumerate(body["steps"]):
            group_node = _Node(f"{name}[{i}]", f"[{i}]", "StepGroup", template)
            group_node.children = [
                _plan_nodes(
                    templates,
                    s.get("template") or (s.get("templateRef") or {}).get("template", ""),
                    f"{name}[{i}].{s['name']}",
                    s["name"],
                    depth + 1,
                )
                for s in group
            ]
            node.children.append(group_node)
        return node
    if depth < 5 and body.get("dag"):
        node = _Node(name, display, "DAG", template)
        node.children = [
            _plan_nodes(
                templates,
                t.get("template") or (t.get("templateRef") or {}).get("template", ""),
                f"{name}.{t['name']}",
                t["name"],
                depth + 1,
            )
            for t in body["dag"]["tasks"]
        ]
        return node
    return _Node(name, display, "Pod", template)


@dataclass(frozen=True)
class _Step:
    offset: float
    phase: str
    message: str | None


@dataclass
class _Workflow:
    manifest: dict[str, Any]
    root: _Node
    steps: list[_Step]
    created: float
    created_wall: float
    resource_version: int
    mutex: str | None
    failure_message: str
    scope: str
    fixed: dict[str, Any] | None = None  # a document put or frozen by a test (terminated): no timeline


def _timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timeline(timeline: Iterable[Sequence[Any]]) -> list[tuple[float, str, str | None]]:
    steps = []
    for step in timeline:
        if len(step) not in (2, 3) or step[1] not in PHASES:
            raise ValueError(f"timeline step {step!r} must be (delay_s, phase[, message]) with phase in {PHASES}")
        steps.append((float(step[0]), step[1], step[2] if len(step) == 3 else None))
    return steps


class ArgoServerEmulator(GrpcGatewayEmulator):
    """The Argo Workflows server: templates, submit/create/get workflows with scripted progress, lint.

    Requests are checked against the swagger subset with the same IntOrString override as lint, since the real
    server accepts ``retryStrategy.limit: 10``. Errors are ``{"code", "message"}`` (no ``error`` field), as the
    Argo Server writes them. A token added with ``allowed=False``, or a namespace outside ``namespaces``, gets 403
    code 7 with a Kubernetes RBAC message.

    Args:
        namespace: the namespace the server manages (more can be added to ``namespaces``).
    """

    spec = SwaggerSubset(SPECS_DIR / "argo-workflows-swagger-subset.json", {INT_OR_STRING: INT_OR_STRING_SCHEMA})
    error_field = False
    handler_validated_bodies = frozenset(_LINTS)
    missing_token_message = "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"
    invalid_token_message = missing_token_message
    service_account = "system:serviceaccount:argo:argo-server"
    _schema = ManifestSchema()

    def __init__(self, namespace: str = "argo") -> None:
        super().__init__()
        self.namespace = namespace
        self.namespaces = {namespace}
        self.pending_seconds = 0.2
        self.node_seconds = 0.1
        self.failure_message = "Error (exit code 1)"
        self._next_outcome: str | None = None
        self._workflow_timeline: list[tuple[float, str, str | None]] | None = None
        self._templates: dict[tuple[str, str], dict[str, Any]] = {}
        self._workflows: dict[tuple[str, str], _Workflow] = {}
        self._resource_version = 5000
        self.archive_enabled = False
        self._archive: list[dict[str, Any]] = []
        self.handlers.update(
            {
                "WorkflowService_SubmitWorkflow": self._submit,
                "WorkflowService_CreateWorkflow": self._create_workflow,
                "WorkflowService_GetWorkflow": self._get_workflow,
                "WorkflowService_ListWorkflows": self._list_workflows,
                "ArchivedWorkflowService_ListArchivedWorkflows": self._list_archived,
                "WorkflowTemplateService_ListWorkflowTemplates": self._list_templates,
                "WorkflowTemplateService_CreateWorkflowTemplate": self._create_template,
                "WorkflowTemplateService_GetWorkflowTemplate": self._get_template,
                "WorkflowTemplateService_UpdateWorkflowTemplate": self._update_template,
            }
        )
        self.handlers.update({operation: self._lint for operation in _LINTS})

    # ------------------------------------------------------------------ scripting API

    @property
    def next_outcome(self) -> str | None:
        """Final phase of the next created workflow only ("Succeeded", "Failed" or "Error"); then back to None.

        With Failed or Error, the pod running last fails with ``failure_message``.
        """
        return self._next_outcome

    @next_outcome.setter
    def next_outcome(self, outcome: str | None) -> None:
        if outcome is not None and outcome not in TERMINAL_PHASES:
            raise ValueError(f"next_outcome must be one of {sorted(TERMINAL_PHASES)} or None, not {outcome!r}")
        self._next_outcome = outcome

    @property
    def workflow_timeline(self) -> list[tuple[float, str, str | None]] | None:
        """Phase timeline for every new workflow: ``[(delay_s, phase[, message]), ...]``, or None for the default.

        Delays count from the previous step. Each Running step after the first finishes the running pod and
        starts the next; a Failed/Error step fails the running pod with the step's message (or
        ``failure_message``). A timeline that ends in Pending or Running leaves the workflow there (e.g. stuck
        on a mutex). The default is Pending for ``pending_seconds``, then one Running step per pod
        ``node_seconds`` apart, then ``next_outcome`` (Succeeded).
        """
        return self._workflow_timeline

    @workflow_timeline.setter
    def workflow_timeline(self, timeline: Iterable[Sequence[Any]] | None) -> None:
        self._workflow_timeline = None if timeline is None else _parse_timeline(timeline)

    def add_template(self, manifest: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Store a WorkflowTemplate as if created through the API (it must pass the schema) and return it."""
        namespace = namespace or self.namespace
        problem = self._schema.first_error("WorkflowTemplate", manifest)
        if problem:
            raise ValueError(f"the template does not match the WorkflowTemplate schema: {problem}")
        with self._lock:
            return self._store_template(namespace, copy.deepcopy(manifest))

    def template(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Return a stored WorkflowTemplate."""
        with self._lock:
            return copy.deepcopy(self._templates[(namespace or self.namespace, name)])

    def workflow(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Return a workflow as ``GET /api/v1/workflows/{namespace}/{name}`` would now."""
        with self._lock:
            wf = self._workflows.get((namespace or self.namespace, name))
            if wf is None:
                raise KeyError(f"no workflow {name!r} in the emulator; created so far: {sorted(self._workflows)}")
            return self._workflow_json(wf)

    def workflows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Return every workflow created so far (in creation order), in its current state."""
        with self._lock:
            return [
                self._workflow_json(wf)
                for (ns, _), wf in self._workflows.items()
                if namespace is None or ns == namespace
            ]

    def put_workflow(self, manifest: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Store a Workflow exactly as given, status included (it must pass the schema), and return it."""
        namespace = namespace or self.namespace
        document = copy.deepcopy(dict(manifest))
        problem = self._schema.first_error("Workflow", document)
        if problem:
            raise ValueError(f"the workflow does not match the Workflow schema: {problem}")
        with self._lock:
            self._resource_version += 10
            metadata = document.setdefault("metadata", {})
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", utc_now())
            metadata.update({"namespace": namespace, "resourceVersion": str(self._resource_version)})
            self._workflows[(namespace, metadata["name"])] = _Workflow(
                manifest=document,
                root=_Node(metadata["name"], metadata["name"], "Steps", ""),
                steps=[],
                created=time.monotonic(),
                created_wall=time.time(),
                resource_version=self._resource_version,
                mutex=None,
                failure_message=self.failure_message,
                scope="",
                fixed=document,
            )
            return copy.deepcopy(document)

    def terminate(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """``argo terminate``: the run fails at once, its running nodes fail, its exit handler never runs."""
        key = (namespace or self.namespace, name)
        with self._lock:
            wf = self._workflows[key]
            document = self._workflow_json(wf)
            message = "Stopped with strategy 'Terminate'"
            now = utc_now()
            document["spec"]["shutdown"] = "Terminate"
            status = document.setdefault("status", {})
            for node in (status.get("nodes") or {}).values():
                if node["phase"] in ("Pending", "Running"):
                    node.update({"phase": "Failed", "message": message, "finishedAt": now})
            status.update({"phase": "Failed", "message": message, "finishedAt": now})
            status.setdefault("startedAt", now)
            labels = document["metadata"].setdefault("labels", {})
            labels.update({"workflows.argoproj.io/phase": "Failed", "workflows.argoproj.io/completed": "true"})
            wf.fixed = document
            return copy.deepcopy(document)

    def delete_workflow(self, name: str, namespace: str | None = None) -> None:
        """Delete a Workflow (``kubectl delete``, ``argo delete`` or its TTL): it is gone from the live list."""
        with self._lock:
            del self._workflows[(namespace or self.namespace, name)]

    def archive_workflow(self, name: str, namespace: str | None = None) -> None:
        """Archive a finished Workflow and delete the live one, as the controller does with an archive and a TTL."""
        if not self.archive_enabled:
            raise ValueError("set archive_enabled first: a server without an archive keeps nothing")
        with self._lock:
            document = self._workflow_json(self._workflows.pop((namespace or self.namespace, name)))
            self._archive.append(document)

    # ------------------------------------------------------------------ handlers

    def _authorize(self, ctx: RequestContext, resource: str) -> str:
        """Answer 403 like Kubernetes RBAC for a token without permission or a namespace the server lacks."""
        namespace = ctx.path_args.get("namespace", "")
        if not ctx.allowed or (namespace and namespace not in self.namespaces):
            action = ctx.operation_id.partition("_")[2]
            verb = next(v for k, v in _VERBS.items() if action.startswith(k))
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            raise GrpcError(
                7,
                f'{resource}.argoproj.io is forbidden: User "{self.service_account}" cannot {verb} '
                f'resource "{resource}" in API group "argoproj.io"{where}',
            )
        return namespace

    def _submit(self, ctx: RequestContext) -> dict[str, Any]:
        namespace = self._authorize(ctx, "workflows")
        kind, name = ctx.body.get("resourceKind", ""), ctx.body.get("resourceName", "")
        if kind not in _TEMPLATE_KINDS:
            raise GrpcError(3, f"Resource kind '{kind}' is not supported for submitting")
        workflow: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "Workflow",
            "metadata": {"generateName": f"{name}-", "labels": {WORKFLOW_TEMPLATE_LABEL: name}},
            "spec": {"workflowTemplateRef": {"name": name}},
        }
        options = ctx.body.get("submitOptions") or {}
        apply_submit_options(workflow, options)
        return self._create(namespace, workflow, dry_run=bool(options.get("dryRun") or options.get("serverDryRun")))

    def _create_workflow(self, ctx: RequestContext) -> dict[str, Any]:
        namespace = self._authorize(ctx, "workflows")
        workflow = ctx.body.get("workflow")
        if not isinstance(workflow, dict):
            raise GrpcError(3, "workflow is required")
        return self._create(namespace, copy.deepcopy(workflow), dry_run=bool(ctx.body.get("serverDryRun")))

    def _create(self, namespace: str, workflow: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        workflow.setdefault("apiVersion", API_VERSION)
        workflow.setdefault("kind", "Workflow")
        metadata, spec = workflow.setdefault("metadata", {}), workflow.setdefault("spec", {})
        problem = self._schema.first_error("Workflow", workflow)
        if problem:
            raise GrpcError(3, problem)
        with self._lock:
            template = self._resolve_template(namespace, spec)
            templates = {t["name"]: t for t in (template or {}).get("spec", {}).get("templates", [])}
            templates.update({t["name"]: t for t in spec.get("templates", [])})
            entrypoint = spec.get("entrypoint") or (template or {}).get("spec", {}).get("entrypoint", "")
            self._check_arguments(spec, template)
            if entrypoint not in templates:
                # Emulator wording: upstream's validator rejects an undefined entrypoint with a similar message.
                raise GrpcError(3, f"spec.entrypoint template '{entrypoint}' undefined")
            if not metadata.get("name") and not metadata.get("generateName"):
                raise GrpcError(
                    3,
                    'Workflow.argoproj.io "" is invalid: metadata.name: Required value: name or '
                    "generateName is required",
                )
            name = metadata.get("name") or metadata["generateName"] + "".join(
                secrets.choice(_NAME_ALPHABET) for _ in range(5)
            )
            problem = label_problem("Workflow", name, metadata.get("labels", {}))
            if problem:
                raise GrpcError(3, problem)
            if (namespace, name) in self._workflows:
                raise GrpcError(6, f'workflows.argoproj.io "{name}" already exists')
            self._resource_version += 10
            metadata.update(
                {
                    "name": name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": str(self._resource_version),
                    "generation": 1,
                    "creationTimestamp": utc_now(),
                }
            )
            if not dry_run:
                root = _plan_nodes(templates, entrypoint, name, name)
                mutexes = (
                    spec.get("synchronization") or (template or {}).get("spec", {}).get("synchronization") or {}
                ).get("mutexes") or [{}]
                mutex = mutexes[0].get("name")
                self._workflows[(namespace, name)] = _Workflow(
                    manifest=workflow,
                    root=root,
                    steps=self._timeline(len(root.pods())),
                    created=time.monotonic(),
                    created_wall=time.time(),
                    resource_version=self._resource_version,
                    mutex=f"{mutexes[0].get('namespace') or namespace}/Mutex/{mutex}" if mutex else None,
                    failure_message=self.failure_message,
                    scope=f"namespaced/{template['metadata']['name']}" if template else "local/" + name,
                )
            created = copy.deepcopy(workflow)
        created["status"] = {}
        self.check_emitted("io.argoproj.workflow.v1alpha1.Workflow", created, f"workflow {name}")
        return created

    def _resolve_template(self, namespace: str, spec: Mapping[str, Any]) -> dict[str, Any] | None:
        reference = spec.get("workflowTemplateRef")
        if not reference:
            return None
        template = self._templates.get((namespace, reference.get("name", "")))
        if template is None:
            raise GrpcError(5, f'workflowtemplates.argoproj.io "{reference.get("name", "")}" not found')
        return template

    @staticmethod
    def _check_arguments(spec: Mapping[str, Any], template: Mapping[str, Any] | None) -> None:
        """Refuse a workflow whose effective parameters leave one without a value (upstream validateArguments)."""
        declared = {p["name"]: p for p in (template or {}).get("spec", {}).get("arguments", {}).get("parameters", [])}
        declared.update({p["name"]: p for p in spec.get("arguments", {}).get("parameters", [])})
        for name, parameter in declared.items():
            if "value" not in parameter and "valueFrom" not in parameter:
                raise GrpcError(3, f"spec.arguments.{name}.value is required")

    def _timeline(self, pods: int) -> list[_Step]:
        outcome, self._next_outcome = self._next_outcome or "Succeeded", None
        if self._workflow_timeline is not None:
            raw = list(self._workflow_timeline)
            if raw and raw[-1][1] in TERMINAL_PHASES and outcome != "Succeeded":
                raw[-1] = (raw[-1][0], outcome, raw[-1][2])
        else:
            raw = [(0.0, "Pending", None), (self.pending_seconds, "Running", None)]
            raw += [(self.node_seconds, "Running", None)] * (pods - 1) + [(self.node_seconds, outcome, None)]
        steps, offset = [], 0.0
        for delay, phase, message in raw:
            offset += delay
            steps.append(_Step(offset, phase, message))
        return steps

    def _get_workflow(self, ctx: RequestContext) -> dict[str, Any]:
        namespace = self._authorize(ctx, "workflows")
        name = ctx.path_args["name"]
        with self._lock:
            wf = self._workflows.get((namespace, name))
            if wf is None:
                raise GrpcError(5, f'workflows.argoproj.io "{name}" not found')
            return self._workflow_json(wf)

    def _list_workflows(self, ctx: RequestContext) -> dict[str, Any]:
        namespace = self._authorize(ctx, "workflows")
        selector = label_selector(ctx.query.get("listOptions.labelSelector") or "")
        limit = int(ctx.query.get("listOptions.limit") or 0)
        offset = _decode_continue(ctx.query.get("listOptions.continue") or "")
        with self._lock:
            items = [
                self._workflow_json(wf)
                for (ns, _), wf in self._workflows.items()
                if ns == namespace and selector(wf.manifest["metadata"].get("labels") or {})
            ]
            version = str(self._resource_version)
        page = items[offset : offset + limit] if limit else items[offset:]
        metadata: dict[str, Any] = {"resourceVersion": version}
        if limit and offset + limit < len(items):
            metadata["continue"] = base64.urlsafe_b64encode(
                json.dumps({"v": "meta.k8s.io/v1", "o": offset + limit}).encode()
            ).decode()
        listed = {"metadata": metadata, "items": page}
        self.check_emitted("io.argoproj.workflow.v1alpha1.WorkflowList", listed, "workflow list")
        return listed

    def _list_archived(self, ctx: RequestContext) -> dict[str, Any]:
        namespace = ctx.query.get("namespace") or ""
        if not ctx.allowed or (namespace and namespace not in self.namespaces):
            raise GrpcError(
                7,
                f'Permission denied, you are not allowed to list workflows in namespace "{namespace}". Maybe you '
                f"want to specify a namespace with query parameter `.namespace={namespace}`?",
            )
        selector = label_selector(ctx.query.get("listOptions.labelSelector") or "")
        limit = int(ctx.query.get("listOptions.limit") or 0)
        token = ctx.query.get("listOptions.continue") or "0"
        if not token.isdigit():
            raise GrpcError(3, f"listOptions.continue must be an integer, got {token!r}")
        offset = int(token)
        with self._lock:
            items = [
                copy.deepcopy(d)
                for d in self._archive
                if (not namespace or d["metadata"]["namespace"] == namespace)
                and selector(d["metadata"].get("labels") or {})
            ]
        page = items[offset : offset + limit] if limit else items[offset:]
        metadata: dict[str, Any] = {}
        if limit and offset + limit < len(items):
            metadata["continue"] = str(offset + limit)
        listed = {"metadata": metadata, "items": page}
        self.check_emitted("io.argoproj.workflow.v1alpha1.WorkflowList", listed, "archived workflow list")
        return listed

    def _lint(self, ctx: RequestContext) -> dict[str, Any]:
        """Check the manifest against the official schema; echo it back when it passes."""
        kind, field_name, resource = _LINTS[ctx.operation_id]
        namespace = self._authorize(ctx, resource)
        manifest = ctx.body.get(field_name) or {}
        problem = self._schema.first_error(kind, manifest)
        if problem:
            raise GrpcError(3, problem)
        if namespace:
            manifest.setdefault("metadata", {})["namespace"] = namespace
        return manifest

    def _list_templates(self, ctx: RequestContext) -> dict[str, Any]:
        namespace = self._authorize(ctx, "workflowtemplates")
        pattern = ctx.query.get("namePattern") or ""
        selector = _pairs(ctx.query.get("listOptions.labelSelector") or "", "label selector")
        with self._lock:
            items = [
                t
                for (ns, name), t in self._templates.items()
                if ns == namespace
                and pattern in name
                and all(t["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
            ]
            return {"metadata": {"resourceVersion": str(self._resource_version)}, "items": copy.deepcopy(items)}

    def _create_template(self, ctx: RequestContext) -> dict[str, Any]:
        namespace = self._authorize(ctx, "workflowtemplates")
        template = ctx.body.get("template") or {}
        problem = self._schema.first_error("WorkflowTemplate", template)
        if problem:
            raise GrpcError(3, problem)
        with self._lock:
            name = template.get("metadata", {}).get("name", "")
            if (namespace, name) in self._templates:
                raise GrpcError(6, f'workflowtemplates.argoproj.io "{name}" already exists')
            return self._store_template(namespace, template)

    def _get_template(self, ctx: RequestContext) -> dict[str, Any]:
        namespace = self._authorize(ctx, "workflowtemplates")
        name = ctx.path_args["name"]
        with self._lock:
            template = self._templates.get((namespace, name))
            if template is None:
                raise GrpcError(5, f'workflowtemplates.argoproj.io "{name}" not found')
            return copy.deepcopy(template)

    def _update_template(self, ctx: RequestContext) -> dict[str, Any]:
        namespace = self._authorize(ctx, "workflowtemplates")
        name = ctx.path_args["name"]
        template = ctx.body.get("template") or {}
        problem = self._schema.first_error("WorkflowTemplate", template)
        if problem:
            raise GrpcError(3, problem)
        with self._lock:
            current = self._templates.get((namespace, name))
            if current is None:
                raise GrpcError(5, f'workflowtemplates.argoproj.io "{name}" not found')
            version = template.get("metadata", {}).get("resourceVersion")
            if not version:
                raise GrpcError(
                    3,
                    f'WorkflowTemplate.argoproj.io "{name}" is invalid: metadata.resourceVersion: '
                    "Invalid value: 0x0: must be specified for an update",
                )
            if version != current["metadata"]["resourceVersion"]:
                raise GrpcError(
                    10,
                    f'Operation cannot be fulfilled on workflowtemplates.argoproj.io "{name}": the '
                    "object has been modified; please apply your changes to the latest version and "
                    "try again",
                )
            template["metadata"].update({k: current["metadata"][k] for k in ("uid", "creationTimestamp")})
            template["metadata"]["name"] = name
            template["metadata"]["generation"] = current["metadata"]["generation"] + 1
            return self._store_template(namespace, template)

    def _store_template(self, namespace: str, template: dict[str, Any]) -> dict[str, Any]:
        """Fill server-side metadata and store the template (lock held)."""
        metadata = template.setdefault("metadata", {})
        name = metadata.get("name", "")
        if not name:
            raise GrpcError(
                3,
                'WorkflowTemplate.argoproj.io "" is invalid: metadata.name: Required value: name or '
                "generateName is required",
            )
        problem = label_problem("WorkflowTemplate", name, metadata.get("labels", {}))
        if problem:
            raise GrpcError(3, problem)
        self._resource_version += 1
        template.update({"apiVersion": API_VERSION, "kind": "WorkflowTemplate"})
        metadata.update({"namespace": namespace, "resourceVersion": str(self._resource_version)})
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("generation", 1)
        metadata.setdefault("creationTimestamp", utc_now())
        self._templates[(namespace, name)] = template
        stored = copy.deepcopy(template)
        self.check_emitted("io.argoproj.workflow.v1alpha1.WorkflowTemplate", stored, f"template {name}")
        return stored

    # ------------------------------------------------------------------ workflow progress

    def _workflow_json(self, wf: _Workflow) -> dict[str, Any]:
        """Render the workflow with the status its timeline gives it now (lock held)."""
        if wf.fixed is not None:
            return copy.deepcopy(wf.fixed)
        elapsed = time.monotonic() - wf.created
        reached = [s for s in wf.steps if s.offset <= elapsed]
        document = copy.deepcopy(wf.manifest)
        document["metadata"]["resourceVersion"] = str(wf.resource_version + len(reached))
        if not reached:
            document["status"] = {}
            return document
        last = reached[-1]
        pods = wf.root.pods()
        pod_states = self._pod_states(wf, pods, reached)
        nodes: dict[str, Any] = {}
        self._render_node(wf, wf.root, None, pod_states, nodes)
        status: dict[str, Any] = {
            "phase": last.phase,
            "startedAt": _timestamp(wf.created_wall + reached[0].offset),
            "progress": f"{sum(s[0] == 'Succeeded' for s in pod_states.values())}/{len(pods)}",
        }
        if nodes:
            status["nodes"] = nodes
        failed = next((n for n in pods if pod_states.get(n.name, ("",))[0] in ("Failed", "Error")), None)
        message = last.message
        if last.phase == "Pending" and message is None and wf.mutex:
            message = f"Waiting for {wf.mutex} lock. Lock status: 0/1"
            status["synchronization"] = {
                "mutex": {"waiting": [{"mutex": wf.mutex, "holder": f"{wf.mutex.split('/')[0]}/earlier-run"}]}
            }
        elif last.phase == "Running" and wf.mutex:
            status["synchronization"] = {
                "mutex": {"holding": [{"mutex": wf.mutex, "holder": document["metadata"]["name"]}]}
            }
        if last.phase in ("Failed", "Error") and message is None and failed is not None:
            message = f"child '{self._node_id(wf, failed)}' failed" if failed is not wf.root else wf.failure_message
        if message:
            status["message"] = message
        if last.phase in TERMINAL_PHASES:
            status["finishedAt"] = _timestamp(wf.created_wall + last.offset)
            status["conditions"] = [{"type": "PodRunning", "status": "False"}, {"type": "Completed", "status": "True"}]
        labels = document["metadata"].setdefault("labels", {})
        labels["workflows.argoproj.io/phase"] = last.phase
        labels["workflows.argoproj.io/completed"] = "true" if last.phase in TERMINAL_PHASES else "false"
        document["status"] = status
        self.check_emitted(
            "io.argoproj.workflow.v1alpha1.Workflow", document, f"workflow {document['metadata']['name']}"
        )
        return document

    @staticmethod
    def _pod_states(
        wf: _Workflow, pods: list[_Node], reached: list[_Step]
    ) -> dict[str, tuple[str, float, float | None, str | None]]:
        """Phase, start and finish offsets and message of each started pod."""
        last = reached[-1]
        starts = [s.offset for s in reached if s.phase == "Running"][: len(pods)]
        states: dict[str, tuple[str, float, float | None, str | None]] = {}
        for index, start in enumerate(starts):
            finish = starts[index + 1] if index + 1 < len(starts) else None
            states[pods[index].name] = ("Succeeded" if finish is not None else "Running", start, finish, None)
        if last.phase == "Succeeded":
            for pod in pods:
                _, start, finish, _ = states.get(pod.name, ("", last.offset, None, None))
                states[pod.name] = ("Succeeded", start, last.offset if finish is None else finish, None)
        elif last.phase in ("Failed", "Error"):
            failing = pods[max(len(starts), 1) - 1]
            start = states.get(failing.name, ("", last.offset, None, None))[1]
            states[failing.name] = (last.phase, start, last.offset, last.message or wf.failure_message)
        return states

    def _node_id(self, wf: _Workflow, node: _Node) -> str:
        name = wf.manifest["metadata"]["name"]
        return name if node is wf.root else f"{name}-{_fnv32a(node.name)}"

    def _render_node(
        self,
        wf: _Workflow,
        node: _Node,
        boundary: str | None,
        pods: Mapping[str, tuple[str, float, float | None, str | None]],
        out: dict[str, Any],
    ) -> tuple[str, float, float | None] | None:
        """Add ``node`` and its started descendants to ``out``; return (phase, start, finish) or None if unstarted."""
        node_id = self._node_id(wf, node)
        if node.type == "Pod":
            if node.name not in pods:
                return None
            phase, start, finish, message = pods[node.name]
            children: list[str] = []
        else:
            inner = node_id if node.type in ("Steps", "DAG") else boundary
            results = []
            children = []
            for child in node.children:
                result = self._render_node(wf, child, inner, pods, out)
                if result is not None:
                    results.append(result)
                    children.append(self._node_id(wf, child))
            if not results:
                return None
            start = min(r[1] for r in results)
            message = None
            finish = None
            failing = [r[0] for r in results if r[0] in ("Failed", "Error")]
            if failing:
                phase = failing[0]
                finish = max(r[2] or r[1] for r in results)
            elif len(results) == len(node.children) and all(r[0] == "Succeeded" for r in results):
                phase = "Succeeded"
                finish = max(r[2] or r[1] for r in results)
            else:
                phase = "Running"
        rendered: dict[str, Any] = {
            "id": node_id,
            "name": node.name,
            "displayName": node.display,
            "type": node.type,
            "templateName": node.template,
            "templateScope": wf.scope,
            "phase": phase,
            "startedAt": _timestamp(wf.created_wall + start),
        }
        if boundary is not None:
            rendered["boundaryID"] = boundary
        if children:
            rendered["children"] = children
        if finish is not None:
            rendered["finishedAt"] = _timestamp(wf.created_wall + finish)
        if message:
            rendered["message"] = message
        out[node_id] = rendered
        return phase, start, finish


__all__ = [
    "API_VERSION",
    "INT_OR_STRING_SCHEMA",
    "PHASES",
    "TERMINAL_PHASES",
    "WORKFLOWS_SCHEMA",
    "WORKFLOW_TEMPLATE_LABEL",
    "ArgoServerEmulator",
    "ManifestSchema",
    "apply_submit_options",
    "label_problem",
    "label_selector",
    "simple_template",
]
