"""Argo Events resources: real GitHub payloads through the rendered Sensor, evaluated with Argo Events' rules."""

import copy
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator

from pipelines.config import Config, load_config
from pipelines.parameters import CLEANUP_PARAMETERS, CLEANUP_TEMPLATE, RELEASE_PARAMETERS
from pipelines.resources import events
from pipelines.resources.secrets import layout
from tests.support.sensor_eval import (
    SensorEvalError,
    apply_params,
    canonical_header,
    evaluate,
    filter_data,
    github_event_data,
    gjson_get,
)

ROOT = Path(__file__).resolve().parents[2]
WEBHOOKS = ROOT / "tests" / "support" / "specs" / "webhooks"
SCHEMAS = ROOT / "pipelines" / "schemas"
PUSH_SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
HEAD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
MAIN_APP, OTHER_APP = 123456, 654321
MAIN_INSTALLATION, OTHER_INSTALLATION = 987654321, 98663092  # 9 digits; the id a Helm chart printed as 9.8663092e+07


def _config() -> Config:
    return Config.model_validate(
        {
            "github": {"appId": MAIN_APP},
            "repoRegistrations": [
                {
                    "name": "octo-hello",
                    "repoUrl": "https://github.com/Octocoders/Hello-World",
                    "installationId": OTHER_INSTALLATION,
                    "appId": OTHER_APP,
                    "defaultBranch": "master",
                    "environments": [{"name": "staging", "branch": "master", "argocdApp": "octo-hello-staging"}],
                },
                {
                    "name": "hello-world",
                    "repoUrl": "https://github.com/Codertocat/Hello-World",
                    "installationId": MAIN_INSTALLATION,
                    "defaultBranch": "master",
                    "dataPath": "data/release/",
                    "preview": {"enabled": True, "argocdApp": "hello-world-pr-{pr}"},
                    "environments": [{"name": "staging", "branch": "master", "argocdApp": "hello-world-staging"}],
                },
                {
                    "name": "octo-docs",
                    "repoUrl": "https://github.com/Octocoders/docs",
                    "installationId": OTHER_INSTALLATION,
                    "appId": OTHER_APP,
                    "events": ["push"],
                },
            ],
        }
    )


@pytest.fixture(scope="module")
def config() -> Config:
    return _config()


@pytest.fixture(scope="module")
def sensor(config: Config) -> dict:
    return events.sensor(config)


def _payload(name: str) -> dict:
    return json.loads((WEBHOOKS / name).read_text(encoding="utf-8"))


def _event_of(name: str) -> str:
    index = json.loads((WEBHOOKS / "index.json").read_text(encoding="utf-8"))
    return next(p["x_github_event"] for p in index["payloads"] if p["file"] == name)


def _deliver(sensor: dict, app_id: int, event: str, payload: dict):
    return evaluate(
        sensor,
        sensor["spec"]["dependencies"][0]["eventSourceName"],
        events.event_name(app_id),
        github_event_data(event, payload),
    )


def _as(payload: dict, full_name: str) -> dict:
    moved = copy.deepcopy(payload)
    moved["repository"]["full_name"] = full_name
    moved["repository"]["name"] = full_name.split("/")[1]
    return moved


# --- the evaluator itself follows Argo Events' semantics -------------------------------------------------


def test_string_filters_are_unanchored_regexes_so_anchoring_matters():
    data = {"body": {"ref": "refs/heads/maintenance"}}
    unanchored = [{"path": "body.ref", "type": "string", "value": ["main"]}]
    anchored = [{"path": "body.ref", "type": "string", "value": ["^refs/heads/main$"]}]
    assert filter_data(unanchored, "and", data) == (True, None)
    assert filter_data(anchored, "and", data) == (False, None)
    assert filter_data(anchored, "and", {"body": {"ref": "refs/heads/main"}}) == (True, None)
    # Go's $ does not match before a trailing newline, Python's would.
    assert filter_data(anchored, "and", {"body": {"ref": "refs/heads/main\n"}}) == (False, None)


