"""Argo CD Applications, the notifications ConfigMap and Secret templates, read with notifications-engine rules."""

import copy
import functools
import json
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from pipelines.config import Config, load_config
from pipelines.render import to_yaml
from pipelines.resources import argocd as argocd_apps
from pipelines.resources import notifications
from pipelines.resources import secrets as secrets_layout
from tests.support.notifications_rules import (
    RulesError,
    check_subscriptions,
    parse_config,
    parse_subscriptions,
    secret_refs,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "pipelines" / "schemas"
APP_A, APP_B = 123456, 654321
INSTALL_A, INSTALL_B = 98663092, 987654321  # 8 and 9 digits; 98663092 once came out of Helm as 9.8663092e+07


def _registrations() -> list[dict]:
    return [
        {
            "name": "acme-data",
            "repoUrl": "https://github.com/acme/data",
            "installationId": INSTALL_A,
            "environments": [
                {
                    "name": "staging",
                    "branch": "main",
                    "argocdApp": "acme-data-staging",
                    "url": "https://staging.acme.test",
                },
                {"name": "production", "branch": "release", "argocdApp": "acme-data-production", "after": "staging"},
                {"name": "sandbox", "branch": "main"},
            ],
            "preview": {"enabled": True, "argocdApp": "acme-data-pr-{pr}"},
        },
        {
            "name": "acme-catalog",
            "repoUrl": "https://github.com/acme/catalog",
            "installationId": INSTALL_A,
            "argocd": {"path": "k8s", "targetRevision": "v2", "destinationNamespace": "catalog", "automated": False},
            "environments": [{"name": "staging", "argocdApp": "acme-catalog-staging"}],
        },
        {
            "name": "globex-prices",
            "repoUrl": "https://github.com/globex/prices",
            "installationId": INSTALL_B,
            "appId": APP_B,
            "argocd": {"project": "globex"},
            "environments": [{"name": "staging", "argocdApp": "globex-prices-staging"}],
        },
    ]


def _config(api_url: str = "https://api.github.com", host: str = "github.com") -> Config:
    regs = _registrations()
    for reg in regs:
        reg["repoUrl"] = reg["repoUrl"].replace("github.com", host)
    return Config.model_validate({"github": {"apiUrl": api_url, "appId": APP_A}, "repoRegistrations": regs})


@pytest.fixture(scope="module")
def config() -> Config:
    return _config()


def _secret_keys(config: Config) -> tuple[str, ...]:
    return next(s.keys for s in secrets_layout.layout(config) if s.name == secrets_layout.NOTIFICATIONS_SECRET_NAME)


def _parse(config: Config, reporter: str = "workflow"):
    cm = notifications.configmap(config, reporter=reporter)
    return cm, parse_config(cm["data"], _secret_keys(config))


# --- notifications-engine rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("reporter", ["workflow", "notifications"])
def test_configmap_parses_with_notifications_engine_rules(config, reporter):
    cm, cfg = _parse(config, reporter)
    assert cm["metadata"] == {
        "name": "argocd-notifications-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-notifications-cm", "app.kubernetes.io/part-of": "argocd"},
        # Merges into the ConfigMap Argo CD installed instead of replacing its keys.
        "annotations": {"argocd.argoproj.io/sync-options": "ServerSideApply=true"},
    }
    assert sorted(cfg.services) == [f"github-{INSTALL_A}", f"github-{INSTALL_B}"]
    assert set(cfg.triggers) == set(notifications.TRIGGERS)
    assert [k for k in cm["data"] if k.startswith("service.")] == [
        f"service.github.github-{INSTALL_A}",
        f"service.github.github-{INSTALL_B}",
    ]


def test_one_service_per_installation_with_its_own_app_and_key(config):
    _, cfg = _parse(config)
    a, b = cfg.services[f"github-{INSTALL_A}"], cfg.services[f"github-{INSTALL_B}"]
    assert (a.type, a.options["appID"], a.options["installationID"]) == ("github", APP_A, INSTALL_A)
    assert (b.type, b.options["appID"], b.options["installationID"]) == ("github", APP_B, INSTALL_B)
    assert a.secret_refs == (f"github-privateKey-{INSTALL_A}",)
    assert b.options["privateKey"] == f"$github-privateKey-{INSTALL_B}"
    assert "enterpriseBaseURL" not in a.options


