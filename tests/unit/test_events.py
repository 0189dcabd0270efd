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
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"  # the X-GitHub-Delivery of GitHub's docs
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
        github_event_data(event, payload, delivery=DELIVERY),
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

MAIN_PUSH = f"app-{MAIN_APP}-push-master"  # one trigger per App and default branch, not per repository
MAIN_PR = f"app-{MAIN_APP}-pull-request"
MAIN_CLOSED = f"app-{MAIN_APP}-pr-closed"
OTHER_PUSH_MAIN, OTHER_PUSH_MASTER = f"app-{OTHER_APP}-push-main", f"app-{OTHER_APP}-push-master"


def _release_name(delivery: str = DELIVERY) -> str:
    return f"release-data-prep-{delivery}"


@pytest.mark.parametrize("name", ["push_default-branch_1.json", "push_default-branch_2.json"])
def test_push_to_default_branch_fires_release_with_after_sha(sensor, name):
    result = _deliver(sensor, MAIN_APP, _event_of(name), _payload(name))
    assert result.triggers == [MAIN_PUSH]
    fired = result.fired[0]
    assert fired.operation == "patch"  # get, create when missing, else a no-op merge patch
    assert fired.resource["metadata"]["name"] == _release_name()
    assert "generateName" not in fired.resource["metadata"]
    assert fired.resource["spec"]["workflowTemplateRef"] == {"name": "release-data-prep"}
    # Installation and data path come from the registration in the pods, not from the Sensor.
    assert fired.arguments == [
        ("repo", "Codertocat/Hello-World"),
        ("sha", PUSH_SHA),
        ("event", "push"),
        ("pr-number", ""),
        ("ref", "refs/heads/master"),
        ("installation-id", ""),
        ("app-id", str(MAIN_APP)),
        ("data-path", ""),
        ("deploy", "true"),
        ("s3-secret", ""),
    ]


def test_a_redelivery_names_the_same_workflow_and_another_delivery_another(sensor):
    payload = _payload("push_default-branch_1.json")
    first = _deliver(sensor, MAIN_APP, "push", payload).fired[0].resource
    again = _deliver(sensor, MAIN_APP, "push", payload).fired[0].resource
    other = evaluate(
        sensor, "github", events.event_name(MAIN_APP), github_event_data("push", payload, delivery="d" * 8 + "-1")
    ).fired[0]
    assert first["metadata"]["name"] == again["metadata"]["name"] == _release_name()
    assert other.resource["metadata"]["name"] == _release_name("d" * 8 + "-1")
    assert len(_release_name()) <= 63  # a label value (workflows.argoproj.io/workflow) on every pod


def test_tag_deletion_fires_nothing(sensor):
    result = _deliver(sensor, MAIN_APP, "push", _payload("push_tag-deleted_1.json"))
    assert result.triggers == []


def test_deleting_the_default_branch_fires_nothing(sensor):
    payload = _payload("push_tag-deleted_1.json")
    payload["ref"] = "refs/heads/master"
    assert _deliver(sensor, MAIN_APP, "push", payload).triggers == []
    payload["deleted"] = False  # the same push without deletion would fire: the deleted filter is what stops it
    assert _deliver(sensor, MAIN_APP, "push", payload).triggers == [MAIN_PUSH]


@pytest.mark.parametrize(
    "ref", ["refs/heads/feature", "refs/heads/master-old", "refs/heads/old-master", "refs/tags/master"]
)
def test_push_to_another_branch_fires_nothing(sensor, ref):
    payload = _payload("push_default-branch_1.json")
    payload["ref"] = ref
    assert _deliver(sensor, MAIN_APP, "push", payload).triggers == []


def test_each_repository_fires_only_for_its_own_default_branch(sensor):
    # Under one App, Octocoders/Hello-World's default branch is master and Octocoders/docs' is main.
    for repo, ref, expected in [
        ("Octocoders/Hello-World", "refs/heads/master", [OTHER_PUSH_MASTER]),
        ("Octocoders/Hello-World", "refs/heads/main", []),
        ("Octocoders/docs", "refs/heads/main", [OTHER_PUSH_MAIN]),
        ("Octocoders/docs", "refs/heads/master", []),
    ]:
        payload = _as(_payload("push_default-branch_1.json"), repo)
        payload["ref"] = ref
        assert _deliver(sensor, OTHER_APP, "push", payload).triggers == expected, (repo, ref)


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
    assert result.triggers == [MAIN_PR]
    assert result.fired[0].parameters == {
        "repo": "Codertocat/Hello-World",
        "sha": HEAD_SHA,
        "event": "pull_request",
        "pr-number": "2",
        "ref": "refs/pull/2/head",
        "installation-id": "",
        "app-id": str(MAIN_APP),
        "data-path": "",
        "deploy": "true",
        "s3-secret": "",
    }


