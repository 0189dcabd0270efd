import json
import logging
import time

import pytest

from steps.github.app import repo_client
from steps.github.statuses import set_commit_status
from steps.report import report_final, report_pending
from steps.runtime.errors import ConfigError, InfraError
from tests.support.emulators.github import Fault

SHA = "0123456789abcdef0123456789abcdef01234567"


def client(emu, repo="acme/data"):
    return repo_client(repo, {"statuses": "write"}, installation_id=emu.installation_id)


def states(emu, repo="acme/data", sha=SHA):
    return [(s.state, s.description, s.context) for s in emu.statuses(repo, sha)]


def no_invalid(emu):
    assert emu.invalid_requests == []


@pytest.mark.parametrize("state", ["pending", "success", "failure", "error"])
def test_each_state_is_posted(github_env, state):
    result = set_commit_status(
        client(github_env),
        SHA,
        state,
        f"now {state}",
        context="release-data-prep",
        target_url="https://argo.example.com/x",
    )
    assert result.posted
    assert states(github_env) == [(state, f"now {state}", "release-data-prep")]
    assert github_env.statuses("acme/data", SHA)[0].target_url == "https://argo.example.com/x"
    no_invalid(github_env)


def test_pending_then_success_sequence_and_call_count(github_env):
    report_pending("acme/data", SHA, str(github_env.installation_id), "", "release-data-prep-abc12")
    report_final("acme/data", SHA, "Succeeded", "null", str(github_env.installation_id), "")
    assert [s[0] for s in states(github_env)] == ["pending", "success"]
    assert states(github_env)[0][1] == "Preparing release data in release-data-prep-abc12"
    calls = [(c.method, c.path) for c in github_env.calls]
    # per step: mint a token, read the latest status of the context, post the new one
    assert len(calls) == 6, calls
    assert sum(1 for m, p in calls if p.endswith("/access_tokens")) == 2
    no_invalid(github_env)


def test_a_first_attempt_posts_without_reading_first_and_a_retry_reads(github_env, monkeypatch):
    monkeypatch.setenv("STEP_RETRIES", "0")  # Argo's {{retries}} on a first attempt: nothing of ours to find
    report_pending("acme/data", SHA, str(github_env.installation_id), "", "w")
    report_final("acme/data", SHA, "Succeeded", "null", str(github_env.installation_id), "")
    assert github_env.count() == 4 and github_env.count("GET") == 0  # token + POST, twice
    monkeypatch.setenv("STEP_RETRIES", "1")  # a retry may repeat what the first attempt posted: it reads first
    report_final("acme/data", SHA, "Succeeded", "null", str(github_env.installation_id), "")
    assert github_env.count("GET", r"/status$") == 1 and github_env.count("POST", r"/statuses/") == 2
    no_invalid(github_env)


def test_identical_status_is_not_posted_again(github_env):
    c = client(github_env)
    first = set_commit_status(c, SHA, "pending", "same", context="release-data-prep")
    second = set_commit_status(c, SHA, "pending", "same", context="release-data-prep")
    third = set_commit_status(c, SHA, "pending", "different", context="release-data-prep")
    assert (first.posted, second.posted, third.posted) == (True, False, True)
    assert len(github_env.statuses("acme/data", SHA)) == 2


def test_description_is_clipped_at_a_word_boundary(github_env):
    text = "table prices: " + " ".join(f"word{i}" for i in range(60))
    result = set_commit_status(client(github_env), SHA, "failure", text, context="release-data-prep")
    posted = github_env.statuses("acme/data", SHA)[0].description
    assert posted == result.description and len(posted) <= 140 and posted.endswith("…")
    assert posted[:-1].split()[-1].startswith("word") and text.startswith(posted[:-1])
    no_invalid(github_env)


def test_final_failure_names_the_failed_step(github_env):
    failures = json.dumps(
        json.dumps(
            [
                {
                    "displayName": "validate-tables",
                    "message": "child 'x' failed",
                    "templateName": "validate-tables",
                    "phase": "Failed",
                },
                {
                    "displayName": "check-table(0:prices)",
                    "message": "prices: 3 failures in 1,000 rows (price >= 0: 3)",
                    "templateName": "check-table",
                    "phase": "Failed",
                },
            ]
        )
    )
    report_final("acme/data", SHA, "Failed", failures, str(github_env.installation_id))
    ((state, description, _),) = states(github_env)
    assert state == "failure"
    assert description == "check-table: prices: 3 failures in 1,000 rows (price >= 0: 3)"


def test_error_phase_maps_to_error_and_unknown_phase_is_a_bug(github_env):
    report_final("acme/data", SHA, "Error", "null", str(github_env.installation_id))
    assert states(github_env)[0][0] == "error"
    with pytest.raises(ValueError, match="not a final Argo phase"):
        report_final("acme/data", SHA, "Running", "null", str(github_env.installation_id))
    assert len(github_env.statuses("acme/data", SHA)) == 1