def test_the_rules_reject_what_notifications_engine_rejects(config):
    cm = notifications.configmap(config)
    keys = _secret_keys(config)
    service = cm["data"][f"service.github.github-{INSTALL_A}"]

    def broken(key: str, value: str) -> dict:
        data = {k: v for k, v in cm["data"].items() if not k.startswith("service.")}
        return {**data, key: value}

    with pytest.raises(RulesError, match="service type 'github-12345678' is not supported"):
        parse_config(broken("service.github-12345678", service), keys)
    with pytest.raises(RulesError, match="invalid service key"):
        parse_config(broken("service.github.github.1", service), keys)
    with pytest.raises(RulesError, match="missing from argocd-notifications-secret"):
        parse_config(broken("service.github.x", service.replace("$github-privateKey-", "$other-")), keys)
    # "$secret:key" does not reach another Secret: the reference stops at ':'.
    assert secret_refs("$github-app-1:private-key") == ["github-app-1"]
    with pytest.raises(RulesError, match="missing from argocd-notifications-secret"):
        parse_config(
            broken("service.github.x", f"appID: 1\ninstallationID: 2\nprivateKey: $github-app-{APP_A}:private-key\n"),
            keys,
        )
    with pytest.raises(RulesError, match="plain integer"):
        parse_config(
            broken(
                "service.github.x", service.replace(f"installationID: {INSTALL_A}", "installationID: 9.8663092e+07")
            ),
            keys,
        )
    with pytest.raises(RulesError, match="sends unknown templates"):
        parse_config({**cm["data"], "trigger.x": "- when: 'true'\n  send: [nope]\n"}, keys)
    with pytest.raises(RulesError, match="unknown fields"):
        parse_config({**cm["data"], "template.x": "github:\n  status:\n    context: x\n"}, keys)
    with pytest.raises(RulesError, match="trigger and service names"):
        parse_subscriptions({"notifications.argoproj.io/subscribe.on-x.github.extra": ""})


def test_every_application_subscribes_to_its_installations_service(config):
    cm, cfg = _parse(config)
    apps = {a["metadata"]["name"]: a for a in argocd_apps.resources(config)}
    expected = {
        "acme-data-staging": INSTALL_A,
        "acme-data-production": INSTALL_A,
        "acme-catalog-staging": INSTALL_A,
        "globex-prices-staging": INSTALL_B,
    }
    assert set(apps) == set(expected)
    for name, app in apps.items():
        subs = check_subscriptions(cfg, app["metadata"]["annotations"])
        assert {(s.trigger, s.service, s.recipients) for s in subs} == {
            (t, f"github-{expected[name]}", ("",)) for t in notifications.TRIGGERS
        }


@pytest.mark.parametrize("dump", ["render", "safe_dump"])
def test_installation_ids_are_dumped_as_plain_integers(config, dump):
    cm = notifications.configmap(config)
    text = to_yaml(cm) if dump == "render" else yaml.safe_dump(cm)
    assert "e+0" not in text and "e+1" not in text
    data = yaml.safe_load(text)["data"]
    for installation in (INSTALL_A, INSTALL_B):
        service = data[f"service.github.github-{installation}"]
        assert re.search(rf"^installationID: {installation}$", service, re.M), service
        assert yaml.safe_load(service)["installationID"] == installation
    parse_config(data, _secret_keys(config))


@pytest.mark.parametrize(
    "api_url", ["https://ghe.acme.test/api/v3", "https://ghe.acme.test", "https://ghe.acme.test/api/v3/"]
)
def test_enterprise_base_url_ends_with_api_v3(api_url):
    config = _config(api_url, "ghe.acme.test")
    _, cfg = _parse(config)
    for service in cfg.services.values():
        assert service.options["enterpriseBaseURL"] == "https://ghe.acme.test/api/v3"


