"""Tests of the Argo Workflows server emulator itself, over real HTTP with requests and Hera's client.

The emulator models https://argo-workflows.readthedocs.io/en/latest/rest-api/ (tests/support/emulators/argo_server.py).
"""

import time
from typing import Any

import pytest
import requests
from hera.exceptions import NotFound
from hera.workflows import WorkflowsService
from hera.workflows.models import SubmitOpts, WorkflowSubmitRequest

from tests.support.emulators.argo_server import WORKFLOW_TEMPLATE_LABEL, ArgoServerEmulator, simple_template
from tests.support.emulators.argo_server_fixtures import ARGO_NAMESPACE, ARGO_TEST_TOKEN

AUTH = {"Authorization": f"Bearer {ARGO_TEST_TOKEN}"}
SHA = "3f2c9a1e4b5d6c7f8091a2b3c4d5e6f708192a3b"


@pytest.fixture
def argo(argo_server_emulator: ArgoServerEmulator) -> ArgoServerEmulator:
    argo_server_emulator.pending_seconds = 0.05
    argo_server_emulator.node_seconds = 0.05
    return argo_server_emulator


def api(emu: ArgoServerEmulator, path: str) -> str:
    return f"{emu.url}/api/v1/{path}"


def submit(emu: ArgoServerEmulator, template: str, **options: Any) -> requests.Response:
    body = {"resourceKind": "WorkflowTemplate", "resourceName": template, "submitOptions": options}
    return requests.post(api(emu, f"workflows/{ARGO_NAMESPACE}/submit"), json=body, headers=AUTH, timeout=5)


def follow(emu: ArgoServerEmulator, name: str) -> tuple[list[str], dict[str, Any]]:
    """Poll the workflow until it finishes; return the distinct phases seen in order and the final workflow."""
    phases: list[str] = []
    deadline = time.monotonic() + 5
    while True:
        response = requests.get(api(emu, f"workflows/{ARGO_NAMESPACE}/{name}"), headers=AUTH, timeout=5)
        assert response.status_code == 200, response.text
        workflow = response.json()
        phase = workflow["status"].get("phase", "")
        if phase and phase not in phases:
            phases.append(phase)
        if phase in ("Succeeded", "Failed", "Error"):
            return phases, workflow
        assert time.monotonic() < deadline, f"workflow {name} still {phase!r}"
        time.sleep(0.01)


def nodes_by_display_name(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["displayName"]: node for node in workflow["status"]["nodes"].values()}


def test_missing_wrong_or_unprivileged_tokens(argo: ArgoServerEmulator) -> None:
    argo.add_token("no-rbac-token", allowed=False)
    url = api(argo, f"workflow-templates/{ARGO_NAMESPACE}")

    missing = requests.get(url, timeout=5)
    wrong = requests.get(url, headers={"Authorization": "Bearer wrong-token"}, timeout=5)
    forbidden = requests.get(url, headers={"Authorization": "Bearer no-rbac-token"}, timeout=5)
    other_namespace = requests.get(api(argo, "workflow-templates/kube-system"), headers=AUTH, timeout=5)

    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.json() == {"code": 16, "message": ArgoServerEmulator.missing_token_message}
    assert forbidden.status_code == 403 and forbidden.json()["code"] == 7
    assert 'cannot list resource "workflowtemplates"' in forbidden.json()["message"]
    assert other_namespace.status_code == 403
    assert "wrong-token" not in repr(argo.calls)
    assert argo.invalid_requests == []