def test_headers_are_arrays_with_canonical_names():
    data = github_event_data("push", {"ref": "refs/heads/main"})
    assert canonical_header("X-GitHub-Event") == "X-Github-Event"
    assert data["headers"]["X-Github-Event"] == ["push"]
    whole = [{"path": "headers.X-Github-Event", "type": "string", "value": ["^push$"]}]
    first = [{"path": "headers.X-Github-Event.0", "type": "string", "value": ["^push$"]}]
    assert filter_data(whole, "and", data) == (False, None)  # matched against the raw JSON ["push"]
    assert filter_data(first, "and", data) == (True, None)
    assert filter_data([{"path": "headers.X-GitHub-Event.0", "type": "string", "value": ["push"]}], "and", data)[1]


def test_missing_path_is_an_error_and_filters_are_anded_unless_or():
    data = {"body": {"deleted": False, "ref": "refs/heads/main"}}
    deleted = {"path": "body.deleted", "type": "bool", "value": ["false"]}
    wrong_ref = {"path": "body.ref", "type": "string", "value": ["^refs/tags/"]}
    missing = {"path": "body.pull_request.number", "type": "number", "value": ["1"]}
    assert filter_data([deleted], "and", data) == (True, None)
    assert filter_data([deleted, wrong_ref], "and", data) == (False, None)
    assert filter_data([deleted, wrong_ref], "or", data) == (True, None)
    passed, error = filter_data([missing], "and", data)
    assert not passed and "does not exist" in error
    assert filter_data([{"path": "body.ref", "type": "string", "value": ["(?=x)"]}], "and", data)[1]


def test_append_parameters_and_number_keys_keep_large_numbers_exact():
    resource = {"spec": {"arguments": {"parameters": [{"name": "ref", "value": "refs/pull/"}]}}}
    params = [
        {
            "src": {"dependencyName": "d", "dataKey": "body.n"},
            "dest": "spec.arguments.parameters.0.value",
            "operation": "append",
        },
        {
            "src": {"dependencyName": "d", "value": "/head"},
            "dest": "spec.arguments.parameters.0.value",
            "operation": "append",
        },
    ]
    out = apply_params(resource, params, {"d": {"body": {"n": 98663092}}})
    assert out["spec"]["arguments"]["parameters"][0]["value"] == "refs/pull/98663092/head"
    assert resource["spec"]["arguments"]["parameters"][0]["value"] == "refs/pull/"
    with pytest.raises(SensorEvalError):
        apply_params(
            resource, [{"src": {"dependencyName": "d", "dataKey": "body.x"}, "dest": "a"}], {"d": {"body": {}}}
        )
    assert gjson_get({"a": [1, 2]}, "a.#").value == 2


# --- the rendered Sensor on real payloads ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["push_default-branch_1.json", "push_default-branch_2.json"])
def test_push_to_default_branch_fires_release_with_after_sha(sensor, name):
    result = _deliver(sensor, MAIN_APP, _event_of(name), _payload(name))
    assert result.triggers == ["hello-world-push"]
    fired = result.fired[0]
    assert fired.operation == "submit"
    assert fired.resource["spec"]["workflowTemplateRef"] == {"name": "release-data-prep"}
    assert fired.arguments == [
        ("repo", "Codertocat/Hello-World"),
        ("sha", PUSH_SHA),
        ("event", "push"),
        ("pr-number", ""),
        ("ref", "refs/heads/master"),
        ("installation-id", str(MAIN_INSTALLATION)),
        ("app-id", str(MAIN_APP)),
        ("data-path", "data/release/"),
        ("deploy", "true"),
    ]


def test_tag_deletion_fires_nothing(sensor):
    result = _deliver(sensor, MAIN_APP, "push", _payload("push_tag-deleted_1.json"))
    assert result.triggers == []


def test_deleting_the_default_branch_fires_nothing(sensor):
    payload = _payload("push_tag-deleted_1.json")
    payload["ref"] = "refs/heads/master"
    assert _deliver(sensor, MAIN_APP, "push", payload).triggers == []
    payload["deleted"] = False  # the same push without deletion would fire: the deleted filter is what stops it
    assert _deliver(sensor, MAIN_APP, "push", payload).triggers == ["hello-world-push"]