def _from_fork(payload: dict, fork: str = "attacker/Hello-World") -> dict:
    forked = copy.deepcopy(payload)
    forked["pull_request"]["head"]["repo"]["full_name"] = fork
    forked["pull_request"]["head"]["repo"]["fork"] = True
    forked["pull_request"]["head"]["label"] = f"{fork.split('/')[0]}:changes"
    return forked


@pytest.mark.parametrize("name", ["pull_request_opened_1.json", "pull_request_synchronize_1.json"])
def test_a_pull_request_from_a_fork_fires_nothing(sensor, name):
    payload = _payload(name)
    assert payload["pull_request"]["head"]["repo"]["full_name"] == payload["repository"]["full_name"]
    assert _deliver(sensor, MAIN_APP, "pull_request", _from_fork(payload)).triggers == []
    # Not even from a fork that is itself registered, nor with only the case changed by the attacker.
    assert _deliver(sensor, MAIN_APP, "pull_request", _from_fork(payload, "Octocoders/Hello-World")).triggers == []
    assert _deliver(sensor, MAIN_APP, "pull_request", _from_fork(payload, "codertocat/hello-world")).triggers == []
    deleted = copy.deepcopy(payload)
    deleted["pull_request"]["head"]["repo"] = None  # GitHub's payload once the fork is deleted
    result = _deliver(sensor, MAIN_APP, "pull_request", deleted)
    assert result.triggers == [] and "does not exist" in result.errors[f"app_{MAIN_APP}_pull_request"]


def test_closing_a_fork_pull_request_still_retires_its_preview(sensor):
    payload = _from_fork(_payload("pull_request_closed_1.json"))
    assert _deliver(sensor, MAIN_APP, "pull_request", payload).triggers == [MAIN_CLOSED]


@pytest.mark.parametrize(
    "action,fires", [("reopened", True), ("edited", False), ("labeled", False), ("unsynchronize", False)]
)
def test_only_release_actions_fire(sensor, action, fires):
    payload = _payload("pull_request_opened_1.json")
    payload["action"] = action
    expected = [MAIN_PR] if fires else []
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
    assert result.triggers == [MAIN_CLOSED]
    fired = result.fired[0]
    assert fired.resource["spec"]["workflowTemplateRef"] == {"name": CLEANUP_TEMPLATE}
    assert fired.resource["metadata"]["name"] == f"{CLEANUP_TEMPLATE}-{DELIVERY}"
    assert fired.arguments == [
        ("repo", "Codertocat/Hello-World"),
        ("pr-number", "2"),
        ("installation-id", ""),
        ("app-id", str(MAIN_APP)),
    ]


def test_closed_pull_request_without_previews_fires_nothing(sensor):
    payload = _as(_payload("pull_request_closed_2.json"), "Octocoders/Hello-World")
    payload["pull_request"]["head"]["repo"]["full_name"] = "Octocoders/Hello-World"
    assert _deliver(sensor, OTHER_APP, "pull_request", payload).triggers == []
    opened = _as(_payload("pull_request_opened_2.json"), "Octocoders/Hello-World")
    opened["pull_request"]["head"]["repo"]["full_name"] = "Octocoders/Hello-World"
    assert _deliver(sensor, OTHER_APP, "pull_request", opened).triggers == [f"app-{OTHER_APP}-pull-request"]


def test_each_app_gets_its_own_trigger_and_the_payloads_installation_is_ignored(sensor):
    payload = _as(_payload("push_default-branch_1.json"), "Octocoders/Hello-World")
    result = _deliver(sensor, OTHER_APP, "push", payload)
    assert result.triggers == [OTHER_PUSH_MASTER]
    params = result.fired[0].parameters
    assert (params["installation-id"], params["app-id"]) == ("", str(OTHER_APP))
    assert params["repo"] == "Octocoders/Hello-World"
    assert payload["installation"]["id"] == 1  # the payload's installation is never passed on


