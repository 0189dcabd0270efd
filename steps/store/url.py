"""Open the artifact store a URL names: ``s3://BUCKET/PREFIX``, ``file:///DIR`` or a directory path."""

from __future__ import annotations

from urllib.parse import urlparse

from steps.runtime.errors import ConfigError
from steps.store.base import ArtifactStore
from steps.store.local import LocalStore
from steps.store.s3 import S3Store, s3_client


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


__all__ = [
    "open_store",
]
