"""Check run with annotations: 50 per request, CSV and Parquet line numbers, conclusion, least privilege.

Reports come from real ``steps.data.validation.validate_table`` runs on small generated files; GitHub is
the emulator over real HTTP, which refuses a request with more than 50 annotations as GitHub does.
"""

import pytest

from steps.github.app import repo_client
from steps.github.check_runs import PERMISSIONS, check_output, create_check_run
from steps.policy.report import CHECK_SUMMARY_LIMIT, TableOutcome, annotation_batches, build_annotations
from steps.runtime.errors import ConfigError
from tests.integration import test_pr_comment as pr_tests
from tests.integration.test_pr_comment import PR, REPO, SHA, summarise
from tests.support.emulators.github import Fault

# The same workspace and registration fixtures as the PR comment tests.
workspace = pr_tests.workspace
register = pr_tests.register


def client(emu):
    return repo_client(REPO, PERMISSIONS, installation_id=emu.installation_id)


def annotation(n: int) -> dict:
    return {
        "path": "release-data/prices.csv",
        "start_line": n + 1,
        "end_line": n + 1,
        "annotation_level": "failure",
        "title": "price >= 0",
        "message": f"Data row {n}",
    }


def check_calls(emu) -> list:
    return [c for c in emu.calls if "/check-runs" in c.api_path]


def test_120_annotations_take_one_create_and_two_updates(github_env, workspace, register):
    register(pr_comment=False, check_run=True)
    workspace.add_bad_prices_csv("prices", 80, set(range(11, 71)))
    workspace.add_bad_prices_csv("stock", 70, set(range(1, 61)))
    workspace.validated()

    result = summarise(github_env, event="push", pr="")
    check = result["check_run"]
    assert (check["annotations"], check["requests"], check["conclusion"]) == (120, 3, "failure")
    calls = check_calls(github_env)
    assert [c.method for c in calls] == ["POST", "PATCH", "PATCH"]
    assert [len(c.body["output"]["annotations"]) for c in calls] == [50, 50, 20]
    assert all(c.status in (200, 201) for c in calls)
    assert github_env.invalid_requests == []
    (run,) = github_env.check_runs(REPO)
    assert run.id == check["check_run_id"] and run.head_sha == SHA and run.name == "release-data-prep"
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert run.details_url == "https://argo.example.com/workflows/argo/release-data-prep-abc12"
    assert [(a["path"], a["start_line"]) for a in run.annotations[:2]] == [
        ("release-data/prices.csv", 12),
        ("release-data/prices.csv", 13),
    ]
    assert run.annotations[60]["path"] == "release-data/stock.csv" and run.annotations[60]["start_line"] == 2
    assert run.title == "2 of 2 tables failed validation (120 failures)"
    assert "`prices`" in run.summary and len(run.summary) <= CHECK_SUMMARY_LIMIT
    assert len(github_env.calls) == 4  # the token, then the three check-run requests


def test_csv_rows_point_at_file_lines_parquet_at_line_one(github_env, workspace, register):
    register(pr_comment=False, check_run=True, data_path="data/release/")
    workspace.add_bad_prices_csv("prices", 10, {3})
    workspace.add_parquet("history", 10, {5})
    workspace.validated()

    summarise(github_env, event="push", pr="")
    (run,) = github_env.check_runs(REPO)
    by_path = {a["path"]: a for a in run.annotations}
    csv, parquet = by_path["data/release/prices.csv"], by_path["data/release/history.parquet"]
    assert (csv["start_line"], csv["end_line"]) == (4, 4)
    assert csv["message"] == 'Data row 3 (file line 4), column price: value "-1.0"'
    assert (parquet["start_line"], parquet["end_line"]) == (1, 1)
    assert parquet["message"] == 'Row 5 of the Parquet file, column price: value "-1.0"'
    assert {a["annotation_level"] for a in run.annotations} == {"failure"}
    assert {a["title"] for a in run.annotations} == {"price >= 0"}


def test_table_level_failure_points_at_the_header_line(github_env, workspace, register):
    register(pr_comment=False, check_run=True)
    workspace.data.mkdir(parents=True)
    (workspace.data / "prices.csv").write_text("product_id,date,price\nP00001,2024-06-03,1.5\n")
    workspace.tables.append({"name": "prices", "file": "prices.csv", "schema": "builtin:prices"})
    workspace.validated()

    summarise(github_env, event="push", pr="")
    (run,) = github_env.check_runs(REPO)
    (missing,) = [a for a in run.annotations if a["title"] == "column currency present"]
    assert (missing["path"], missing["start_line"]) == ("release-data/prices.csv", 1)
    assert missing["message"].startswith("Table prices, column currency")


def test_valid_run_is_one_request_without_annotations(github_env, workspace, register):
    register(pr_comment=True, check_run=True)
    github_env.add_pull_request(REPO, PR)
    workspace.add_bad_prices_csv("prices", 10, set())
    workspace.validated()

    result = summarise(github_env, status="Succeeded")
    assert result["check_run"]["requests"] == 1 and result["comment"]["action"] == "created"
    (post,) = check_calls(github_env)
    assert "annotations" not in post.body["output"]
    (run,) = github_env.check_runs(REPO)
    assert (run.conclusion, run.title, run.annotations) == ("success", "1 table valid (10 rows)", [])
    scopes = sorted(tuple(sorted(t.permissions.items())) for t in github_env.tokens_issued())
    assert scopes == [
        (("checks", "write"), ("metadata", "read")),
        (("metadata", "read"), ("pull_requests", "write")),
    ]
    assert all(t.repositories == [REPO] for t in github_env.tokens_issued())


