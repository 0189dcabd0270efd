"""Argo Events resources that turn GitHub deliveries into release-data-prep and preview-cleanup Workflows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pipelines.config import Config, RepoRegistration
from pipelines.parameters import CLEANUP_PARAMETERS, CLEANUP_TEMPLATE, RELEASE_PARAMETERS
from pipelines.resources.secrets import webhook_secret_key

EVENT_HEADER_PATH = "headers.X-Github-Event.0"
RELEASE_PR_ACTIONS = ("opened", "reopened", "synchronize")
TRIGGER_RETRY_STEPS = 3
POSTSYNC_DEADLINE_SECONDS = 600
REGISTRATION_LABEL = "gitops-status-matrix/registration"
TRIGGER_LABEL = "gitops-status-matrix/trigger"
PART_OF = {"app.kubernetes.io/part-of": "gitops-status-matrix"}

PUSH = "push"
PULL_REQUEST = "pull_request"
PR_CLOSED = "pr_closed"

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


def dependency_name(reg: RepoRegistration, kind: str) -> str:
    """Sensor dependency name: underscores only, so trigger ``conditions`` expressions parse it as one name."""
    return f"{reg.name.replace('-', '_')}_{kind}"


def _labels(reg: RepoRegistration, kind: str) -> dict[str, str]:
    return {**PART_OF, REGISTRATION_LABEL: reg.name, TRIGGER_LABEL: kind.replace("_", "-")}


def _generate_name(template: str, reg: RepoRegistration) -> str:
    return f"{template}-{reg.name}"[:57].rstrip("-") + "-"


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


def _workflow(
    config: Config, reg: RepoRegistration, kind: str, template: str, arguments: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": _generate_name(template, reg),
            "namespace": config.argo.namespace,
            "labels": _labels(reg, kind),
        },
        "spec": {"workflowTemplateRef": {"name": template}, "arguments": {"parameters": arguments}},
    }


def _string(path: str, *patterns: str) -> dict[str, Any]:
    return {"path": path, "type": "string", "value": list(patterns)}


def _dependency(config: Config, reg: RepoRegistration, kind: str) -> dict[str, Any]:
    repo = _string("body.repository.full_name", f"(?i)^{quote_meta(reg.full_name)}$")
    if kind == PUSH:
        data = [
            _string(EVENT_HEADER_PATH, "^push$"),
            repo,
            _string("body.ref", f"^{quote_meta('refs/heads/' + reg.default_branch)}$"),
            {"path": "body.deleted", "type": "bool", "value": ["false"]},
        ]
    else:
        actions = "|".join(RELEASE_PR_ACTIONS) if kind == PULL_REQUEST else "closed"
        data = [_string(EVENT_HEADER_PATH, "^pull_request$"), repo, _string("body.action", f"^({actions})$")]
    return {
        "name": dependency_name(reg, kind),
        "eventSourceName": config.events.event_source_name,
        "eventName": event_name(config.app_id_for(reg)),
        "filters": {"data": data},
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


def _release_trigger(config: Config, reg: RepoRegistration, kind: str) -> dict[str, Any]:
    dep = dependency_name(reg, kind)
    order = RELEASE_PARAMETERS
    values = {**_literals(config, reg), "event": "push" if kind == PUSH else "pull_request"}
    values["data-path"] = reg.data_path
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
    return _trigger(reg, kind, dep, _workflow(config, reg, kind, template, _arguments(order, values)), params)


def _cleanup_trigger(config: Config, reg: RepoRegistration) -> dict[str, Any]:
    dep = dependency_name(reg, PR_CLOSED)
    order = CLEANUP_PARAMETERS
    params = [
        _param(dep, _dest(order, "repo"), key="body.repository.full_name"),
        _param(dep, _dest(order, "pr-number"), key="body.pull_request.number"),
    ]
    workflow = _workflow(config, reg, PR_CLOSED, CLEANUP_TEMPLATE, _arguments(order, _literals(config, reg)))
    return _trigger(reg, PR_CLOSED, dep, workflow, params)


def _trigger(
    reg: RepoRegistration, kind: str, dep: str, workflow: dict[str, Any], params: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "template": {
            "name": f"{reg.name}-{kind.replace('_', '-')}",
            "conditions": dep,
            "argoWorkflow": {"operation": "submit", "source": {"resource": workflow}, "parameters": params},
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
    """The Sensor: per registration, one filtered dependency and one Workflow trigger per event kind."""
    ev = config.events
    dependencies, triggers = [], []
    for reg in sorted(config.repo_registrations, key=lambda r: r.name):
        for kind in _kinds(reg):
            dependencies.append(_dependency(config, reg, kind))
            triggers.append(_cleanup_trigger(config, reg) if kind == PR_CLOSED else _release_trigger(config, reg, kind))
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
                # Inside a PostSync hook the app cannot turn Healthy before the hook ends: never gate on it.
                "deploy": "false",
            }
            workflow = _workflow(config, reg, "postsync", template, _arguments(RELEASE_PARAMETERS, values))
            del workflow["metadata"]["generateName"]
            workflow["metadata"]["name"] = f"{env.argocd_app}-postsync"[:63].rstrip("-.")
            workflow["metadata"]["annotations"] = {
                "argocd.argoproj.io/hook": "PostSync",
                "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
            }
            workflow["spec"]["activeDeadlineSeconds"] = POSTSYNC_DEADLINE_SECONDS
            hooks.append(workflow)
    return hooks


__all__ = [
    "EVENT_HEADER_PATH",
    "PR_CLOSED",
    "PULL_REQUEST",
    "PUSH",
    "dependency_name",
    "event_name",
    "event_source",
    "postsync_hook_resources",
    "quote_meta",
    "resources",
    "sensor",
    "webhook_endpoint",
]
