"""A run's workspace (``$RELEASE_WORKSPACE``), the store its pods share, and where releases go."""

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from steps.data.metadata import RELEASE_FILE
from steps.policy.report import RunSummary, TableOutcome, stopped_stage, table_outcome
from steps.policy.status import final_description, parse_failures
from steps.runtime.errors import ConfigError, StepError
from steps.store.base import ArtifactStore, Upload
from steps.store.url import open_store

log = logging.getLogger(__name__)

WORKSPACE_ENV = "RELEASE_WORKSPACE"
S3_SECRET_ENV = "S3_CREDENTIALS_SECRET"  # noqa: S105 - the name of a variable
S3_SECRET_KEYS = {"AWS_ACCESS_KEY_ID": "access-key-id", "AWS_SECRET_ACCESS_KEY": "secret-access-key"}
STORE_ENV = "RELEASE_STORE"
MAX_DOWNLOAD_BYTES = 64 * 1024**3
SUMMARY_KEY = "summary.json"
DEPLOY_PREFIX = "deploy/"
SMALL_FILE_BYTES = 4 * 1024 * 1024
INPUT_PREFIX = "input/"
REPORTS_PREFIX = "reports/"
REPORT_SUFFIX = ".validation.json"
MAX_REPORT_BYTES = 16 * 1024 * 1024


def check_s3_credentials(environ: Mapping[str, str] | None = None) -> None:
    """Fail at once, naming the Secret and key, when the pod's S3 credentials Secret was missing or incomplete.

    The template mounts the keys with ``optional: true`` (a missing Secret would otherwise keep the pod from
    starting at all, until the workflow deadline) and names the Secret in ``$S3_CREDENTIALS_SECRET``.

    Raises:
        ConfigError: a key of that Secret did not arrive.
    """
    env = os.environ if environ is None else environ
    secret = env.get(S3_SECRET_ENV, "").strip()
    missing = [key for var, key in S3_SECRET_KEYS.items() if secret and not env.get(var, "").strip()]
    if missing:
        raise ConfigError(
            f"S3 credentials missing: Secret {secret} has no {' or '.join(missing)} (or does not exist); "
            "create it as docs/ops.md shows"
        )


def _store(variable: str) -> ArtifactStore:
    url = os.environ.get(variable, "").strip()
    if not url:
        raise ConfigError(f"${variable} is not set; the WorkflowTemplate sets it from the s3 section of hera_config")
    if url.startswith("s3://"):
        check_s3_credentials()
    return open_store(url)


def workspace() -> ArtifactStore:
    """The run's workspace store (``$RELEASE_WORKSPACE``)."""
    return _store(WORKSPACE_ENV)


def release_store() -> ArtifactStore:
    """Where releases are published (``$RELEASE_STORE``)."""
    return _store(STORE_ENV)


def upload_dir(store: ArtifactStore, local: Path, prefix: str) -> int:
    """Upload every file under ``local`` to ``prefix/<relative path>``; returns the number of files."""
    uploads = []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        sha256 = store.checksum_file(path)[0]
        uploads.append(Upload(f"{prefix}/{path.relative_to(local).as_posix()}", path, path.stat().st_size, sha256))
    store.upload(uploads)
    return len(uploads)


def download_prefix(store: ArtifactStore, prefix: str, local: Path, only: set[str] | None = None) -> int:
    """Download objects under ``prefix/`` (all, or the relative names in ``only``) into ``local``."""
    count = 0
    for key in sorted(store.list_sizes(prefix + "/")):
        rel = key[len(prefix) + 1 :]
        if only is not None and rel not in only:
            continue
        target = local / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        store.download(key, target, max_bytes=MAX_DOWNLOAD_BYTES)
        count += 1
    return count


def stage_input(ws: ArtifactStore, data: Path) -> dict[str, int]:
    """Lay out the workspace's ``input/`` under ``data``: small files downloaded, large ones as sparse files.

    Checks on release.yaml need every file's name and size, not the (possibly huge) table contents; a
    step downloads the one table it works on with ``fetch_input``.
    """
    sizes = {}
    for key, size in sorted(ws.list_sizes("input/").items()):
        rel = key.removeprefix("input/")
        target = data / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if size <= SMALL_FILE_BYTES:
            ws.download(key, target, max_bytes=SMALL_FILE_BYTES)
        else:
            with target.open("wb") as fh:
                fh.truncate(size)
        sizes[rel] = size
    return sizes


def fetch_input(ws: ArtifactStore, data: Path, rel: str) -> None:
    """Download ``input/<rel>`` over its staged stand-in."""
    ws.download(f"input/{rel}", data / rel, max_bytes=MAX_DOWNLOAD_BYTES)


def write_summary(ws: ArtifactStore, summary: dict[str, Any]) -> None:
    """Record what was published (``summary.json``) for the register step and the final status."""
    ws.put(SUMMARY_KEY, json.dumps(summary, sort_keys=True, default=str).encode())


def read_summary() -> dict[str, Any] | None:
    """The run's ``summary.json`` from the workspace, or None when nothing was published (or no workspace)."""
    if not os.environ.get(WORKSPACE_ENV, "").strip():
        return None
    found = workspace().get(SUMMARY_KEY)
    return json.loads(found[0]) if found else None


