"""Steps that prepare a release: fetch, check-metadata, check-table, publish and register, one pod each."""

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from steps.data.etl import build_release
from steps.data.fetch import fetch_release_data
from steps.data.metadata import load_release, validate_metadata
from steps.data.validation import validate_table
from steps.github.app import repo_client, token_source
from steps.github.compare import PERMISSIONS as COMPARE_PERMISSIONS
from steps.github.compare import is_newer
from steps.runtime.errors import DataError, InfraError
from steps.runtime.registrations import DEFAULT_DATA_PATH, load_registration, registrations_mounted
from steps.runtime.settings import GitHubStepSettings
from steps.runtime.step import step
from steps.store.publish import publish_release
from steps.store.registry import register_outputs
from steps.store.workspace import (
    SMALL_FILE_BYTES,
    STORE_ENV,
    download_prefix,
    fetch_input,
    read_summary,
    release_store,
    stage_input,
    upload_dir,
    workspace,
    write_summary,
)

log = logging.getLogger(__name__)


def _from_github(
    repo: str, sha: str, dest: Path, data_path: str, installation_id: int | None, app_id: int | None
) -> dict[str, Any]:
    """The commit's tarball, ``data_path`` of it into ``dest``, with a ``contents: read`` token.

    An empty ``data_path`` is the registration's (the pod mounts the registrations, not optionally: a missing
    one is a clear error), or ``release-data/`` without registrations.
    """
    if not data_path:
        data_path = load_registration(repo).data_path if registrations_mounted() else DEFAULT_DATA_PATH
    settings = GitHubStepSettings.from_env()
    mint = token_source(repo, {"contents": "read"}, installation_id=installation_id, app_id=app_id)
    source = f"github://{repo}@{sha}"
    return fetch_release_data(source, str(dest), data_path=data_path, token=mint, api_url=settings.api_url)


@step
def fetch(
    repo: str,
    sha: str,
    data_path: str = "",
    installation_id: int | None = None,
    app_id: int | None = None,
) -> dict[str, Any]:
    """Step: copy the commit's release data into the workspace (``input/``).

    An empty ``data_path`` is the registration's ``dataPath`` (``release-data/`` without registrations).

    The source is the commit's GitHub tarball (a token scoped to ``contents: read``), unless
    ``$RELEASE_SOURCE`` names a local directory or ``s3://`` location that *is* the data directory
    (local runs, or data staged elsewhere).
    """
    override = os.environ.get("RELEASE_SOURCE", "").strip()
    ws = workspace()  # before fetching: a workspace we cannot write to fails the step at once
    with tempfile.TemporaryDirectory(prefix="fetch-") as tmp:
        dest = Path(tmp) / "data"
        if override:
            result = fetch_release_data(override, str(dest), data_path="")
        else:
            result = _from_github(repo, sha, dest, data_path, installation_id, app_id)
        files = upload_dir(ws, dest, "input")
    log.info("fetched %s files (%s bytes) of %s@%s", files, result.get("bytes"), repo, sha[:7])
    return {"files": files, "bytes": result.get("bytes", 0)}


@step
def validate_fork(
    repo: str,
    sha: str,
    data_path: str = "",
    installation_id: int | None = None,
    app_id: int | None = None,
) -> dict[str, Any]:
    """Step (fork pull requests, ``forks: validate``): fetch and check the data in this one pod, keep nothing.

    The head of a fork is fetched from the base repository (GitHub serves ``refs/pull/N/head`` commits
    there) with a ``contents: read`` token; ``release.yaml`` and every table are checked on local disk. The
    pod holds the App key for that fetch and no S3 credentials: nothing is published, registered or deployed.

    Raises:
        DataError: the metadata or a table fails validation (every table is checked first; the first
            failure is raised, naming how many failed).
    """
    with tempfile.TemporaryDirectory(prefix="fork-") as tmp:
        data, reports = Path(tmp) / "data", Path(tmp) / "reports"
        _from_github(repo, sha, data, data_path, installation_id, app_id)
        tables = validate_metadata(str(data))
        results, failed = [], []
        for table in tables:
            try:
                results.append(validate_table(str(data), table["name"], str(reports)))
            except DataError as exc:
                failed.append(exc)
    if failed:
        raise DataError(f"{len(failed)} of {len(tables)} tables failed: {failed[0].summary}", failed[0].detail)
    rows = sum(int(r.get("rows", 0)) for r in results)
    log.info("fork %s@%s: %d tables, %d rows valid; nothing published", repo, sha[:7], len(results), rows)
    return {"tables": len(results), "rows": rows, "published": False}