def test_submit_creates_a_workflow_that_progresses_to_succeeded(argo: ArgoServerEmulator) -> None:
    argo.add_template(simple_template("release", parameters={"sha": None}, mutex="release-lock"))

    response = submit(argo, "release", labels=f"app=guestbook,sha={SHA}", parameters=[f"sha={SHA}"])
    created = response.json()
    phases, final = follow(argo, created["metadata"]["name"])

    assert response.status_code == 200
    assert created["metadata"]["generateName"] == "release-"
    assert created["metadata"]["name"].startswith("release-") and len(created["metadata"]["name"]) == 13
    assert created["metadata"]["labels"] == {WORKFLOW_TEMPLATE_LABEL: "release", "app": "guestbook", "sha": SHA}
    assert created["spec"] == {
        "workflowTemplateRef": {"name": "release"},
        "arguments": {"parameters": [{"name": "sha", "value": SHA}]},
    }
    assert phases == ["Pending", "Running", "Succeeded"]
    nodes = nodes_by_display_name(final)
    assert nodes["prepare"]["type"] == "Pod" and nodes["publish"]["type"] == "Pod"
    assert {n["phase"] for n in nodes.values()} == {"Succeeded"}
    assert final["status"]["progress"] == "2/2" and "finishedAt" in final["status"]
    assert final["metadata"]["labels"]["workflows.argoproj.io/completed"] == "true"
    assert argo.invalid_requests == []


def test_pending_workflow_reports_the_mutex_it_waits_for(argo: ArgoServerEmulator) -> None:
    argo.add_template(simple_template("release", mutex="release-lock"))
    argo.workflow_timeline = [(0, "Pending")]

    name = submit(argo, "release").json()["metadata"]["name"]
    workflow = argo.workflow(name)

    assert workflow["status"]["phase"] == "Pending"
    assert workflow["status"]["message"] == "Waiting for argo/Mutex/release-lock lock. Lock status: 0/1"
    assert "nodes" not in workflow["status"]


@pytest.mark.parametrize("outcome", ["Failed", "Error"])
def test_next_outcome_fails_the_running_node_with_a_message(argo: ArgoServerEmulator, outcome: str) -> None:
    argo.add_template(simple_template("release", steps=("prepare", "publish", "notify"), dag=True))
    argo.next_outcome = outcome
    argo.failure_message = "Error (exit code 2)"

    failed_name = submit(argo, "release").json()["metadata"]["name"]
    next_name = submit(argo, "release").json()["metadata"]["name"]
    phases, failed = follow(argo, failed_name)
    _, succeeded = follow(argo, next_name)

    nodes = nodes_by_display_name(failed)
    assert phases[-1] == outcome
    assert nodes["notify"]["phase"] == outcome and nodes["notify"]["message"] == "Error (exit code 2)"
    assert nodes["prepare"]["phase"] == "Succeeded"
    assert nodes[failed_name]["type"] == "DAG"
    assert failed["status"]["message"] == f"child '{nodes['notify']['id']}' failed"
    assert succeeded["status"]["phase"] == "Succeeded"  # next_outcome applies to one workflow only


def test_custom_timeline_can_fail_before_later_nodes_start(argo: ArgoServerEmulator) -> None:
    argo.add_template(simple_template("release", steps=("prepare", "publish")))
    argo.workflow_timeline = [(0, "Pending"), (0.02, "Running"), (0.02, "Failed", "OOMKilled (exit code 137)")]

    _, final = follow(argo, submit(argo, "release").json()["metadata"]["name"])

    nodes = nodes_by_display_name(final)
    assert nodes["prepare"]["phase"] == "Failed" and nodes["prepare"]["message"] == "OOMKilled (exit code 137)"
    assert "publish" not in nodes


def test_submitting_an_unknown_template_is_404_not_found(argo: ArgoServerEmulator) -> None:
    response = submit(argo, "no-such-template")

    assert response.status_code == 404
    assert response.json() == {"code": 5, "message": 'workflowtemplates.argoproj.io "no-such-template" not found'}
    assert argo.workflows() == []


def test_submit_refuses_a_missing_parameter_and_a_bad_label(argo: ArgoServerEmulator) -> None:
    argo.add_template(simple_template("release", parameters={"sha": None}))

    missing = submit(argo, "release")
    bad_label = submit(argo, "release", labels="branch=feature/login", parameters=[f"sha={SHA}"])

    assert missing.status_code == 400 and missing.json()["message"] == "spec.arguments.sha.value is required"
    assert bad_label.status_code == 400 and "metadata.labels: Invalid value" in bad_label.json()["message"]
    assert argo.workflows() == []


