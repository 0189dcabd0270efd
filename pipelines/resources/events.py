"""Argo Events resources that turn GitHub deliveries into release-data-prep and preview-cleanup Workflows."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from typing import Any

from pipelines.config import Config, RepoRegistration
from pipelines.parameters import (
    CLEANUP_PARAMETERS,
    CLEANUP_TEMPLATE,
    FORK_PARAMETERS,
    FORK_TEMPLATE,
    RELEASE_PARAMETERS,
)
from pipelines.resources import PART_OF
from pipelines.resources.secrets import webhook_secret_key

EVENT_HEADER_PATH = "headers.X-Github-Event.0"
DELIVERY_HEADER_PATH = "headers.X-Github-Delivery.0"  # Go's http.Header: canonical name, array of values
DELIVERY_ID_LENGTH = 36  # a GUID: 8-4-4-4-12 lowercase hex digits
RELEASE_PR_ACTIONS = ("opened", "reopened", "synchronize")
TRIGGER_RETRY_STEPS = 3
POSTSYNC_DEADLINE_SECONDS = 600
TRIGGER_LABEL = "gitops-status-matrix/trigger"

PUSH = "push"
PULL_REQUEST = "pull_request"
PR_CLOSED = "pr_closed"
FORK_PR = "fork_pull_request"

_GO_META = set("\\.+*?()|[]{}^$")


def quote_meta(text: str) -> str:
    """Escape every regex metacharacter as Go's ``regexp.QuoteMeta`` does."""
    return "".join("\\" + ch if ch in _GO_META else ch for ch in text)


def event_name(app_id: int | None) -> str:
    """Name of the EventSource event (one per GitHub App) that receives that App's deliveries."""
    return f"app-{app_id}" if app_id is not None else "github"


def webhook_endpoint(config: Config, app_id: int | None) -> str:
    """HTTP path of one App's webhook; the App's webhook URL is the EventSource's public URL plus this."""
    return f"{config.events.webhook_endpoint_prefix.rstrip('/')}/{event_name(app_id)}"


