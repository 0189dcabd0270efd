"""Output registry: which published release is the latest for each branch, pull request and tag."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from steps.runtime.errors import DataError, InfraError
from steps.store.base import ArtifactStore, PreconditionFailed
from steps.store.publish import MANIFEST_NAME, load_manifest, release_prefix
from steps.store.url import open_store

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"
HISTORY_LIMIT = 200
MAX_ATTEMPTS = 30


@dataclass(frozen=True)
class ReleasePointer:
    """One registered release: where its manifest is and what produced it.

    Attributes:
        target: ``branches``, ``pulls`` or ``tags``.
        name: Branch name, pull request number (as text) or tag name.
        sha: Commit the release was built from.
        manifest_key: Key of ``manifest.json`` in the store.
        manifest_url: Full URL of the manifest.
        version: Release version from ``release.yaml``.
        event: GitHub event that started the run.
        workflow_name: Argo workflow that built it.
        created_at: When the release manifest was created.
        registered_at: When this pointer was written.
        run_id: Unique id of the registration (makes a retried registration idempotent).
    """

    target: str
    name: str
    sha: str
    manifest_key: str
    manifest_url: str
    version: str
    event: str
    workflow_name: str
    created_at: str
    registered_at: str
    run_id: str


# (target, name, current sha, new sha) -> whether the new commit comes after the current one.
Ordering = Callable[[str, str, str, str], bool]


class Registry(Protocol):
    """Where published releases are recorded; :class:`StoreRegistry` keeps them beside the artifacts."""

    def register(self, repo: str, pointer: ReleasePointer, is_newer: Ordering | None = None) -> dict[str, Any]:
        """Record ``pointer``; make it the latest of its branch, pull request or tag unless it is older."""
        ...

    def latest(self, repo: str, target: str, name: str) -> dict[str, Any] | None:
        """The latest pointer of a branch (``branches``), pull request (``pulls``) or tag (``tags``)."""
        ...


def target_for(event: str, ref: str, pr_number: int | None) -> tuple[str, str]:
    """Where a run's release belongs in the index.

    Args:
        event: GitHub event name (``push``, ``pull_request``, ``workflow_dispatch``, ...).
        ref: Git ref of the run (``refs/heads/main``, ``refs/tags/v1``, ``refs/pull/42/merge``).
        pr_number: Pull request number, if the run is for one.

    Returns:
        ``("pulls", "42")``, ``("branches", "main")`` or ``("tags", "v1")``.

    Raises:
        DataError: Neither a pull request number nor a branch or tag ref was given.
    """
    if pr_number:
        return "pulls", str(int(pr_number))
    if ref.startswith("refs/heads/"):
        return "branches", ref.removeprefix("refs/heads/")
    if ref.startswith("refs/tags/"):
        return "tags", ref.removeprefix("refs/tags/")
    raise DataError(
        f"Cannot register a {event or 'unknown'} run for ref {ref!r}: pass its PR number or a refs/heads/BRANCH ref",
        "The index keys releases by branch (refs/heads/...), tag (refs/tags/...) or pull request number.",
    )


def apply_pointer(
    index: dict[str, Any], repo: str, pointer: ReleasePointer, is_newer: Ordering | None = None
) -> dict[str, Any]:
    """Return ``index`` with ``pointer`` registered (the input is not modified).

    A pointer whose ``run_id`` is already in the history is not applied again, so a registration
    retried after an unknown outcome changes nothing. Conditional writes prevent lost updates, not
    reordering: when ``is_newer`` says the pointer's commit is older than the current latest (an older
    run finished last), the latest stays and the pointer is only recorded in the history
    (``"latest": false``). Tags always move.
    """
    history = list(index.get("history", []))
    if any(h.get("run_id") == pointer.run_id for h in history):
        return index
    current = index.get(pointer.target, {}).get(pointer.name)
    latest = (
        current is None
        or is_newer is None
        or pointer.target == "tags"
        or current.get("sha") == pointer.sha
        or is_newer(pointer.target, pointer.name, str(current.get("sha", "")), pointer.sha)
    )
    updated: dict[str, Any] = {
        "repo": repo,
        "branches": dict(index.get("branches", {})),
        "pulls": dict(index.get("pulls", {})),
        "tags": dict(index.get("tags", {})),
    }
    entry = {k: v for k, v in asdict(pointer).items() if k not in ("target", "name")}
    if latest:
        updated[pointer.target][pointer.name] = entry
    else:
        log.info("%s@%s is older than the latest %s; recorded, not made latest", repo, pointer.sha[:7], pointer.name)
    record = {"target": pointer.target, "name": pointer.name, "sha": pointer.sha, "run_id": pointer.run_id}
    history.append(record if latest else {**record, "latest": False, "manifest_key": pointer.manifest_key})
    updated["history"] = history[-HISTORY_LIMIT:]
    updated["updated_at"] = pointer.registered_at
    return updated


class StoreRegistry:
    """A :class:`Registry` kept in the artifact store as ``KEY_PREFIX/OWNER/REPO/index.json``.

    Args:
        store: The artifact store.
        key_prefix: Key prefix of releases in the store.
        max_attempts: Conditional-write attempts before giving up.
        base_delay: First backoff in seconds; attempts back off exponentially with full jitter.
        sleep: Sleep function (tests may speed it up).
    """

    def __init__(
        self,
        store: ArtifactStore,
        key_prefix: str = "",
        *,
        max_attempts: int = MAX_ATTEMPTS,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.key_prefix = key_prefix.strip("/")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.sleep = sleep

    def index_key(self, repo: str) -> str:
        """Key of the repository's index."""
        return "/".join(p for p in (self.key_prefix, repo, INDEX_NAME) if p)

    def read(self, repo: str) -> tuple[dict[str, Any], str | None]:
        """The current index of ``repo`` and its version tag (``({}, None)`` if there is none yet)."""
        key = self.index_key(repo)
        current = self.store.get(key)
        if current is None:
            return {}, None
        try:
            index = json.loads(current[0])
        except json.JSONDecodeError as exc:
            raise InfraError(
                f"Registry index {self.store.url_for(key)} is not valid JSON",
                f"{exc}. Restore it from a previous version or delete it to rebuild from new runs.",
            ) from exc
        return index, current[1]

    def register(self, repo: str, pointer: ReleasePointer, is_newer: Ordering | None = None) -> dict[str, Any]:
        """Record ``pointer`` (the latest of its target unless ``is_newer`` says it is older), retrying on races.

        Raises:
            InfraError: The index kept changing for ``max_attempts`` attempts, or the store failed.
        """
        key = self.index_key(repo)
        decided: dict[tuple[str, str, str, str], bool] = {}

        def cached(target: str, name: str, current: str, new: str) -> bool:
            if is_newer is None:
                return True
            if (target, name, current, new) not in decided:  # one GitHub call per pair across retries
                decided[(target, name, current, new)] = is_newer(target, name, current, new)
            return decided[(target, name, current, new)]

        for attempt in range(self.max_attempts):
            index, etag = self.read(repo)
            updated = apply_pointer(index, repo, pointer, cached)
            if updated is index:
                return index
            data = json.dumps(updated, indent=2, sort_keys=True).encode() + b"\n"
            try:
                if etag is None:
                    self.store.put(key, data, if_none_match=True)
                else:
                    self.store.put(key, data, if_match=etag)
                return updated
            except PreconditionFailed:
                delay = random.uniform(0, min(2.0, self.base_delay * 2**attempt))
                log.info("registry index %s changed concurrently; retry %d in %.2fs", key, attempt + 1, delay)
                self.sleep(delay)
        raise InfraError(
            f"Registry index {self.store.url_for(key)} changed {self.max_attempts} times while registering; re-run",
            "Other runs kept updating the index between our read and write.",
        )

    def latest(self, repo: str, target: str, name: str) -> dict[str, Any] | None:
        """The latest pointer of branch/pull request/tag ``name`` (``target`` ``branches``/``pulls``/``tags``)."""
        pointer: dict[str, Any] | None = self.read(repo)[0].get(target, {}).get(name)
        return pointer


