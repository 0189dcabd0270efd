"""Tests of the Argo CD API server emulator itself, over real HTTP with requests.

The emulator (tests/support/emulators/argocd.py) models
https://argo-cd.readthedocs.io/en/stable/developer-guide/api-docs/.
"""

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.emulators.argocd import (
    ArgoCDEmulator,
    degraded_timeline,
    flapping_timeline,
    rollout_timeline,
    superseded_timeline,
    sync_failed_timeline,
)
from tests.support.emulators.argocd_fixtures import ARGOCD_TEST_TOKEN

AUTH = {"Authorization": f"Bearer {ARGOCD_TEST_TOKEN}"}
NEW_SHA = "3f2c9a1e4b5d6c7f8091a2b3c4d5e6f708192a3b"
NEWER_SHA = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807"


def summary(app: dict[str, Any]) -> tuple[str, str, str, str | None]:
    status = app["status"]
    return (
        status["sync"]["status"],
        status["sync"].get("revision") or status["sync"]["revisions"][0],
        status["health"]["status"],
        status.get("operationState", {}).get("phase"),
    )


def open_stream(emu: ArgoCDEmulator, **params: str) -> tuple[requests.Response, Iterator[dict[str, Any]]]:
    response = requests.get(
        f"{emu.url}/api/v1/stream/applications", params=params, headers=AUTH, stream=True, timeout=5
    )
    assert response.status_code == 200, response.text
    return response, (json.loads(line) for line in response.iter_lines() if line)


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_missing_or_wrong_token_is_401_in_grpc_gateway_shape(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("guestbook")
    url = f"{argocd_emulator.url}/api/v1/applications/guestbook"

    missing = requests.get(url, timeout=5)
    wrong = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=5)

    assert missing.status_code == 401
    assert missing.json() == {"error": "no session information", "code": 16, "message": "no session information"}
    assert wrong.status_code == 401
    assert wrong.json()["code"] == 16 and wrong.json()["message"].startswith("invalid session")
    assert "not-the-token" not in repr(argocd_emulator.calls)
    assert [c.status for c in argocd_emulator.calls] == [401, 401]
    assert argocd_emulator.invalid_requests == []