def test_triggers_gate_on_revision_phase_health_and_sync(config):
    _, cfg = _parse(config)
    [deployed] = cfg.triggers[notifications.TRIGGER_DEPLOYED]
    for gate in (
        "app.status.operationState.phase in ['Succeeded']",
        "app.status.health.status == 'Healthy'",
        "app.status.sync.status == 'Synced'",
        "app.status.sync.revision == app.status.operationState.syncResult.revision",
    ):
        assert gate in deployed["when"]
    assert deployed["oncePer"] == "app.status.sync.revision"
    failed = cfg.triggers[notifications.TRIGGER_FAILED]
    assert any("['Error', 'Failed']" in c["when"] for c in failed)
    assert any("'Degraded'" in c["when"] for c in failed)
    assert all(c.get("oncePer") for c in failed)


def test_commit_status_uses_its_own_context_not_the_workflows(config):
    _, cfg = _parse(config)
    states = {}
    for name, template in cfg.templates.items():
        status = template["github"]["status"]
        assert status["label"] == "argocd/{{.app.metadata.name}}"
        assert not status["label"].startswith(config.github.status_context)
        assert len(template["message"]) + 63 <= 140
        states[name] = status["state"]
    assert sorted(states.values()) == ["error", "failure", "success"]


def test_deployment_statuses_only_when_notifications_report_deployments(config):
    _, by_workflow = _parse(config, "workflow")
    assert all("deployment" not in t["github"] for t in by_workflow.templates.values())
    _, by_notifications = _parse(config, "notifications")
    app = argocd_apps.resources(config)[0]
    for template in by_notifications.templates.values():
        deployment = template["github"]["deployment"]
        assert deployment["autoMerge"] is False and deployment["requiredContexts"] == []
        assert deployment["transientEnvironment"] is False
        for field, annotation in (
            ("environment", notifications.ENVIRONMENT_ANNOTATION),
            ("environmentURL", notifications.ENVIRONMENT_URL_ANNOTATION),
        ):
            assert deployment[field] == f'{{{{index .app.metadata.annotations "{annotation}"}}}}'
            assert annotation in app["metadata"]["annotations"]


def test_registration_with_applications_needs_an_installation_id(config):
    data = config.model_dump(by_alias=True)
    data["repoRegistrations"][0]["installationId"] = None
    data["repoRegistrations"][0]["appId"] = APP_A
    with pytest.raises(ValueError, match=r"repoRegistrations\[0\].installationId: the registration has Argo CD"):
        Config.model_validate(data)


# --- Applications -----------------------------------------------------------------------------------------