def test_lint_rejects_an_invalid_template_with_the_first_schema_error(argo: ArgoServerEmulator) -> None:
    invalid = simple_template("release")
    invalid["spec"]["templates"][1]["container"]["command"] = "python"
    valid = simple_template("release")
    valid["spec"]["templates"][1]["retryStrategy"] = {"limit": 10}  # IntOrString as an integer is fine
    url = api(argo, f"workflow-templates/{ARGO_NAMESPACE}/lint")

    rejected = requests.post(url, json={"template": invalid}, headers=AUTH, timeout=5)
    accepted = requests.post(url, json={"template": valid}, headers=AUTH, timeout=5)

    assert rejected.status_code == 400 and rejected.json()["code"] == 3
    assert rejected.json()["message"] == "spec.templates[1].container.command: 'python' is not of type 'array'"
    assert accepted.status_code == 200 and accepted.json()["spec"] == valid["spec"]
    assert argo.invalid_requests == []  # linting an invalid template is a valid request


def test_workflow_lint_and_create_with_inline_templates(argo: ArgoServerEmulator) -> None:
    manifest = simple_template("unused", steps=("only",))
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "inline-"},
        "spec": manifest["spec"],
    }

    linted = requests.post(
        api(argo, f"workflows/{ARGO_NAMESPACE}/lint"), json={"workflow": workflow}, headers=AUTH, timeout=5
    )
    dry_run = requests.post(
        api(argo, f"workflows/{ARGO_NAMESPACE}"),
        json={"workflow": workflow, "serverDryRun": True},
        headers=AUTH,
        timeout=5,
    )
    created = requests.post(
        api(argo, f"workflows/{ARGO_NAMESPACE}"), json={"workflow": workflow}, headers=AUTH, timeout=5
    )
    _, final = follow(argo, created.json()["metadata"]["name"])

    assert linted.status_code == 200 and dry_run.status_code == 200
    assert len(argo.workflows()) == 1
    assert final["status"]["phase"] == "Succeeded"
    assert nodes_by_display_name(final)["only"]["templateScope"].startswith("local/")


def test_template_create_get_list_update_with_resource_versions(argo: ArgoServerEmulator) -> None:
    base = api(argo, f"workflow-templates/{ARGO_NAMESPACE}")
    template = simple_template("release")

    created = requests.post(base, json={"template": template}, headers=AUTH, timeout=5)
    duplicate = requests.post(base, json={"template": template}, headers=AUTH, timeout=5)
    listed = requests.get(base, params={"namePattern": "rel"}, headers=AUTH, timeout=5)
    current = requests.get(f"{base}/release", headers=AUTH, timeout=5).json()
    no_version = requests.put(f"{base}/release", json={"template": template}, headers=AUTH, timeout=5)
    updated = requests.put(f"{base}/release", json={"template": current}, headers=AUTH, timeout=5)
    stale = requests.put(f"{base}/release", json={"template": current}, headers=AUTH, timeout=5)
    missing = requests.get(f"{base}/ghost", headers=AUTH, timeout=5)

    assert created.status_code == 200 and created.json()["metadata"]["namespace"] == ARGO_NAMESPACE
    assert duplicate.status_code == 409 and duplicate.json()["code"] == 6
    assert [t["metadata"]["name"] for t in listed.json()["items"]] == ["release"]
    assert no_version.status_code == 400 and "resourceVersion" in no_version.json()["message"]
    assert updated.status_code == 200 and updated.json()["metadata"]["generation"] == 2
    assert stale.status_code == 409 and "the object has been modified" in stale.json()["message"]
    assert missing.status_code == 404 and missing.json()["code"] == 5
    assert argo.invalid_requests == []


def test_hera_client_submits_and_reads_back(argo: ArgoServerEmulator) -> None:
    argo.add_template(simple_template("release", parameters={"sha": None}))
    service = WorkflowsService(host=argo.url, token=ARGO_TEST_TOKEN, namespace=ARGO_NAMESPACE)

    workflow = service.submit_workflow(
        WorkflowSubmitRequest(
            resource_kind="WorkflowTemplate",
            resource_name="release",
            submit_options=SubmitOpts(labels="app=guestbook", parameters=[f"sha={SHA}"]),
        )
    )
    fetched = service.get_workflow(workflow.metadata.name)
    with pytest.raises(NotFound):
        service.get_workflow("no-such-workflow")

    assert fetched.metadata.labels["app"] == "guestbook"
    assert fetched.status is not None and fetched.status.phase in ("Pending", "Running", "Succeeded")
    assert argo.invalid_requests == []


