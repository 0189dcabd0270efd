"""Publish a built release to an artifact store: every artifact verified by checksum, ``manifest.json`` last."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from steps.runtime.errors import DataError, StepError
from steps.store.base import ArtifactStore, Upload, changed_after_build, raise_if_mismatched, safe_relative
from steps.store.checksums import b64, checksums_match, file_checksums

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"


def load_manifest(out_dir: Path) -> dict[str, Any]:
    """Read ``manifest.json`` of a built release and check the fields publishing relies on."""
    path = out_dir / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(f"No {MANIFEST_NAME} in {out_dir}: run the ETL step (build_release) first") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    repo = manifest.get("repo", "")
    if not isinstance(repo, str) or len(repo.split("/")) != 2 or not all(repo.split("/")):
        raise DataError(f"{path}: 'repo' must be OWNER/REPO, got {repo!r}")
    if not isinstance(manifest.get("sha"), str) or not manifest["sha"].isalnum():
        raise DataError(f"{path}: 'sha' must be a commit sha, got {manifest.get('sha')!r}")
    if not isinstance(manifest.get("artifacts"), list):
        raise DataError(f"{path}: 'artifacts' must list every file of the release")
    return dict(manifest)


def release_prefix(key_prefix: str, repo: str, sha: str) -> str:
    """``PREFIX/OWNER/REPO/SHA`` (without a trailing slash)."""
    return "/".join(p for p in (key_prefix.strip("/"), repo, sha) if p)


def _without_created_at(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k != "created_at"}


def _local_uploads(out_dir: Path, manifest: dict[str, Any], prefix: str) -> list[Upload]:
    uploads = []
    for artifact in manifest["artifacts"]:
        rel = safe_relative(str(artifact.get("path", "")))
        path = out_dir.joinpath(*rel.parts)
        if not path.is_file() or path.stat().st_size != artifact.get("size"):
            raise DataError(
                f"{out_dir} does not match its manifest: {rel} is missing or not {artifact.get('size')} bytes",
                "Rebuild the release (build_release) and publish the directory it wrote, unchanged.",
            )
        crc32 = artifact.get("crc32")
        recorded = int(crc32, 16) if isinstance(crc32, str) and re.fullmatch(r"[0-9a-f]{8}", crc32) else None
        uploads.append(
            Upload(f"{prefix}/{rel.as_posix()}", path, artifact["size"], str(artifact.get("sha256")), recorded)
        )
    return uploads


def _stored_manifest(store: ArtifactStore, key: str) -> dict[str, Any] | None:
    """The release's manifest already in the store (one GET), or None when absent or unreadable."""
    existing = store.get(key)
    if existing is None:
        return None
    try:
        remote = json.loads(existing[0])
    except json.JSONDecodeError:
        return None
    return remote if isinstance(remote, dict) else None


def _unchanged(
    store: ArtifactStore, uploads: list[Upload], prefix: str, stored: dict[str, Any] | None = None
) -> set[str]:
    """Keys the store already holds with the local content.

    One LIST gives what is there with its size. An object the stored manifest lists with the same size and
    SHA-256 is unchanged without a HEAD: that manifest is written only after every object it lists was
    verified against the checksum the store reported (``publish_release``), so an unchanged re-run costs
    the manifest GET and the LIST pages, not a HEAD per object. Other candidates are HEADed and compared.
    """
    present = store.list_sizes(prefix + "/")
    candidates = [u for u in uploads if present.get(u.key) == u.size]
    verified = {
        f"{prefix}/{a.get('path')}": (a.get("size"), a.get("sha256"))
        for a in (stored or {}).get("artifacts") or []
        if isinstance(a, dict)
    }

    def unchanged(upload: Upload) -> bool:
        listed = verified.get(upload.key) == (upload.size, upload.sha256)
        # The local file must still be what the manifest says was built (local work only, no request).
        actual_hex, checksum = (file_checksums(upload.path)[0], "") if listed else store.checksum_file(upload.path)
        if actual_hex != upload.sha256:
            raise changed_after_build(upload, actual_hex)
        if listed:
            return True
        obj = store.head(upload.key)
        return obj is not None and checksums_match(checksum, obj.checksum)

    with ThreadPoolExecutor(max_workers=store.concurrency) as pool:
        return {u.key for u, same in zip(candidates, pool.map(unchanged, candidates), strict=True) if same}


