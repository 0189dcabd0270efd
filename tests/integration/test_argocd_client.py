"""The Argo CD client and the deployment gate, over real HTTP against the Argo CD emulator."""

import socket
import threading
import time

import pytest

from steps.argocd.client import ArgoCDClient
from steps.argocd.settings import ArgoCDSettings, app_ui_url
from steps.policy.deploy import AppSnapshot, RevisionWatch, judge, order_by_after, timeout_reason
from steps.runtime.errors import ConfigError
from steps.runtime.registrations import Environment
from tests.support.deploy_helpers import play_when_watched
from tests.support.emulators.argocd import (
    CHART_VERSION,
    degraded_timeline,
    flapping_timeline,
    rollout_timeline,
    superseded_timeline,
    sync_failed_timeline,
)
from tests.support.emulators.argocd_fixtures import ARGOCD_TEST_TOKEN

SHA = "1111111111111111111111111111111111111111"
NEWER = "2222222222222222222222222222222222222222"
APP = "data-staging"


def client(emu, **kw) -> ArgoCDClient:
    settings = {"poll_seconds": 0.05, "request_timeout": 3.0, "idle_seconds": 5.0, **kw}
    return ArgoCDClient(ArgoCDSettings(emu.url, ARGOCD_TEST_TOKEN, **settings))


def wait(emu, sha=SHA, app=APP, stability=0.05, timeout=20.0, **kw):
    return client(emu).wait_for_revision(app, sha, stability_seconds=stability, timeout_seconds=timeout, **kw)


def no_invalid(emu):
    assert emu.invalid_requests == []


def streams_closed(emu) -> bool:
    deadline = time.monotonic() + 3
    while emu.active_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    return emu.active_streams == 0


# ------------------------------------------------------------------------------------------ outcomes


def test_deployed_through_the_stream(argocd_emulator):
    argocd_emulator.add_app(APP)
    play_when_watched(argocd_emulator, APP, rollout_timeline(SHA, 0.02))
    outcome = wait(argocd_emulator, refresh=True)
    assert (outcome.kind, outcome.via, outcome.revision) == ("deployed", "stream", SHA)
    assert outcome.reason == "Synced and Healthy at 1111111"
    assert argocd_emulator.refresh_requests == [(APP, "normal")]
    assert streams_closed(argocd_emulator), "the watch stream was left open after the wait"
    no_invalid(argocd_emulator)


def test_already_deployed_needs_no_stream(argocd_emulator):
    argocd_emulator.add_app(APP, revision=SHA)
    outcome = wait(argocd_emulator, stability=0)
    assert outcome.kind == "deployed"
    assert argocd_emulator.stream_connections == 0


def test_degraded_health_carries_argo_cds_message(argocd_emulator):
    argocd_emulator.add_app(APP)
    message = 'Deployment "data" exceeded its progress deadline'
    play_when_watched(argocd_emulator, APP, degraded_timeline(SHA, 0.02, message=message))
    outcome = wait(argocd_emulator)
    assert outcome.kind == "degraded"
    assert outcome.reason == f"health Degraded: {message}"


def test_failed_sync_operation_is_degraded(argocd_emulator):
    argocd_emulator.add_app(APP)
    play_when_watched(argocd_emulator, APP, sync_failed_timeline(SHA, 0.02, message="admission webhook denied"))
    outcome = wait(argocd_emulator)
    assert (outcome.kind, outcome.reason) == ("degraded", "sync Failed: admission webhook denied")


def test_superseded_after_our_commit_was_seen(argocd_emulator):
    argocd_emulator.add_app(APP)
    play_when_watched(argocd_emulator, APP, superseded_timeline(SHA, NEWER, 0.02))
    outcome = wait(argocd_emulator)
    assert (outcome.kind, outcome.revision) == ("superseded", NEWER)
    assert "2222222" in outcome.reason and "1111111" in outcome.reason


def test_superseded_when_a_newer_commit_is_synced_without_ours_ever_showing(argocd_emulator):
    argocd_emulator.add_app(APP)
    play_when_watched(argocd_emulator, APP, rollout_timeline(NEWER, 0.02))
    assert wait(argocd_emulator).kind == "superseded"