def test_requests_outside_the_swagger_subset_are_recorded(argo: ArgoServerEmulator) -> None:
    argo.add_template(simple_template("release"))
    name = submit(argo, "release").json()["metadata"]["name"]

    unknown_param = requests.get(
        api(argo, f"workflows/{ARGO_NAMESPACE}/{name}"), params={"watch": "true"}, headers=AUTH, timeout=5
    )
    bad_body = requests.post(
        api(argo, f"workflows/{ARGO_NAMESPACE}/submit"), json={"resourceName": 7}, headers=AUTH, timeout=5
    )
    unknown_field = submit(argo, "release", label="app=x")  # the field is "labels"; the real server ignores it
    unknown_path = requests.delete(api(argo, f"workflows/{ARGO_NAMESPACE}/{name}"), headers=AUTH, timeout=5)

    assert unknown_param.status_code == 400 and unknown_param.json()["code"] == 3
    assert bad_body.status_code == 400
    assert unknown_field.status_code == 200
    assert unknown_path.status_code == 405
    reasons = [p.reason for p in argo.invalid_requests]
    assert len(reasons) == 4
    assert "unknown query parameter 'watch'" in reasons[0]
    assert "resourceName: 7 is not of type 'string'" in reasons[1]
    assert "'label' was unexpected" in reasons[2]


def test_lists_filter_by_label_and_page_with_continue(argo: ArgoServerEmulator) -> None:
    argo.add_template(simple_template("release"))
    for index in range(5):
        submit(argo, "release", labels=f"team=a,n=n{index}")
    submit(argo, "release", labels="team=b")

    seen, token, pages = [], "", 0
    while True:
        query = {"listOptions.labelSelector": "team=a", "listOptions.limit": "2"}
        if token:
            query["listOptions.continue"] = token
        page = requests.get(api(argo, f"workflows/{ARGO_NAMESPACE}"), params=query, headers=AUTH, timeout=5).json()
        pages += 1
        seen += [w["metadata"]["labels"]["n"] for w in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break

    assert (seen, pages) == (["n0", "n1", "n2", "n3", "n4"], 3)
    expired = requests.get(
        api(argo, f"workflows/{ARGO_NAMESPACE}"), params={"listOptions.continue": "not-ours"}, headers=AUTH, timeout=5
    )
    assert expired.status_code >= 400
    # Without an archive the server answers an empty list, not an error (persist/sqldb/null_workflow_archive.go).
    archived = requests.get(
        api(argo, "archived-workflows"), params={"namespace": ARGO_NAMESPACE}, headers=AUTH, timeout=5
    )
    assert archived.status_code == 200 and archived.json().get("items", []) == []
    assert argo.invalid_requests == []


def test_terminate_fails_the_run_without_its_exit_handler(argo: ArgoServerEmulator) -> None:
    argo.add_template(simple_template("release", ("a", "b")))
    argo.workflow_timeline = [(0, "Pending"), (0.01, "Running")]
    name = submit(argo, "release").json()["metadata"]["name"]
    time.sleep(0.05)

    argo.terminate(name)
    workflow = requests.get(api(argo, f"workflows/{ARGO_NAMESPACE}/{name}"), headers=AUTH, timeout=5).json()

    assert workflow["spec"]["shutdown"] == "Terminate"
    assert (workflow["status"]["phase"], workflow["status"]["message"]) == (
        "Failed",
        "Stopped with strategy 'Terminate'",
    )
    assert not any(n["name"].endswith(".onExit") for n in workflow["status"]["nodes"].values())
    argo.delete_workflow(name)
    assert requests.get(api(argo, f"workflows/{ARGO_NAMESPACE}/{name}"), headers=AUTH, timeout=5).status_code == 404