def register_outputs(
    out_dir: str,
    store_url: str,
    *,
    key_prefix: str = "",
    endpoint_url: str | None = None,
    region: str | None = None,
    run_id: str | None = None,
    registry: Registry | None = None,
    is_newer: Ordering | None = None,
) -> dict[str, Any]:
    """Step: record the release published from ``out_dir`` as the latest of its branch or pull request.

    The run's repository, commit, event, ref and pull request number are read from ``out_dir``'s
    ``manifest.json``; the manifest must already be in the store (``publish_release`` ran).

    Args:
        out_dir: Directory written by ``build_release`` and published by ``publish_release``.
        store_url: Artifact store URL (``s3://bucket/prefix``, ``file:///dir`` or a path).
        key_prefix: Key prefix used when publishing.
        endpoint_url: S3 endpoint (MinIO or another S3-compatible server).
        region: S3 region.
        run_id: Unique id of this registration (default: a random one; pass the workflow uid so a
            retried step does not register twice).
        registry: Registry to use instead of the store's index.
        is_newer: Commit order (GitHub's compare); without it the last registration becomes the latest.

    Returns:
        ``index_key`` (if the store registry is used), ``target``, ``name`` and ``pointer``.

    Raises:
        DataError: The manifest lacks what registration needs.
        InfraError: The release is not published, or the store failed.
    """
    manifest = load_manifest(Path(out_dir))
    store = open_store(store_url, endpoint_url=endpoint_url, region=region)
    repo = manifest["repo"]
    manifest_key = f"{release_prefix(key_prefix, repo, manifest['sha'])}/{MANIFEST_NAME}"
    stored = store.get(manifest_key)
    if stored is None:
        raise InfraError(
            f"No release manifest of {repo}@{manifest['sha'][:12]} in the store; publish before registering",
            f"{store.url_for(manifest_key)} does not exist: register_outputs only records published releases.",
        )
    try:
        created_at = str(json.loads(stored[0]).get("created_at", ""))
    except (json.JSONDecodeError, AttributeError):
        created_at = ""
    target, name = target_for(manifest.get("event", ""), manifest.get("ref", ""), manifest.get("pr_number"))
    release = manifest.get("release", {})
    pointer = ReleasePointer(
        target=target,
        name=name,
        sha=manifest["sha"],
        manifest_key=manifest_key,
        manifest_url=store.url_for(manifest_key),
        version=str(release.get("version", "")),
        event=str(manifest.get("event", "")),
        workflow_name=str(manifest.get("workflow_name", "")),
        created_at=created_at or str(manifest.get("created_at", "")),
        registered_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        run_id=run_id or uuid.uuid4().hex,
    )
    if registry is None:
        store_registry = StoreRegistry(store, key_prefix)
        index = store_registry.register(repo, pointer, is_newer)
        result: dict[str, Any] = {"index_key": store_registry.index_key(repo)}
    else:
        index = registry.register(repo, pointer, is_newer)
        result = {}
    latest = (index.get(target, {}).get(name) or {}).get("run_id") == pointer.run_id
    log.info("registered %s%s", manifest_key, f" as latest of {target}/{name}" if latest else " (an older commit)")
    return {**result, "target": target, "name": name, "latest": latest, "pointer": asdict(pointer)}


__all__ = [
    "INDEX_NAME",
    "Ordering",
    "Registry",
    "ReleasePointer",
    "StoreRegistry",
    "apply_pointer",
    "register_outputs",
    "target_for",
]