@pytest.mark.parametrize(
    "ref", ["refs/heads/feature", "refs/heads/master-old", "refs/heads/old-master", "refs/tags/master"]
)
def test_push_to_another_branch_fires_nothing(sensor, ref):
    payload = _payload("push_default-branch_1.json")
    payload["ref"] = ref
    assert _deliver(sensor, MAIN_APP, "push", payload).triggers == []


@pytest.mark.parametrize(
    "name",
    [
        "pull_request_opened_1.json",
        "pull_request_opened_2.json",
        "pull_request_opened_3.json",
        "pull_request_synchronize_1.json",
    ],
)
def test_pull_request_opened_or_synchronized_fires_release_with_head_sha(sensor, name):
    result = _deliver(sensor, MAIN_APP, _event_of(name), _payload(name))
    assert result.triggers == ["hello-world-pull-request"]
    assert result.fired[0].parameters == {
        "repo": "Codertocat/Hello-World",
        "sha": HEAD_SHA,
        "event": "pull_request",
        "pr-number": "2",
        "ref": "refs/pull/2/head",
        "installation-id": str(MAIN_INSTALLATION),
        "app-id": str(MAIN_APP),
        "data-path": "data/release/",
        "deploy": "true",
    }


@pytest.mark.parametrize(
    "action,fires", [("reopened", True), ("edited", False), ("labeled", False), ("unsynchronize", False)]
)
def test_only_release_actions_fire(sensor, action, fires):
    payload = _payload("pull_request_opened_1.json")
    payload["action"] = action
    expected = ["hello-world-pull-request"] if fires else []
    assert _deliver(sensor, MAIN_APP, "pull_request", payload).triggers == expected


def test_large_pull_request_number_stays_an_integer(sensor):
    payload = _payload("pull_request_opened_1.json")
    payload["number"] = payload["pull_request"]["number"] = 12345678
    fired = _deliver(sensor, MAIN_APP, "pull_request", payload).fired[0]
    assert fired.parameters["pr-number"] == "12345678"
    assert fired.parameters["ref"] == "refs/pull/12345678/head"


@pytest.mark.parametrize("name", ["pull_request_closed_1.json", "pull_request_closed_2.json"])
def test_closed_pull_request_fires_only_preview_cleanup(sensor, name):
    result = _deliver(sensor, MAIN_APP, _event_of(name), _payload(name))
    assert result.triggers == ["hello-world-pr-closed"]
    fired = result.fired[0]
    assert fired.resource["spec"]["workflowTemplateRef"] == {"name": CLEANUP_TEMPLATE}
    assert fired.arguments == [
        ("repo", "Codertocat/Hello-World"),
        ("pr-number", "2"),
        ("installation-id", str(MAIN_INSTALLATION)),
        ("app-id", str(MAIN_APP)),
    ]


def test_closed_pull_request_without_previews_fires_nothing(sensor):
    payload = _as(_payload("pull_request_closed_2.json"), "Octocoders/Hello-World")
    assert _deliver(sensor, OTHER_APP, "pull_request", payload).triggers == []
    opened = _as(_payload("pull_request_opened_2.json"), "Octocoders/Hello-World")
    assert _deliver(sensor, OTHER_APP, "pull_request", opened).triggers == ["octo-hello-pull-request"]


def test_each_registration_gets_its_own_installation_and_app(sensor):
    payload = _as(_payload("push_default-branch_1.json"), "Octocoders/Hello-World")
    result = _deliver(sensor, OTHER_APP, "push", payload)
    assert result.triggers == ["octo-hello-push"]
    params = result.fired[0].parameters
    assert (params["installation-id"], params["app-id"]) == (str(OTHER_INSTALLATION), str(OTHER_APP))
    assert params["repo"] == "Octocoders/Hello-World"
    assert payload["installation"]["id"] == 1  # the payload's installation is ignored


