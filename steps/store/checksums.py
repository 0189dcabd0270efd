"""Checksums of local files, computed the way an artifact store reports them once uploaded."""

from __future__ import annotations

import base64
import functools
import hashlib
import zlib
from pathlib import Path

READ_BLOCK = 1024 * 1024


def b64(digest: bytes) -> str:
    """``digest`` in base64, the form S3 uses for checksums."""
    return base64.b64encode(digest).decode("ascii")


def crc32_bytes(value: int) -> bytes:
    """A CRC32 as S3 sends it: four bytes, big-endian."""
    return value.to_bytes(4, "big")


def _gf2_times(matrix: list[int], vector: int) -> int:
    out, row = 0, 0
    while vector:
        if vector & 1:
            out ^= matrix[row]
        vector >>= 1
        row += 1
    return out


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def _gf2_multiply(a: list[int], b: list[int]) -> list[int]:
    """The operator ``a`` after ``b``."""
    return [_gf2_times(a, b[n]) for n in range(32)]


@functools.lru_cache(maxsize=64)
def _zeros_operator(length: int) -> tuple[int, ...]:
    """The operator that appends ``length`` zero bytes to a CRC32 register (one per part size, cached)."""
    power = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    for _ in range(3):
        power = _gf2_square(power)  # one zero byte
    result: list[int] | None = None
    while length:
        if length & 1:
            result = power if result is None else _gf2_multiply(power, result)
        length >>= 1
        if length:
            power = _gf2_square(power)
    return tuple(result or [1 << n for n in range(32)])


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (zlib's ``crc32_combine``).

    Lets the whole file's CRC32 come from the parts' CRC32s computed as they are sent, without reading the
    file again. The method is zlib's (``crc32.c``): append ``len2`` zero bytes to ``crc1`` with the CRC's
    shift operator over GF(2), raised to that power by squaring, then xor ``crc2``.
    """
    if len2 <= 0:
        return crc1
    return _gf2_times(list(_zeros_operator(len2)), crc1) ^ crc2


def composite_crc32(part_crcs: list[int]) -> str:
    """What S3 reports for a multipart object sent with CRC32 parts: ``base64(crc32(part CRCs))-N``."""
    joined = b"".join(crc32_bytes(c) for c in part_crcs)
    return f"{b64(crc32_bytes(zlib.crc32(joined)))}-{len(part_crcs)}"


def file_checksums(path: Path, part_size: int | None = None) -> tuple[str, str]:
    """Read ``path`` once and return its SHA-256 (hex) and the checksum a store reports for it.

    Args:
        path: The file.
        part_size: For an S3 multipart upload, the part size; the store checksum is then the composite
            CRC32 of the parts (``composite_crc32``), which is what the parts are sent with. None for a
            single-request upload, whose store checksum is the SHA-256.

    Returns:
        ``(sha256_hex, store_checksum)``.
    """
    whole = hashlib.sha256()
    part_crc, part_filled = 0, 0
    part_crcs: list[int] = []
    with path.open("rb") as fh:
        while block := fh.read(READ_BLOCK):
            chunk = memoryview(block)
            whole.update(chunk)
            while part_size and len(chunk):
                take = min(len(chunk), part_size - part_filled)
                part_crc = zlib.crc32(chunk[:take], part_crc)
                part_filled += take
                chunk = chunk[take:]
                if part_filled == part_size:
                    part_crcs.append(part_crc)
                    part_crc, part_filled = 0, 0
    if not part_size:
        return whole.hexdigest(), b64(whole.digest())
    if part_filled or not part_crcs:
        part_crcs.append(part_crc)
    return whole.hexdigest(), composite_crc32(part_crcs)


def sha256_and_crc32(path: Path) -> tuple[str, int]:
    """The SHA-256 (hex) and CRC32 of a file in one read: what the build records for each artifact."""
    digest, crc = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while block := fh.read(READ_BLOCK):
            digest.update(block)
            crc = zlib.crc32(block, crc)
    return digest.hexdigest(), crc


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
    "composite_crc32",
    "crc32_bytes",
    "crc32_combine",
    "file_checksums",
    "sha256_and_crc32",
]