def test_token_without_permission_gets_403_on_get_and_an_empty_list(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("guestbook")
    argocd_emulator.add_token("no-rbac-token", allowed=False)
    headers = {"Authorization": "Bearer no-rbac-token"}

    get = requests.get(f"{argocd_emulator.url}/api/v1/applications/guestbook", headers=headers, timeout=5)
    listed = requests.get(f"{argocd_emulator.url}/api/v1/applications", headers=headers, timeout=5)

    assert get.status_code == 403
    assert get.json() == {"error": "permission denied", "code": 7, "message": "permission denied"}
    assert listed.status_code == 200 and listed.json()["items"] == []


def test_missing_app_is_403_unless_project_is_given(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("guestbook", project="team-a")
    base = f"{argocd_emulator.url}/api/v1/applications"

    missing = requests.get(f"{base}/ghost", headers=AUTH, timeout=5)
    missing_in_project = requests.get(f"{base}/ghost", params={"project": "team-a"}, headers=AUTH, timeout=5)
    other_project = requests.get(f"{base}/guestbook", params={"project": "team-b"}, headers=AUTH, timeout=5)
    found = requests.get(f"{base}/guestbook", params={"project": "team-a"}, headers=AUTH, timeout=5)

    assert missing.status_code == 403 and missing.json()["message"] == "permission denied"
    assert missing_in_project.status_code == 404
    assert missing_in_project.json()["message"] == 'applications.argoproj.io "ghost" not found'
    assert other_project.status_code == 404
    assert found.status_code == 200 and found.json()["spec"]["project"] == "team-a"
    assert argocd_emulator.invalid_requests == []


def test_list_filters_by_name_and_project(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("guestbook")
    argocd_emulator.add_app("billing", project="payments")
    url = f"{argocd_emulator.url}/api/v1/applications"

    by_name = requests.get(url, params={"name": "billing"}, headers=AUTH, timeout=5).json()
    by_project = requests.get(url, params={"projects": "default"}, headers=AUTH, timeout=5).json()

    assert [a["metadata"]["name"] for a in by_name["items"]] == ["billing"]
    assert [a["metadata"]["name"] for a in by_project["items"]] == ["guestbook"]


def test_refresh_is_recorded_and_bumps_reconciled_version(argocd_emulator: ArgoCDEmulator) -> None:
    before = argocd_emulator.add_app("guestbook")
    url = f"{argocd_emulator.url}/api/v1/applications/guestbook"

    hard = requests.get(url, params={"refresh": "hard"}, headers=AUTH, timeout=5)
    requests.get(url, params={"refresh": "normal"}, headers=AUTH, timeout=5)
    plain = requests.get(url, headers=AUTH, timeout=5)

    assert argocd_emulator.refresh_requests == [("guestbook", "hard"), ("guestbook", "normal")]
    assert int(hard.json()["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert plain.json()["metadata"]["resourceVersion"] != hard.json()["metadata"]["resourceVersion"]
    assert argocd_emulator.invalid_requests == []


def test_stream_sends_added_then_modified_on_change(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("guestbook")
    argocd_emulator.add_app("other")
    response, events = open_stream(argocd_emulator, name="guestbook")
    with response:
        added = next(events)["result"]
        argocd_emulator.set_state("guestbook", sync="OutOfSync", revision=NEW_SHA)
        modified = next(events)["result"]

    assert response.headers["Transfer-Encoding"] == "chunked"
    assert added["type"] == "ADDED" and added["application"]["metadata"]["name"] == "guestbook"
    assert modified["type"] == "MODIFIED"
    assert summary(modified["application"])[:2] == ("OutOfSync", NEW_SHA)
    assert int(modified["application"]["metadata"]["resourceVersion"]) > int(
        added["application"]["metadata"]["resourceVersion"]
    )
    assert argocd_emulator.stream_connections == 1
    assert argocd_emulator.invalid_requests == []


def test_stream_follows_a_rollout_timeline_to_healthy(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("guestbook")
    response, events = open_stream(argocd_emulator, name="guestbook")
    with response:
        assert next(events)["result"]["type"] == "ADDED"
        argocd_emulator.play("guestbook", rollout_timeline(NEW_SHA, step_s=0.01))
        seen = [summary(next(events)["result"]["application"]) for _ in range(4)]

    assert seen == [
        ("OutOfSync", NEW_SHA, "Healthy", "Succeeded"),  # the previous sync's operation state is still shown
        ("OutOfSync", NEW_SHA, "Healthy", "Running"),
        ("Synced", NEW_SHA, "Progressing", "Succeeded"),
        ("Synced", NEW_SHA, "Healthy", "Succeeded"),
    ]
    app = argocd_emulator.app("guestbook")
    assert app["status"]["operationState"]["syncResult"]["revision"] == NEW_SHA
    assert app["status"]["history"][-1]["revision"] == NEW_SHA


def test_dropped_stream_breaks_mid_body_and_a_reconnect_gets_current_state(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("guestbook")
    argocd_emulator.drop_streams_after(1)
    response, events = open_stream(argocd_emulator, name="guestbook")
    with response:
        first = next(events)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            next(events)
    argocd_emulator.set_state("guestbook", sync="OutOfSync", revision=NEW_SHA)

    response, events = open_stream(argocd_emulator, name="guestbook")
    with response:
        again = next(events)["result"]

    assert first["result"]["type"] == "ADDED"
    assert again["type"] == "ADDED" and summary(again["application"])[1] == NEW_SHA
    assert argocd_emulator.stream_connections == 2


@pytest.mark.parametrize(("status", "code"), [(501, 12), (404, 5)])
def test_unavailable_stream_answers_an_error_so_clients_poll(
    argocd_emulator: ArgoCDEmulator, status: int, code: int
) -> None:
    argocd_emulator.add_app("guestbook")
    argocd_emulator.stream_unavailable = True
    argocd_emulator.stream_unavailable_status = status

    stream = requests.get(
        f"{argocd_emulator.url}/api/v1/stream/applications", params={"name": "guestbook"}, headers=AUTH, timeout=5
    )
    polled = requests.get(f"{argocd_emulator.url}/api/v1/applications/guestbook", headers=AUTH, timeout=5)

    assert stream.status_code == status and stream.json()["code"] == code
    assert polled.status_code == 200
    assert argocd_emulator.stream_connections == 0


def test_stream_closed_by_the_client_is_released(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("guestbook")
    response, events = open_stream(argocd_emulator)
    next(events)
    assert argocd_emulator.active_streams == 1
    response.close()
    wait_until(lambda: argocd_emulator.active_streams == 0, "the server to notice the closed stream")


def test_multi_source_app_reports_revisions_lists(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("platform", multi_source=True)
    argocd_emulator.set_state("platform", revision=NEW_SHA, sync="Synced", operation_phase="Running")
    app = requests.get(f"{argocd_emulator.url}/api/v1/applications/platform", headers=AUTH, timeout=5).json()

    assert len(app["spec"]["sources"]) == 2 and "source" not in app["spec"]
    assert app["status"]["sync"]["revisions"][0] == NEW_SHA and "revision" not in app["status"]["sync"]
    assert app["status"]["operationState"]["syncResult"]["revisions"][0] == NEW_SHA
    assert app["operation"]["sync"]["revisions"][0] == NEW_SHA


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        (degraded_timeline(NEW_SHA, step_s=0), ("Synced", NEW_SHA, "Degraded", "Succeeded")),
        (sync_failed_timeline(NEW_SHA, step_s=0), ("OutOfSync", NEW_SHA, "Healthy", "Failed")),
        (superseded_timeline(NEW_SHA, NEWER_SHA, step_s=0), ("Synced", NEWER_SHA, "Healthy", "Succeeded")),
        (flapping_timeline(NEW_SHA, flaps=2, step_s=0), ("Synced", NEW_SHA, "Healthy", "Succeeded")),
    ],
    ids=["degraded", "sync-failed", "superseded", "flapping"],
)
def test_timeline_helpers_end_in_their_scripted_state(
    argocd_emulator: ArgoCDEmulator, timeline: list[tuple[float, dict[str, Any]]], expected: tuple[str, ...]
) -> None:
    argocd_emulator.add_app("guestbook")
    argocd_emulator.play("guestbook", timeline).join(timeout=5)

    app = requests.get(f"{argocd_emulator.url}/api/v1/applications/guestbook", headers=AUTH, timeout=5).json()

    assert summary(app) == expected
    if expected[2] == "Degraded":
        assert "exceeded its progress deadline" in app["status"]["health"]["message"]


def test_session_login_mints_a_usable_token_and_hides_the_password(argocd_emulator: ArgoCDEmulator) -> None:
    password = secrets.token_urlsafe(16)
    argocd_emulator.add_user("ci-bot", password)
    url = f"{argocd_emulator.url}/api/v1/session"

    bad = requests.post(url, json={"username": "ci-bot", "password": password + "x"}, timeout=5)
    good = requests.post(url, json={"username": "ci-bot", "password": password}, timeout=5)
    token = good.json()["token"]
    listed = requests.get(
        f"{argocd_emulator.url}/api/v1/applications", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )

    assert bad.status_code == 401 and bad.json()["message"] == "Invalid username or password"
    assert good.status_code == 200 and listed.status_code == 200
    assert password not in repr(argocd_emulator.calls) and token not in repr(argocd_emulator.calls)


def test_requests_outside_the_swagger_subset_are_recorded(argocd_emulator: ArgoCDEmulator) -> None:
    argocd_emulator.add_app("guestbook")
    base = argocd_emulator.url

    unknown_param = requests.get(
        f"{base}/api/v1/applications/guestbook", params={"refersh": "hard"}, headers=AUTH, timeout=5
    )
    unknown_path = requests.get(f"{base}/api/v1/applications/guestbook/resource-tree", headers=AUTH, timeout=5)
    wrong_method = requests.delete(f"{base}/api/v1/applications/guestbook", headers=AUTH, timeout=5)
    extra_field = requests.post(
        f"{base}/api/v1/session", json={"username": "x", "password": "y", "otp": "1"}, timeout=5
    )

    assert unknown_param.status_code == 400 and unknown_param.json()["code"] == 3
    assert unknown_path.status_code == 404 and wrong_method.status_code == 405
    assert extra_field.status_code == 401  # served like the real server, which ignores unknown fields
    reasons = [p.reason for p in argocd_emulator.invalid_requests]
    assert len(reasons) == 4
    assert "unknown query parameter 'refersh'" in reasons[0]
    assert "'otp'" in reasons[3]
    assert argocd_emulator.refresh_requests == []
