"""What the pull-request comment and the check run say about a run: pure formatting, no I/O."""

import html
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from steps.data.metadata import FORMATS
from steps.policy.status import PHASE_TO_STATE, clip

COMMENT_LIMIT = 65536
CHECK_SUMMARY_LIMIT = 65535
CHECK_TITLE_LIMIT = 255
ANNOTATIONS_PER_REQUEST = 50
ANNOTATIONS_PER_TABLE = 100
ANNOTATIONS_LIMIT = 500
ANNOTATION_MESSAGE_LIMIT = 2000
SAMPLE_ROWS = 10
TOP_CHECKS = 5
VALUE_CHARS = 120
MARKER_NAME = "gitops-status-matrix"
STAGES = {
    "fetch": "fetching the release data",
    "metadata": "checking release.yaml",
    "validation": "validating the tables",
    "publish": "publishing the release",
    "after-publish": "registering or deploying the published release",
}
_WORDS = {"success": "passed", "failure": "failed", "error": "errored"}


@dataclass(frozen=True)
class TableOutcome:
    """One table's validation report, as far as the comment and the check run need it.

    Attributes:
        table: Table name.
        file: The table's file, relative to the release-data directory.
        rows: Data rows read.
        valid: Whether every check passed.
        failure_count: Failures found (the sample holds only the first ones).
        check_counts: Failures per check label.
        failures: Sample of ``{"row", "column", "check", "value"}``; ``row`` is the 1-based data row or
            ``None`` for a failure of the whole table.
        summary: The report's one-line summary.
        report_url: Where the full report is stored.
    """

    table: str
    file: str
    rows: int
    valid: bool
    failure_count: int
    check_counts: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    report_url: str = ""

    @property
    def format(self) -> str:
        """``csv``, ``parquet``, or ``""`` for a suffix release.yaml does not allow."""
        return FORMATS.get(PurePosixPath(self.file).suffix.lower(), "")


def table_outcome(report: Mapping[str, Any], report_url: str = "") -> TableOutcome:
    """Read one ``<table>.validation.json`` document.

    Raises:
        ValueError: the document is not a validation report (no table name, wrong types).
    """
    if not isinstance(report, Mapping) or not isinstance(report.get("table"), str) or not report["table"]:
        raise ValueError("not a validation report: no 'table' name")
    try:
        counts = {str(k): int(v) for k, v in dict(report.get("check_counts") or {}).items()}
        failures = [dict(f) for f in report.get("failures") or [] if isinstance(f, Mapping)]
        return TableOutcome(
            table=report["table"],
            file=str(report.get("file") or ""),
            rows=int(report.get("rows") or 0),
            valid=bool(report.get("valid")),
            failure_count=int(report.get("failure_count") or 0),
            check_counts=counts,
            failures=failures,
            summary=str(report.get("summary") or ""),
            report_url=report_url,
        )
    except (TypeError, ValueError) as exc:
        name = report["table"]
        raise ValueError(f"validation report of {name!r} has a field of a wrong type: {exc}") from None


@dataclass(frozen=True)
class RunSummary:
    """What one run of release-data-prep produced, for one commit.

    Attributes:
        repo: ``owner/name``.
        sha: The commit.
        workflow_status: ``{{workflow.status}}`` (Succeeded, Failed, Error) or ``""`` when unknown.
        tables: Reports found, in release.yaml order.
        missing: Tables of release.yaml that have no report.
        stopped_at: Key of :data:`STAGES` where the run stopped, ``""`` if it did not stop early.
        cause: The failed step and its message (from ``{{workflow.failures}}``), if any.
        target_url: The run's page (``GITHUB_TARGET_URL``).
        reports_url: Where all reports of the run are stored.
        data_path: The release-data directory inside the repository (``dataPath`` of the registration).
        web_url: The repository's web address (``https://github.com/owner/name``), for line links.
    """

    repo: str
    sha: str
    workflow_status: str = ""
    tables: tuple[TableOutcome, ...] = ()
    missing: tuple[str, ...] = ()
    stopped_at: str = ""
    cause: str = ""
    target_url: str = ""
    reports_url: str = ""
    data_path: str = ""
    web_url: str = ""

    @property
    def failed_tables(self) -> list[TableOutcome]:
        """Tables whose validation failed."""
        return [t for t in self.tables if not t.valid]

    @property
    def state(self) -> str:
        """``success``, ``failure`` or ``error``: the run's phase, or the reports when it is unknown."""
        state = PHASE_TO_STATE.get(self.workflow_status)
        if state == "success" and (self.failed_tables or self.missing):
            return "failure"
        if state is not None:
            return state
        return "success" if self.tables and not self.failed_tables and not self.missing else "failure"

    @property
    def conclusion(self) -> str:
        """The check run conclusion: ``success`` or ``failure``."""
        return "success" if self.state == "success" else "failure"