def test_a_health_change_at_the_old_revision_is_not_a_verdict(argocd_emulator):
    argocd_emulator.add_app(APP)
    play_when_watched(argocd_emulator, APP, [(0.0, {"health": "Degraded"}), (0.02, {"health": "Healthy"})])
    outcome = wait(argocd_emulator, timeout=0.4)
    assert outcome.kind == "timed_out"


def test_timed_out_names_the_last_state(argocd_emulator):
    argocd_emulator.add_app(APP)
    play_when_watched(argocd_emulator, APP, rollout_timeline(SHA, 0.02)[:2])
    outcome = wait(argocd_emulator, timeout=1.5)
    assert outcome.kind == "timed_out"
    assert (
        outcome.reason == "data-staging not Healthy at 1111111 after 1.5 s (OutOfSync at 1111111, last sync "
        "Running at 1111111, health Healthy)"
    )
    assert streams_closed(argocd_emulator)


def test_a_commit_with_nothing_to_apply_is_deployed_once_synced_and_healthy(argocd_emulator):
    argocd_emulator.add_app(APP)
    argocd_emulator.set_state(APP, revision=SHA, operation_revision="3" * 40)
    outcome = wait(argocd_emulator, timeout=20)
    assert outcome.kind == "deployed"
    assert "nothing to apply" in outcome.reason


def test_a_commit_with_nothing_to_apply_still_waits_for_health(argocd_emulator):
    argocd_emulator.add_app(APP)
    argocd_emulator.set_state(APP, revision=SHA, operation_revision="3" * 40, health="Progressing")
    outcome = wait(argocd_emulator, timeout=0.3)
    assert outcome.kind == "timed_out"


def test_app_deleted_while_waiting_is_degraded(argocd_emulator):
    argocd_emulator.add_app(APP)

    def delete_when_watched():
        deadline = time.monotonic() + 5
        while not argocd_emulator.active_streams and time.monotonic() < deadline:
            time.sleep(0.005)
        argocd_emulator.delete_app(APP)

    threading.Thread(target=delete_when_watched, daemon=True).start()
    outcome = wait(argocd_emulator)
    assert (outcome.kind, outcome.reason) == ("degraded", "Argo CD application data-staging was deleted")


# ------------------------------------------------------------------------------------ transport


def test_dropped_stream_is_reopened_and_the_wait_still_succeeds(argocd_emulator):
    argocd_emulator.add_app(APP)
    argocd_emulator.drop_streams_after(2, times=2)
    play_when_watched(argocd_emulator, APP, rollout_timeline(SHA, 0.03))
    outcome = wait(argocd_emulator, timeout=30)
    assert (outcome.kind, outcome.via) == ("deployed", "stream")
    assert outcome.reconnects >= 1
    assert argocd_emulator.stream_connections == outcome.reconnects + 1


def test_unreachable_argo_cd_times_out_with_the_cause():
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ArgoCDSettings(f"http://127.0.0.1:{port}", ARGOCD_TEST_TOKEN, request_timeout=0.5)
    outcome = ArgoCDClient(settings).wait_for_revision(APP, SHA, stability_seconds=0, timeout_seconds=0.3)
    assert outcome.kind == "timed_out"
    assert outcome.reason.startswith(f"Argo CD unreachable for 0.3 s: Argo CD at http://127.0.0.1:{port} unreachable")


@pytest.mark.parametrize("status", [501, 404])
def test_unavailable_stream_falls_back_to_polling(argocd_emulator, status):
    argocd_emulator.add_app(APP)
    argocd_emulator.stream_unavailable = True
    argocd_emulator.stream_unavailable_status = status
    play_when_watched(argocd_emulator, APP, rollout_timeline(SHA, 0.05))
    outcome = wait(argocd_emulator)
    assert (outcome.kind, outcome.via) == ("deployed", "poll")
    assert len(argocd_emulator.calls_to("GET", "/api/v1/stream/applications")) == 1
    assert len(argocd_emulator.calls_to("GET", f"/api/v1/applications/{APP}")) >= 3


