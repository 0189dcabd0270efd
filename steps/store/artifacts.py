"""Artifact store (local directory or S3/MinIO) and the step that publishes a built release to it.

A release is published under ``PREFIX/OWNER/REPO/SHA/``: every artifact first, each verified by its
SHA-256 checksum as the store reports it, and ``manifest.json`` last, so a reader who finds a manifest
finds a complete release. Unchanged objects are not sent again; a failed run aborts its multipart
uploads and writes no manifest. The store keeps the artifacts that an Argo Workflows artifact
repository would (https://argo-workflows.readthedocs.io/en/latest/configure-artifact-repository/);
S3 checksums follow https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.utils import ChunksizeAdjuster

from steps.runtime.errors import ConfigError, DataError, InfraError, StepError

log = logging.getLogger(__name__)

MIB = 1024 * 1024
S3_MAX_ATTEMPTS = 5
MULTIPART_THRESHOLD = 16 * MIB
PART_SIZE = 8 * MIB
MULTIPART_CONCURRENCY = 10
SMALL_FILE_WORKERS = 16
INLINE_BODY_BYTES = MIB
MANIFEST_NAME = "manifest.json"
_READ_BLOCK = MIB


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
    """One local file to store under ``key``; ``sha256`` is the hex SHA-256 the file must have."""

    key: str
    path: Path
    size: int
    sha256: str


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def file_checksums(path: Path, part_size: int | None = None) -> tuple[str, str]:
    """Read ``path`` once and return its SHA-256 (hex) and the checksum a store reports for it.

    Args:
        path: The file.
        part_size: For an S3 multipart upload, the part size; the store checksum is then
            ``base64(sha256(concat(sha256(part)...)))-N``. None for a single-request upload.

    Returns:
        ``(sha256_hex, store_checksum)``.
    """
    whole = hashlib.sha256()
    part = hashlib.sha256()
    part_filled = 0
    part_digests: list[bytes] = []
    with path.open("rb") as fh:
        while block := fh.read(_READ_BLOCK):
            chunk = memoryview(block)
            whole.update(chunk)
            while part_size and len(chunk):
                take = min(len(chunk), part_size - part_filled)
                part.update(chunk[:take])
                part_filled += take
                chunk = chunk[take:]
                if part_filled == part_size:
                    part_digests.append(part.digest())
                    part, part_filled = hashlib.sha256(), 0
    if not part_size:
        return whole.hexdigest(), _b64(whole.digest())
    if part_filled or not part_digests:
        part_digests.append(part.digest())
    composite = _b64(hashlib.sha256(b"".join(part_digests)).digest())
    return whole.hexdigest(), f"{composite}-{len(part_digests)}"


def checksums_match(expected: str, reported: str | None) -> bool:
    """Whether a reported store checksum equals the expected one.

    S3 reports a multipart object's checksum as ``<base64>-<parts>``; some S3 implementations
    (moto, older MinIO) leave out ``-<parts>``, which is accepted when the base64 part matches.
    """
    if not reported:
        return False
    exp_value, _, exp_parts = expected.partition("-")
    rep_value, _, rep_parts = reported.partition("-")
    return exp_value == rep_value and (not rep_parts or rep_parts == exp_parts)


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


def _changed_after_build(upload: Upload, actual_hex: str) -> DataError:
    return DataError(
        f"{upload.path.name} changed after the release was built (SHA-256 differs from manifest.json)",
        f"{upload.path}: manifest says {upload.sha256}, file has {actual_hex}. Rebuild the release.",
    )


def _raise_if_mismatched(expected: Mapping[str, str], stored: Mapping[str, StoredObject | None], where: str) -> None:
    problems = verify_stored(expected, stored)
    if problems:
        raise InfraError(
            f"{len(problems)} object(s) failed checksum verification in {where}; no manifest", "\n".join(problems)
        )


def _safe_relative(key: str) -> PurePosixPath:
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
        return self.root.joinpath(*_safe_relative(key).parts)

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

    def _write_atomically(self, path: Path, write: Callable[[object], None]) -> None:
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
        return StoredObject(key, len(data), etag, _b64(bytes.fromhex(etag)))

    def _copy_in(self, upload: Upload) -> StoredObject:
        path = self._path(upload.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
        digest = hashlib.sha256()
        try:
            with upload.path.open("rb") as src, open(tmp, "wb") as out:
                while block := src.read(_READ_BLOCK):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != upload.sha256:
                raise _changed_after_build(upload, digest.hexdigest())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(upload.key, upload.size, digest.hexdigest(), _b64(digest.digest()))

    def upload(self, uploads: Sequence[Upload]) -> dict[str, StoredObject]:
        """Copy files into the store (temporary file, then rename), checking each file's SHA-256."""
        try:
            stored = {u.key: self._copy_in(u) for u in uploads}
        except OSError as exc:
            raise InfraError(
                f"Writing to local store {self.url} failed: {exc.strerror or exc}",
                f"{type(exc).__name__}: {exc}. Check free space and permissions of {self.root}.",
            ) from exc
        expected = {u.key: _b64(bytes.fromhex(u.sha256)) for u in uploads}
        _raise_if_mismatched(expected, stored, self.url)
        return stored

    def download(self, key: str, path: Path, *, max_bytes: int) -> int:
        """Copy ``key`` to ``path``."""
        src = self._path(key)
        size = src.stat().st_size
        if size > max_bytes:
            raise DataError(f"{self.url_for(key)} is {size} bytes, over the {max_bytes}-byte limit per file")
        path.parent.mkdir(parents=True, exist_ok=True)
        with src.open("rb") as fin, path.open("wb") as fout:
            while block := fin.read(_READ_BLOCK):
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


