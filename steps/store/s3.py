"""An artifact store in an S3 (or MinIO) bucket (:class:`S3Store`), and the boto3 client it uses."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.utils import ChunksizeAdjuster

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
from steps.store.checksums import READ_BLOCK, b64, composite_crc32, crc32_combine, file_checksums

MIB = 1024 * 1024
S3_MAX_ATTEMPTS = 5
MULTIPART_THRESHOLD = 16 * MIB
PART_SIZE = 8 * MIB
MULTIPART_CONCURRENCY = 10
SMALL_FILE_WORKERS = 16
INLINE_BODY_BYTES = MIB


@dataclass
class _MultipartFile:
    """A file going up in parts, the CRC32 the build recorded for it, and each part's CRC32 as S3 took it."""

    path: Path
    size: int
    part_size: int
    recorded_crc32: int | None = None
    crcs: dict[int, int] = field(default_factory=dict)

    @property
    def parts(self) -> int:
        return -(-self.size // self.part_size)

    def part_length(self, number: int) -> int:
        return min(self.part_size, self.size - (number - 1) * self.part_size)

    def composite(self) -> str:
        """The checksum S3 reports for the object: the CRC32 of the part CRC32s, ``-<parts>``."""
        return composite_crc32([self.crcs.get(n, 0) for n in range(1, self.parts + 1)])

    def whole_crc32(self) -> int:
        """The whole file's CRC32, combined from the parts' (no second read of the file)."""
        crc = 0
        for n in range(1, self.parts + 1):
            crc = crc32_combine(crc, self.crcs.get(n, 0), self.part_length(n))
        return crc


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
    transfer manager as concurrent multipart uploads; every request carries a checksum S3 verifies (SHA-256 for
    single requests, CRC32 for parts, as boto3 sends by default).

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
        client: Any,  # a boto3 S3 client (its stubs are a dev-only package: nothing shipped imports them)
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
            "before-parameter-build.s3.CompleteMultipartUpload",
            self._check_before_complete,
            unique_id=f"artifact-store-{id(self)}",
        )

    def _check_before_complete(self, params: dict[str, Any], **_: object) -> None:
        """Before CompleteMultipartUpload: the parts S3 took must add up to the file the build recorded.

        Parts go up with CRC32, boto3's default transport checksum: botocore computes it as it streams each
        part (one read of the file), S3 verifies it and answers it, and s3transfer lists it per part in this
        request. Combined (``crc32_combine``), they are the CRC32 of what S3 holds, checked here against the
        build's: a mismatch raises before the object exists, and the transfer manager aborts the upload.
        """
        upload = self._multipart.get(params.get("Key", ""))
        if upload is None:
            return
        parts = (params.get("MultipartUpload") or {}).get("Parts") or []
        try:
            upload.crcs = {
                int(p["PartNumber"]): int.from_bytes(base64.b64decode(p["ChecksumCRC32"]), "big") for p in parts
            }
        except (KeyError, ValueError) as exc:
            raise InfraError(
                f"{self.url_for(self._relative(params['Key']))}: S3 did not acknowledge a CRC32 for every part; "
                "the store must support S3 additional checksums (AWS S3, MinIO >= 2023)"
            ) from exc
        if upload.recorded_crc32 is not None and len(upload.crcs) == upload.parts:
            actual = upload.whole_crc32()
            if actual != upload.recorded_crc32:
                raise DataError(
                    f"{upload.path.name} changed after the release was built (CRC32 differs from manifest.json)",
                    f"{upload.path}: manifest says {upload.recorded_crc32:08x}, the parts sent add up to "
                    f"{actual:08x}. Rebuild the release.",
                )

    def _full(self, key: str) -> str:
        safe_relative(key)
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
        checksum = resp.get("ChecksumSHA256") or resp.get("ChecksumCRC32")
        return StoredObject(key, resp["ContentLength"], resp["ETag"], checksum)

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
        checksum = b64(hashlib.sha256(data).digest())
        extra: dict[str, Any] = {}
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
            data = upload.path.read_bytes()
            body: bytes | None = data
            actual = hashlib.sha256(data).digest()
        else:
            body, actual = None, bytes.fromhex(file_checksums(upload.path)[0])
        if actual.hex() != upload.sha256:
            raise changed_after_build(upload, actual.hex())
        checksum = b64(actual)
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
        """Without a recorded CRC32 (an older build), read the file for its SHA-256 alongside the upload."""
        actual_hex = file_checksums(upload.path)[0]
        if actual_hex != upload.sha256:
            raise changed_after_build(upload, actual_hex)

    def upload(self, uploads: Sequence[Upload]) -> dict[str, StoredObject]:
        """Upload concurrently and verify every object by the SHA-256 checksum S3 reports.

        Small files get it in the PutObject answer. Large files go through the transfer manager, each
        part sent with the CRC32 of its range of the local file (so S3 checks every part against the
        local bytes), then are checked with HeadObject against the composite of those part checksums;
        the parts' CRC32s, combined, must equal the CRC32 the build recorded with the file's SHA-256
        (without one, the whole file's SHA-256 is read alongside). On any failure the remaining
        transfers are cancelled (the transfer manager aborts its multipart uploads).
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
                transfers: dict[str, Any] = {}
                for u in large:
                    part_size = self.part_size_for(u.size) or u.size
                    self._multipart[self._full(u.key)] = _MultipartFile(u.path, u.size, part_size, u.crc32)
                    transfers[u.key] = manager.upload(
                        str(u.path), self.bucket, self._full(u.key), extra_args={"ChecksumAlgorithm": "CRC32"}
                    )
                whole_file_checks = [pool.submit(self._check_whole_file, u) for u in large if u.crc32 is None]
                puts = [pool.submit(self._put_file, u) for u in small]
                futures: list[Future[Any]] = [*whole_file_checks, *puts]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
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
        raise_if_mismatched(expected, stored, self.url)
        return {key: obj for key, obj in stored.items() if obj is not None}

    def download(self, key: str, path: Path, *, max_bytes: int) -> int:
        """Stream ``key`` to ``path``, refusing objects over ``max_bytes``."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
            size = int(resp["ContentLength"])
            if size > max_bytes:
                resp["Body"].close()
                raise DataError(f"{self.url_for(key)} is {size} bytes, over the {max_bytes}-byte limit per file")
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                for block in resp["Body"].iter_chunks(READ_BLOCK):
                    out.write(block)
        except (ClientError, BotoCoreError) as exc:
            raise _s3_error("GetObject", self.url_for(key), exc) from exc
        return size

    def _abort_uploads(self, prefix: str, wanted: Callable[[dict[str, Any]], bool], limit: int) -> list[str]:
        """Abort the open multipart uploads under ``prefix`` that ``wanted`` picks, at most ``limit``."""
        aborted: list[str] = []
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    if len(aborted) >= limit:
                        return aborted
                    if wanted(upload):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted.append(self._relative(upload["Key"]))
        except (ClientError, BotoCoreError) as exc:
            raise _s3_error("AbortMultipartUpload", self.url, exc) from exc
        return aborted

    def abort_incomplete(self, keys: Collection[str]) -> list[str]:
        """Abort every open multipart upload of ``keys`` (ListMultipartUploads + AbortMultipartUpload)."""
        if not keys:
            return []
        full = {self._full(k) for k in keys}
        return self._abort_uploads(os.path.commonprefix(list(full)), lambda u: u["Key"] in full, 10**9)

    def list_modified(self, prefix: str, *, max_keys: int) -> tuple[dict[str, float], bool]:
        """Keys under ``prefix`` with their ``LastModified`` (one ListObjectsV2 per 1,000 keys)."""
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        found: dict[str, float] = {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    if len(found) >= max_keys:
                        return found, True
                    found[self._relative(obj["Key"])] = obj["LastModified"].timestamp()
        except (ClientError, BotoCoreError) as exc:
            raise _s3_error("ListObjectsV2", self.url_for(prefix), exc) from exc
        return found, False

    def delete(self, keys: Collection[str]) -> int:
        """Delete ``keys`` with DeleteObjects, 1,000 per request (the API's limit)."""
        ordered = sorted(keys)
        try:
            for start in range(0, len(ordered), 1000):
                batch = [{"Key": self._full(k)} for k in ordered[start : start + 1000]]
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if answer.get("Errors"):
                    error = answer["Errors"][0]
                    raise InfraError(
                        f"S3 DeleteObjects refused {len(answer['Errors'])} key(s), e.g. {error.get('Key')}: "
                        f"{error.get('Code')} {error.get('Message', '')}".strip()
                    )
        except (ClientError, BotoCoreError) as exc:
            raise _s3_error("DeleteObjects", self.url, exc) from exc
        return len(ordered)

    def abort_uploads_before(self, cutoff: float, *, max_uploads: int) -> list[str]:
        """Abort multipart uploads under the prefix initiated before ``cutoff`` (a killed pod never finishes one)."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        return self._abort_uploads(prefix, lambda u: u["Initiated"].timestamp() < cutoff, max_uploads)


def s3_client(
    *, endpoint_url: str | None = None, region: str | None = None, max_attempts: int = S3_MAX_ATTEMPTS
) -> Any:
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


__all__ = [
    "INLINE_BODY_BYTES",
    "MIB",
    "MULTIPART_CONCURRENCY",
    "MULTIPART_THRESHOLD",
    "PART_SIZE",
    "S3_MAX_ATTEMPTS",
    "SMALL_FILE_WORKERS",
    "S3Store",
    "s3_client",
]