def stopped_stage(
    workflow_status: str,
    *,
    has_input: bool,
    reports: Sequence[TableOutcome],
    missing: Sequence[str],
    published: bool,
) -> str:
    """Which stage a run that did not succeed stopped in, read from what it left in its workspace.

    Args:
        workflow_status: ``{{workflow.status}}``; nothing stopped when it is Succeeded or unknown.
        has_input: The fetched release data is in the workspace.
        reports: Validation reports found.
        missing: Tables of release.yaml without a report.
        published: The publish step wrote its summary.

    Returns:
        A key of :data:`STAGES`, or ``""``.
    """
    if workflow_status not in ("Failed", "Error"):
        return ""
    if not has_input:
        return "fetch"
    if not reports:
        return "metadata"  # each table's validation stores its report, even when the table fails
    if missing or any(not t.valid for t in reports):
        return "validation"
    return "after-publish" if published else "publish"


def comment_marker(context: str) -> str:
    """The hidden first line that identifies this project's comment for one status context."""
    safe = re.sub(r"[^A-Za-z0-9._/:-]", "-", context) or "release-data-prep"
    return f"<!-- {MARKER_NAME}:{safe} -->"


def repo_path(data_path: str, file: str) -> str:
    """The path of a table's file inside the repository (``dataPath`` joined with the file)."""
    joined = posixpath.normpath(posixpath.join(data_path.strip() or ".", file))
    return joined.lstrip("/")


def md_code(value: Any, *, in_table: bool = False) -> str:
    """Show ``value`` literally as a one-line code span (``|`` escaped inside table cells)."""
    if value is None:
        return "_null_"
    text = " ".join(str(value).split())
    if not text:
        return "_empty_"
    if in_table:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _link(label: str, url: str) -> str:
    """A markdown link for http(s) URLs; other locations (s3://, file://) as code."""
    if re.match(r"^https?://", url or ""):
        return f"[{label}]({url.replace(' ', '%20').replace(')', '%29')})"
    return md_code(url, in_table=True) if url else ""


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def headline(run: RunSummary) -> str:
    """One line: what happened (used as the check run title and under the comment's heading)."""
    failed = run.failed_tables
    rows = sum(t.rows for t in run.tables)
    if run.stopped_at and run.stopped_at not in ("validation", "publish", "after-publish"):
        return f"Stopped while {STAGES[run.stopped_at]}"
    if failed:
        failures = _plural(sum(t.failure_count for t in failed), "failure")
        return f"{len(failed)} of {_plural(len(run.tables), 'table')} failed validation ({failures})"
    if run.missing:
        return f"Validation did not finish: no report for {_plural(len(run.missing), 'table')}"
    if run.stopped_at:
        return f"Tables valid ({_plural(rows, 'row')}), stopped while {STAGES[run.stopped_at]}"
    if not run.tables:
        return "No validation reports"
    return f"{_plural(len(run.tables), 'table')} valid ({_plural(rows, 'row')})"


def _line_link(run: RunSummary, table: TableOutcome, row: Any) -> str:
    if not isinstance(row, int):
        return "table"
    if table.format == "csv" and run.web_url and run.sha:
        path = quote(repo_path(run.data_path, table.file), safe="/")
        return f"[{row:,}]({run.web_url.rstrip('/')}/blob/{run.sha}/{path}#L{row + 1})"
    return f"{row:,}"