@dataclass
class _MultipartFile:
    """A file going up in parts, and the SHA-256 of each part as sent."""

    path: Path
    size: int
    part_size: int
    digests: dict[int, bytes] = field(default_factory=dict)

    @property
    def parts(self) -> int:
        return -(-self.size // self.part_size)

    def composite(self) -> str:
        """The checksum S3 reports for the object: SHA-256 of the part checksums, ``-<parts>``."""
        joined = b"".join(self.digests.get(n, b"") for n in range(1, self.parts + 1))
        return f"{_b64(hashlib.sha256(joined).digest())}-{self.parts}"


def _client_error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or exc.response["ResponseMetadata"].get("HTTPStatusCode"))
    return type(exc).__name__


def _s3_error(operation: str, url: str, exc: Exception) -> InfraError:
    code = _client_error_code(exc)
    hint = {
        "AccessDenied": "check the S3 credentials Secret and the bucket policy",
        "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID in the S3 credentials Secret",
        "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY in the S3 credentials Secret",
        "NoSuchBucket": "create the bucket or fix the store URL",
    }.get(code, "retries exhausted; re-run the workflow")
    short = url if len(url) <= 45 else "…" + url[-44:]
    return InfraError(f"S3 {operation} {code}: {hint} ({short})", f"{operation} {url}: {exc}")


