"""Publishing a built release to S3 (moto's server over HTTP) and to a local directory."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from pathlib import Path

import pytest

from steps.runtime.errors import ConfigError, DataError, InfraError
from steps.store.base import PreconditionFailed, StoredObject, verify_stored
from steps.store.checksums import checksums_match, file_checksums
from steps.store.local import LocalStore
from steps.store.publish import publish_release
from steps.store.s3 import S3Store
from steps.store.url import open_store

MIB = 1024 * 1024
REPO = "octo-org/prices"
SHA = "0123456789abcdef0123456789abcdef01234567"
PREFIX = f"releases/{REPO}/{SHA}"


def write_release(out: Path, files: dict[str, bytes], *, crc32: bool = True, **fields) -> dict:
    """A directory as build_release leaves it: the files plus a manifest listing them."""
    artifacts = []
    for rel, data in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        artifact = {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        if crc32:  # what build_release records; without it (an older build) a large upload reads the SHA-256
            artifact["crc32"] = f"{zlib.crc32(data):08x}"
        artifacts.append(artifact)
    manifest = {"repo": REPO, "sha": SHA, "created_at": "2026-01-01T00:00:00+00:00", "artifacts": artifacts, **fields}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def small_files(n: int = 5) -> dict[str, bytes]:
    return {f"stats/t{i}.json": json.dumps({"table": i, "pad": "x" * (100 * i)}).encode() for i in range(n)}


def big_file(size: int = 12 * MIB) -> bytes:
    return os.urandom(size)


def make_store(s3, *, endpoint: str | None = None, max_attempts: int = 2) -> S3Store:
    client = s3.new_client(endpoint, max_attempts=max_attempts)
    return S3Store(s3.bucket, "", client, multipart_threshold=5 * MIB, part_size=5 * MIB, multipart_concurrency=3)


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def payload_requests(s3):
    """Requests that carried object bytes to the server."""
    return [r for r in s3.requests if r.method in ("PUT", "POST") and r.body_bytes > 0]


def test_publish_uploads_every_artifact_with_verified_sha256_and_manifest_last(s3_server, tmp_path):
    files = {**small_files(), "tables/big.parquet": big_file()}
    write_release(tmp_path, files)
    result = publish_release(tmp_path, make_store(s3_server), "releases")

    assert result["uploaded"] == len(files) and result["skipped"] == 0 and result["manifest_written"]
    assert result["manifest_key"] == f"{PREFIX}/manifest.json"
    assert s3_server.keys() == sorted([f"{PREFIX}/{k}" for k in files] + [f"{PREFIX}/manifest.json"])
    for rel, data in files.items():
        obj = s3_server.client.get_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/{rel}", ChecksumMode="ENABLED")
        assert obj["Body"].read() == data
        expected = file_checksums(tmp_path / rel, 5 * MIB if len(data) >= 5 * MIB else None)[1]
        # Parts go up with CRC32 (boto3's default transport checksum), single requests with SHA-256.
        assert checksums_match(expected, obj["ChecksumCRC32" if len(data) >= 5 * MIB else "ChecksumSHA256"]), rel
    assert s3_server.open_multipart_uploads() == []

    requests = s3_server.requests
    manifest_put = [i for i, r in enumerate(requests) if r.method == "PUT" and r.key.endswith("manifest.json")]
    assert len(manifest_put) == 1
    others = [i for i, r in enumerate(requests) if r.method in ("PUT", "POST") and not r.key.endswith("manifest.json")]
    big_head = [i for i, r in enumerate(requests) if r.method == "HEAD" and r.key.endswith("big.parquet")]
    assert others and big_head and max(others + big_head) < manifest_put[0]
    parts = [r for r in requests if r.method == "PUT" and "partNumber" in r.query]
    assert len(parts) == 3


def test_unchanged_rerun_sends_no_payload_bytes(s3_server, tmp_path):
    files = {**small_files(), "tables/big.parquet": big_file()}
    write_release(tmp_path, files)
    store = make_store(s3_server)
    publish_release(tmp_path, store, "releases")
    first_manifest = s3_server.client.get_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/manifest.json")["Body"].read()
    s3_server.server.app.reset()

    write_release(tmp_path, files, created_at="2026-02-02T00:00:00+00:00")
    result = publish_release(tmp_path, store, "releases")

    assert result["uploaded"] == 0 and result["skipped"] == len(files) and not result["manifest_written"]
    assert result["bytes_uploaded"] == 0 and result["created_at"] == "2026-01-01T00:00:00+00:00"
    assert sum(r.body_bytes for r in s3_server.requests) == 0
    assert {r.method for r in s3_server.requests} <= {"GET", "HEAD"}
    stored = s3_server.client.get_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/manifest.json")["Body"].read()
    assert stored == first_manifest


def test_rerun_with_one_changed_file_uploads_only_that_file_and_the_manifest(s3_server, tmp_path):
    files = small_files()
    write_release(tmp_path, files)
    store = make_store(s3_server)
    publish_release(tmp_path, store, "releases")
    s3_server.server.app.reset()

    files["stats/t2.json"] = b'{"changed": true}'
    write_release(tmp_path, files)
    result = publish_release(tmp_path, store, "releases")

    assert (result["uploaded"], result["skipped"], result["manifest_written"]) == (1, 4, True)
    assert sorted(r.key for r in payload_requests(s3_server)) == [f"{PREFIX}/manifest.json", f"{PREFIX}/stats/t2.json"]


def test_transient_s3_errors_are_retried(s3_server, tmp_path):
    files = small_files()
    write_release(tmp_path, files)
    s3_server.fault(method="PUT", key=f"{PREFIX}/stats/t1.json", status=503, code="SlowDown", times=1)

    result = publish_release(tmp_path, make_store(s3_server), "releases")

    assert result["uploaded"] == len(files)
    puts = [r for r in s3_server.requests if r.method == "PUT" and r.key.endswith("t1.json")]
    assert [r.status for r in puts] == [503, 200]


def test_persistent_s3_error_fails_without_a_manifest(s3_server, tmp_path):
    write_release(tmp_path, {**small_files(), "tables/big.parquet": big_file()})
    s3_server.fault(method="PUT", key=f"{PREFIX}/stats/t3.json", status=500, times=100)

    with pytest.raises(InfraError) as failure:
        publish_release(tmp_path, make_store(s3_server), "releases")

    assert "stats/t3.json" in failure.value.summary and "InternalError" in failure.value.summary
    assert f"{PREFIX}/manifest.json" not in s3_server.keys()
    assert s3_server.open_multipart_uploads() == []


def test_dropped_connection_mid_upload_is_retried(s3_server, tmp_path):
    files = {**small_files(), "tables/big.parquet": big_file()}
    write_release(tmp_path, files)
    proxy = s3_server.proxy(cut_after=2 * MIB, max_cuts=1)

    result = publish_release(tmp_path, make_store(s3_server, endpoint=proxy.endpoint_url), "releases")

    assert proxy.cuts == 1
    assert result["uploaded"] == len(files)
    body = s3_server.client.get_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/tables/big.parquet")["Body"].read()
    assert body == files["tables/big.parquet"]


def test_connections_dropped_every_time_fail_the_run_and_abort_multipart_uploads(s3_server, tmp_path):
    write_release(tmp_path, {**small_files(), "tables/big.parquet": big_file()})
    proxy = s3_server.proxy(cut_after=2 * MIB)

    with pytest.raises(InfraError) as failure:
        publish_release(tmp_path, make_store(s3_server, endpoint=proxy.endpoint_url), "releases")

    assert "tables/big.parquet" in failure.value.summary
    assert proxy.cuts >= 2
    assert s3_server.keys(f"{PREFIX}/manifest.json") == []
    assert s3_server.open_multipart_uploads() == []


def test_multipart_upload_left_open_by_a_failed_abort_is_aborted_by_the_sweep(s3_server, tmp_path):
    write_release(tmp_path, {"tables/big.parquet": big_file()})
    s3_server.fault(method="PUT", key=f"{PREFIX}/tables/big.parquet", query="partNumber", status=500, times=100)
    transfer_manager_aborts = s3_server.fault(method="DELETE", query="uploadId", status=500, times=2)

    with pytest.raises(InfraError):
        publish_release(tmp_path, make_store(s3_server), "releases")

    assert transfer_manager_aborts.hits == 2
    aborts = [r for r in s3_server.requests if r.method == "DELETE" and "uploadId" in r.query]
    assert [r.status for r in aborts] == [500, 500, 204]
    assert s3_server.open_multipart_uploads() == []
    assert s3_server.keys() == []


def test_store_reporting_a_different_checksum_fails_the_run(s3_server, tmp_path):
    write_release(tmp_path, small_files())
    wrong = sha256_b64(b"not the content")
    s3_server.fault(method="PUT", key=f"{PREFIX}/stats/t4.json", status=None, checksum=wrong)

    with pytest.raises(InfraError) as failure:
        publish_release(tmp_path, make_store(s3_server), "releases")

    assert "checksum verification" in failure.value.summary
    assert "stats/t4.json" in failure.value.detail and wrong in failure.value.detail
    assert s3_server.keys(f"{PREFIX}/manifest.json") == []


def test_multipart_object_with_a_different_checksum_on_head_fails_the_run(s3_server, tmp_path):
    write_release(tmp_path, {"tables/big.parquet": big_file()})
    s3_server.fault(method="HEAD", key=f"{PREFIX}/tables/big.parquet", status=None, checksum=sha256_b64(b"x") + "-3")

    with pytest.raises(InfraError) as failure:
        publish_release(tmp_path, make_store(s3_server), "releases")

    assert "tables/big.parquet" in failure.value.detail
    assert s3_server.keys(f"{PREFIX}/manifest.json") == []


@pytest.mark.parametrize(
    ("changed", "crc32"), [("stats/t0.json", True), ("tables/big.parquet", True), ("tables/big.parquet", False)]
)
def test_file_changed_after_build_is_refused_and_never_published(s3_server, tmp_path, changed, crc32):
    # A large file is checked by the CRC32 of its parts, combined, against the build's; without a recorded
    # CRC32 (an older build) by its SHA-256, read alongside the upload.
    files = {**small_files(), "tables/big.parquet": big_file()}
    write_release(tmp_path, files, crc32=crc32)
    data = bytearray(files[changed])
    data[1] ^= 1
    (tmp_path / changed).write_bytes(bytes(data))

    with pytest.raises(DataError, match="changed after the release was built"):
        publish_release(tmp_path, make_store(s3_server), "releases")
    assert s3_server.keys(f"{PREFIX}/manifest.json") == []
    assert f"{PREFIX}/{changed}" not in s3_server.keys()


def test_file_changed_between_runs_is_refused_on_the_rerun(tmp_path):
    out, store = tmp_path / "out", LocalStore(tmp_path / "store")
    write_release(out, small_files())
    publish_release(out, store, "releases")
    (out / "stats/t1.json").write_bytes((out / "stats/t1.json").read_bytes().replace(b"x", b"y"))
    with pytest.raises(DataError, match="t1.json changed after the release was built"):
        publish_release(out, store, "releases")


def test_missing_manifest_names_the_step_to_run(tmp_path):
    with pytest.raises(DataError, match="build_release"):
        publish_release(tmp_path, LocalStore(tmp_path / "store"))


def test_verify_stored_reports_every_mismatch_and_missing_object():
    expected = {"a": sha256_b64(b"a"), "b": sha256_b64(b"b"), "c": "Q29tcG9zaXRl-3"}
    stored = {
        "a": StoredObject("a", 1, "e", sha256_b64(b"a")),
        "b": StoredObject("b", 1, "e", sha256_b64(b"B")),
        "c": StoredObject("c", 1, "e", "Q29tcG9zaXRl"),
    }
    assert verify_stored(expected, stored) == [
        f"b: store reports SHA-256 {sha256_b64(b'B')}, local file has {sha256_b64(b'b')}"
    ]
    assert verify_stored({"d": "x"}, {}) == ["d: missing from the store after upload"]
    assert not checksums_match("Q29tcG9zaXRl-3", "Q29tcG9zaXRl-4")
    assert not checksums_match("Q29tcG9zaXRl-3", None)


def test_local_store_publish_and_unchanged_rerun(tmp_path):
    out, root = tmp_path / "out", tmp_path / "store"
    files = {**small_files(), "tables/t.parquet": b"PAR1" * 1000}
    write_release(out, files)
    store = open_store(str(root))
    first = publish_release(out, store, "releases")
    second = publish_release(out, store, "releases")

    assert first["uploaded"] == len(files) and first["manifest_written"]
    assert (second["uploaded"], second["skipped"], second["manifest_written"]) == (0, len(files), False)
    assert (root / PREFIX / "tables/t.parquet").read_bytes() == files["tables/t.parquet"]
    assert first["manifest_url"] == (root / PREFIX / "manifest.json").as_uri()
    assert not [p for p in root.rglob("*") if p.name.endswith(".partial")]


def test_local_store_conditional_writes(tmp_path):
    store = LocalStore(tmp_path)
    created = store.put("o/r/index.json", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("o/r/index.json", b"2", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("o/r/index.json", b"2", if_match="not-the-etag")
    store.put("o/r/index.json", b"2", if_match=created.etag)
    assert store.get("o/r/index.json") == (b"2", hashlib.sha256(b"2").hexdigest())
    assert store.list_sizes("o/") == {"o/r/index.json": 1}


def test_s3_conditional_writes(s3_server):
    store = make_store(s3_server)
    created = store.put("o/r/index.json", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("o/r/index.json", b"2", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("o/r/index.json", b"2", if_match='"0123"')
    updated = store.put("o/r/index.json", b"2", if_match=created.etag)
    assert store.get("o/r/index.json") == (b"2", updated.etag)


def test_keys_that_escape_the_store_are_refused(tmp_path):
    store = LocalStore(tmp_path / "store")
    for key in ("../outside", "/etc/passwd", "a/../../b"):
        with pytest.raises(DataError, match="Refusing store key"):
            store.put(key, b"x")


def test_open_store_urls(tmp_path):
    s3 = open_store("s3://bucket-a/some/prefix/", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket-a", "some/prefix")
    assert s3.url_for("x/y") == "s3://bucket-a/some/prefix/x/y"
    assert isinstance(open_store(tmp_path.as_uri()), LocalStore)
    assert open_store(str(tmp_path)).url == tmp_path.as_uri()
    with pytest.raises(ConfigError, match="s3://BUCKET/PREFIX"):
        open_store("ftp://host/dir")
    with pytest.raises(ConfigError, match="no bucket"):
        open_store("s3:///prefix")


def test_endpoint_from_the_environment_is_used_with_path_style(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    store = open_store(f"s3://{s3_server.bucket}/from-env")
    assert store.client.meta.endpoint_url == s3_server.endpoint_url
    write_release(tmp_path, small_files(1))
    publish_release(tmp_path, store)
    assert s3_server.keys("from-env/") == [
        f"from-env/{REPO}/{SHA}/manifest.json",
        f"from-env/{REPO}/{SHA}/stats/t0.json",
    ]
    assert {r.bucket for r in s3_server.requests} == {s3_server.bucket}


def test_unknown_bucket_is_an_infra_error_with_a_fix(s3_server, tmp_path):
    write_release(tmp_path, small_files(1))
    store = S3Store("no-such-bucket-here", "", s3_server.new_client(max_attempts=1))
    with pytest.raises(InfraError, match="create the bucket or fix the store URL"):
        publish_release(tmp_path, store)


def test_an_unchanged_rerun_reads_the_manifest_and_lists_instead_of_a_head_per_object(s3_server, tmp_path):
    files = {f"stats/t{i}.json": b'{"rows": %d}' % i for i in range(40)}
    write_release(tmp_path, files)
    store = make_store(s3_server)
    publish_release(tmp_path, store, "releases")
    before = len(s3_server.requests)
    result = publish_release(tmp_path, store, "releases")
    rerun = s3_server.requests[before:]
    assert (result["uploaded"], result["skipped"], result["manifest_written"]) == (0, 40, False)
    assert [r.method for r in rerun] == ["GET", "GET"]  # the stored manifest, one LIST page: no HEAD, no PUT
    # An object deleted behind the manifest's back is not trusted to the manifest: it is uploaded again.
    s3_server.client.delete_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/stats/t3.json")
    assert publish_release(tmp_path, store, "releases")["uploaded"] == 1