def _overview(run: RunSummary) -> tuple[str, list[str]]:
    header = "| table | file | rows | failures | result | report |\n|---|---|--:|--:|---|---|\n"
    rows = [
        f"| {md_code(t.table, in_table=True)} | {md_code(repo_path(run.data_path, t.file), in_table=True)} "
        f"| {t.rows:,} | {t.failure_count:,} | {'valid' if t.valid else '**failed**'} "
        f"| {_link('report', t.report_url)} |\n"
        for t in run.tables
    ]
    rows += [f"| {md_code(name, in_table=True)} | | | | not validated | |\n" for name in run.missing]
    return header, rows


def _details(run: RunSummary, table: TableOutcome) -> str:
    top = sorted(table.check_counts.items(), key=lambda kv: -kv[1])[:TOP_CHECKS]
    checks = ", ".join(f"{md_code(label)} ({count:,})" for label, count in top)
    more = len(table.check_counts) - len(top)
    shown = table.failures[:SAMPLE_ROWS]
    lines = [
        f"<details><summary>{html.escape(table.table)}: {_plural(table.failure_count, 'failure')} "
        f"in {_plural(table.rows, 'row')}</summary>",
        "",
    ]
    if top:
        lines += [f"Top checks: {checks}{f', and {more} more' if more > 0 else ''}", ""]
    lines += [
        "| row | column | check | value |",
        "|--:|---|---|---|",
    ]
    for failure in shown:
        value = failure.get("value")
        value = None if value is None else clip(str(value), VALUE_CHARS)
        cells = [md_code(failure.get(key), in_table=True) for key in ("column", "check")]
        row = _line_link(run, table, failure.get("row"))
        lines.append(f"| {row} | {cells[0]} | {cells[1]} | {md_code(value, in_table=True)} |")
    rest = f"; full report: {_link('report', table.report_url)}" if table.report_url else ""
    lines += ["", f"_{len(shown):,} of {table.failure_count:,} failures shown{rest}._", "", "</details>", ""]
    return "\n".join(lines) + "\n"


def _fit(head: str, parts: Sequence[str], tail: str, limit: int, notice: Callable[[int], str]) -> str:
    """``head`` + as many ``parts`` as fit in order + ``tail``; a notice says how many were left out."""
    reserve = len(notice(len(parts))) + len(tail)
    body = head
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if len(body) + len(part) + (len(tail) if last else reserve) <= limit:
            body += part
            continue
        body += notice(len(parts) - index)
        break
    text = body + tail
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_markdown(run: RunSummary, *, context: str, limit: int, marker: str = "") -> str:
    """The markdown report of a run, at most ``limit`` characters, truncated section by section.

    Args:
        run: The run.
        context: The status context shown in the heading (``release-data-prep``).
        limit: Most characters (GitHub: 65536 for a comment, 65535 for a check run summary).
        marker: A hidden first line (the comment marker), or ``""``.
    """
    state = run.state
    head = [marker] if marker else []
    head += [f"### {context}: {_WORDS[state]}", "", f"**{headline(run)}**", ""]
    if state != "success" and run.cause:
        head += [f"Cause: {md_code(run.cause)}", ""]
    table_head, rows = _overview(run)
    if rows:
        head.append(table_head.rstrip("\n"))
    details = [_details(run, t) for t in run.failed_tables]
    if details:
        details[0] = "\n" + details[0]
    where = []
    if run.reports_url:
        where.append(f"the full reports ({_link('reports', run.reports_url)})")
    if run.target_url:
        where.append(_link("the run", run.target_url))
    see = " and ".join(where)

    def notice(left: int) -> str:
        rest = f"; see {see}" if see else ""
        return f"\n\n_Truncated to fit GitHub's limit: {left:,} more sections not shown{rest}._\n"

    short = run.sha[:7] or "unknown"
    commit = f"`{short}`"
    if run.web_url and run.sha:
        commit = f"[{commit}]({run.web_url.rstrip('/')}/commit/{run.sha})"
    links = [f"Commit {commit}"]
    if run.target_url:
        links.append(_link("Argo run", run.target_url))
    if run.reports_url:
        links.append(f"reports: {_link('all reports', run.reports_url)}")
    tail = "\n---\n" + " · ".join(links) + "\n"
    return _fit("\n".join(head) + "\n", rows + details, tail, limit, notice)