def test_registration_without_pull_request_events_ignores_them(sensor):
    payload = _as(_payload("pull_request_opened_2.json"), "Octocoders/docs")
    payload["pull_request"]["head"]["repo"]["full_name"] = "Octocoders/docs"
    assert _deliver(sensor, OTHER_APP, "pull_request", payload).triggers == []
    push = _as(_payload("push_default-branch_1.json"), "Octocoders/docs")
    push["ref"] = "refs/heads/main"
    assert _deliver(sensor, OTHER_APP, "push", push).triggers == [OTHER_PUSH_MAIN]


@pytest.mark.parametrize(
    "full_name",
    ["Codertocat/Hello-World-2", "Codertocat/Hello", "xCodertocat/Hello-World", "acme/data", "Codertocat/Hello.World"],
)
def test_unregistered_repository_fires_nothing(sensor, full_name):
    for name in ["push_default-branch_1.json", "pull_request_opened_1.json", "pull_request_closed_1.json"]:
        payload = _as(_payload(name), full_name)
        if "pull_request" in payload:
            payload["pull_request"]["head"]["repo"]["full_name"] = full_name
        assert _deliver(sensor, MAIN_APP, _event_of(name), payload).triggers == []


def test_repository_match_ignores_case_like_github(sensor):
    payload = _as(_payload("push_default-branch_1.json"), "codertocat/hello-world")
    assert _deliver(sensor, MAIN_APP, "push", payload).triggers == [MAIN_PUSH]


def test_delivery_to_another_apps_endpoint_fires_nothing(sensor):
    assert _deliver(sensor, OTHER_APP, "push", _payload("push_default-branch_1.json")).triggers == []


@pytest.mark.parametrize("header", ["create", "ping", "pull_request", "push "])
def test_event_header_is_checked(sensor, header):
    assert _deliver(sensor, MAIN_APP, header, _payload("push_default-branch_1.json")).triggers == []


def test_sensor_does_not_grow_per_registration():
    def sized(count: int) -> tuple[int, int, int]:
        regs = [
            {
                "name": f"repo-{i}",
                "repoUrl": f"https://github.com/org-{i % 7}/repo-{i}",
                "installationId": 1000 + i % 7,
                **({"defaultBranch": "master"} if i % 3 == 0 else {}),
            }
            for i in range(count)
        ]
        built = events.sensor(Config.model_validate({"github": {"appId": MAIN_APP}, "repoRegistrations": regs}))
        size = len(json.dumps(built, separators=(",", ":")))
        return len(built["spec"]["dependencies"]), len(built["spec"]["triggers"]), size

    deps_10, triggers_10, size_10 = sized(10)
    deps_1000, triggers_1000, size_1000 = sized(1000)
    assert (deps_10, triggers_10) == (deps_1000, triggers_1000) == (3, 3)  # push main, push master, PR
    assert size_1000 - size_10 < 990 * 40  # only the names in the alternations grow (~30 bytes each)
    assert size_1000 < 256 * 1024


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
    workflows = [t["template"]["k8s"]["source"]["resource"] for t in rendered[1]["spec"]["triggers"]]
    workflows += events.postsync_hook_resources(cfg)
    assert workflows
    for workflow in workflows:
        assert _errors(_workflow_validator(), workflow) == []
    broken = copy.deepcopy(rendered[0])
    del broken["spec"]["github"][events.event_name(MAIN_APP if source == "test" else 123456)]["webhook"]["url"]
    assert _errors(_events_validator("EventSource"), broken)  # the schema quirk is real: url is required


def test_trigger_parameters_follow_the_parameter_order_contract(sensor):
    for trigger in sensor["spec"]["triggers"]:
        body = trigger["template"]["k8s"]
        workflow = body["source"]["resource"]
        order = (
            CLEANUP_PARAMETERS
            if workflow["spec"]["workflowTemplateRef"]["name"] == CLEANUP_TEMPLATE
            else RELEASE_PARAMETERS
        )
        names = [p["name"] for p in workflow["spec"]["arguments"]["parameters"]]
        assert names == list(order)
        name_params = [p for p in body["parameters"] if p["dest"] == "metadata.name"]
        assert name_params == [
            {
                "src": {"dependencyName": trigger["template"]["conditions"], "dataKey": "headers.X-Github-Delivery.0"},
                "dest": "metadata.name",
                "operation": "append",
            }
        ]
        for param in body["parameters"]:
            if param in name_params:
                continue
            index = int(param["dest"].split(".")[3])
            assert param["dest"] == f"spec.arguments.parameters.{index}.value"
            assert index < len(names)
        assert body["operation"] == "patch"
        assert trigger["template"]["conditions"] in {d["name"] for d in sensor["spec"]["dependencies"]}