@pytest.mark.parametrize(
    ("repo", "sha", "expected"),
    [
        ("acme", SHA, "is not owner/name"),
        ("acme/data/x", SHA, "is not owner/name"),
        ("acme/data", "abc123", "not a full 40-character hex"),
        ("acme/data", "g" * 40, "not a full 40-character hex"),
    ],
)
def test_bad_repo_or_sha_is_refused_before_any_call(github_env, repo, sha, expected):
    with pytest.raises(ConfigError, match=expected):
        report_pending(repo, sha, str(github_env.installation_id))
    assert github_env.count() == 0


def test_unknown_state_is_refused(github_env):
    with pytest.raises(ConfigError, match="not one of"):
        set_commit_status(client(github_env), SHA, "Succeeded", "x", context="c")
    assert github_env.count() == 0


@pytest.mark.parametrize(
    "fault",
    [
        Fault("http_error", method="POST", path_regex="/statuses/", status=502, times=2),
        Fault("http_error", method="GET", path_regex="/status$", status=503, times=1),
        Fault("too_many_requests", method="POST", path_regex="/statuses/", retry_after=1),
        Fault("secondary_rate_limit", method="POST", path_regex="/statuses/", retry_after=1),
        Fault("primary_rate_limit", method="GET", path_regex="/status$", reset_in=1),
        Fault("latency", method="GET", path_regex="/status$", seconds=4.0),
        Fault("drop", method="POST", path_regex="/statuses/", times=1),
        Fault("http_error", method="POST", path_regex="/access_tokens", status=500, times=1),
    ],
    ids=lambda f: f"{f.kind}-{f.status}",
)
def test_transient_faults_end_in_success_within_the_budget(github_env, fault):
    github_env.add_fault(fault)
    report_pending("acme/data", SHA, str(github_env.installation_id))
    assert [s[0] for s in states(github_env)] == ["pending"]
    assert fault.remaining == 0
    no_invalid(github_env)


def test_persistent_outage_ends_in_a_clear_error_after_the_budget(github_env, monkeypatch):
    monkeypatch.setenv("GITHUB_RETRY_BUDGET_SECONDS", "1.5")
    github_env.add_fault(Fault("http_error", method="POST", path_regex="/statuses/", status=502, times=1000))
    with pytest.raises(InfraError) as info:
        report_pending("acme/data", SHA, str(github_env.installation_id))
    assert "set the commit status in acme/data" in str(info.value)
    assert github_env.statuses("acme/data", SHA) == []


def test_rate_limit_longer_than_the_budget_fails_fast(github_env, monkeypatch):
    monkeypatch.setenv("GITHUB_RETRY_BUDGET_SECONDS", "2")
    github_env.add_fault(Fault("too_many_requests", method="POST", path_regex="/statuses/", retry_after=60))
    with pytest.raises(InfraError):
        report_pending("acme/data", SHA, str(github_env.installation_id))
    assert github_env.count("POST", "/statuses/") == 1


def test_expired_token_is_reminted_once(github_env):
    c = client(github_env)
    set_commit_status(c, SHA, "pending", "one", context="release-data-prep")
    github_env.expire_tokens()
    set_commit_status(c, SHA, "success", "two", context="release-data-prep")
    assert [s[0] for s in states(github_env)] == ["pending", "success"]
    assert github_env.count("POST", "/access_tokens") == 2


def test_permission_error_is_not_retried(github_env):
    c = repo_client("acme/data", {"deployments": "write"}, installation_id=github_env.installation_id)
    with pytest.raises(ConfigError, match="Resource not accessible"):
        set_commit_status(c, SHA, "pending", "x", context="release-data-prep")
    assert github_env.count("GET", "/status$") == 1


def test_record_mode_sends_nothing(github_env, tmp_path, monkeypatch):
    record = tmp_path / "github.jsonl"
    monkeypatch.setenv("GITHUB_RECORD_FILE", str(record))
    report_pending("acme/data", SHA, "", "", "wf-1")
    report_final("acme/data", SHA, "Succeeded", "null")
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [e["state"] for e in entries] == ["pending", "success"]
    assert github_env.count() == 0


def test_no_secret_in_logs_during_faults(github_env, github_app_key, caplog):
    caplog.set_level(logging.DEBUG)
    github_env.add_fault(Fault("http_error", method="POST", path_regex="/statuses/", status=502, times=1))
    github_env.add_fault(Fault("secondary_rate_limit", method="GET", path_regex="/status$", retry_after=1))
    report_pending("acme/data", SHA, str(github_env.installation_id))
    text = caplog.text
    assert "retrying" in text.lower() or "retry" in text.lower()
    assert "ghs_" not in text and "eyJ" not in text and github_app_key.pem.decode().splitlines()[1] not in text


def test_the_final_status_hands_the_time_since_pending_to_argos_metric(github_env, tmp_path, monkeypatch):
    metrics = tmp_path / "metrics"
    monkeypatch.setenv("STEP_METRICS_DIR", str(metrics))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 300))
    report_final("acme/data", SHA, "Failed", "null", str(github_env.installation_id), run_created=created)
    assert (metrics / "final-state").read_text() == "failure"
    assert 299 <= float((metrics / "pending-to-final-seconds").read_text()) < 330