def test_registration_without_pull_request_events_ignores_them(sensor):
    payload = _as(_payload("pull_request_opened_2.json"), "Octocoders/docs")
    assert _deliver(sensor, OTHER_APP, "pull_request", payload).triggers == []
    push = _as(_payload("push_default-branch_1.json"), "Octocoders/docs")
    push["ref"] = "refs/heads/main"
    assert _deliver(sensor, OTHER_APP, "push", push).triggers == ["octo-docs-push"]


@pytest.mark.parametrize(
    "full_name", ["Codertocat/Hello-World-2", "Codertocat/Hello", "xCodertocat/Hello-World", "acme/data"]
)
def test_unregistered_repository_fires_nothing(sensor, full_name):
    for name in ["push_default-branch_1.json", "pull_request_opened_1.json", "pull_request_closed_1.json"]:
        payload = _as(_payload(name), full_name)
        assert _deliver(sensor, MAIN_APP, _event_of(name), payload).triggers == []


def test_repository_match_ignores_case_like_github(sensor):
    payload = _as(_payload("push_default-branch_1.json"), "codertocat/hello-world")
    assert _deliver(sensor, MAIN_APP, "push", payload).triggers == ["hello-world-push"]


def test_delivery_to_another_apps_endpoint_fires_nothing(sensor):
    assert _deliver(sensor, OTHER_APP, "push", _payload("push_default-branch_1.json")).triggers == []


@pytest.mark.parametrize("header", ["create", "ping", "pull_request", "push "])
def test_event_header_is_checked(sensor, header):
    assert _deliver(sensor, MAIN_APP, header, _payload("push_default-branch_1.json")).triggers == []


# --- resource shape and schemas -------------------------------------------------------------------------


def _events_validator(kind: str) -> Draft7Validator:
    doc = json.loads((SCHEMAS / "argo-events-schema.json").read_text(encoding="utf-8"))
    return Draft7Validator(
        {"$ref": f"#/definitions/io.argoproj.events.v1alpha1.{kind}", "definitions": doc["definitions"]}
    )


