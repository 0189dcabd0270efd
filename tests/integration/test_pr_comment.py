"""PR comment summary: one comment per pull request, found on any page, edited in place, never anyone else's.

Reports come from real ``steps.data.validation.validate_table`` runs on small generated files, stored in
a local workspace store as the pipeline lays it out; GitHub is the emulator over real HTTP.
"""

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pytest
import yaml

from steps.data.validation import validate_table
from steps.github.app import repo_client
from steps.github.comments import PERMISSIONS, find_own_comment, is_own_comment, upsert_pr_comment
from steps.policy.report import (
    COMMENT_LIMIT,
    RunSummary,
    TableOutcome,
    comment_marker,
    md_code,
    pr_comment_body,
    stopped_stage,
)
from steps.report import report_pr_summary
from steps.runtime.errors import ConfigError, DataError
from steps.runtime.registrations import RepoRegistration, dump_registrations

SHA = "0123456789abcdef0123456789abcdef01234567"
REPO = "acme/data"
PR = 7
MARKER = comment_marker("release-data-prep")
HEADER = "product_id,date,price,currency\n"


@dataclass
class Workspace:
    """A run workspace (local artifact store) filled the way the pipeline's steps fill it."""

    root: Path
    data: Path
    tables: list[dict] = field(default_factory=list)

    def add_csv(self, name: str, rows: int, bad: Callable[[int], str | None] = lambda i: None) -> None:
        """A prices CSV; ``bad(i)`` may replace the product id of data row i (1-based) with a bad one."""
        lines = [f"{bad(i) or f'P{i:05d}'},2024-06-03,1.5,EUR" for i in range(1, rows + 1)]
        self._add(name, f"{name}.csv", HEADER + "".join(line + "\n" for line in lines))

    def add_bad_prices_csv(self, name: str, rows: int, bad_rows: set[int]) -> None:
        """A prices CSV whose rows in ``bad_rows`` have a negative price."""
        lines = [f"P{i:05d},2024-06-03,{'-1.0' if i in bad_rows else '1.5'},EUR" for i in range(1, rows + 1)]
        self._add(name, f"{name}.csv", HEADER + "".join(line + "\n" for line in lines))

    def add_parquet(self, name: str, rows: int, bad_rows: set[int]) -> None:
        """A prices Parquet file whose rows in ``bad_rows`` have a negative price."""
        frame = pl.DataFrame(
            {
                "product_id": [f"P{i:05d}" for i in range(1, rows + 1)],
                "date": [dt.date(2024, 6, 3)] * rows,
                "price": [-1.0 if i in bad_rows else 1.5 for i in range(1, rows + 1)],
                "currency": ["EUR"] * rows,
            }
        )
        self.data.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(self.data / f"{name}.parquet")
        self.tables.append({"name": name, "file": f"{name}.parquet", "schema": "builtin:prices"})

    def _add(self, name: str, file: str, text: str) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / file).write_text(text)
        self.tables.append({"name": name, "file": file, "schema": "builtin:prices"})

    def fetched(self) -> None:
        """What the fetch step leaves: the release data under ``input/``."""
        release = {"name": "acme-prices", "version": "1.0.0", "tables": []}
        release["tables"] = [{**t, "primaryKey": ["product_id", "date"]} for t in self.tables]
        (self.data / "release.yaml").write_text(yaml.safe_dump(release, sort_keys=False))
        inputs = self.root / "input"
        inputs.mkdir(parents=True, exist_ok=True)
        for path in self.data.iterdir():
            (inputs / path.name).write_bytes(path.read_bytes())

    def validated(self, only: list[str] | None = None) -> None:
        """What the validation fan-out leaves: one real report per table under ``reports/``."""
        self.fetched()
        for table in self.tables:
            if only is None or table["name"] in only:
                try:
                    validate_table(str(self.data), table["name"], str(self.root / "reports"))
                except DataError:
                    pass  # the report is written before the step fails


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = tmp_path / "workspace"
    root.mkdir()
    monkeypatch.setenv("RELEASE_WORKSPACE", str(root))
    return Workspace(root, tmp_path / "release-data")


