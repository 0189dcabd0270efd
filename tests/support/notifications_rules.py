"""Argo CD notifications config read with notifications-engine's own rules, to check rendered manifests.

Follows argoproj/notifications-engine (https://github.com/argoproj/notifications-engine):
``pkg/api/config.go`` (``ParseConfig``: keys split on ``.``, ``service.<type>`` or ``service.<type>.<name>``
and nothing else; ``$key`` references matched by ``[$][\\w-_]+`` and looked up in
``argocd-notifications-secret`` only), ``pkg/services/services.go`` (known service types),
``pkg/services/github.go`` (GitHub options and template fields), ``pkg/triggers/service.go`` (trigger
conditions) and ``pkg/subscriptions/annotations.go`` (``subscribe.<trigger>.<service>`` annotations).

Where upstream fails silently this parser is stricter, because silence is how the bugs ship: a ``$key``
missing from the Secret (upstream logs a warning and sends the literal ``$key`` as the private key), an
unknown template field (dropped by ``sigs.k8s.io/yaml``), an id that is not a plain integer, and a
subscription key with extra dots (upstream ignores the rest) are errors here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

SERVICE_TYPES = frozenset(
    {
        "alertmanager",
        "awssqs",
        "email",
        "github",
        "googlechat",
        "grafana",
        "mattermost",
        "newrelic",
        "opsgenie",
        "pagerduty",
        "pagerdutyv2",
        "pushover",
        "rocketchat",
        "slack",
        "teams",
        "telegram",
        "webex",
        "webhook",
    }
)
SECRET_REF = re.compile(r"[$][\w\-_]+", re.ASCII)
SUBSCRIBE_PREFIX = "notifications.argoproj.io/subscribe."
GITHUB_OPTIONS = frozenset({"appID", "installationID", "privateKey", "enterpriseBaseURL"})
NOTIFICATION_FIELDS = frozenset(
    {
        "message",
        "awssqs",
        "email",
        "slack",
        "mattermost",
        "rocketchat",
        "teams",
        "webhook",
        "opsgenie",
        "github",
        "alertmanager",
        "googlechat",
        "pagerduty",
        "pagerdutyv2",
        "newrelic",
    }
)
GITHUB_FIELDS = {
    None: frozenset({"status", "deployment", "pullRequestComment", "repoURLPath", "revisionPath", "checkRun"}),
    "status": frozenset({"state", "label", "targetURL"}),
    "deployment": frozenset(
        {
            "state",
            "environment",
            "environmentURL",
            "logURL",
            "requiredContexts",
            "autoMerge",
            "transientEnvironment",
            "reference",
        }
    ),
    "pullRequestComment": frozenset({"content", "commentTag"}),
}
COMMIT_STATES = frozenset({"error", "failure", "pending", "success"})
DEPLOYMENT_STATES = frozenset({"error", "failure", "inactive", "in_progress", "queued", "pending", "success"})
CONDITION_FIELDS = frozenset({"when", "send", "oncePer", "description"})


class RulesError(Exception):
    """The config breaks a notifications-engine rule (or one of the stricter rules above)."""


@dataclass(frozen=True)
class Service:
    """One notification service: its name (used by subscriptions), type and options."""

    name: str
    type: str
    options: dict[str, Any]
    secret_refs: tuple[str, ...]


@dataclass(frozen=True)
class Subscription:
    """One ``subscribe.<trigger>.<service>`` annotation."""

    trigger: str
    service: str
    recipients: tuple[str, ...]


@dataclass
class NotificationsConfig:
    """The parsed ConfigMap."""

    services: dict[str, Service] = field(default_factory=dict)
    triggers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)


def secret_refs(text: str) -> list[str]:
    """Secret keys referenced in one string scalar (``$key`` -> ``key``), as ``replaceStringSecret`` finds them."""
    return [match[1:] for match in SECRET_REF.findall(text)]


def _strings(node: Any) -> Iterable[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _load(kind: str, name: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"failed to unmarshal {kind} {name}: {exc}") from None


def _plain_int(service: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RulesError(f"service {service}: {key} must be a plain integer, got {value!r} ({type(value).__name__})")


def check_github_options(name: str, options: Any) -> None:
    """GitHub service options: known keys, integer ids, one ``$key`` private key, GHES URL under /api/v3."""
    if not isinstance(options, dict):
        raise RulesError(f"service {name}: options must be a mapping")
    unknown = sorted(set(options) - GITHUB_OPTIONS)
    if unknown:
        raise RulesError(f"service {name}: unknown GitHub options {unknown}")
    for key in ("appID", "installationID"):
        if key not in options:
            raise RulesError(f"service {name}: {key} is required")
        _plain_int(name, key, options[key])
    key_ref = options.get("privateKey")
    if not isinstance(key_ref, str) or not re.fullmatch(SECRET_REF.pattern, key_ref, re.ASCII):
        raise RulesError(f"service {name}: privateKey must be one $key reference into the Secret, got {key_ref!r}")
    base = options.get("enterpriseBaseURL")
    if base is not None and not str(base).rstrip("/").endswith("/api/v3"):
        raise RulesError(f"service {name}: enterpriseBaseURL {base!r} must end with /api/v3")


def _check_fields(where: str, value: Any, allowed: frozenset[str]) -> None:
    if not isinstance(value, dict):
        raise RulesError(f"{where} must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise RulesError(f"{where}: unknown fields {unknown} would be dropped silently")


def _literal_state(where: str, state: Any, allowed: frozenset[str]) -> None:
    if not isinstance(state, str) or ("{{" not in state and state not in allowed):
        raise RulesError(f"{where}: state {state!r} is not one of {sorted(allowed)}")


def check_template(name: str, template: Any) -> None:
    """Template fields must be ones notifications-engine reads; literal GitHub states must be valid."""
    _check_fields(f"template {name}", template, NOTIFICATION_FIELDS)
    github = template.get("github")
    if github is None:
        return
    _check_fields(f"template {name}: github", github, GITHUB_FIELDS[None])
    for part in ("status", "deployment", "pullRequestComment"):
        if part in github:
            _check_fields(f"template {name}: github.{part}", github[part], GITHUB_FIELDS[part])
    if "status" in github:
        _literal_state(f"template {name}: github.status", github["status"].get("state"), COMMIT_STATES)
    if "deployment" in github:
        _literal_state(f"template {name}: github.deployment", github["deployment"].get("state"), DEPLOYMENT_STATES)
    for text in _strings(template):
        if text.count("{{") != text.count("}}"):
            raise RulesError(f"template {name}: unbalanced Go template braces in {text!r}")


def check_trigger(name: str, conditions: Any) -> None:
    """A trigger is a list of conditions with ``when`` and ``send``."""
    if not isinstance(conditions, list) or not conditions:
        raise RulesError(f"trigger {name} must be a non-empty list of conditions")
    for index, condition in enumerate(conditions):
        _check_fields(f"trigger {name}[{index}]", condition, CONDITION_FIELDS)
        if not condition.get("when") or not condition.get("send"):
            raise RulesError(f"trigger {name}[{index}] needs when and send")


def parse_config(data: Mapping[str, str], secret_keys: Iterable[str]) -> NotificationsConfig:
    """Parse ``argocd-notifications-cm`` data as ``ParseConfig`` does, against the Secret's key list.

    Raises:
        RulesError: a key of the wrong shape, an unknown service type, a ``$key`` not in the Secret, bad
            GitHub options, an unknown template field, or a trigger sending an unknown template.
    """
    keys = set(secret_keys)
    cfg = NotificationsConfig()
    for key, value in data.items():
        parts = key.split(".")
        if key.startswith("template."):
            name = ".".join(parts[1:])
            template = _load("template", name, value)
            check_template(name, template)
            cfg.templates[name] = template
        elif key.startswith("service."):
            if len(parts) == 3:
                service_type, name = parts[1], parts[2]
            elif len(parts) == 2:
                service_type, name = parts[1], parts[1]
            else:
                raise RulesError(f"invalid service key; expected 'service.<type>(.<name>)' but got '{key}'")
            if service_type not in SERVICE_TYPES:
                raise RulesError(f"service type '{service_type}' is not supported (key '{key}')")
            if name in cfg.services:
                raise RulesError(f"service name {name!r} is defined twice; the later key would replace the first")
            options = _load("service", name, value)
            refs = tuple(ref for text in _strings(options) for ref in secret_refs(text))
            missing = sorted(set(refs) - keys)
            if missing:
                raise RulesError(f"service {name}: references {missing}, missing from argocd-notifications-secret")
            if service_type == "github":
                check_github_options(name, options)
            cfg.services[name] = Service(name, service_type, options, refs)
        elif key.startswith("trigger."):
            name = ".".join(parts[1:])
            conditions = _load("trigger", name, value)
            check_trigger(name, conditions)
            cfg.triggers[name] = conditions
    for name, conditions in cfg.triggers.items():
        for condition in conditions:
            unknown = sorted(set(condition["send"]) - set(cfg.templates))
            if unknown:
                raise RulesError(f"trigger {name} sends unknown templates {unknown}")
    return cfg


def parse_subscriptions(annotations: Mapping[str, str]) -> list[Subscription]:
    """Subscriptions in an object's annotations, split as ``Annotations.iterate`` does.

    Raises:
        RulesError: a key with more than ``<trigger>.<service>`` (upstream silently ignores the rest).
    """
    subs = []
    for key, value in sorted(annotations.items()):
        if not key.startswith(SUBSCRIBE_PREFIX):
            continue
        parts = key[len(SUBSCRIBE_PREFIX) :].split(".")
        if len(parts) > 2:
            raise RulesError(f"annotation {key!r}: trigger and service names must not contain '.'")
        trigger, service = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        recipients = ("",) if value == "" else tuple(r.strip() for r in value.split(";") if r.strip())
        subs.append(Subscription(trigger, service, recipients))
    return subs


def check_subscriptions(cfg: NotificationsConfig, annotations: Mapping[str, str]) -> list[Subscription]:
    """Every subscription names an existing trigger and an existing service.

    Raises:
        RulesError: a subscription without trigger, or with an unknown trigger or service.
    """
    subs = parse_subscriptions(annotations)
    for sub in subs:
        if not sub.trigger:
            raise RulesError(f"subscription to {sub.service!r} names no trigger and no default triggers are set")
        if sub.trigger not in cfg.triggers:
            raise RulesError(f"subscription names unknown trigger {sub.trigger!r}")
        if sub.service not in cfg.services:
            raise RulesError(f"subscription names unknown service {sub.service!r}; known: {sorted(cfg.services)}")
    return subs


__all__ = [
    "NotificationsConfig",
    "RulesError",
    "SERVICE_TYPES",
    "Service",
    "Subscription",
    "check_github_options",
    "check_subscriptions",
    "check_template",
    "parse_config",
    "parse_subscriptions",
    "secret_refs",
]