@functools.cache
def _crd_validator() -> Draft7Validator:
    crd = yaml.safe_load((SCHEMAS / "argocd-application-crd.yaml").read_text(encoding="utf-8"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return Draft7Validator(version["schema"]["openAPIV3Schema"])


@functools.cache
def _core_validator(kind: str) -> Draft7Validator:
    doc = json.loads((SCHEMAS / "argo-events-schema.json").read_text(encoding="utf-8"))
    return Draft7Validator({"$ref": f"#/definitions/io.k8s.api.core.v1.{kind}", "definitions": doc["definitions"]})


def _errors(validator: Draft7Validator, resource: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(resource)]


@pytest.mark.parametrize("source", ["test", "hera_config.yaml"])
def test_every_resource_validates_against_the_official_schemas(config, source):
    cfg = config if source == "test" else load_config(ROOT / "hera_config.yaml", environ={})
    apps = argocd_apps.resources(cfg)
    assert apps
    for app in apps:
        assert _errors(_crd_validator(), app) == []
    for resource in notifications.resources(cfg) + secrets_layout.resources(cfg):
        assert _errors(_core_validator(resource["kind"]), resource) == []
    broken = copy.deepcopy(apps[0])
    del broken["spec"]["destination"]
    assert _errors(_crd_validator(), broken)


def test_applications_follow_the_registration(config):
    apps = {a["metadata"]["name"]: a for a in argocd_apps.resources(config)}
    assert list(apps) == ["acme-catalog-staging", "acme-data-staging", "acme-data-production", "globex-prices-staging"]
    staging, production = apps["acme-data-staging"], apps["acme-data-production"]
    assert staging["metadata"]["namespace"] == "argocd"
    assert staging["metadata"]["labels"][argocd_apps.REGISTRATION_LABEL] == "acme-data"
    assert staging["spec"]["source"] == {
        "repoURL": "https://github.com/acme/data",
        "path": "deploy",
        "targetRevision": "main",
    }
    assert production["spec"]["source"]["targetRevision"] == "release"
    assert "syncPolicy" not in production["spec"]  # after: staging: promoted by a sync to the commit, never auto
    assert staging["spec"]["destination"] == {"server": "https://kubernetes.default.svc"}
    assert staging["spec"]["syncPolicy"] == {"automated": argocd_apps.AUTOMATED}
    assert staging["metadata"]["annotations"][notifications.ENVIRONMENT_URL_ANNOTATION] == "https://staging.acme.test"
    assert production["metadata"]["annotations"][notifications.ENVIRONMENT_URL_ANNOTATION] == ""
    assert production["metadata"]["annotations"][notifications.ENVIRONMENT_ANNOTATION] == "production"
    catalog = apps["acme-catalog-staging"]["spec"]
    assert catalog["source"] == {"repoURL": "https://github.com/acme/catalog", "path": "k8s", "targetRevision": "v2"}
    assert catalog["destination"]["namespace"] == "catalog" and "syncPolicy" not in catalog
    assert catalog["project"] == "default" and apps["globex-prices-staging"]["spec"]["project"] == "globex"
    assert not any("{pr}" in name for name in apps)  # previews are created per pull request, not rendered


def test_application_names_must_be_unique_and_valid(config):
    data = config.model_dump(by_alias=True)
    data["repoRegistrations"][1]["environments"][0]["argocdApp"] = "acme-data-staging"
    with pytest.raises(ValueError, match="Application 'acme-data-staging' is also used by"):
        Config.model_validate(data)
    data["repoRegistrations"][1]["environments"][0]["argocdApp"] = "Acme_Catalog"
    with pytest.raises(ValueError, match="argocdApp"):
        Config.model_validate(data)


# --- Secret templates -------------------------------------------------------------------------------------


def test_secret_templates_name_every_key_and_hold_no_value(config):
    secrets = secrets_layout.resources(config)
    by_name = {s["metadata"]["name"]: s for s in secrets}
    assert sorted(by_name) == sorted(
        [
            "argocd-notifications-secret",
            "argocd-token",
            f"github-app-{APP_A}",
            f"github-app-{APP_B}",
            f"github-app-repo-creds-{INSTALL_A}",  # the preview ApplicationSet's generator
            "github-webhook-secret",
            "s3-credentials",
        ]
    )
    for secret in secrets:
        assert not {"data", "stringData", "binaryData"} & set(secret)
        annotations = secret["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
        assert annotations[secrets_layout.KEYS_ANNOTATION]
    keys = lambda name: by_name[name]["metadata"]["annotations"][secrets_layout.KEYS_ANNOTATION].split(",")  # noqa: E731
    assert keys("argocd-notifications-secret") == [f"github-privateKey-{INSTALL_A}", f"github-privateKey-{INSTALL_B}"]
    assert keys(f"github-app-{APP_B}") == ["private-key"]
    assert keys("github-webhook-secret") == [f"webhook-secret-app-{APP_A}", f"webhook-secret-app-{APP_B}"]
    assert by_name["argocd-notifications-secret"]["metadata"]["namespace"] == "argocd"
    assert by_name["github-webhook-secret"]["metadata"]["namespace"] == config.events.namespace
    _, cfg = _parse(config)
    referenced = {ref for service in cfg.services.values() for ref in service.secret_refs}
    assert referenced == set(keys("argocd-notifications-secret"))


def test_nothing_is_rendered_without_registrations():
    empty = Config()
    assert argocd_apps.resources(empty) == []
    assert notifications.resources(empty) == []
    assert secrets_layout.resources(empty) == []