def test_multi_source_app_matches_any_of_its_revisions(argocd_emulator):
    argocd_emulator.add_app(APP, multi_source=True)
    play_when_watched(argocd_emulator, APP, rollout_timeline(SHA, 0.02))
    outcome = wait(argocd_emulator)
    assert outcome.kind == "deployed"
    assert argocd_emulator.app(APP)["status"]["sync"]["revisions"] == [SHA, CHART_VERSION]


def test_a_health_flap_restarts_the_stability_window(argocd_emulator):
    argocd_emulator.add_app(APP)
    watcher = play_when_watched(argocd_emulator, APP, flapping_timeline(SHA, flaps=2, step_s=0.08))
    outcome = wait(argocd_emulator, stability=0.4)
    assert outcome.kind == "deployed"
    # Healthy first at step 4; each flap (Progressing, Healthy) restarts the window, so the verdict can only
    # come after the last Healthy: the whole timeline has been played by then.
    assert not watcher.is_alive()


def test_a_flap_longer_than_the_rest_of_the_window_is_not_deployed(argocd_emulator):
    argocd_emulator.add_app(APP)
    flap = [(0.03, {"health": "Progressing"}), (0.5, {"health": "Healthy"})]
    watcher = play_when_watched(argocd_emulator, APP, [*rollout_timeline(SHA, 0.02), *flap])
    outcome = wait(argocd_emulator, stability=0.2)
    # the first Healthy spell ends before the window does, and the window may not run on through Progressing
    assert outcome.kind == "deployed" and not watcher.is_alive()


# ------------------------------------------------------------------------------- errors and settings


def test_missing_app_without_project_names_both_causes(argocd_emulator):
    with pytest.raises(ConfigError) as err:
        wait(argocd_emulator, app="nope")
    assert "either it does not exist or the token lacks 'applications, get' permission" in err.value.summary
    assert "nope" in err.value.summary


def test_missing_app_with_project_is_reported_missing(argocd_emulator):
    with pytest.raises(ConfigError) as err:
        wait(argocd_emulator, app="nope", project="default")
    assert err.value.summary.startswith("Argo CD has no application 'nope' in project 'default'")


def test_forbidden_app_with_project_names_the_missing_permission(argocd_emulator):
    argocd_emulator.add_app(APP)
    argocd_emulator.add_token("read-nothing", allowed=False)
    settings = ArgoCDSettings(argocd_emulator.url, "read-nothing")
    with pytest.raises(ConfigError) as err:
        ArgoCDClient(settings).get_application(APP, project="default")
    assert "lacks permission to get application default/data-staging" in err.value.summary


def test_rejected_token_is_a_config_error_without_the_token(argocd_emulator):
    argocd_emulator.add_app(APP)
    secret = "not-a-valid-argocd-token-value"
    settings = ArgoCDSettings(argocd_emulator.url, secret)
    with pytest.raises(ConfigError) as err:
        ArgoCDClient(settings).wait_for_revision(APP, SHA, stability_seconds=0, timeout_seconds=1)
    assert "rejected the token (401" in err.value.summary
    assert secret not in err.value.detail and secret not in repr(settings)


def test_settings_from_env_read_the_token_file_and_tls_options(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-")
    env = {
        "ARGOCD_SERVER_URL": "https://argocd.example.org/",
        "ARGOCD_TOKEN_FILE": str(token_file),
        "ARGOCD_TOKEN": "env-token",
        "ARGOCD_CA_BUNDLE": str(ca),
        "ARGOCD_STABILITY_SECONDS": "0.5",
    }
    settings = ArgoCDSettings.from_env(env)
    assert (settings.server_url, settings.token) == ("https://argocd.example.org", "file-token")
    assert settings.verify == str(ca)
    assert settings.stability_seconds == 0.5 and settings.timeout_seconds == 900
    insecure = ArgoCDSettings.from_env(
        {"ARGOCD_SERVER_URL": "https://a", "ARGOCD_TOKEN": "t", "ARGOCD_INSECURE": "true"}
    )
    assert insecure.verify is False and insecure.token == "t"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ARGOCD_TOKEN": "t"}, "ARGOCD_SERVER_URL='' is not an http(s) URL"),
        ({"ARGOCD_SERVER_URL": "https://a", "ARGOCD_TOKEN_FILE": "/nonexistent/token"}, "cannot be read"),
        (
            {"ARGOCD_SERVER_URL": "https://a", "ARGOCD_TOKEN": "t", "ARGOCD_CA_BUNDLE": "/nonexistent/ca"},
            "ARGOCD_CA_BUNDLE /nonexistent/ca does not exist",
        ),
        (
            {"ARGOCD_SERVER_URL": "https://a", "ARGOCD_TOKEN": "t", "ARGOCD_TIMEOUT_SECONDS": "soon"},
            "ARGOCD_TIMEOUT_SECONDS='soon' is not a number",
        ),
    ],
)
def test_bad_settings_are_config_errors(env, message):
    with pytest.raises(ConfigError) as err:
        ArgoCDSettings.from_env(env)
    assert message in err.value.summary