def _slug(text: str) -> str:
    """A name part of ``[a-z0-9_]``; a hash suffix keeps two texts that slug alike apart (``Main``, ``main``)."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"
    if slug != text:
        slug += "_" + hashlib.sha256(text.encode()).hexdigest()[:6]
    return slug


def dependency_name(app_id: int | None, kind: str, branch: str | None = None, s3_secret: str | None = None) -> str:
    """Sensor dependency name: underscores only, so trigger ``conditions`` expressions parse it as one name."""
    name = f"{event_name(app_id).replace('-', '_')}_{kind}"
    name = f"{name}_{_slug(branch)}" if branch is not None else name
    return f"{name}_s3_{_slug(s3_secret)}" if s3_secret else name


def repository_pattern(full_names: list[str]) -> str:
    """One anchored, case-insensitive alternation over repositories (GitHub names ignore case)."""
    names = sorted({n.lower() for n in full_names})
    return f"(?i)^(?:{'|'.join(quote_meta(n) for n in names)})$"


def _labels(kind: str) -> dict[str, str]:
    return {**PART_OF, TRIGGER_LABEL: kind.replace("_", "-")}


def _by_app(config: Config) -> dict[int | None, list[RepoRegistration]]:
    groups: dict[int | None, list[RepoRegistration]] = defaultdict(list)
    for reg in sorted(config.repo_registrations, key=lambda r: r.name):
        groups[config.app_id_for(reg)].append(reg)
    return dict(sorted(groups.items(), key=lambda item: (item[0] is None, item[0])))


def _arguments(order: dict[str, str], values: dict[str, str]) -> list[dict[str, str]]:
    unknown = sorted(set(values) - set(order))
    if unknown:
        raise KeyError(f"parameters {unknown} are not in the parameter order {list(order)}")
    return [{"name": name, "value": values.get(name, default)} for name, default in order.items()]


def _dest(order: dict[str, str], name: str) -> str:
    return f"spec.arguments.parameters.{list(order).index(name)}.value"


def _literals(config: Config, reg: RepoRegistration) -> dict[str, str]:
    app_id = config.app_id_for(reg)
    return {
        "repo": reg.full_name,
        "installation-id": "" if reg.installation_id is None else str(reg.installation_id),
        "app-id": "" if app_id is None else str(app_id),
    }


def _workflow(config: Config, kind: str, template: str, arguments: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            # The delivery id is appended by a trigger parameter: a redelivery gets the same name (see _trigger).
            "name": f"{template[: 63 - DELIVERY_ID_LENGTH - 1]}-",
            "namespace": config.argo.namespace,
            "labels": _labels(kind),
        },
        "spec": {"workflowTemplateRef": {"name": template}, "arguments": {"parameters": arguments}},
    }


def _string(path: str, *patterns: str) -> dict[str, Any]:
    return {"path": path, "type": "string", "value": list(patterns)}


def _head_is_base(same: bool) -> dict[str, Any]:
    """An expr filter on whether a pull request's head is in the base repository (``same``) or a fork.

    A fork's head must not run with the project's credentials: its tarball, CSVs and pandera YAML are
    untrusted. Data filters compare a path with constants only, so comparing two paths is an expr filter
    (govaluate, argo-events pkg/sensors/dependencies/filter.go filterExpr). A deleted fork has
    ``head.repo: null``: the path does not exist, the filter errors, nothing fires either way.
    """
    return {
        "expr": "head == base" if same else "head != base",
        "fields": [
            {"name": "head", "path": "body.pull_request.head.repo.full_name"},
            {"name": "base", "path": "body.repository.full_name"},
        ],
    }


def _dependency(
    config: Config,
    app_id: int | None,
    kind: str,
    regs: list[RepoRegistration],
    branch: str | None = None,
    s3_secret: str | None = None,
) -> dict[str, Any]:
    repo = _string("body.repository.full_name", repository_pattern([r.full_name for r in regs]))
    filters: dict[str, Any]
    if kind == PUSH:
        data = [
            _string(EVENT_HEADER_PATH, "^push$"),
            repo,
            _string("body.ref", f"^{quote_meta('refs/heads/' + str(branch))}$"),
            {"path": "body.deleted", "type": "bool", "value": ["false"]},
        ]
        filters = {"data": data}
    else:
        actions = "closed" if kind == PR_CLOSED else "|".join(RELEASE_PR_ACTIONS)
        data = [_string(EVENT_HEADER_PATH, "^pull_request$"), repo, _string("body.action", f"^({actions})$")]
        # Closing only retires a preview (no code of the pull request runs), so forks may close theirs.
        filters = {"data": data} if kind == PR_CLOSED else {"data": data, "exprs": [_head_is_base(kind != FORK_PR)]}
    return {
        "name": dependency_name(app_id, kind, branch, s3_secret),
        "eventSourceName": config.events.event_source_name,
        "eventName": event_name(app_id),
        "filters": filters,
    }


def _param(dep: str, dest: str, *, key: str | None = None, value: str | None = None, op: str = "") -> dict[str, Any]:
    src: dict[str, str] = {"dependencyName": dep}
    if key is not None:
        src["dataKey"] = key
    if value is not None:
        src["value"] = value
    param: dict[str, Any] = {"src": src, "dest": dest}
    if op:
        param["operation"] = op
    return param


def _app_literals(app_id: int | None, s3_secret: str | None) -> dict[str, str]:
    # Installation and data path are left empty: the pods read them from the registration of the repository
    # (steps.runtime.registrations), so the Sensor does not grow with the number of registrations. The S3
    # Secret cannot wait for a pod (Kubernetes resolves it when creating the pod), so registrations with
    # their own get their own dependency and trigger: the Sensor grows per distinct Secret, not per repository.
    return {"app-id": "" if app_id is None else str(app_id), "data-path": "", "s3-secret": s3_secret or ""}


def _release_trigger(config: Config, app_id: int | None, kind: str, dep: str, s3_secret: str | None) -> dict[str, Any]:
    order = RELEASE_PARAMETERS
    values = {**_app_literals(app_id, s3_secret), "event": "push" if kind == PUSH else "pull_request"}
    params = [
        _param(dep, _dest(order, "repo"), key="body.repository.full_name"),
        _param(dep, _dest(order, "event"), key=EVENT_HEADER_PATH),
    ]
    if kind == PUSH:
        params += [
            _param(dep, _dest(order, "sha"), key="body.after"),
            _param(dep, _dest(order, "ref"), key="body.ref"),
        ]
    else:
        # refs/pull/<number>/head without a Go template: a template would print a large number as a float.
        values["ref"] = "refs/pull/"
        params += [
            _param(dep, _dest(order, "sha"), key="body.pull_request.head.sha"),
            _param(dep, _dest(order, "pr-number"), key="body.pull_request.number"),
            _param(dep, _dest(order, "ref"), key="body.pull_request.number", op="append"),
            _param(dep, _dest(order, "ref"), value="/head", op="append"),
        ]
    template = config.workflow.template_name
    return _trigger(dep, kind, _workflow(config, kind, template, _arguments(order, values)), params)


def _cleanup_trigger(config: Config, app_id: int | None, dep: str) -> dict[str, Any]:
    order = CLEANUP_PARAMETERS
    params = [
        _param(dep, _dest(order, "repo"), key="body.repository.full_name"),
        _param(dep, _dest(order, "pr-number"), key="body.pull_request.number"),
    ]
    values = {"app-id": "" if app_id is None else str(app_id)}
    workflow = _workflow(config, PR_CLOSED, CLEANUP_TEMPLATE, _arguments(order, values))
    return _trigger(dep, PR_CLOSED, workflow, params)


def _fork_trigger(config: Config, app_id: int | None, dep: str) -> dict[str, Any]:
    order = FORK_PARAMETERS
    params = [
        _param(dep, _dest(order, "repo"), key="body.repository.full_name"),
        _param(dep, _dest(order, "sha"), key="body.pull_request.head.sha"),
        _param(dep, _dest(order, "pr-number"), key="body.pull_request.number"),
    ]
    values = {"app-id": "" if app_id is None else str(app_id)}
    workflow = _workflow(config, FORK_PR, FORK_TEMPLATE, _arguments(order, values))
    return _trigger(dep, FORK_PR, workflow, params)


def _trigger(dep: str, kind: str, workflow: dict[str, Any], params: list[dict[str, Any]]) -> dict[str, Any]:
    # The Workflow is named after the delivery (X-GitHub-Delivery, kept when GitHub or the EventBus delivers
    # again), so a repeat cannot start a second run. A k8s trigger with operation patch gets the Workflow and
    # creates it only when it is missing, else merge-patches the same content (a no-op): "already exists" is
    # done, not an error (argo-events pkg/sensors/triggers/standard-k8s/standard-k8s.go, case v1alpha1.Patch).
    # The argoWorkflow trigger would run `argo submit`, which fails on an existing name and is retried.
    params = [_param(dep, "metadata.name", key=DELIVERY_HEADER_PATH, op="append"), *params]
    return {
        "template": {
            "name": dep.replace("_", "-"),
            "conditions": dep,
            "k8s": {"operation": "patch", "source": {"resource": workflow}, "parameters": params},
        },
        "retryStrategy": {"steps": TRIGGER_RETRY_STEPS},
    }


def _kinds(reg: RepoRegistration) -> list[str]:
    kinds: list[str] = [PUSH] if PUSH in reg.events else []
    if PULL_REQUEST in reg.events:
        kinds.append(PULL_REQUEST)
        if reg.preview.enabled:
            kinds.append(PR_CLOSED)
    return kinds


def event_source(config: Config) -> dict[str, Any]:
    """The ``github`` EventSource: one webhook endpoint per GitHub App, each with its own webhook secret."""
    ev = config.events
    service_url = f"http://{ev.event_source_name}-eventsource-svc.{ev.namespace}.svc:{ev.webhook_port}"
    github = {}
    for app_id, regs in _by_app(config).items():
        owners: dict[str, list[str]] = defaultdict(list)
        for reg in regs:
            owner, repo = reg.full_name.split("/")
            owners[owner].append(repo)
        github[event_name(app_id)] = {
            "repositories": [{"owner": o, "names": sorted(names)} for o, names in sorted(owners.items())],
            "webhook": {
                "endpoint": webhook_endpoint(config, app_id),
                "port": str(ev.webhook_port),
                "method": "POST",
                "url": service_url,
            },
            "events": sorted({event for reg in regs for event in reg.events}),
            "webhookSecret": {"name": ev.webhook_secret_name, "key": webhook_secret_key(app_id)},
            "contentType": "json",
            "active": True,
        }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "EventSource",
        "metadata": {"name": ev.event_source_name, "namespace": ev.namespace, "labels": dict(PART_OF)},
        "spec": {
            "eventBusName": ev.event_bus_name,
            "service": {"ports": [{"name": "http", "port": ev.webhook_port, "targetPort": ev.webhook_port}]},
            "github": github,
        },
    }


def sensor(config: Config) -> dict[str, Any]:
    """The Sensor: per GitHub App, one dependency and one trigger per event kind (and default branch).

    Its size grows with the repository names in the filters only (about 30 bytes per registration), not with
    a dependency and a trigger per registration: 1,000 registrations were 4.1 MB before, past what
    Kubernetes stores (benchmarks/render_scale.py).
    """
    ev = config.events
    dependencies, triggers = [], []
    for app_id, regs in _by_app(config).items():
        pushes: dict[tuple[str, str], list[RepoRegistration]] = defaultdict(list)
        pulls: dict[str, list[RepoRegistration]] = defaultdict(list)
        for reg in regs:
            secret = reg.s3_credentials_secret or ""
            if PUSH in _kinds(reg):
                pushes[(reg.default_branch, secret)].append(reg)
            if PULL_REQUEST in _kinds(reg):
                pulls[secret].append(reg)
        for (branch, secret), group in sorted(pushes.items()):
            dependencies.append(_dependency(config, app_id, PUSH, group, branch, secret or None))
            triggers.append(_release_trigger(config, app_id, PUSH, dependencies[-1]["name"], secret or None))
        for secret, group in sorted(pulls.items()):
            dependencies.append(_dependency(config, app_id, PULL_REQUEST, group, None, secret or None))
            triggers.append(_release_trigger(config, app_id, PULL_REQUEST, dependencies[-1]["name"], secret or None))
        forked = [reg for reg in regs if reg.forks == "validate" and PULL_REQUEST in reg.events]
        if forked:  # opted in: a fork's pull request is checked, with no S3 and nothing published
            dependencies.append(_dependency(config, app_id, FORK_PR, forked))
            triggers.append(_fork_trigger(config, app_id, dependencies[-1]["name"]))
        closing = [reg for reg in regs if PR_CLOSED in _kinds(reg)]  # cleanup touches no S3
        if closing:
            dependencies.append(_dependency(config, app_id, PR_CLOSED, closing))
            triggers.append(_cleanup_trigger(config, app_id, dependencies[-1]["name"]))
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Sensor",
        "metadata": {"name": ev.sensor_name, "namespace": ev.namespace, "labels": dict(PART_OF)},
        "spec": {
            "eventBusName": ev.event_bus_name,
            "template": {"serviceAccountName": ev.sensor_service_account},
            "dependencies": dependencies,
            "triggers": triggers,
        },
    }


def resources(config: Config) -> list[dict[str, Any]]:
    """The EventSource and the Sensor, or nothing when no repository is registered."""
    if not config.repo_registrations:
        return []
    return [event_source(config), sensor(config)]


def postsync_hook_resources(config: Config) -> list[dict[str, Any]]:
    """Optional: one release-data-prep Workflow per Application, run by Argo CD as a ``PostSync`` hook.

    Each belongs in the Application's own source path. ``sha`` is ``$ARGOCD_APP_REVISION``, which only a
    source type that substitutes Argo CD's build environment (a Config Management Plugin, or a Helm
    parameter) replaces. A fixed name with ``BeforeHookCreation`` replaces the previous run on every sync.
    Argo CD waits for a hook Workflow to finish, so the sync stays Running, and fails if it fails;
    ``activeDeadlineSeconds`` bounds that wait (docs/ops.md).
    """
    hooks = []
    template = config.workflow.template_name
    for reg in sorted(config.repo_registrations, key=lambda r: r.name):
        for env in reg.environments:
            if not env.argocd_app:
                continue
            values = {
                **_literals(config, reg),
                "sha": "$ARGOCD_APP_REVISION",
                "event": "push",
                "ref": f"refs/heads/{reg.argocd.target_revision or env.branch}",
                "data-path": reg.data_path,
                "s3-secret": reg.s3_credentials_secret or "",
                # Inside a PostSync hook the app cannot turn Healthy before the hook ends: never gate on it.
                "deploy": "false",
            }
            workflow = _workflow(config, "postsync", template, _arguments(RELEASE_PARAMETERS, values))
            workflow["metadata"]["name"] = f"{env.argocd_app}-postsync"[:63].rstrip("-.")
            workflow["metadata"]["annotations"] = {
                "argocd.argoproj.io/hook": "PostSync",
                "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
            }
            workflow["spec"]["activeDeadlineSeconds"] = POSTSYNC_DEADLINE_SECONDS
            hooks.append(workflow)
    return hooks


__all__ = [
    "DELIVERY_HEADER_PATH",
    "EVENT_HEADER_PATH",
    "PR_CLOSED",
    "PULL_REQUEST",
    "PUSH",
    "dependency_name",
    "event_name",
    "event_source",
    "postsync_hook_resources",
    "quote_meta",
    "repository_pattern",
    "resources",
    "sensor",
    "webhook_endpoint",
]