def test_dependencies_are_anchored_and_bound_to_their_apps_event(config, sensor):
    deps = {d["name"]: d for d in sensor["spec"]["dependencies"]}
    assert sorted(deps) == sorted(
        [
            f"app_{MAIN_APP}_push_master",
            f"app_{MAIN_APP}_pull_request",
            f"app_{MAIN_APP}_pr_closed",
            f"app_{OTHER_APP}_push_main",
            f"app_{OTHER_APP}_push_master",
            f"app_{OTHER_APP}_pull_request",
        ]
    )
    for dep in deps.values():
        assert dep["eventSourceName"] == config.events.event_source_name
        for f in dep["filters"]["data"]:
            if f["type"] == "string":
                assert all(v.removeprefix("(?i)").startswith("^") and v.endswith("$") for v in f["value"])
    assert deps[f"app_{MAIN_APP}_push_master"]["eventName"] == f"app-{MAIN_APP}"
    assert deps[f"app_{OTHER_APP}_push_master"]["eventName"] == f"app-{OTHER_APP}"
    repos = deps[f"app_{OTHER_APP}_push_master"]["filters"]["data"][1]
    assert repos == {
        "path": "body.repository.full_name",
        "type": "string",
        "value": ["(?i)^(?:octocoders/hello-world)$"],
    }
    assert deps[f"app_{OTHER_APP}_pull_request"]["filters"]["data"][1]["value"] == ["(?i)^(?:octocoders/hello-world)$"]
    assert {"path": "headers.X-Github-Event.0", "type": "string", "value": ["^push$"]} in deps[
        f"app_{OTHER_APP}_push_main"
    ]["filters"]["data"]


def test_branch_names_that_slug_alike_get_distinct_dependencies():
    assert events.dependency_name(1, "push", "main") == "app_1_push_main"
    names = {events.dependency_name(1, "push", b) for b in ["Main", "main", "release/1.0", "release-1.0"]}
    assert len(names) == 4 and all(n.replace("_", "").isalnum() for n in names)


def test_repository_pattern_is_one_anchored_case_insensitive_alternation():
    pattern = events.repository_pattern(["acme/b.c", "Acme/A", "acme/a"])
    assert pattern == r"(?i)^(?:acme/a|acme/b\.c)$"


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


def test_a_registration_with_its_own_s3_secret_gets_its_own_trigger_passing_it():
    config = Config.model_validate(
        {
            "github": {"appId": MAIN_APP},
            "repoRegistrations": [
                {"name": "shared", "repoUrl": "https://github.com/Codertocat/Hello-World", "defaultBranch": "master"},
                {
                    "name": "own",
                    "repoUrl": "https://github.com/Codertocat/Private",
                    "defaultBranch": "master",
                    "s3CredentialsSecret": "s3-codertocat-private",
                },
            ],
        }
    )
    built = events.sensor(config)
    push = _payload("push_default-branch_1.json")
    shared = _deliver(built, MAIN_APP, "push", push).fired
    own = _deliver(built, MAIN_APP, "push", _as(push, "Codertocat/Private")).fired
    assert [f.parameters["s3-secret"] for f in shared] == [""]  # the shared s3.credentialsSecret
    assert [f.parameters["s3-secret"] for f in own] == ["s3-codertocat-private"]
    opened = _as(_payload("pull_request_opened_1.json"), "Codertocat/Private")
    opened["pull_request"]["head"]["repo"]["full_name"] = "Codertocat/Private"
    assert [f.parameters["s3-secret"] for f in _deliver(built, MAIN_APP, "pull_request", opened).fired] == [
        "s3-codertocat-private"
    ]
    assert len(built["spec"]["dependencies"]) == 4  # push and PR, per Secret: grows per distinct Secret only
