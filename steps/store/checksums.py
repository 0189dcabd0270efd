"""SHA-256 checksums of local files, computed the way an artifact store reports them once uploaded."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

READ_BLOCK = 1024 * 1024


def b64(digest: bytes) -> str:
    """``digest`` in base64, the form S3 uses for checksums."""
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
        while block := fh.read(READ_BLOCK):
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
        return whole.hexdigest(), b64(whole.digest())
    if part_filled or not part_digests:
        part_digests.append(part.digest())
    composite = b64(hashlib.sha256(b"".join(part_digests)).digest())
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


__all__ = [
    "READ_BLOCK",
    "b64",
    "checksums_match",
    "file_checksums",
]
