"""The data stages of release-data-prep as pod steps: each runs in its own pod and shares a run workspace.

Pods share no disk, so a run keeps its files in a workspace store (``$RELEASE_WORKSPACE``, an
``s3://bucket/prefix/_runs/<workflow>`` location in a cluster, a local directory in local runs):
``input/`` holds the fetched release data, ``reports/`` one validation report per table, and
``summary.json`` what was published. Each step downloads only what it needs, calls the plain function
that does the work (``steps.fetch``, ``steps.release_metadata``, ``steps.table_validation``, ``steps.etl``,
``steps.artifact_store``, ``steps.registry``) and uploads its results. The fan-out over tables follows
https://argo-workflows.readthedocs.io/en/latest/walk-through/loops/ (``withParam`` over
``check_metadata``'s result).
"""

import json
import logging
import os
import tempfile
from pathlib import Path

from steps.artifact_store import ArtifactStore, Upload, open_store, publish_release
from steps.errors import ConfigError, DataError, InfraError
from steps.etl import build_release
from steps.fetch import fetch_release_data
from steps.github_app import token_source
from steps.registry import register_outputs
from steps.release_metadata import load_release, validate_metadata
from steps.settings import GitHubStepSettings
from steps.step import step
from steps.table_validation import validate_table

log = logging.getLogger(__name__)

MAX_DOWNLOAD_BYTES = 64 * 1024**3
SUMMARY_KEY = "summary.json"
SMALL_FILE_BYTES = 4 * 1024 * 1024


def _store(variable: str) -> ArtifactStore:
    url = os.environ.get(variable, "").strip()
    if not url:
        raise ConfigError(f"${variable} is not set; the WorkflowTemplate sets it from the s3 section of hera_config")
    return open_store(url)


def workspace() -> ArtifactStore:
    """The run's workspace store (``$RELEASE_WORKSPACE``)."""
    return _store("RELEASE_WORKSPACE")


def release_store() -> ArtifactStore:
    """Where releases are published (``$RELEASE_STORE``)."""
    return _store("RELEASE_STORE")


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


@step
def fetch(repo: str, sha: str, data_path: str = "release-data/", installation_id: str = "", app_id: str = "") -> dict:
    """Step: copy the commit's release data into the workspace (``input/``).

    The source is the commit's GitHub tarball (a token scoped to ``contents: read``), unless
    ``$RELEASE_SOURCE`` names a local directory or ``s3://`` location that *is* the data directory
    (local runs, or data staged elsewhere).
    """
    override = os.environ.get("RELEASE_SOURCE", "").strip()
    with tempfile.TemporaryDirectory(prefix="fetch-") as tmp:
        dest = Path(tmp) / "data"
        if override:
            result = fetch_release_data(override, str(dest), data_path="")
        else:
            settings = GitHubStepSettings.from_env()
            mint = token_source(repo, {"contents": "read"}, installation_id=installation_id, app_id=app_id)
            result = fetch_release_data(
                f"github://{repo}@{sha}", str(dest), data_path=data_path, token=mint, api_url=settings.api_url
            )
        files = upload_dir(workspace(), dest, "input")
    log.info("fetched %s files (%s bytes) of %s@%s", files, result.get("bytes"), repo, sha[:7])
    return {"files": files, "bytes": result.get("bytes", 0)}


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


@step
def check_metadata(repo: str, sha: str) -> list:
    """Step: validate ``release.yaml`` and return the tables for the validation fan-out."""
    with tempfile.TemporaryDirectory(prefix="meta-") as tmp:
        stage_input(workspace(), Path(tmp))
        return validate_metadata(tmp)


@step
def check_table(repo: str, sha: str, table: str) -> dict:
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
def publish(repo: str, sha: str, event: str, ref: str, pr_number: str = "", workflow_name: str = "") -> dict:
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
            pr_number=pr_number,
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
    ws.put(SUMMARY_KEY, json.dumps(summary, sort_keys=True, default=str).encode())
    return summary


def read_summary() -> dict | None:
    """The run's ``summary.json`` from the workspace, or None when nothing was published (or no workspace)."""
    if not os.environ.get("RELEASE_WORKSPACE", "").strip():
        return None
    found = workspace().get(SUMMARY_KEY)
    return json.loads(found[0]) if found else None


def summary_text(summary: dict | None) -> str:
    """A one-line description of a published release for the final commit status."""
    if not summary:
        return ""
    release = summary.get("release") or {}
    name = " ".join(str(v) for v in (release.get("name"), release.get("version")) if v)
    text = f"{summary.get('tables', 0)} tables, {summary.get('rows', 0):,} rows published"
    return f"{name}: {text}" if name else text


@step
def register(repo: str, sha: str, event: str, ref: str, pr_number: str = "", run_id: str = "") -> dict:
    """Step: record the published release as the latest of its branch or pull request."""
    summary = read_summary()
    if not summary or not summary.get("manifest_key"):
        raise InfraError(f"no published release for {repo}@{sha[:7]} in the workspace; publish did not finish")
    found = release_store().get(summary["manifest_key"])
    if found is None:
        raise InfraError(f"the manifest of {repo}@{sha[:7]} is not in the store; publish did not finish")
    with tempfile.TemporaryDirectory(prefix="register-") as tmp:
        (Path(tmp) / "manifest.json").write_bytes(found[0])
        return register_outputs(tmp, os.environ["RELEASE_STORE"], run_id=run_id or None)


__all__ = [
    "check_metadata",
    "check_table",
    "download_prefix",
    "fetch_input",
    "fetch",
    "publish",
    "read_summary",
    "register",
    "release_store",
    "stage_input",
    "summary_text",
    "upload_dir",
    "workspace",
]