@pytest.fixture
def register(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., RepoRegistration]:
    def write(pr_comment: bool = True, check_run: bool = False, **extra) -> RepoRegistration:
        registration = RepoRegistration(
            name="data",
            repo_url="https://github.com/acme/data",
            installation_id=11111111,
            pr_comment=pr_comment,
            check_run=check_run,
            **extra,
        )
        path = tmp_path / "registrations.yaml"
        path.write_text(dump_registrations([registration]))
        monkeypatch.setenv("STEP_REGISTRATIONS_FILE", str(path))
        return registration

    return write


def summarise(emu, event: str = "pull_request", status: str = "Failed", failures: str = "", pr: str = str(PR)):
    return report_pr_summary(REPO, SHA, event, pr, status, str(emu.installation_id), "", failures)


def ours(emu) -> list:
    return [c for c in emu.comments(REPO, PR) if c.body.startswith(MARKER)]


def no_invalid(emu) -> None:
    assert emu.invalid_requests == []


def argo_failures(*nodes: dict) -> str:
    """``{{workflow.failures}}`` as Argo hands it to the exit handler: Go-quoted JSON."""
    return json.dumps(json.dumps(list(nodes)))


# ------------------------------------------------------------------------------------ upsert


def test_first_run_creates_the_comment_second_edits_it_third_changes_nothing(github_env, workspace, register):
    register()
    github_env.add_pull_request(REPO, PR)
    workspace.add_bad_prices_csv("prices", 20, {3, 9})
    workspace.validated()

    first = summarise(github_env)
    assert first["comment"]["action"] == "created" and first["state"] == "failure"
    (comment,) = github_env.comments(REPO, PR)
    assert comment.body.startswith(MARKER + "\n")
    assert "release-data-prep: failed" in comment.body and "`prices`" in comment.body
    assert "`-1.0`" in comment.body and "`price >= 0`" in comment.body
    assert "[3](https://github.com/acme/data/blob/" + SHA + "/release-data/prices.csv#L4)" in comment.body
    assert "https://argo.example.com/workflows/argo/release-data-prep-abc12" in comment.body
    assert f"[`{SHA[:7]}`](https://github.com/acme/data/commit/{SHA})" in comment.body
    # token, one page of comments, the POST
    assert [(c.method, c.api_path.rsplit("/", 1)[-1]) for c in github_env.calls] == [
        ("POST", "access_tokens"),
        ("GET", "comments"),
        ("POST", "comments"),
    ]

    (workspace.root / "reports" / "prices.validation.json").unlink()
    workspace.tables.clear()
    workspace.add_bad_prices_csv("prices", 20, set())
    workspace.validated()
    before = len(github_env.calls)
    second = summarise(github_env, status="Succeeded")
    assert second["comment"]["action"] == "updated" and second["state"] == "success"
    (edited,) = github_env.comments(REPO, PR)
    assert edited.id == comment.id and "release-data-prep: passed" in edited.body and "-1.0" not in edited.body
    assert [c.method for c in github_env.calls[before:]] == ["POST", "GET", "PATCH"]

    before = len(github_env.calls)
    third = summarise(github_env, status="Succeeded")
    assert third["comment"]["action"] == "unchanged"
    assert [c.method for c in github_env.calls[before:]] == ["POST", "GET"]
    assert len(github_env.comments(REPO, PR)) == 1
    no_invalid(github_env)