class S3Store(ArtifactStore):
    """An artifact store in an S3 (or MinIO) bucket under ``prefix``.

    Small files go up with one ``PutObject`` each from a thread pool, large ones through boto3's
    transfer manager as concurrent multipart uploads; every request carries a SHA-256 checksum.

    Args:
        bucket: Bucket name.
        prefix: Key prefix inside the bucket ("" for none).
        client: A boto3 S3 client (see :func:`s3_client`).
        multipart_threshold: Files of this size or more use multipart uploads.
        part_size: Multipart part size (the transfer manager raises it for very large files).
        multipart_concurrency: Parallel part uploads.
        small_file_workers: Parallel single-request uploads.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client,
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        multipart_concurrency: int = MULTIPART_CONCURRENCY,
        small_file_workers: int = SMALL_FILE_WORKERS,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.concurrency = small_file_workers
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=part_size,
            max_concurrency=multipart_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        self._multipart: dict[str, _MultipartFile] = {}
        client.meta.events.register(
            "before-parameter-build.s3.UploadPart", self._add_part_checksum, unique_id=f"artifact-store-{id(self)}"
        )

    def _add_part_checksum(self, params: dict, **_: object) -> None:
        """Hash an UploadPart's byte range of the local file, in the thread sending it, and send that SHA-256.

        botocore then skips hashing the part itself, and S3 checks the part against the local file.
        """
        upload = self._multipart.get(params.get("Key", ""))
        number = params.get("PartNumber", 0)
        if upload is None or not 1 <= number <= upload.parts:
            return
        digest, remaining = hashlib.sha256(), min(upload.part_size, upload.size - (number - 1) * upload.part_size)
        with upload.path.open("rb") as fh:
            fh.seek((number - 1) * upload.part_size)
            while remaining > 0 and (block := fh.read(min(_READ_BLOCK, remaining))):
                digest.update(block)
                remaining -= len(block)
        upload.digests[number] = digest.digest()
        params["ChecksumSHA256"] = _b64(upload.digests[number])

    def _full(self, key: str) -> str:
        _safe_relative(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def part_size_for(self, size: int) -> int | None:
        """The multipart part size for ``size`` bytes, or None below the multipart threshold."""
        if size < self.transfer_config.multipart_threshold:
            return None
        return ChunksizeAdjuster().adjust_chunksize(self.transfer_config.multipart_chunksize, size)

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """Every stored key under ``prefix`` with its size (one request per 1,000 keys)."""
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        found = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix):
                for obj in page.get("Contents", []):
                    found[self._relative(obj["Key"])] = obj["Size"]
        except (ClientError, BotoCoreError) as exc:
            raise _s3_error("ListObjectsV2", self.url_for(prefix), exc) from exc
        return found

    def head(self, key: str) -> StoredObject | None:
        """Size, ETag and SHA-256 checksum of ``key`` (HeadObject with checksum mode), or None."""
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._full(key), ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response["ResponseMetadata"].get("HTTPStatusCode") == 404:
                return None
            raise _s3_error("HeadObject", self.url_for(key), exc) from exc
        except BotoCoreError as exc:
            raise _s3_error("HeadObject", self.url_for(key), exc) from exc
        return StoredObject(key, resp["ContentLength"], resp["ETag"], resp.get("ChecksumSHA256"))

    def get(self, key: str) -> tuple[bytes, str] | None:
        """Content and ETag of ``key``, or None if it does not exist."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            return resp["Body"].read(), resp["ETag"]
        except ClientError as exc:
            if exc.response["ResponseMetadata"].get("HTTPStatusCode") == 404:
                return None
            raise _s3_error("GetObject", self.url_for(key), exc) from exc
        except BotoCoreError as exc:
            raise _s3_error("GetObject", self.url_for(key), exc) from exc

    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> StoredObject:
        """PutObject with a SHA-256 checksum, conditional with ``If-Match`` / ``If-None-Match: *``."""
        checksum = _b64(hashlib.sha256(data).digest())
        extra: dict[str, str] = {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        try:
            resp = self.client.put_object(
                Bucket=self.bucket,
                Key=self._full(key),
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
                **extra,
            )
        except ClientError as exc:
            status = exc.response["ResponseMetadata"].get("HTTPStatusCode")
            if status == 412 or _client_error_code(exc) == "ConditionalRequestConflict":
                raise PreconditionFailed(f"{self.url_for(key)}: {_client_error_code(exc)}") from exc
            raise _s3_error("PutObject", self.url_for(key), exc) from exc
        except BotoCoreError as exc:
            raise _s3_error("PutObject", self.url_for(key), exc) from exc
        return StoredObject(key, len(data), resp["ETag"], resp.get("ChecksumSHA256"))

    def _put_file(self, upload: Upload) -> tuple[StoredObject, str]:
        """PutObject one file with its SHA-256 (S3 rejects a body that does not match it)."""
        if upload.size <= INLINE_BODY_BYTES:
            body: bytes | None = upload.path.read_bytes()
            actual = hashlib.sha256(body).digest()
        else:
            body, actual = None, bytes.fromhex(file_checksums(upload.path)[0])
        if actual.hex() != upload.sha256:
            raise _changed_after_build(upload, actual.hex())
        checksum = _b64(actual)
        try:
            # Bytes, not a file object, where small enough: botocore sends "Expect: 100-continue"
            # for file bodies, a round trip per request that costs small files about a tenth.
            with contextlib.nullcontext(body) if body is not None else upload.path.open("rb") as payload:
                resp = self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._full(upload.key),
                    Body=payload,
                    ContentLength=upload.size,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
        except (ClientError, BotoCoreError) as exc:
            raise _s3_error("PutObject", self.url_for(upload.key), exc) from exc
        if "ChecksumSHA256" not in resp:
            return self.head(upload.key) or StoredObject(upload.key, upload.size, resp["ETag"], None), checksum
        return StoredObject(upload.key, upload.size, resp["ETag"], resp["ChecksumSHA256"]), checksum

    @staticmethod
    def _check_whole_file(upload: Upload) -> None:
        actual_hex = file_checksums(upload.path)[0]
        if actual_hex != upload.sha256:
            raise _changed_after_build(upload, actual_hex)

    def upload(self, uploads: Sequence[Upload]) -> dict[str, StoredObject]:
        """Upload concurrently and verify every object by the SHA-256 checksum S3 reports.

        Small files get it in the PutObject answer. Large files go through the transfer manager, each
        part sent with the SHA-256 of its range of the local file (so S3 checks every part against the
        local bytes), then are checked with HeadObject against the checksum of those part checksums;
        their whole-file SHA-256 is checked against the ``Upload`` alongside. On any failure the
        remaining transfers are cancelled (the transfer manager aborts its multipart uploads).
        """
        small = [u for u in uploads if self.part_size_for(u.size) is None]
        large = [u for u in uploads if self.part_size_for(u.size) is not None]
        stored: dict[str, StoredObject | None] = {}
        expected: dict[str, str] = {}
        # Leaving the manager's context with an exception cancels its transfers, which aborts their
        # multipart uploads (its shutdown(cancel=True) is broken in s3transfer 0.19).
        with create_transfer_manager(self.client, self.transfer_config) as manager:
            pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="s3-put")
            try:
                transfers = {}
                for u in large:
                    part_size = self.part_size_for(u.size) or u.size
                    self._multipart[self._full(u.key)] = _MultipartFile(u.path, u.size, part_size)
                    transfers[u.key] = manager.upload(
                        str(u.path), self.bucket, self._full(u.key), extra_args={"ChecksumAlgorithm": "SHA256"}
                    )
                whole_file_checks = [pool.submit(self._check_whole_file, u) for u in large]
                puts = [pool.submit(self._put_file, u) for u in small]
                done, _ = wait([*whole_file_checks, *puts], return_when=FIRST_EXCEPTION)
                failed = next((f.exception() for f in done if f.exception() is not None), None)
                if failed is not None:
                    raise failed
                for future in puts:
                    obj, checksum = future.result()
                    stored[obj.key], expected[obj.key] = obj, checksum
                for key, transfer in transfers.items():
                    try:
                        transfer.result()
                    except (ClientError, BotoCoreError) as exc:
                        raise _s3_error("MultipartUpload", self.url_for(key), exc) from exc
                    stored[key], expected[key] = self.head(key), self._multipart[self._full(key)].composite()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                for u in large:
                    self._multipart.pop(self._full(u.key), None)
        _raise_if_mismatched(expected, stored, self.url)
        return {key: obj for key, obj in stored.items() if obj is not None}

    def download(self, key: str, path: Path, *, max_bytes: int) -> int:
        """Stream ``key`` to ``path``, refusing objects over ``max_bytes``."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            size = resp["ContentLength"]
            if size > max_bytes:
                resp["Body"].close()
                raise DataError(f"{self.url_for(key)} is {size} bytes, over the {max_bytes}-byte limit per file")
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                for block in resp["Body"].iter_chunks(_READ_BLOCK):
                    out.write(block)
        except (ClientError, BotoCoreError) as exc:
            raise _s3_error("GetObject", self.url_for(key), exc) from exc
        return size

    def abort_incomplete(self, keys: Collection[str]) -> list[str]:
        """Abort every open multipart upload of ``keys`` (ListMultipartUploads + AbortMultipartUpload)."""
        if not keys:
            return []
        full = {self._full(k): k for k in keys}
        aborted = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=os.path.commonprefix(list(full))
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"] in full:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted.append(full[upload["Key"]])
        except (ClientError, BotoCoreError) as exc:
            raise _s3_error("AbortMultipartUpload", self.url, exc) from exc
        return aborted


def s3_client(*, endpoint_url: str | None = None, region: str | None = None, max_attempts: int = S3_MAX_ATTEMPTS):
    """A boto3 S3 client with standard retries; credentials come from boto3's default chain.

    In a pod the chain reads ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` mounted from a Secret;
    an endpoint (``endpoint_url``, else ``$AWS_ENDPOINT_URL_S3`` or ``$AWS_ENDPOINT_URL``: MinIO, moto)
    switches to path-style addressing.
    """
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=SMALL_FILE_WORKERS + MULTIPART_CONCURRENCY + 4,
        connect_timeout=10,
        read_timeout=120,
        # Every upload carries an x-amz-checksum-sha256 header (signed, and checked by S3), so the
        # SigV4 payload hash, another pass over every byte on plain-HTTP endpoints, adds nothing.
        s3={"payload_signing_enabled": False, **({"addressing_style": "path"} if endpoint_url else {})},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def open_store(url: str, *, endpoint_url: str | None = None, region: str | None = None) -> ArtifactStore:
    """Open the artifact store at ``url``.

    Args:
        url: ``s3://bucket/prefix``, ``file:///abs/dir`` or a plain directory path.
        endpoint_url: S3 endpoint for MinIO or another S3-compatible server.
        region: S3 region (default: boto3's configuration).

    Returns:
        An :class:`S3Store` or a :class:`LocalStore`.
    """
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"Store URL {url!r} has no bucket: use s3://BUCKET/PREFIX")
        return S3Store(parsed.netloc, parsed.path, s3_client(endpoint_url=endpoint_url, region=region))
    if parsed.scheme == "file":
        return LocalStore(parsed.path)
    if parsed.scheme == "" and url:
        return LocalStore(url)
    raise ConfigError(f"Unsupported store URL {url!r}: use s3://BUCKET/PREFIX, file:///DIR or a directory path")


def load_manifest(out_dir: Path) -> dict:
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
    return manifest


def release_prefix(key_prefix: str, repo: str, sha: str) -> str:
    """``PREFIX/OWNER/REPO/SHA`` (without a trailing slash)."""
    return "/".join(p for p in (key_prefix.strip("/"), repo, sha) if p)


def _without_created_at(manifest: Mapping) -> dict:
    return {k: v for k, v in manifest.items() if k != "created_at"}


def _local_uploads(out_dir: Path, manifest: dict, prefix: str) -> list[Upload]:
    uploads = []
    for artifact in manifest["artifacts"]:
        rel = _safe_relative(str(artifact.get("path", "")))
        path = out_dir.joinpath(*rel.parts)
        if not path.is_file() or path.stat().st_size != artifact.get("size"):
            raise DataError(
                f"{out_dir} does not match its manifest: {rel} is missing or not {artifact.get('size')} bytes",
                "Rebuild the release (build_release) and publish the directory it wrote, unchanged.",
            )
        uploads.append(Upload(f"{prefix}/{rel.as_posix()}", path, artifact["size"], str(artifact.get("sha256"))))
    return uploads


def _unchanged(store: ArtifactStore, uploads: list[Upload], prefix: str) -> set[str]:
    """Keys the store already holds with the local content (one LIST, then HEAD only the candidates)."""
    present = store.list_sizes(prefix + "/")
    candidates = [u for u in uploads if present.get(u.key) == u.size]
    if not candidates:
        return set()

    def same(upload: Upload) -> bool:
        actual_hex, checksum = store.checksum_file(upload.path)
        if actual_hex != upload.sha256:
            raise _changed_after_build(upload, actual_hex)
        obj = store.head(upload.key)
        return obj is not None and checksums_match(checksum, obj.checksum)

    with ThreadPoolExecutor(max_workers=store.concurrency) as pool:
        return {u.key for u, unchanged in zip(candidates, pool.map(same, candidates), strict=True) if unchanged}


def _write_manifest(store: ArtifactStore, key: str, data: bytes, manifest: dict) -> tuple[bool, str]:
    existing = store.get(key)
    if existing is not None:
        try:
            remote = json.loads(existing[0])
        except json.JSONDecodeError:
            remote = None
        if isinstance(remote, dict) and _without_created_at(remote) == _without_created_at(manifest):
            return False, str(remote.get("created_at", ""))
    stored = store.put(key, data)
    expected = _b64(hashlib.sha256(data).digest())
    _raise_if_mismatched({key: expected}, {key: stored if stored.checksum else store.head(key)}, store.url_for(key))
    return True, str(manifest.get("created_at", ""))


def publish_release(out_dir: str | os.PathLike[str], store: ArtifactStore, key_prefix: str = "") -> dict:
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
        skipped = _unchanged(store, uploads, prefix)
        todo = [u for u in uploads if u.key not in skipped]
        log.info("publishing %s: %d objects to upload, %d unchanged", store.url_for(prefix), len(todo), len(skipped))
        store.upload(todo)
        written, created_at = _write_manifest(store, manifest_key, manifest_bytes_on_disk, manifest)
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
    "ArtifactStore",
    "LocalStore",
    "PreconditionFailed",
    "S3Store",
    "StoredObject",
    "Upload",
    "checksums_match",
    "file_checksums",
    "load_manifest",
    "open_store",
    "publish_release",
    "release_prefix",
    "s3_client",
    "verify_stored",
]