def test_failed_publish_after_valid_tables_concludes_failure(github_env, workspace, register):
    register(pr_comment=False, check_run=True)
    workspace.add_bad_prices_csv("prices", 10, set())
    workspace.validated()

    summarise(github_env, event="push", status="Error", pr="", failures="null")
    (run,) = github_env.check_runs(REPO)
    assert run.conclusion == "failure" and run.annotations == []
    assert run.title == "Tables valid (10 rows), stopped while publishing the release"


@pytest.mark.parametrize(("count", "sizes"), [(0, [None]), (1, [1]), (50, [50]), (51, [50, 1]), (101, [50, 50, 1])])
def test_batches_never_exceed_50(github_env, count, sizes):
    result = create_check_run(
        client(github_env),
        SHA,
        name="release-data-prep",
        conclusion="failure",
        title="t",
        summary="s",
        annotations=[annotation(n) for n in range(1, count + 1)],
    )
    calls = check_calls(github_env)
    assert [len(c.body["output"].get("annotations", [])) or None for c in calls] == sizes
    assert result.requests == len(sizes) and result.annotations == count
    assert len(github_env.check_runs(REPO)[0].annotations) == count
    assert github_env.invalid_requests == []


def test_a_401_on_an_update_repeats_only_that_update(github_env):
    github_env.add_fault(
        Fault(
            "http_error",
            method="PATCH",
            path_regex="/check-runs/",
            status=401,
            body={"message": "Bad credentials"},
        )
    )
    result = create_check_run(
        client(github_env),
        SHA,
        name="release-data-prep",
        conclusion="failure",
        title="t",
        summary="s",
        annotations=[annotation(n) for n in range(1, 71)],
    )
    (run,) = github_env.check_runs(REPO)
    assert len(run.annotations) == 70 and result.check_run_id == run.id
    assert [c.method for c in check_calls(github_env)] == ["POST", "PATCH", "PATCH"]
    assert github_env.count("POST", "/access_tokens") == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conclusion": "passed"}, "conclusion 'passed'"),
        ({"title": ""}, "title"),
        ({"summary": "x" * (CHECK_SUMMARY_LIMIT + 1)}, "65,535"),
    ],
)
def test_bad_output_is_refused_before_any_call(github_env, kwargs, message):
    args = {"name": "release-data-prep", "conclusion": "success", "title": "t", "summary": "s", **kwargs}
    with pytest.raises(ConfigError, match=message):
        create_check_run(client(github_env), SHA, **args)
    assert github_env.calls == []


def test_missing_checks_permission_is_a_clear_error(github_env):
    narrow = repo_client(REPO, {"statuses": "write"}, installation_id=github_env.installation_id)
    with pytest.raises(ConfigError, match="403 trying to create the check run.*not accessible"):
        create_check_run(narrow, SHA, name="release-data-prep", conclusion="success", title="t", summary="s")


def test_annotation_policy_caps_per_table_and_in_all():
    failures = [{"row": r, "column": "price", "check": "price >= 0", "value": "-1"} for r in range(1, 101)]
    tables = [TableOutcome(f"t{i}", f"t{i}.csv", 100, False, 100, {}, failures) for i in range(3)]
    assert len(build_annotations(tables, "", per_table=10)) == 30
    assert len(build_annotations(tables, "", limit=120)) == 120
    assert [len(b) for b in annotation_batches(build_annotations(tables, ""))] == [50] * 6
    assert build_annotations(tables, "./")[0]["path"] == "t0.csv"
    assert check_output("t", "s") == ("t", "s")


def test_a_failed_comment_does_not_stop_the_check_run(github_env, workspace, register):
    register(pr_comment=True, check_run=True)
    github_env.add_pull_request(REPO, PR)
    github_env.add_fault(
        Fault("http_error", method="GET", path_regex="/comments$", status=404, body={"message": "Not Found"})
    )
    workspace.add_bad_prices_csv("prices", 5, {2})
    workspace.validated()
    with pytest.raises(ConfigError, match="404 trying to list the comments of pull request #7"):
        summarise(github_env)
    (run,) = github_env.check_runs(REPO)
    assert run.conclusion == "failure" and len(run.annotations) == 1
    assert github_env.comments(REPO, PR) == []


def test_a_lost_answer_to_the_create_is_never_resent(github_env):
    from steps.runtime.errors import Unconfirmed

    github_env.add_fault(Fault("drop_after", method="POST", path_regex=r"/check-runs$"))
    with pytest.raises(Unconfirmed, match="the check run may exist, not resent") as err:
        create_check_run(
            client(github_env), SHA, name="release-data-prep", conclusion="success", title="t", summary="s"
        )
    assert len(github_env.check_runs(REPO)) == 1  # GitHub made it once; no second POST
    assert github_env.count("POST", r"/check-runs$") == 1
    assert err.value.retry is False and err.value.kind == "error"  # Argo's retryStrategy does not resend it either
