"""Fetching release data: hostile tarball entries, local checkouts, S3 prefixes and GitHub's tarball endpoint."""

from __future__ import annotations

import gzip
import io
import logging
import os
import tarfile
from pathlib import Path

import pytest

from steps.data.fetch import extract_tarball, fetch_release_data
from steps.runtime.errors import ConfigError, DataError, InfraError
from tests.support.emulators.github import Fault

TOP = "acme-data-0123456"
SHA = "0123456789abcdef0123456789abcdef01234567"
GOOD = {
    "README.md": b"# repo\n",
    "release-data/release.yaml": b"name: acme\n",
    "release-data/products.csv": b"product_id\nP00001\n",
    "release-data/schemas/products.yaml": b"columns: {}\n",
    "src/app.py": b"print('hi')\n",
}


def entry(
    name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, link, 0o644, 1_700_000_000
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def make_tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def good_tar(extra: list[tuple[tarfile.TarInfo, bytes]] = ()) -> bytes:
    return make_tar(
        [entry(f"{TOP}/", kind=tarfile.DIRTYPE)] + [entry(f"{TOP}/{p}", d) for p, d in GOOD.items()] + list(extra)
    )


def extract(data: bytes, dest: Path, **caps) -> dict:
    dest.mkdir(exist_ok=True)
    return extract_tarball(io.BytesIO(data), dest, "release-data/", **caps)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


EXPECTED = {k.removeprefix("release-data/"): v for k, v in GOOD.items() if k.startswith("release-data/")}


def test_extracts_only_the_data_directory(tmp_path):
    result = extract(good_tar(), tmp_path / "out")
    assert tree(tmp_path / "out") == EXPECTED
    assert result == {"top": TOP, "files": 3, "bytes": sum(len(v) for v in EXPECTED.values())}


def test_links_outside_the_data_directory_are_ignored(tmp_path):
    extract(good_tar([entry(f"{TOP}/docs/latest", kind=tarfile.SYMTYPE, link="../README.md")]), tmp_path / "out")
    assert tree(tmp_path / "out") == EXPECTED


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (entry("/etc/cron.d/evil", b"x"), "absolute path"),
        (entry(f"{TOP}/release-data/../../evil.sh", b"x"), "contains '..'"),
        (entry(f"{TOP}/release-data/link.csv", kind=tarfile.SYMTYPE, link="/etc/passwd"), "is a symlink"),
        (entry(f"{TOP}/release-data/hard.csv", kind=tarfile.LNKTYPE, link=f"{TOP}/README.md"), "is a hardlink"),
        (entry(f"{TOP}/release-data/tty", kind=tarfile.CHRTYPE), "device or special file"),
        (entry(f"{TOP}/release-data/disk", kind=tarfile.BLKTYPE), "device or special file"),
        (entry(f"{TOP}/release-data/pipe", kind=tarfile.FIFOTYPE), "device or special file"),
        (entry("other-top/release-data/x.csv", b"x"), "outside the top directory"),
        (entry(f"{TOP}/release-data/products.csv", b"again"), "appears twice"),
    ],
)
def test_hostile_entries_are_refused_with_their_name(tmp_path, bad, message):
    with pytest.raises(DataError, match=message) as failure:
        extract(good_tar([bad]), tmp_path / "out")
    assert bad[0].name in failure.value.summary


def test_entry_over_the_per_file_cap_is_refused(tmp_path):
    data = good_tar([entry(f"{TOP}/release-data/huge.csv", b"x" * 2000)])
    with pytest.raises(DataError, match="huge.csv.*over the 1,000-byte limit per file"):
        extract(data, tmp_path / "out", max_file_bytes=1000)


def test_total_cap_and_file_count_cap(tmp_path):
    extra = [entry(f"{TOP}/release-data/part{i}.csv", b"y" * 600) for i in range(3)]
    with pytest.raises(DataError, match="exceeds 1,500 bytes in total at entry"):
        extract(good_tar(extra), tmp_path / "a", max_total_bytes=1500)
    with pytest.raises(DataError, match="more than 4 files"):
        extract(good_tar(extra), tmp_path / "b", max_files=4)


