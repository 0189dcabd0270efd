"""The artifact store interface (:class:`ArtifactStore`), the values it passes, and checks shared by its stores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from steps.runtime.errors import DataError, InfraError
from steps.store.checksums import checksums_match, file_checksums


class PreconditionFailed(Exception):  # noqa: N818 - named after the S3 error code it stands for
    """A conditional write found the object changed (S3 412 PreconditionFailed / 409 conflict)."""


@dataclass(frozen=True)
class StoredObject:
    """An object as the store reports it.

    Attributes:
        key: Key relative to the store's root or prefix.
        size: Size in bytes.
        etag: Opaque version tag usable with ``put(if_match=...)``.
        checksum: Base64 SHA-256 the store holds (for an S3 multipart object: the checksum of the
            part checksums, possibly suffixed ``-N``), or None if it holds none.
    """

    key: str
    size: int
    etag: str
    checksum: str | None


@dataclass(frozen=True)
class Upload:
    """One local file to store under ``key``; ``sha256`` is the hex SHA-256 the file must have.

    ``crc32``, when the build recorded it, is the file's CRC32: a multipart upload checks the file against it
    from its parts' CRC32s instead of reading the whole file again for its SHA-256.
    """

    key: str
    path: Path
    size: int
    sha256: str
    crc32: int | None = None


def verify_stored(expected: Mapping[str, str], stored: Mapping[str, StoredObject | None]) -> list[str]:
    """Compare the checksums a store reports with the local ones; return one problem line per mismatch."""
    problems = []
    for key, checksum in sorted(expected.items()):
        obj = stored.get(key)
        if obj is None:
            problems.append(f"{key}: missing from the store after upload")
        elif not checksums_match(checksum, obj.checksum):
            problems.append(f"{key}: store reports SHA-256 {obj.checksum or 'none'}, local file has {checksum}")
    return problems


def changed_after_build(upload: Upload, actual_hex: str) -> DataError:
    """The error for a file whose SHA-256 is no longer the one its manifest names."""
    return DataError(
        f"{upload.path.name} changed after the release was built (SHA-256 differs from manifest.json)",
        f"{upload.path}: manifest says {upload.sha256}, file has {actual_hex}. Rebuild the release.",
    )


def raise_if_mismatched(expected: Mapping[str, str], stored: Mapping[str, StoredObject | None], where: str) -> None:
    """Raise :class:`InfraError` listing every object whose stored checksum is not the expected one."""
    problems = verify_stored(expected, stored)
    if problems:
        raise InfraError(
            f"{len(problems)} object(s) failed checksum verification in {where}; no manifest", "\n".join(problems)
        )


def safe_relative(key: str) -> PurePosixPath:
    """``key`` as a relative path, refusing absolute keys, ``..`` and backslashes."""
    rel = PurePosixPath(key)
    if not key or rel.is_absolute() or ".." in rel.parts or "\\" in key:
        raise DataError(f"Refusing store key {key!r}: keys must be relative paths without '..'")
    return rel


class ArtifactStore(ABC):
    """Where releases are stored: a small interface over a directory or an S3 bucket prefix.

    Keys are ``/``-separated paths relative to the store's root. Every method that talks to a remote
    store raises :class:`InfraError` once its retries are spent.
    """

    url: str
    concurrency: int = 8

    def url_for(self, key: str) -> str:
        """The URL of ``key`` in this store (for logs and manifests)."""
        return f"{self.url.rstrip('/')}/{key}"

    def part_size_for(self, size: int) -> int | None:
        """The part size an upload of ``size`` bytes uses, or None if it is sent in one request."""
        return None

    def checksum_file(self, path: Path) -> tuple[str, str]:
        """``(sha256_hex, store_checksum)`` of a local file as this store will report it once uploaded."""
        return file_checksums(path, self.part_size_for(path.stat().st_size))

    @abstractmethod
    def list_sizes(self, prefix: str) -> dict[str, int]:
        """Every stored key under ``prefix`` with its size."""

    @abstractmethod
    def head(self, key: str) -> StoredObject | None:
        """Size, version tag and checksum of ``key``, or None if it does not exist."""

    @abstractmethod
    def get(self, key: str) -> tuple[bytes, str] | None:
        """Content and version tag of ``key``, or None if it does not exist."""

    @abstractmethod
    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> StoredObject:
        """Store ``data`` under ``key``.

        Args:
            key: Destination key.
            data: Content.
            if_match: Write only if the current version tag equals this one.
            if_none_match: Write only if ``key`` does not exist yet.

        Raises:
            PreconditionFailed: A condition did not hold (someone else wrote first).
        """

    @abstractmethod
    def upload(self, uploads: Sequence[Upload]) -> dict[str, StoredObject]:
        """Upload files concurrently, each verified by the SHA-256 checksum the store reports.

        Raises:
            DataError: A local file does not have the SHA-256 its ``Upload`` names.
            InfraError: The store failed, or reports a checksum other than the local one.
        """

    @abstractmethod
    def download(self, key: str, path: Path, *, max_bytes: int) -> int:
        """Copy ``key`` to ``path`` (refusing more than ``max_bytes``); return the byte count."""

    @abstractmethod
    def abort_incomplete(self, keys: Collection[str]) -> list[str]:
        """Remove unfinished uploads (S3 multipart uploads, partial files) of ``keys``; return those removed."""

    @abstractmethod
    def list_modified(self, prefix: str, *, max_keys: int) -> tuple[dict[str, float], bool]:
        """Keys under ``prefix`` with their last-modified time (epoch seconds), at most ``max_keys``.

        Returns:
            The keys found, and whether more were left unlisted.
        """

    @abstractmethod
    def delete(self, keys: Collection[str]) -> int:
        """Delete ``keys`` (missing ones are no error); return how many were asked for."""

    @abstractmethod
    def abort_uploads_before(self, cutoff: float, *, max_uploads: int) -> list[str]:
        """Abort unfinished uploads under the store's root started before ``cutoff`` (epoch); return their keys."""


__all__ = [
    "ArtifactStore",
    "PreconditionFailed",
    "StoredObject",
    "Upload",
    "changed_after_build",
    "raise_if_mismatched",
    "safe_relative",
    "verify_stored",
]