def write_deploy_outcome(environment: str, outcome: dict[str, Any]) -> None:
    """Record how one environment's deployment ended (``deploy/<environment>.json``), for the final status.

    Best effort: the deployment's own status on GitHub is the record; a workspace that cannot be written only
    costs the final description its deployment note. Nothing is written without a workspace.
    """
    if not os.environ.get(WORKSPACE_ENV, "").strip():
        return
    key = _deploy_key(environment)
    try:
        workspace().put(key, json.dumps(outcome, sort_keys=True).encode())
    except StepError as exc:
        log.warning("could not record the %s outcome in the workspace: %s", environment, exc.summary)


def _deploy_key(environment: str) -> str:
    return f"{DEPLOY_PREFIX}{environment.replace('/', '_')}.json"


def read_deploy_outcome(environment: str) -> dict[str, Any] | None:
    """This run's record of ``environment`` (None without a workspace, a record, or a readable store)."""
    if not os.environ.get(WORKSPACE_ENV, "").strip():
        return None
    try:
        found = workspace().get(_deploy_key(environment))
    except StepError as exc:
        log.warning("could not read the %s outcome from the workspace: %s", environment, exc.summary)
        return None
    return json.loads(found[0]) if found else None


def read_deploy_outcomes() -> list[dict[str, Any]]:
    """Every ``deploy/*.json`` of the run's workspace (empty without a workspace)."""
    if not os.environ.get(WORKSPACE_ENV, "").strip():
        return []
    ws = workspace()
    found = []
    for key in sorted(ws.list_sizes(DEPLOY_PREFIX)):
        data = ws.get(key)
        if data is not None:
            found.append(json.loads(data[0]))
    return found


def summary_text(summary: dict[str, Any] | None) -> str:
    """A one-line description of a published release for the final commit status."""
    if not summary:
        return ""
    release = summary.get("release") or {}
    name = " ".join(str(v) for v in (release.get("name"), release.get("version")) if v)
    text = f"{summary.get('tables', 0)} tables, {summary.get('rows', 0):,} rows published"
    return f"{name}: {text}" if name else text


def _release_tables(store: ArtifactStore) -> list[tuple[str, str]] | None:
    """``(name, file)`` of each table in the workspace's release.yaml, or None if it cannot be read."""
    found = store.get(INPUT_PREFIX + RELEASE_FILE)
    if found is None:
        return None
    try:
        document = yaml.safe_load(found[0].decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    tables = document.get("tables") if isinstance(document, dict) else None
    if not isinstance(tables, list):
        return None
    return [
        (t["name"], str(t.get("file") or "")) for t in tables if isinstance(t, dict) and isinstance(t.get("name"), str)
    ]


def _reports(store: ArtifactStore) -> dict[str, TableOutcome]:
    reports: dict[str, TableOutcome] = {}
    for key, size in sorted(store.list_sizes(REPORTS_PREFIX).items()):
        if not key.endswith(REPORT_SUFFIX):
            continue
        if size > MAX_REPORT_BYTES:
            log.warning("skipping report %s: %s bytes is more than a validation report can be", key, size)
            continue
        found = store.get(key)
        if found is None:
            continue
        try:
            outcome = table_outcome(json.loads(found[0]), store.url_for(key))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            log.warning("skipping report %s: %s", key, exc)
            continue
        reports[outcome.table] = outcome
    return reports


def read_run(
    store: ArtifactStore,
    *,
    repo: str,
    sha: str,
    workflow_status: str = "",
    workflow_failures: str = "",
    target_url: str = "",
    data_path: str = "",
    web_url: str = "",
) -> RunSummary:
    """Read what a run left in its workspace store into a :class:`RunSummary`.

    Tables are ordered as in release.yaml (reports of tables it does not list come last); tables it lists
    without a report are ``missing``. When the run failed, the stage it stopped in is read from what is
    there, and the cause (the failed step and its message) from ``workflow_failures``.

    Raises:
        InfraError: the store did not answer.
    """
    reports = _reports(store)
    listed = _release_tables(store)
    order = [name for name, _ in listed or []]
    tables = [reports[n] for n in order if n in reports] + [r for n, r in reports.items() if n not in order]
    files = dict(listed or [])
    tables = [t if t.file or not files.get(t.table) else _with_file(t, files[t.table]) for t in tables]
    missing = tuple(n for n in order if n not in reports)
    stage = stopped_stage(
        workflow_status,
        has_input=bool(store.list_sizes(INPUT_PREFIX)),
        reports=tables,
        missing=missing,
        published=store.head(SUMMARY_KEY) is not None,
    )
    failed = parse_failures(workflow_failures) if workflow_status in ("Failed", "Error") else []
    cause = final_description(workflow_status, failed) if failed else ""
    return RunSummary(
        repo=repo,
        sha=sha,
        workflow_status=workflow_status,
        tables=tuple(tables),
        missing=missing,
        stopped_at=stage,
        cause=cause,
        target_url=target_url,
        reports_url=store.url_for(REPORTS_PREFIX) if reports else "",
        data_path=data_path,
        web_url=web_url,
    )


def _with_file(table: TableOutcome, file: str) -> TableOutcome:
    return TableOutcome(**{**asdict(table), "file": file})


__all__ = [
    "SUMMARY_KEY",
    "check_s3_credentials",
    "download_prefix",
    "fetch_input",
    "read_run",
    "read_summary",
    "release_store",
    "stage_input",
    "summary_text",
    "upload_dir",
    "workspace",
    "write_summary",
]