def test_marker_is_found_on_page_three_and_nobody_elses_comment_is_touched(github_env, workspace, register):
    register()
    github_env.add_pull_request(REPO, PR)
    others = [
        ("renovate[bot]", "Bot", f"{MARKER}\nA bot that copies our marker line must not be edited."),
        ("alice", "User", f"{MARKER}\nA person who pasted the marker."),
        ("ci-bot[bot]", "Bot", "release-data-prep: failed. gitops-status-matrix says prices failed."),
        ("bob", "User", "Why did release-data-prep fail? <!-- gitops-status-matrix:release-data-prep -->"),
    ]
    for i in range(206):
        github_env.add_comment(REPO, PR, f"comment {i}", user=f"user{i % 5}", user_type="User")
    for user, kind, body in others:
        github_env.add_comment(REPO, PR, body, user=user, user_type=kind)
    github_env.add_comment(REPO, PR + 1, MARKER + "\nsame marker, other pull request")
    untouched = {c.id: (c.body, c.updated_at) for c in github_env.comments(REPO, PR)}
    workspace.add_bad_prices_csv("prices", 10, {2})
    workspace.validated()

    first = summarise(github_env)
    assert first["comment"]["action"] == "created" and first["comment"]["pages"] == 3
    assert len(ours(github_env)) == 3  # the two impostors and the one just created
    created = github_env.comments(REPO, PR)[-1]
    assert created.app_id == github_env.app_id

    workspace.tables.clear()
    workspace.add_bad_prices_csv("prices", 10, {2, 4})
    workspace.validated()
    before = len(github_env.calls)
    second = summarise(github_env)["comment"]
    assert (second["action"], second["pages"], second["comment_id"]) == ("updated", 3, created.id)
    calls = github_env.calls[before:]
    assert [(c.method, c.query.get("page")) for c in calls[1:]] == [
        ("GET", None),
        ("GET", "2"),
        ("GET", "3"),
        ("PATCH", None),
    ]
    assert calls[-1].api_path == f"/repos/{REPO}/issues/comments/{created.id}"
    after = {c.id: (c.body, c.updated_at) for c in github_env.comments(REPO, PR)}
    assert {i: after[i] for i in untouched} == untouched
    assert len(after) == len(untouched) + 1
    assert [c.body for c in github_env.comments(REPO, PR + 1)] == [MARKER + "\nsame marker, other pull request"]
    no_invalid(github_env)


def test_a_connection_dropped_after_github_created_the_comment_leaves_exactly_one(github_env):
    from tests.support.emulators.github import Fault

    github_env.add_pull_request(REPO, PR)
    github_env.add_fault(Fault("drop_after", method="POST", path_regex=r"/issues/\d+/comments$"))
    client = repo_client(REPO, PERMISSIONS, installation_id=github_env.installation_id)
    upsert_pr_comment(client, PR, MARKER + "\nv1", marker=MARKER, app_id=github_env.app_id)
    assert [c.body for c in github_env.comments(REPO, PR)] == [MARKER + "\nv1"]
    assert github_env.count("POST", r"/comments$") == 1  # found by its marker, not sent again
    no_invalid(github_env)


def test_found_on_page_one_stops_paging(github_env):
    github_env.add_pull_request(REPO, PR)
    client = repo_client(REPO, PERMISSIONS, installation_id=github_env.installation_id)
    upsert_pr_comment(client, PR, MARKER + "\nv1", marker=MARKER, app_id=github_env.app_id)
    for i in range(150):
        github_env.add_comment(REPO, PR, f"later {i}")
    found, pages = find_own_comment(client, PR, MARKER, github_env.app_id)
    assert found is not None and found["body"] == MARKER + "\nv1" and pages == 1
    assert github_env.count("GET", "/comments$") == 2


