import json

import pytest

from steps.policy.status import clip, final_description, final_state, github_state, parse_failures, root_cause

NODES = [
    {
        "displayName": "check-table(1:prices)",
        "message": "prices: 2 failures in 10 rows",
        "templateName": "check-table",
        "phase": "Failed",
        "podName": "p",
        "finishedAt": "2026-01-01T00:00:00Z",
    },
]


@pytest.mark.parametrize(("phase", "state"), [("Succeeded", "success"), ("Failed", "failure"), ("Error", "error")])
def test_phases_map_to_github_states(phase, state):
    assert github_state(phase) == state


@pytest.mark.parametrize("phase", ["Running", "Pending", "succeeded", ""])
def test_non_final_phase_is_refused(phase):
    with pytest.raises(ValueError, match="not a final Argo phase"):
        github_state(phase)


def test_failures_decode_from_argos_go_quoted_string():
    go_quoted = json.dumps(json.dumps(NODES))  # what {{workflow.failures}} expands to
    assert go_quoted.startswith('"[{\\"displayName')
    for raw in (go_quoted, json.dumps(NODES)):
        (failure,) = parse_failures(raw)
        assert failure.display_name == "check-table(1:prices)" and failure.step == "check-table"
        assert failure.message == "prices: 2 failures in 10 rows"


@pytest.mark.parametrize("raw", ["null", "", None, '"null"', "[]"])
def test_nothing_failed(raw):
    assert parse_failures(raw) == []


def test_exit_code_prefixes_are_stripped_and_children_skipped():
    nodes = [
        {"displayName": "main", "message": "child 'main-1' failed", "phase": "Failed"},
        {
            "displayName": "fetch",
            "message": "Error (exit code 1): tarball entry ../x escapes the data path",
            "phase": "Failed",
        },
    ]
    assert final_description("Failed", parse_failures(json.dumps(nodes))) == (
        "fetch: tarball entry ../x escapes the data path"
    )
    crash = [{"displayName": "publish", "message": "failed with exit code 137", "phase": "Failed"}]
    assert final_description("Failed", parse_failures(json.dumps(crash))) == "publish: failed with exit code 137"


def test_descriptions_fit_140_and_cut_between_words():
    text = "x" * 10 + " " + "long " * 40
    clipped = clip(text)
    assert len(clipped) <= 140 and clipped.endswith("…") and not clipped[:-1].endswith("lon")
    assert clip("  short   text ") == "short text"
    assert len(clip("y" * 500)) == 140


def test_error_without_failures_still_says_something():
    assert "errored" in final_description("Error", [])
    assert final_description("Succeeded", [], "3 tables, 1,234 rows released") == "3 tables, 1,234 rows released"


def test_root_cause_skips_bookkeeping_and_attempts_that_a_retry_recovered():
    nodes = [
        {
            "displayName": "release-data-prep-x",
            "message": "child 'release-data-prep-x-1' failed",
            "phase": "Failed",
            "finishedAt": "2026-01-01T00:00:09Z",
        },
        {
            "displayName": "check-table(1:file:prices.parquet,name:prices)",
            "message": "No more retries left",
            "phase": "Failed",
            "finishedAt": "2026-01-01T00:00:08Z",
        },
        {
            "displayName": "check-table(1:file:prices.parquet,name:prices)(0)",
            "message": "prices: 3 failures in 3,000 rows (price >= 0: 3)",
            "phase": "Failed",
            "finishedAt": "2026-01-01T00:00:07Z",
        },
        {
            "displayName": "fetch(0)",
            "message": "GitHub unreachable to fetch: ConnectionError",
            "phase": "Failed",
            "finishedAt": "2026-01-01T00:00:01Z",
        },  # its retry succeeded: fetch itself is not in the list
        {
            "displayName": "publish",
            "message": "failed with exit code 137",
            "phase": "Failed",
            "finishedAt": "2026-01-01T00:00:00Z",
        },
    ]
    go_quoted = json.dumps(json.dumps(nodes))
    assert final_description("Failed", parse_failures(go_quoted)) == (
        "check-table: prices: 3 failures in 3,000 rows (price >= 0: 3)"
    )


# Node messages exactly as the supported controllers write them (workflow/controller/operator.go,
# ``inferFailedReason``): 3.6 "<Reason> (exit code N)[: <termination message>]", 3.7 the same after the
# container name ("main: "), older controllers and the deadline killer the bare message.
OUTAGE = "GitHub did not answer the tarball download for acme/data@0123456789ab"
NODE_FORMS = [
    pytest.param(f"Error (exit code 75): [infra] {OUTAGE}", 75, id="3.6"),
    pytest.param(f"main: Error (exit code 75): [infra] {OUTAGE}", 75, id="3.7"),
    pytest.param(f"[infra] {OUTAGE}", None, id="bare termination message"),
    pytest.param(f"Error (exit code 75): {OUTAGE}", 75, id="exit code without marker"),
]


@pytest.mark.parametrize(("message", "code"), NODE_FORMS)
def test_every_argo_form_of_an_outage_is_error_with_the_steps_own_message(message, code):
    nodes = [
        {"displayName": "release-data-prep-x", "message": "child 'release-data-prep-x-1' failed", "phase": "Failed"},
        {"displayName": "fetch", "message": "No more retries left", "phase": "Failed"},
        {"displayName": "fetch(2)", "message": message, "phase": "Failed", "finishedAt": "2026-12-03T10:00:03Z"},
    ]
    failures = parse_failures(json.dumps(json.dumps(nodes)))  # Go-quoted, as the exit handler receives it
    cause = root_cause(failures)
    assert cause is not None and cause.infra and cause.exit_code == code
    assert final_state("Failed", failures) == "error"  # Argo's phase says Failed; the cause is an outage
    assert final_description("Failed", failures) == f"fetch: {OUTAGE}"


@pytest.mark.parametrize(
    "message",
    [
        "Error (exit code 2): data.csv: 3 rows fail str_matches",
        "main: Error (exit code 2): data.csv: 3 rows fail str_matches",
        "data.csv: 3 rows fail str_matches",
    ],
)
def test_bad_data_stays_failure_in_every_form(message):
    failures = parse_failures(json.dumps([{"displayName": "validate", "message": message, "phase": "Failed"}]))
    assert final_state("Failed", failures) == "failure"
    assert final_description("Failed", failures) == "validate: data.csv: 3 rows fail str_matches"


@pytest.mark.parametrize(
    "message",
    ["Step exceeded its deadline", "main: OOMKilled (exit code 137)", "OOMKilled (exit code 137)"],
)
def test_platform_kills_keep_their_wording(message):
    failures = parse_failures(json.dumps([{"displayName": "etl", "message": message, "phase": "Failed"}]))
    text = final_description("Failed", failures)
    assert text == f"etl: {message.removeprefix('main: ')}"
    assert final_state("Failed", failures) == ("error" if "deadline" in message else "failure")


def test_the_phase_error_is_always_error_and_succeeded_always_success():
    assert final_state("Error", []) == "error"
    assert final_state("Succeeded", parse_failures(json.dumps([{"displayName": "x", "message": "y"}]))) == "success"