def test_not_a_gzip_tarball(tmp_path):
    with pytest.raises(DataError, match="not a valid gzip tarball"):
        extract(b"<html>sign in</html>", tmp_path / "out")
    with pytest.raises(DataError, match="not a valid gzip tarball"):
        extract(gzip.compress(b"not a tar archive at all" * 40), tmp_path / "out2")


def test_local_checkout(tmp_path):
    for rel, data in GOOD.items():
        (tmp_path / "repo" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "repo" / rel).write_bytes(data)
    result = fetch_release_data(str(tmp_path / "repo"), str(tmp_path / "data"))
    assert tree(tmp_path / "data") == EXPECTED
    assert (result["files"], result["dest"]) == (3, str(tmp_path / "data"))
    again = fetch_release_data((tmp_path / "repo").as_uri(), str(tmp_path / "data2"), data_path="release-data")
    assert again["files"] == 3


def test_local_checkout_with_a_symlink_is_refused_and_leaves_nothing(tmp_path):
    data_dir = tmp_path / "repo" / "release-data"
    data_dir.mkdir(parents=True)
    (data_dir / "release.yaml").write_text("name: x\n")
    os.symlink("/etc/hostname", data_dir / "products.csv")
    with pytest.raises(DataError, match="products.csv in the release data is a symlink"):
        fetch_release_data(str(tmp_path / "repo"), str(tmp_path / "data"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_destination_must_be_new_or_empty(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "old.csv").write_text("x")
    with pytest.raises(ConfigError, match="not an empty directory"):
        fetch_release_data(str(tmp_path), str(tmp_path / "data"))


def test_missing_data_directory(tmp_path):
    (tmp_path / "repo").mkdir()
    with pytest.raises(DataError, match="is not a directory"):
        fetch_release_data(str(tmp_path / "repo"), str(tmp_path / "data"))


def test_s3_prefix(s3_server, tmp_path):
    for rel, data in GOOD.items():
        s3_server.client.put_object(Bucket=s3_server.bucket, Key=f"checkouts/{SHA}/{rel}", Body=data)
    result = fetch_release_data(
        f"s3://{s3_server.bucket}/checkouts/{SHA}", str(tmp_path / "data"), endpoint_url=s3_server.endpoint_url
    )
    assert tree(tmp_path / "data") == EXPECTED and result["files"] == 3


def test_s3_key_with_dotdot_and_oversize_object_are_refused(s3_server, tmp_path):
    s3_server.client.put_object(Bucket=s3_server.bucket, Key="c/release-data/../../escape.csv", Body=b"x")
    with pytest.raises(DataError, match="safe relative path"):
        fetch_release_data(f"s3://{s3_server.bucket}/c", str(tmp_path / "a"), endpoint_url=s3_server.endpoint_url)
    s3_server.client.put_object(Bucket=s3_server.bucket, Key="d/release-data/big.csv", Body=b"x" * 5000)
    with pytest.raises(DataError, match="big.csv.*over the 4,096-byte limit"):
        fetch_release_data(
            f"s3://{s3_server.bucket}/d", str(tmp_path / "b"), endpoint_url=s3_server.endpoint_url, max_file_bytes=4096
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


REPO = "acme/data"


def test_github_tarball_with_a_contents_read_token(github_emulator, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    sha = github_emulator.set_tarball(REPO, SHA, GOOD)
    token = github_emulator.issue_token(repositories=["data"], permissions={"contents": "read"})
    minted: list[int] = []

    def mint() -> str:
        minted.append(1)
        return token

    result = fetch_release_data(
        f"github://{REPO}@{sha}", str(tmp_path / "data"), token=mint, api_url=github_emulator.url
    )

    assert tree(tmp_path / "data") == EXPECTED
    assert result == {
        "source": f"github://{REPO}@{sha}",
        "dest": str(tmp_path / "data"),
        "files": 3,
        "bytes": sum(len(v) for v in EXPECTED.values()),
        "commit": sha,
    }
    assert minted == [1]
    paths = [c.path for c in github_emulator.calls if "tarball" in c.path or "codeload" in c.path]
    assert any("/tarball/" in p for p in paths) and any("codeload" in p for p in paths)
    assert token not in caplog.text and token not in str(result)


def test_github_hostile_tarball_leaves_no_destination(github_emulator, tmp_path):
    github_emulator.set_tarball(REPO, SHA, good_tar([entry(f"{TOP}/release-data/x", kind=tarfile.SYMTYPE, link="/")]))
    token = github_emulator.issue_token(permissions={"contents": "read"})
    with pytest.raises(DataError, match="is a symlink"):
        fetch_release_data(f"github://{REPO}@{SHA}", str(tmp_path / "data"), token=token, api_url=github_emulator.url)
    assert list(tmp_path.iterdir()) == []


def test_github_token_without_contents_permission(github_emulator, tmp_path):
    github_emulator.set_tarball(REPO, SHA, GOOD)
    token = github_emulator.issue_token(permissions={"statuses": "write"})
    with pytest.raises(InfraError, match="lacks contents:read") as failure:
        fetch_release_data(f"github://{REPO}@{SHA}", str(tmp_path / "data"), token=token, api_url=github_emulator.url)
    assert token not in failure.value.summary + failure.value.detail


def test_github_bad_token_and_unknown_commit(github_emulator, tmp_path):
    with pytest.raises(InfraError, match="rejected the token"):
        fetch_release_data(
            f"github://{REPO}@{SHA}", str(tmp_path / "a"), token="ghs_" + "x" * 36, api_url=github_emulator.url
        )
    token = github_emulator.issue_token(permissions={"contents": "read"})
    with pytest.raises(InfraError, match="commit is missing"):
        fetch_release_data(f"github://{REPO}@{'f' * 40}", str(tmp_path / "b"), token=token, api_url=github_emulator.url)


def test_github_download_cut_mid_stream_is_retried(github_emulator, tcp_proxy, tmp_path):
    files = {**GOOD, "release-data/prices.csv": os.urandom(200_000)}
    github_emulator.set_tarball(REPO, SHA, files)
    token = github_emulator.issue_token(permissions={"contents": "read"})
    port = int(github_emulator.url.rsplit(":", 1)[1])
    proxy = tcp_proxy(port, cut_down_after=50_000, max_cuts=1)

    result = fetch_release_data(
        f"github://{REPO}@{SHA}", str(tmp_path / "data"), token=token, api_url=proxy.endpoint_url
    )

    assert proxy.cuts == 1 and result["files"] == 4
    assert (tmp_path / "data" / "prices.csv").read_bytes() == files["release-data/prices.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_github_secondary_rate_limit_is_waited_out(github_emulator, tmp_path):
    github_emulator.set_tarball(REPO, SHA, GOOD)
    token = github_emulator.issue_token(permissions={"contents": "read"})
    github_emulator.add_fault(Fault("secondary_rate_limit", method="GET", path_regex="/tarball/", retry_after=1))
    result = fetch_release_data(
        f"github://{REPO}@{SHA}", str(tmp_path / "data"), token=token, api_url=github_emulator.url
    )
    assert result["files"] == 3
    assert [c.status for c in github_emulator.calls if "/tarball/" in c.path] == [403, 302]


def test_github_primary_rate_limit_names_the_reset_time(github_emulator, tmp_path):
    github_emulator.set_tarball(REPO, SHA, GOOD)
    token = github_emulator.issue_token(permissions={"contents": "read"})
    github_emulator.add_fault(Fault("primary_rate_limit", method="GET", path_regex="/tarball/", reset_in=600))
    with pytest.raises(InfraError, match="rate limit of the installation exhausted until 20"):
        fetch_release_data(f"github://{REPO}@{SHA}", str(tmp_path / "d"), token=token, api_url=github_emulator.url)


def test_github_source_must_name_a_full_sha(tmp_path):
    with pytest.raises(ConfigError, match="40-hex commit sha"):
        fetch_release_data("github://acme/data@main", str(tmp_path / "d"), token="t")
    with pytest.raises(ConfigError, match="needs an installation token"):
        fetch_release_data(f"github://acme/data@{SHA}", str(tmp_path / "d"))