@step
def check_metadata(repo: str, sha: str) -> list[dict[str, Any]]:
    """Step: validate ``release.yaml`` and return the tables for the validation fan-out."""
    with tempfile.TemporaryDirectory(prefix="meta-") as tmp:
        stage_input(workspace(), Path(tmp))
        return validate_metadata(tmp)


@step
def check_table(repo: str, sha: str, table: str) -> dict[str, Any]:
    """Step: validate one table (one pod per table); the report goes to the workspace's ``reports/``."""
    ws = workspace()
    with tempfile.TemporaryDirectory(prefix="table-") as tmp:
        data, reports = Path(tmp) / "data", Path(tmp) / "reports"
        reports.mkdir()
        sizes = stage_input(ws, data)
        spec = next((t for t in load_release(data).tables if t.name == table), None)
        if spec is None:
            raise DataError(f"table {table!r} is not in release.yaml")
        if sizes.get(spec.file, 0) > SMALL_FILE_BYTES:
            fetch_input(ws, data, spec.file)
        try:
            result = validate_table(str(data), table, str(reports))
        finally:
            upload_dir(ws, reports, "reports")
    return {**result, "report": ws.url_for(f"reports/{table}.validation.json")}


@step
def publish(repo: str, sha: str, event: str, ref: str, pr_number: str = "", workflow_name: str = "") -> dict[str, Any]:
    """Step: build typed Parquet, statistics and the manifest, then publish them (manifest last).

    Writes ``summary.json`` to the workspace: where the release went and what it holds, for the
    register step and the final commit status.
    """
    ws = workspace()
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "out"
        download_prefix(ws, "input", data)
        build_release(
            str(data),
            str(out),
            repo=repo,
            sha=sha,
            event=event,
            ref=ref,
            pr_number="" if pr_number is None else str(pr_number),
            workflow_name=workflow_name,
        )
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        published = publish_release(out, release_store())
    tables = manifest.get("tables") or []
    summary = {
        **published,
        "release": {
            "name": manifest.get("release", {}).get("name"),
            "version": manifest.get("release", {}).get("version"),
        },
        "tables": len(tables),
        "rows": sum(int(t.get("rows") or 0) for t in tables if isinstance(t, dict)),
    }
    write_summary(ws, summary)
    return summary


@step
def register(
    repo: str,
    sha: str,
    event: str,
    ref: str,
    pr_number: str = "",
    run_id: str = "",
    installation_id: int | None = None,
    app_id: int | None = None,
) -> dict[str, Any]:
    """Step: record the published release; it becomes the latest of its branch or pull request unless older.

    The latest pointer only moves forward: GitHub's compare API says whether this commit comes after the
    current latest (an older run finishing last records its manifest without moving the pointer). Local runs
    (``GITHUB_RECORD_FILE``) have no GitHub to ask; there the last registration wins.
    """
    settings = GitHubStepSettings.from_env()
    ordering = None
    if not settings.record_file:
        client = repo_client(repo, COMPARE_PERMISSIONS, installation_id=installation_id, app_id=app_id)

        def ordering(target: str, name: str, current: str, new: str) -> bool:
            return is_newer(client, current, new, branch=name if target == "branches" else None)

    summary = read_summary()
    if not summary or not summary.get("manifest_key"):
        raise InfraError(f"no published release for {repo}@{sha[:7]} in the workspace; publish did not finish")
    found = release_store().get(summary["manifest_key"])
    if found is None:
        raise InfraError(f"the manifest of {repo}@{sha[:7]} is not in the store; publish did not finish")
    with tempfile.TemporaryDirectory(prefix="register-") as tmp:
        (Path(tmp) / "manifest.json").write_bytes(found[0])
        return register_outputs(tmp, os.environ[STORE_ENV], run_id=run_id or None, is_newer=ordering)


__all__ = ["check_metadata", "check_table", "fetch", "publish", "register", "validate_fork"]