def pr_comment_body(run: RunSummary, *, context: str, limit: int = COMMENT_LIMIT) -> str:
    """The whole comment: the marker line, then the report (at most ``limit`` characters)."""
    return render_markdown(run, context=context, limit=limit, marker=comment_marker(context))


def check_run_output(run: RunSummary, *, context: str, limit: int = CHECK_SUMMARY_LIMIT) -> dict[str, str]:
    """``{"title", "summary"}`` of the check run's output."""
    return {
        "title": clip(headline(run), CHECK_TITLE_LIMIT),
        "summary": render_markdown(run, context=context, limit=limit),
    }


def _annotation_message(table: TableOutcome, failure: Mapping[str, Any]) -> str:
    row, column, value = failure.get("row"), failure.get("column"), failure.get("value")
    if not isinstance(row, int):
        where = f"Table {table.table}"
    elif table.format == "csv":
        where = f"Data row {row:,} (file line {row + 1:,})"
    else:
        where = f"Row {row:,} of the {'Parquet ' if table.format == 'parquet' else ''}file"
    parts = [where]
    if column:
        parts.append(f"column {column}")
    text = ", ".join(parts) + (f': value "{clip(str(value), VALUE_CHARS)}"' if value is not None else "")
    return clip(text, ANNOTATION_MESSAGE_LIMIT)


def build_annotations(
    tables: Iterable[TableOutcome],
    data_path: str,
    *,
    per_table: int = ANNOTATIONS_PER_TABLE,
    limit: int = ANNOTATIONS_LIMIT,
) -> list[dict[str, Any]]:
    """Check run annotations for the first failures of each failed table.

    A CSV failure in data row N points at file line N + 1 (the header is line 1); Parquet has no lines,
    so its failures point at line 1 and name the row in the message; a whole-table failure points at
    line 1. Annotation level is ``failure``, title the check, message the row, column and value.

    Args:
        tables: The tables, in order.
        data_path: The release-data directory inside the repository.
        per_table: Most annotations per table.
        limit: Most annotations in all.
    """
    out: list[dict[str, Any]] = []
    for table in tables:
        if table.valid:
            continue
        path = repo_path(data_path, table.file)
        for failure in table.failures[:per_table]:
            if len(out) >= limit:
                return out
            row = failure.get("row")
            line = row + 1 if table.format == "csv" and isinstance(row, int) and row > 0 else 1
            out.append(
                {
                    "path": path,
                    "start_line": line,
                    "end_line": line,
                    "annotation_level": "failure",
                    "title": clip(str(failure.get("check") or "check failed"), CHECK_TITLE_LIMIT),
                    "message": _annotation_message(table, failure),
                }
            )
    return out


def annotation_batches(
    annotations: Sequence[dict[str, Any]], size: int = ANNOTATIONS_PER_REQUEST
) -> list[list[dict[str, Any]]]:
    """Split annotations into requests of at most ``size`` (GitHub takes 50 per request)."""
    return [list(annotations[i : i + size]) for i in range(0, len(annotations), size)]


__all__ = [
    "ANNOTATIONS_LIMIT",
    "ANNOTATIONS_PER_REQUEST",
    "ANNOTATIONS_PER_TABLE",
    "CHECK_SUMMARY_LIMIT",
    "COMMENT_LIMIT",
    "MARKER_NAME",
    "STAGES",
    "RunSummary",
    "TableOutcome",
    "annotation_batches",
    "build_annotations",
    "check_run_output",
    "comment_marker",
    "headline",
    "md_code",
    "pr_comment_body",
    "render_markdown",
    "repo_path",
    "stopped_stage",
    "table_outcome",
]