def _workflow_validator() -> Draft202012Validator:
    doc = json.loads((SCHEMAS / "argo-workflows-schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(
        {"$ref": "#/definitions/io.argoproj.workflow.v1alpha1.Workflow", "definitions": doc["definitions"]}
    )


def _errors(validator, resource: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(resource)]


@pytest.mark.parametrize("source", ["test", "hera_config.yaml"])
def test_every_resource_validates_against_the_official_schemas(config, source):
    cfg = config if source == "test" else load_config(ROOT / "hera_config.yaml", environ={})
    rendered = events.resources(cfg)
    assert [r["kind"] for r in rendered] == ["EventSource", "Sensor"]
    for resource in rendered:
        assert _errors(_events_validator(resource["kind"]), resource) == []
    workflows = [t["template"]["argoWorkflow"]["source"]["resource"] for t in rendered[1]["spec"]["triggers"]]
    workflows += events.postsync_hook_resources(cfg)
    assert workflows
    for workflow in workflows:
        assert _errors(_workflow_validator(), workflow) == []
    broken = copy.deepcopy(rendered[0])
    del broken["spec"]["github"][events.event_name(MAIN_APP if source == "test" else 123456)]["webhook"]["url"]
    assert _errors(_events_validator("EventSource"), broken)  # the schema quirk is real: url is required


def test_trigger_parameters_follow_the_parameter_order_contract(sensor):
    for trigger in sensor["spec"]["triggers"]:
        body = trigger["template"]["argoWorkflow"]
        workflow = body["source"]["resource"]
        order = (
            CLEANUP_PARAMETERS
            if workflow["spec"]["workflowTemplateRef"]["name"] == CLEANUP_TEMPLATE
            else RELEASE_PARAMETERS
        )
        names = [p["name"] for p in workflow["spec"]["arguments"]["parameters"]]
        assert names == list(order)
        for param in body["parameters"]:
            index = int(param["dest"].split(".")[3])
            assert param["dest"] == f"spec.arguments.parameters.{index}.value"
            assert index < len(names)
        assert body["operation"] == "submit"
        assert trigger["template"]["conditions"] in {d["name"] for d in sensor["spec"]["dependencies"]}


def test_dependencies_are_anchored_and_bound_to_their_apps_event(config, sensor):
    deps = {d["name"]: d for d in sensor["spec"]["dependencies"]}
    assert sorted(deps) == sorted(
        [
            "hello_world_push",
            "hello_world_pull_request",
            "hello_world_pr_closed",
            "octo_docs_push",
            "octo_hello_push",
            "octo_hello_pull_request",
        ]
    )
    for dep in deps.values():
        assert dep["eventSourceName"] == config.events.event_source_name
        for f in dep["filters"]["data"]:
            if f["type"] == "string":
                assert all(v.removeprefix("(?i)").startswith("^") and v.endswith("$") for v in f["value"])
    assert deps["hello_world_push"]["eventName"] == f"app-{MAIN_APP}"
    assert deps["octo_hello_push"]["eventName"] == f"app-{OTHER_APP}"
    assert {"path": "headers.X-Github-Event.0", "type": "string", "value": ["^push$"]} in deps["octo_docs_push"][
        "filters"
    ]["data"]


def test_event_source_has_one_verified_endpoint_per_app_with_repositories_by_owner(config):
    source = events.event_source(config)
    github = source["spec"]["github"]
    assert sorted(github) == [f"app-{MAIN_APP}", f"app-{OTHER_APP}"]
    assert github[f"app-{OTHER_APP}"]["repositories"] == [{"owner": "Octocoders", "names": ["Hello-World", "docs"]}]
    assert github[f"app-{MAIN_APP}"]["repositories"] == [{"owner": "Codertocat", "names": ["Hello-World"]}]
    endpoints = {e["webhook"]["endpoint"] for e in github.values()}
    assert len(endpoints) == 2
    webhook_keys = next(s.keys for s in layout(config) if s.name == config.events.webhook_secret_name)
    for entry in github.values():
        assert entry["webhookSecret"]["name"] == config.events.webhook_secret_name
        assert entry["webhookSecret"]["key"] in webhook_keys
        assert entry["webhook"]["url"] and entry["webhook"]["port"] == str(config.events.webhook_port)
        assert sorted(entry["events"]) == entry["events"]
    assert github[f"app-{MAIN_APP}"]["events"] == ["pull_request", "push"]


def test_postsync_hook_is_an_annotated_release_workflow(config):
    hooks = events.postsync_hook_resources(config)
    assert [h["metadata"]["name"] for h in hooks] == ["hello-world-staging-postsync", "octo-hello-staging-postsync"]
    for hook in hooks:
        assert hook["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
        assert hook["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
        assert hook["spec"]["activeDeadlineSeconds"] > 0
        assert [p["name"] for p in hook["spec"]["arguments"]["parameters"]] == list(RELEASE_PARAMETERS)
    params = {p["name"]: p["value"] for p in hooks[1]["spec"]["arguments"]["parameters"]}
    assert params["installation-id"] == str(OTHER_INSTALLATION) and params["ref"] == "refs/heads/master"


def test_rendering_is_deterministic_whatever_the_registration_order(config):
    data = config.model_dump(by_alias=True)
    data["repoRegistrations"] = list(reversed(data["repoRegistrations"]))
    shuffled = Config.model_validate(data)
    dump = lambda c: yaml.safe_dump(events.resources(c) + events.postsync_hook_resources(c))  # noqa: E731
    assert dump(shuffled) == dump(config)
    assert events.resources(Config()) == []


def test_quote_meta_matches_go():
    assert events.quote_meta("refs/heads/release-1.0+x") == r"refs/heads/release-1\.0\+x"
    assert events.quote_meta("a[b](c)|d*e?f^g$h{i}\\") == r"a\[b\]\(c\)\|d\*e\?f\^g\$h\{i\}\\"