def test_paging_and_editing_work_under_a_ghes_base_path(github_env, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", github_env.ghes_url)
    github_env.add_pull_request(REPO, PR)
    for i in range(120):
        github_env.add_comment(REPO, PR, f"earlier {i}")
    client = repo_client(REPO, PERMISSIONS, installation_id=github_env.installation_id)
    first = upsert_pr_comment(client, PR, MARKER + "\nv1", marker=MARKER, app_id=github_env.app_id)
    second = upsert_pr_comment(client, PR, MARKER + "\nv2", marker=MARKER, app_id=github_env.app_id)
    assert (first.action, first.pages, second.action, second.pages) == ("created", 2, "updated", 2)
    assert github_env.comments(REPO, PR)[-1].body == MARKER + "\nv2"
    assert all(c.path.startswith("/api/v3/") for c in github_env.calls)
    no_invalid(github_env)


def test_comment_of_another_context_is_a_different_comment(github_env):
    github_env.add_pull_request(REPO, PR)
    client = repo_client(REPO, PERMISSIONS, installation_id=github_env.installation_id)
    staging = comment_marker("release-data-prep/staging")
    upsert_pr_comment(client, PR, MARKER + "\none", marker=MARKER, app_id=github_env.app_id)
    result = upsert_pr_comment(client, PR, staging + "\ntwo", marker=staging, app_id=github_env.app_id)
    assert result.action == "created"
    assert [c.body for c in github_env.comments(REPO, PR)] == [MARKER + "\none", staging + "\ntwo"]


def test_body_without_marker_or_too_long_is_refused_before_any_call(github_env):
    client = repo_client(REPO, PERMISSIONS, installation_id=github_env.installation_id)
    with pytest.raises(ConfigError, match="marker"):
        upsert_pr_comment(client, PR, "no marker", marker=MARKER, app_id=github_env.app_id)
    with pytest.raises(ConfigError, match="65,536"):
        upsert_pr_comment(client, PR, MARKER + "\n" + "x" * COMMENT_LIMIT, marker=MARKER, app_id=github_env.app_id)
    assert github_env.calls == []


# ------------------------------------------------------------------------------- the body


def test_long_report_is_truncated_below_the_limit_with_a_link(github_env, workspace, register):
    register()
    github_env.add_pull_request(REPO, PR)
    for t in range(30):
        workspace.add_csv(f"t{t:02d}", 15, bad=lambda i, t=t: f"BAD-{t}-{i}-" + "x" * 150 if i > 2 else None)
    workspace.validated()

    result = summarise(github_env)
    (comment,) = github_env.comments(REPO, PR)
    assert result["comment"]["action"] == "created" and result["tables"] == 30
    assert len(comment.body) <= COMMENT_LIMIT
    assert "_Truncated to fit GitHub's limit:" in comment.body
    notice = comment.body[comment.body.index("_Truncated") :]
    store = (workspace.root / "reports").as_uri()
    assert f"the full reports (`{store}/`)" in notice  # a store location is shown as code, not as a link
    assert "[the run](https://argo.example.com/workflows/argo/release-data-prep-abc12)" in notice
    footer = comment.body.rstrip().splitlines()[-1]  # the footer survives truncation
    assert footer.startswith(f"Commit [`{SHA[:7]}`]") and "[Argo run](https://argo.example.com/" in footer
    assert "`t29`" in comment.body  # every table is in the overview; details are what is cut
    no_invalid(github_env)


def test_truncation_keeps_whole_sections_and_the_footer():
    tables = tuple(
        TableOutcome(
            f"t{i}",
            f"t{i}.csv",
            100,
            False,
            50,
            {"price >= 0": 50},
            [{"row": r, "column": "price", "check": "price >= 0", "value": "-1" * 50} for r in range(1, 11)],
        )
        for i in range(20)
    )
    run = RunSummary(REPO, SHA, "Failed", tables, target_url="https://argo.example.com/run")
    full = pr_comment_body(run, context="release-data-prep")
    short = pr_comment_body(run, context="release-data-prep", limit=6000)
    assert len(full) < COMMENT_LIMIT and "Truncated" not in full
    assert len(short) <= 6000 and short.startswith(MARKER + "\n")
    assert short.count("<details>") == short.count("</details>") >= 1
    assert "[the run](https://argo.example.com/run)" in short and short.rstrip().endswith(
        "[Argo run](https://argo.example.com/run)"
    )


def test_values_cannot_mention_link_or_break_the_table():
    nasty = "@acme/admins ![x](http://evil.example/p.png) a|b `tick` <b>x</b>\nnext"
    table = TableOutcome(
        "prices",
        "prices.csv",
        3,
        False,
        1,
        {"currency in set": 1},
        [{"row": 2, "column": "currency", "check": "currency in set", "value": nasty}],
    )
    body = pr_comment_body(RunSummary(REPO, SHA, "Failed", (table,)), context="release-data-prep")
    row = next(line for line in body.splitlines() if "evil" in line)
    assert "``@acme/admins ![x](http://evil.example/p.png) a\\|b `tick` <b>x</b> next``" in row
    assert row.count(" | ") == 3  # four cells: the value's pipe is escaped
    assert md_code("`edge`") == "`` `edge` ``" and md_code(None) == "_null_" and md_code("  ") == "_empty_"


# --------------------------------------------------------------------------- missing reports


def test_run_that_stopped_before_validation_says_where(github_env, workspace, register):
    register()
    github_env.add_pull_request(REPO, PR)
    failures = argo_failures(
        {
            "displayName": "fetch",
            "templateName": "fetch",
            "phase": "Failed",
            "message": "Error (exit code 75): GitHub 404 trying to download the tarball",
        }
    )
    result = summarise(github_env, status="Error", failures=failures)
    (comment,) = github_env.comments(REPO, PR)
    assert result["state"] == "error" and result["tables"] == 0
    assert "release-data-prep: errored" in comment.body
    assert "**Stopped while fetching the release data**" in comment.body
    assert "Cause: `fetch: GitHub 404 trying to download the tarball`" in comment.body
    assert comment.body.count("Stopped while") == 1
    no_invalid(github_env)


def test_metadata_and_partial_validation_stops_are_named(github_env, workspace, register):
    register()
    github_env.add_pull_request(REPO, PR)
    workspace.add_bad_prices_csv("prices", 5, set())
    workspace.add_bad_prices_csv("stock", 5, set())
    workspace.fetched()
    (workspace.root / "input" / "release.yaml").write_text("tables: [oops")
    summarise(github_env, failures="null")
    assert "**Stopped while checking release.yaml**" in github_env.comments(REPO, PR)[0].body

    workspace.validated(only=["prices"])
    summarise(github_env, failures="null")
    body = github_env.comments(REPO, PR)[0].body
    assert "Validation did not finish: no report for 1 table" in body
    assert "| `stock` | | | | not validated | |" in body
    assert "Cause:" not in body  # Argo named no failed step
    assert len(github_env.comments(REPO, PR)) == 1


VALID = TableOutcome("prices", "prices.csv", 10, True, 0)
INVALID = TableOutcome("prices", "prices.csv", 10, False, 2, {"price >= 0": 2})


@pytest.mark.parametrize(
    ("status", "has_input", "reports", "missing", "published", "stage"),
    [
        ("Succeeded", True, [VALID], [], True, ""),
        ("", False, [], [], False, ""),
        ("Failed", False, [], [], False, "fetch"),
        ("Failed", True, [], ["prices"], False, "metadata"),
        ("Failed", True, [INVALID], [], False, "validation"),
        ("Error", True, [VALID], ["stock"], False, "validation"),
        ("Error", True, [VALID], [], False, "publish"),
        ("Failed", True, [VALID], [], True, "after-publish"),
    ],
)
def test_stopped_stage_is_read_from_the_workspace(status, has_input, reports, missing, published, stage):
    found = stopped_stage(status, has_input=has_input, reports=reports, missing=missing, published=published)
    assert found == stage


@pytest.mark.parametrize(
    ("status", "tables", "missing", "state"),
    [
        ("Succeeded", (VALID,), (), "success"),
        ("Succeeded", (INVALID,), (), "failure"),
        ("Succeeded", (VALID,), ("stock",), "failure"),
        ("Error", (VALID,), (), "error"),
        ("", (VALID,), (), "success"),
        ("", (), (), "failure"),
        ("", (INVALID,), (), "failure"),
    ],
)
def test_state_follows_the_workflow_and_never_hides_failed_tables(status, tables, missing, state):
    run = RunSummary(REPO, SHA, status, tables, missing)
    assert run.state == state and run.conclusion == ("success" if state == "success" else "failure")


# ------------------------------------------------------------------------ what is sent when


def test_push_event_sends_no_comment(github_env, workspace, register):
    register(pr_comment=True, check_run=False)
    workspace.add_bad_prices_csv("prices", 5, set())
    workspace.validated()
    result = summarise(github_env, event="push", status="Succeeded", pr="")
    assert result["comment"] is None and result["check_run"] is None
    assert github_env.calls == []


def test_registration_without_pr_comment_sends_nothing(github_env, workspace, register):
    register(pr_comment=False, check_run=False)
    github_env.add_pull_request(REPO, PR)
    assert summarise(github_env)["comment"] is None
    assert github_env.calls == []


@pytest.mark.parametrize("pr", ["", "0", "abc"])
def test_pull_request_without_a_number_is_refused(github_env, workspace, register, pr):
    register()
    with pytest.raises(ConfigError, match="pr-number"):
        summarise(github_env, pr=pr)
    assert github_env.calls == []


def test_token_is_narrowed_to_pull_requests_write(github_env, workspace, register):
    register()
    github_env.add_pull_request(REPO, PR)
    workspace.add_bad_prices_csv("prices", 5, set())
    workspace.validated()
    summarise(github_env, status="Succeeded")
    (token,) = github_env.tokens_issued()
    assert token.permissions == {"pull_requests": "write", "metadata": "read"}
    assert token.repositories == [REPO]


def test_record_mode_sends_nothing_and_records_the_body(github_env, workspace, register, tmp_path, monkeypatch):
    register(check_run=True)
    record = tmp_path / "github.jsonl"
    monkeypatch.setenv("GITHUB_RECORD_FILE", str(record))
    workspace.add_bad_prices_csv("prices", 8, {5})
    workspace.validated()
    result = summarise(github_env)
    assert result["comment"]["action"] == "recorded" and result["check_run"]["requests"] == 0
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [e["kind"] for e in entries] == ["pr_comment", "check_run"]
    comment, check = entries
    assert comment["pr_number"] == PR and comment["marker"] == MARKER and comment["body"].startswith(MARKER)
    assert "`price >= 0`" in comment["body"]
    assert check["conclusion"] == "failure" and check["sha"] == SHA
    assert [(a["path"], a["start_line"]) for a in check["annotations"]] == [("release-data/prices.csv", 6)]
    assert github_env.calls == []


def _comment_json(body: str, login: str, app: dict | None) -> dict:
    return {"body": body, "user": {"login": login, "type": "Bot"}, "performed_via_github_app": app}


def test_own_comment_is_recognised_by_app_id_or_by_bot_login_when_github_omits_the_app():
    marker = "<!-- gitops-status-matrix:release-data-prep -->"
    body = marker + "\nsummary"
    ours_by_app = _comment_json(body, "anything[bot]", {"id": 12345})
    assert is_own_comment(ours_by_app, marker, 12345)
    assert not is_own_comment(_comment_json(body, "anything[bot]", {"id": 999}), marker, 12345)
    no_app = _comment_json(body, "gitops-status-matrix[bot]", None)
    assert not is_own_comment(no_app, marker, 12345)  # without a slug there is no safe way to tell
    assert is_own_comment(no_app, marker, 12345, "gitops-status-matrix")
    copycat = _comment_json(body, "other-bot[bot]", None)
    assert not is_own_comment(copycat, marker, 12345, "gitops-status-matrix")
    human = {"body": body, "user": {"login": "gitops-status-matrix[bot]", "type": "User"}}
    assert not is_own_comment(human, marker, 12345, "gitops-status-matrix")
