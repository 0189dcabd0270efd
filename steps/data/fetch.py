"""Fetch a commit's release data: from a local checkout, an S3 prefix, or GitHub's tarball of the commit."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import stat
import tarfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.util.retry import Retry

from steps.runtime.errors import ConfigError, DataError, InfraError
from steps.store.base import ArtifactStore
from steps.store.url import open_store

log = logging.getLogger(__name__)

GIB = 1024**3
MAX_FILE_BYTES = 4 * GIB
MAX_TOTAL_BYTES = 16 * GIB
MAX_FILES = 10_000
DOWNLOAD_ATTEMPTS = 3
_BLOCK = 1024 * 1024
_GITHUB_SOURCE = re.compile(r"^github://(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)@(?P<sha>[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")
_SECRET_QUERY = re.compile(r"((?:token|signature|sig|X-Amz-[\w-]+)=)[^&\s'\"]+", re.IGNORECASE)

TokenSource = str | Callable[[], str]


@dataclass
class _Budget:
    """Counts what has been written and refuses entries over the per-file, total and count caps."""

    max_file_bytes: int
    max_total_bytes: int
    max_files: int
    files: int = 0
    total: int = 0

    def admit(self, name: str, size: int) -> None:
        if size > self.max_file_bytes:
            raise DataError(
                f"Release data entry {name!r} is {size:,} bytes, over the {self.max_file_bytes:,}-byte limit per file",
                "Split the table into smaller files or raise max_file_bytes for this pipeline.",
            )
        if self.total + size > self.max_total_bytes:
            raise DataError(
                f"Release data exceeds {self.max_total_bytes:,} bytes in total at entry {name!r}",
                "Remove files from the release-data directory or raise max_total_bytes.",
            )
        if self.files + 1 > self.max_files:
            raise DataError(f"Release data has more than {self.max_files:,} files (at entry {name!r})")
        self.files += 1
        self.total += size


def _data_parts(data_path: str) -> tuple[str, ...]:
    rel = data_path.strip("/")
    parts = PurePosixPath(rel).parts if rel else ()
    if ".." in parts or "\\" in rel:
        raise ConfigError(f"data_path {data_path!r} must be a relative directory without '..'")
    return parts


def _copy_stream(src: IO[bytes], target: Path, limit: int, name: str) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "xb") as out:
        while block := src.read(_BLOCK):
            written += len(block)
            if written > limit:
                raise DataError(f"Release data entry {name!r} is larger than its header says ({limit:,} bytes)")
            out.write(block)
    return written


def _redact(text: str, token: str | None = None) -> str:
    text = _SECRET_QUERY.sub(r"\1<redacted>", text)
    return text.replace(token, "<redacted>") if token else text


def extract_tarball(
    stream: IO[bytes],
    dest: Path,
    data_path: str,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
) -> dict[str, Any]:
    """Extract the entries under ``<top>/<data_path>`` of a gzip tar stream into ``dest``.

    Args:
        stream: The archive, read once front to back (a file or an HTTP response body).
        dest: Existing, empty directory.
        data_path: Directory inside the archive's top directory to keep.
        max_file_bytes: Largest entry accepted.
        max_total_bytes: Largest total accepted.
        max_files: Most files accepted.

    Returns:
        ``top`` (the archive's top directory), ``files`` and ``bytes`` written.

    Raises:
        DataError: An entry is hostile or too large, or the archive is not a gzip tar.
    """
    wanted = _data_parts(data_path)
    budget = _Budget(max_file_bytes, max_total_bytes, max_files)
    top: str | None = None
    written_bytes = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as archive:
            for member in archive:
                name = member.name
                pure = PurePosixPath(name)
                if pure.is_absolute() or re.match(r"^[A-Za-z]:", name) or "\\" in name:
                    raise DataError(f"Archive entry {name!r} has an absolute path; refusing the archive")
                if ".." in pure.parts:
                    raise DataError(f"Archive entry {name!r} contains '..'; refusing the archive")
                if not pure.parts:
                    continue
                if top is None:
                    top = pure.parts[0]
                elif pure.parts[0] != top:
                    raise DataError(f"Archive entry {name!r} is outside the top directory {top!r}")
                rel = pure.parts[1:]
                if rel[: len(wanted)] != wanted or len(rel) == len(wanted):
                    continue
                inner = rel[len(wanted) :]
                if member.isdir():
                    dest.joinpath(*inner).mkdir(parents=True, exist_ok=True)
                    continue
                if member.issym() or member.islnk():
                    kind = "symlink" if member.issym() else "hardlink"
                    raise DataError(
                        f"Archive entry {name!r} is a {kind}; release data must be regular files",
                        "Replace the link in the repository by the file it points to.",
                    )
                if not member.isfile() or member.issparse():
                    raise DataError(f"Archive entry {name!r} is a device or special file; refusing the archive")
                budget.admit(name, member.size)
                target = dest.joinpath(*inner)
                if target.exists():
                    raise DataError(f"Archive entry {name!r} appears twice; refusing the archive")
                source = archive.extractfile(member)
                if source is None:
                    raise DataError(f"Archive entry {name!r} has no content")
                written_bytes += _copy_stream(source, target, member.size, name)
    except (tarfile.TarError, zlib.error, EOFError) as exc:
        raise DataError(f"Archive is not a valid gzip tarball: {exc}") from exc
    return {"top": top, "files": budget.files, "bytes": written_bytes}


def _fetch_local(root: Path, dest: Path, data_path: str, budget: _Budget) -> dict[str, Any]:
    base = root.joinpath(*_data_parts(data_path))
    if not base.is_dir() or base.is_symlink():
        raise DataError(f"{base} is not a directory; put the release data in {data_path or 'the source'}")
    total = 0
    for dirpath, dirnames, filenames in os.walk(base):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            rel = path.relative_to(base).as_posix()
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise DataError(f"{rel} in the release data is a symlink; release data must be regular files")
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise DataError(f"{rel} in the release data is a device or special file")
            size = path.stat().st_size
            budget.admit(rel, size)
            with path.open("rb") as src:
                total += _copy_stream(src, dest / rel, size, rel)
    return {"files": budget.files, "bytes": total}


def _fetch_s3(store: ArtifactStore, dest: Path, data_path: str, budget: _Budget) -> dict[str, Any]:
    prefix = "/".join(_data_parts(data_path))
    prefix = f"{prefix}/" if prefix else ""
    total = 0
    for key, size in sorted(store.list_sizes(prefix).items()):
        rel = key[len(prefix) :]
        if key.endswith("/") and size == 0:
            continue
        pure = PurePosixPath(rel)
        if not rel or pure.is_absolute() or ".." in pure.parts or "\\" in rel:
            raise DataError(f"S3 key {key!r} does not map to a safe relative path; refusing it")
        budget.admit(key, size)
        total += store.download(key, dest.joinpath(*pure.parts), max_bytes=min(size, budget.max_file_bytes))
    return {"files": budget.files, "bytes": total}


class _GitHubRetry(Retry):
    """Also retries a 403 that carries ``Retry-After``: GitHub's secondary rate limit."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 403 and has_retry_after:
            return True
        return super().is_retry(method, status_code, has_retry_after)


def _github_session() -> requests.Session:
    session = requests.Session()
    retry = _GitHubRetry(
        total=3,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _http_failure(response: requests.Response, repo: str, sha: str) -> Exception:
    status = response.status_code
    if status == 401:
        return InfraError(
            f"GitHub rejected the token fetching {repo}@{sha[:12]} (401); mint a fresh installation token"
        )
    if status in (403, 429) and response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        when = dt.datetime.fromtimestamp(int(reset), dt.UTC).isoformat(timespec="seconds") if reset.isdigit() else "?"
        return InfraError(f"GitHub API rate limit of the installation exhausted until {when}; re-run after that")
    if status in (403, 404):
        return InfraError(
            f"GitHub answered {status} for the tarball of {repo}@{sha[:12]}: "
            "the commit is missing or the token lacks contents:read on the repository",
        )
    if status == 429 or status >= 500:
        return InfraError(f"GitHub answered {status} for the tarball of {repo}@{sha[:12]} after retries; re-run")
    return InfraError(f"Unexpected HTTP {status} for the tarball of {repo}@{sha[:12]}")


def _fetch_github(
    owner: str,
    repo: str,
    sha: str,
    dest: Path,
    data_path: str,
    budget: _Budget,
    token: TokenSource,
    api_url: str,
    timeout: float,
) -> dict[str, Any]:
    url = f"{api_url.rstrip('/')}/repos/{owner}/{repo}/tarball/{sha}"
    secret = token() if callable(token) else token
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "Authorization": f"Bearer {secret}",
        "User-Agent": "gitops-status-matrix-fetch",
    }
    with _github_session() as session:
        try:
            response = session.get(url, headers=headers, stream=True, timeout=(10, timeout), allow_redirects=True)
        except requests.RequestException as exc:
            raise InfraError(
                f"Could not reach GitHub for the tarball of {owner}/{repo}@{sha[:12]}",
                _redact(f"{type(exc).__name__}: {exc}", secret),
            ) from None
        with response:
            if response.status_code != 200:
                raise _http_failure(response, f"{owner}/{repo}", sha)
            try:
                result = extract_tarball(
                    cast(IO[bytes], response.raw),  # urllib3's HTTPResponse is a binary stream
                    dest,
                    data_path,
                    max_file_bytes=budget.max_file_bytes,
                    max_total_bytes=budget.max_total_bytes,
                    max_files=budget.max_files,
                )
            except (requests.RequestException, Urllib3HTTPError) as exc:
                raise _DownloadInterrupted(_redact(f"{type(exc).__name__}: {exc}", secret)) from None
    return {**result, "commit": sha.lower()}


class _DownloadInterrupted(Exception):
    """The tarball stream broke off; the whole download may be retried."""


def _fetch_once(
    source: str,
    github: re.Match[str] | None,
    staging: Path,
    data_path: str,
    token: TokenSource | None,
    api_url: str,
    timeout: float,
    endpoint_url: str | None,
    region: str | None,
    caps: tuple[int, int, int],
) -> dict[str, Any]:
    budget = _Budget(*caps)
    if github:
        assert token is not None
        gh = (github["owner"], github["repo"], github["sha"])
        result = _fetch_github(*gh, staging, data_path, budget, token, api_url, timeout)
    elif source.startswith("s3://"):
        result = _fetch_s3(open_store(source, endpoint_url=endpoint_url, region=region), staging, data_path, budget)
    else:
        parsed = urlparse(source)
        result = _fetch_local(Path(parsed.path if parsed.scheme else source), staging, data_path, budget)
    if result["files"] == 0:
        raise DataError(f"No files under {data_path!r} in {source}; commit the release data there")
    return result


def fetch_release_data(
    source: str,
    dest: str,
    *,
    data_path: str = "release-data/",
    token: TokenSource | None = None,
    api_url: str = "https://api.github.com",
    endpoint_url: str | None = None,
    region: str | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_files: int = MAX_FILES,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Step: copy the release data of one commit into ``dest``.

    Args:
        source: A local checkout (path or ``file://``), ``s3://bucket/prefix`` (uses the standard AWS
            credential chain), or ``github://owner/repo@<full sha>``.
        dest: Directory to create; it must not exist or be empty. It receives the content of
            ``data_path`` (so ``dest/release.yaml``).
        data_path: Directory of the release data inside the source.
        token: For GitHub: an installation token with ``contents: read`` on the repository, or a
            callable returning one (called once per download attempt). Never logged.
        api_url: GitHub REST API root (``https://HOST/api/v3`` for GitHub Enterprise Server).
        endpoint_url: S3 endpoint (MinIO or another S3-compatible server).
        region: S3 region.
        max_file_bytes: Largest file accepted.
        max_total_bytes: Largest total accepted.
        max_files: Most files accepted.
        timeout: Seconds to wait for GitHub to send more data.

    Returns:
        ``source``, ``dest``, ``files``, ``bytes`` and, for GitHub, ``commit``.

    Raises:
        DataError: The data is missing, hostile or too large.
        InfraError: GitHub or S3 failed after retries, or rejected the credentials.
        ConfigError: The source or destination cannot be used.
    """
    target = Path(dest)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"Destination {target} exists and is not an empty directory; choose a new one")
    github = _GITHUB_SOURCE.match(source)
    if source.startswith("github://") and not github:
        raise ConfigError(f"GitHub source {source!r} must be github://OWNER/REPO@<40-hex commit sha>")
    if github and token is None:
        raise ConfigError("Fetching from GitHub needs an installation token with contents:read")
    caps = (max_file_bytes, max_total_bytes, max_files)
    if not github and urlparse(source).scheme not in ("", "file", "s3"):
        raise ConfigError(f"Unsupported source {source!r}: use a directory, s3://BUCKET/PREFIX or github://...")
    attempts = DOWNLOAD_ATTEMPTS if github else 1
    attempt = 0
    while True:
        attempt += 1
        staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            result = _fetch_once(
                source, github, staging, data_path, token, api_url, timeout, endpoint_url, region, caps
            )
            if target.exists():
                target.rmdir()
            os.replace(staging, target)
            log.info("fetched %d files (%d bytes) from %s into %s", result["files"], result["bytes"], source, target)
            return {"source": source, "dest": str(target), **{k: v for k, v in result.items() if k != "top"}}
        except _DownloadInterrupted as exc:
            log.warning("tarball download interrupted (attempt %d of %d): %s", attempt, attempts, exc)
            if attempt >= attempts:
                raise InfraError(f"Tarball download from GitHub broke off {attempts} times; re-run", str(exc)) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


__all__ = ["MAX_FILES", "MAX_FILE_BYTES", "MAX_TOTAL_BYTES", "TokenSource", "extract_tarball", "fetch_release_data"]