def test_ui_link_with_and_without_namespace():
    assert (
        app_ui_url("web", ui_url="https://cd.example.org/", namespace="argocd")
        == "https://cd.example.org/applications/argocd/web"
    )
    assert app_ui_url("web", ui_url="https://cd.example.org") == "https://cd.example.org/applications/web"


# ------------------------------------------------------------------------------------ pure policy


def app_json(
    sync="Synced", revision=SHA, health="Healthy", phase="Succeeded", op_revision=SHA, started="t1", since="h1"
):
    return {
        "metadata": {"name": APP},
        "status": {
            "sync": {"status": sync, "revision": revision},
            "health": {"status": health, "lastTransitionTime": since},
            "operationState": {"phase": phase, "startedAt": started, "syncResult": {"revision": op_revision}},
        },
    }


def test_policy_for_a_sync_result_of_another_commit():
    older = AppSnapshot.of(app_json(op_revision="3" * 40, health="Progressing"))
    assert judge(older, SHA, seen=True, baseline_operation=older.operation_key).state == "waiting"
    noop = AppSnapshot.of(app_json(op_revision="3" * 40))  # Synced at sha: nothing was left to apply
    verdict = judge(noop, SHA, seen=True, baseline_operation=noop.operation_key)
    assert verdict.state == "deployed" and "nothing to apply" in verdict.reason
    running_older = AppSnapshot.of(app_json(op_revision="3" * 40, phase="Running"))
    assert judge(running_older, SHA, seen=True, baseline_operation="").state == "waiting"
    assert judge(AppSnapshot.of(app_json()), SHA, seen=False, baseline_operation="").state == "deployed"
    running = judge(AppSnapshot.of(app_json(phase="Running")), SHA, seen=True, baseline_operation="")
    assert running.state == "waiting"


def test_policy_superseded_needs_our_commit_seen_or_a_new_operation():
    other = AppSnapshot.of(app_json(revision=NEWER, op_revision=NEWER))
    assert judge(other, SHA, seen=False, baseline_operation=other.operation_key).state == "waiting"
    assert judge(other, SHA, seen=True, baseline_operation=other.operation_key).state == "superseded"
    assert other.operation_key == f"t1@{NEWER}"
    assert judge(other, SHA, seen=False, baseline_operation=f"t1@{'3' * 40}").state == "superseded"


def test_policy_fingerprint_sees_a_flap_that_no_event_showed():
    before, after = AppSnapshot.of(app_json(since="h1")), AppSnapshot.of(app_json(since="h2"))
    assert before.fingerprint != after.fingerprint
    watch = RevisionWatch(SHA)
    watch.observe(app_json(sync="OutOfSync", op_revision="3" * 40, revision="3" * 40))
    assert not watch.seen and watch.baseline_operation == f"t1@{'3' * 40}"
    watch.observe(app_json(sync="OutOfSync", op_revision="3" * 40, revision=SHA))
    assert watch.seen
    assert timeout_reason(APP, SHA, 1, None) == "no state of Argo CD app data-staging was seen within 1 s"


def test_environments_are_ordered_by_after():
    envs = [Environment(name="prod", after="qa"), Environment(name="qa", after="staging"), Environment(name="staging")]
    assert [e.name for e in order_by_after(envs)] == ["staging", "qa", "prod"]
    with pytest.raises(ValueError, match="cycle"):
        order_by_after([Environment(name="a", after="b"), Environment(name="b", after="a")])