def _write_manifest(
    store: ArtifactStore, key: str, data: bytes, manifest: dict[str, Any], remote: dict[str, Any] | None
) -> tuple[bool, str]:
    if remote is not None and _without_created_at(remote) == _without_created_at(manifest):
        return False, str(remote.get("created_at", ""))
    stored = store.put(key, data)
    expected = b64(hashlib.sha256(data).digest())
    raise_if_mismatched({key: expected}, {key: stored if stored.checksum else store.head(key)}, store.url_for(key))
    return True, str(manifest.get("created_at", ""))


def publish_release(out_dir: str | os.PathLike[str], store: ArtifactStore, key_prefix: str = "") -> dict[str, Any]:
    """Upload a built release to ``store`` under ``KEY_PREFIX/OWNER/REPO/SHA/``, manifest last.

    Every artifact listed in ``out_dir/manifest.json`` is checked against its local SHA-256, skipped
    if the store already holds it with the same checksum, otherwise uploaded and verified by the
    checksum the store reports. Only when every object is verified is ``manifest.json`` written (or
    left alone if the stored one describes the same release). On failure, open multipart uploads of
    this release are aborted and no manifest is written.

    Args:
        out_dir: Directory written by ``steps.data.etl.build_release``.
        store: Destination store.
        key_prefix: Key prefix inside the store ("" for none).

    Returns:
        ``release_prefix``, ``manifest_key``, ``manifest_url``, ``uploaded`` and ``skipped`` (object
        counts), ``bytes_uploaded``, ``manifest_written`` and ``created_at`` (of the stored manifest).

    Raises:
        DataError: ``out_dir`` does not match its manifest.
        InfraError: The store failed after retries or reported a wrong checksum.
    """
    out = Path(out_dir)
    manifest = load_manifest(out)
    manifest_bytes_on_disk = (out / MANIFEST_NAME).read_bytes()
    prefix = release_prefix(key_prefix, manifest["repo"], manifest["sha"])
    manifest_key = f"{prefix}/{MANIFEST_NAME}"
    uploads = _local_uploads(out, manifest, prefix)
    try:
        stored = _stored_manifest(store, manifest_key)
        skipped = _unchanged(store, uploads, prefix, stored)
        todo = [u for u in uploads if u.key not in skipped]
        log.info("publishing %s: %d objects to upload, %d unchanged", store.url_for(prefix), len(todo), len(skipped))
        store.upload(todo)
        written, created_at = _write_manifest(store, manifest_key, manifest_bytes_on_disk, manifest, stored)
    except Exception as exc:
        try:
            aborted = store.abort_incomplete([u.key for u in uploads])
            log.warning("publish failed (%s); aborted %d unfinished upload(s)", type(exc).__name__, len(aborted))
        except StepError as abort_exc:
            log.error("publish failed and aborting unfinished uploads failed too: %s", abort_exc.detail)
            if isinstance(exc, StepError):
                exc.detail = f"{exc.detail}\nAlso failed to abort unfinished uploads: {abort_exc.detail}"
        raise
    return {
        "release_prefix": prefix,
        "manifest_key": manifest_key,
        "manifest_url": store.url_for(manifest_key),
        "uploaded": len(todo),
        "skipped": len(skipped),
        "bytes_uploaded": sum(u.size for u in todo) + (len(manifest_bytes_on_disk) if written else 0),
        "manifest_written": written,
        "created_at": created_at,
    }


__all__ = [
    "MANIFEST_NAME",
    "load_manifest",
    "publish_release",
    "release_prefix",
]
