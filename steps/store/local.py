"""An artifact store in a local directory (:class:`LocalStore`), the default for local runs."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from steps.runtime.errors import DataError, InfraError
from steps.store.base import (
    ArtifactStore,
    PreconditionFailed,
    StoredObject,
    Upload,
    changed_after_build,
    raise_if_mismatched,
    safe_relative,
)
from steps.store.checksums import READ_BLOCK, b64, file_checksums


class LocalStore(ArtifactStore):
    """An artifact store in a local directory: the default for local runs.

    Writes go to a temporary file and are renamed into place, so readers never see half a file;
    conditional writes hold an exclusive ``flock`` on a sidecar lock file while they compare the
    version tag (the SHA-256 of the content) and rename.
    """

    concurrency = 4

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*safe_relative(key).parts)

    @staticmethod
    def _is_internal(name: str) -> bool:
        return name.startswith(".") and (name.endswith(".partial") or name.endswith(".lock"))

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """Every stored key under ``prefix`` with its size."""
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return {}
        found = {}
        for dirpath, _, filenames in os.walk(base):
            for name in filenames:
                if not self._is_internal(name):
                    path = Path(dirpath, name)
                    found[path.relative_to(self.root).as_posix()] = path.stat().st_size
        return {k: v for k, v in found.items() if k.startswith(prefix)}

    def head(self, key: str) -> StoredObject | None:
        """Size, version tag and checksum of ``key``, or None if it does not exist."""
        path = self._path(key)
        if not path.is_file():
            return None
        hex_digest, checksum = file_checksums(path)
        return StoredObject(key, path.stat().st_size, hex_digest, checksum)

    def get(self, key: str) -> tuple[bytes, str] | None:
        """Content and version tag of ``key``, or None if it does not exist."""
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_atomically(self, path: Path, write: Callable[[BinaryIO], object]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
        try:
            with open(tmp, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> StoredObject:
        """Store ``data`` under ``key`` (atomically; conditionally under an exclusive lock)."""
        path = self._path(key)
        etag = hashlib.sha256(data).hexdigest()
        if if_match is None and not if_none_match:
            self._write_atomically(path, lambda fh: fh.write(data))
        else:
            with self._locked(path):
                current = self.get(key)
                if if_none_match and current is not None:
                    raise PreconditionFailed(f"{self.url_for(key)} exists")
                if if_match is not None and (current is None or current[1] != if_match):
                    raise PreconditionFailed(f"{self.url_for(key)} changed")
                self._write_atomically(path, lambda fh: fh.write(data))
        return StoredObject(key, len(data), etag, b64(bytes.fromhex(etag)))

    def _copy_in(self, upload: Upload) -> StoredObject:
        path = self._path(upload.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
        digest = hashlib.sha256()
        try:
            with upload.path.open("rb") as src, open(tmp, "wb") as out:
                while block := src.read(READ_BLOCK):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != upload.sha256:
                raise changed_after_build(upload, digest.hexdigest())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(upload.key, upload.size, digest.hexdigest(), b64(digest.digest()))

    def upload(self, uploads: Sequence[Upload]) -> dict[str, StoredObject]:
        """Copy files into the store (temporary file, then rename), checking each file's SHA-256."""
        try:
            stored = {u.key: self._copy_in(u) for u in uploads}
        except OSError as exc:
            raise InfraError(
                f"Writing to local store {self.url} failed: {exc.strerror or exc}",
                f"{type(exc).__name__}: {exc}. Check free space and permissions of {self.root}.",
            ) from exc
        expected = {u.key: b64(bytes.fromhex(u.sha256)) for u in uploads}
        raise_if_mismatched(expected, stored, self.url)
        return stored

    def download(self, key: str, path: Path, *, max_bytes: int) -> int:
        """Copy ``key`` to ``path``."""
        src = self._path(key)
        size = src.stat().st_size
        if size > max_bytes:
            raise DataError(f"{self.url_for(key)} is {size} bytes, over the {max_bytes}-byte limit per file")
        path.parent.mkdir(parents=True, exist_ok=True)
        with src.open("rb") as fin, path.open("wb") as fout:
            while block := fin.read(READ_BLOCK):
                fout.write(block)
        return size

    def abort_incomplete(self, keys: Collection[str]) -> list[str]:
        """Delete partial files left by interrupted writes of ``keys``."""
        removed = []
        for key in keys:
            path = self._path(key)
            if path.parent.is_dir():
                for partial in path.parent.glob(f".{path.name}.*.partial"):
                    partial.unlink(missing_ok=True)
                    removed.append(key)
        return removed

    def list_modified(self, prefix: str, *, max_keys: int) -> tuple[dict[str, float], bool]:
        """Keys under ``prefix`` with their modification time."""
        keys = sorted(self.list_sizes(prefix))
        return {k: self._path(k).stat().st_mtime for k in keys[:max_keys]}, len(keys) > max_keys

    def delete(self, keys: Collection[str]) -> int:
        """Delete ``keys``, then the directories they leave empty."""
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            for parent in path.parents:
                if parent == self.root or not parent.is_dir() or any(parent.iterdir()):
                    break
                parent.rmdir()
        return len(keys)

    def abort_uploads_before(self, cutoff: float, *, max_uploads: int) -> list[str]:
        """Delete partial files (an interrupted write's temporary file) older than ``cutoff``."""
        removed: list[str] = []
        for path in self.root.rglob(".*.partial") if self.root.is_dir() else ():
            if len(removed) >= max_uploads:
                break
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed.append(path.relative_to(self.root).as_posix())
        return removed


__all__ = [
    "LocalStore",
]
