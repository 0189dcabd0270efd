"""The output registry: latest release per branch, pull request and tag, with no lost concurrent update."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from steps.runtime.errors import DataError, InfraError
from steps.store.local import LocalStore
from steps.store.publish import publish_release
from steps.store.registry import (
    HISTORY_LIMIT,
    ReleasePointer,
    StoreRegistry,
    apply_pointer,
    register_outputs,
    target_for,
)
from steps.store.s3 import S3Store

REPO = "octo-org/prices"
SHA = "89abcdef0123456789abcdef0123456789abcdef"


def pointer(name: str, *, target: str = "pulls", sha: str = SHA, run_id: str | None = None) -> ReleasePointer:
    return ReleasePointer(
        target=target,
        name=name,
        sha=sha,
        manifest_key=f"releases/{REPO}/{sha}/manifest.json",
        manifest_url=f"s3://bucket/releases/{REPO}/{sha}/manifest.json",
        version="1.0.0",
        event="pull_request" if target == "pulls" else "push",
        workflow_name="release-data-prep-abc12",
        created_at="2026-01-01T00:00:00+00:00",
        registered_at="2026-01-01T00:01:00+00:00",
        run_id=run_id or f"run-{target}-{name}-{sha[:7]}",
    )


def built_release(out: Path, **fields) -> Path:
    data = b'{"rows": 3}'
    (out / "stats").mkdir(parents=True)
    (out / "stats/t.json").write_bytes(data)
    manifest = {
        "repo": REPO,
        "sha": SHA,
        "event": "push",
        "ref": "refs/heads/main",
        "pr_number": None,
        "workflow_name": "release-data-prep-abc12",
        "created_at": "2026-01-01T00:00:00+00:00",
        "release": {"name": "acme-prices", "version": "1.4.0"},
        "artifacts": [{"path": "stats/t.json", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}],
        **fields,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def s3_store(s3, max_attempts: int = 2) -> S3Store:
    return S3Store(s3.bucket, "", s3.new_client(max_attempts=max_attempts))


@pytest.mark.parametrize(
    ("event", "ref", "pr", "expected"),
    [
        ("push", "refs/heads/main", None, ("branches", "main")),
        ("push", "refs/heads/feature/x", None, ("branches", "feature/x")),
        ("push", "refs/tags/v1.4.0", None, ("tags", "v1.4.0")),
        ("pull_request", "refs/pull/42/merge", 42, ("pulls", "42")),
        ("workflow_dispatch", "refs/heads/main", 0, ("branches", "main")),
    ],
)
def test_target_for(event, ref, pr, expected):
    assert target_for(event, ref, pr) == expected


def test_target_for_refuses_an_unplaceable_run():
    with pytest.raises(DataError, match="refs/heads/BRANCH"):
        target_for("pull_request", "refs/pull/42/merge", None)


def test_register_outputs_points_the_branch_at_the_published_manifest(s3_server, tmp_path):
    out = built_release(tmp_path / "out")
    publish_release(out, s3_store(s3_server), "releases")
    url = f"s3://{s3_server.bucket}"

    result = register_outputs(str(out), url, key_prefix="releases", endpoint_url=s3_server.endpoint_url, run_id="uid-1")

    assert (result["target"], result["name"], result["index_key"]) == (
        "branches",
        "main",
        f"releases/{REPO}/index.json",
    )
    index = json.loads(s3_server.client.get_object(Bucket=s3_server.bucket, Key=result["index_key"])["Body"].read())
    main = index["branches"]["main"]
    assert main["manifest_key"] == f"releases/{REPO}/{SHA}/manifest.json"
    assert main["manifest_url"] == f"{url}/releases/{REPO}/{SHA}/manifest.json"
    assert (main["sha"], main["version"], main["run_id"]) == (SHA, "1.4.0", "uid-1")
    assert index["pulls"] == {} and index["repo"] == REPO

    pr_out = built_release(tmp_path / "pr", event="pull_request", ref="refs/pull/7/merge", pr_number=7)
    register_outputs(str(pr_out), url, key_prefix="releases", endpoint_url=s3_server.endpoint_url, run_id="uid-2")
    index = json.loads(s3_server.client.get_object(Bucket=s3_server.bucket, Key=result["index_key"])["Body"].read())
    assert set(index["branches"]) == {"main"} and set(index["pulls"]) == {"7"}
    assert [h["run_id"] for h in index["history"]] == ["uid-1", "uid-2"]


def test_failed_publish_registers_nothing(s3_server, tmp_path):
    out = built_release(tmp_path / "out")
    s3_server.fault(method="PUT", key=f"releases/{REPO}/{SHA}/stats/t.json", status=500, times=100)
    with pytest.raises(InfraError):
        publish_release(out, s3_store(s3_server), "releases")

    with pytest.raises(InfraError, match="publish before registering"):
        register_outputs(
            str(out), f"s3://{s3_server.bucket}", key_prefix="releases", endpoint_url=s3_server.endpoint_url
        )
    assert s3_server.keys() == []


def test_a_write_between_read_and_update_is_retried_not_lost(s3_server):
    registry = StoreRegistry(s3_store(s3_server), "releases", sleep=lambda _: None)
    registry.register(REPO, pointer("1"))

    class Interleaving(S3Store):
        """Lets another run register between this run's read and its write, once."""

        interleaved = False

        def put(self, key, data, **conditions):
            if not self.interleaved:
                self.interleaved = True
                registry.register(REPO, pointer("2"))
            return super().put(key, data, **conditions)

    racing = StoreRegistry(Interleaving(s3_server.bucket, "", s3_server.new_client()), "releases", sleep=lambda _: None)
    racing.register(REPO, pointer("3"))

    index, _ = registry.read(REPO)
    assert set(index["pulls"]) == {"1", "2", "3"}
    statuses = [r.status for r in s3_server.requests if r.method == "PUT" and r.key.endswith("index.json")]
    assert statuses == [200, 200, 412, 200]


def test_eight_concurrent_registrations_on_s3_lose_nothing(s3_server):
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        registry = StoreRegistry(s3_store(s3_server, max_attempts=3), "releases", base_delay=0.01)
        barrier.wait()
        try:
            registry.register(REPO, pointer(str(i)) if i % 2 else pointer(f"b{i}", target="branches"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    index, _ = StoreRegistry(s3_store(s3_server), "releases").read(REPO)
    assert set(index["pulls"]) == {"1", "3", "5", "7"} and set(index["branches"]) == {"b0", "b2", "b4", "b6"}
    assert len(index["history"]) == 8
    puts = [r.status for r in s3_server.requests if r.method == "PUT" and r.key.endswith("index.json")]
    assert puts.count(200) == 8 and set(puts) <= {200, 412}


def _register_in_process(root: str, i: int, start: multiprocessing.synchronize.Event) -> None:
    start.wait()
    StoreRegistry(LocalStore(root), "releases", base_delay=0.005).register(REPO, pointer(str(i)))


def test_eight_concurrent_processes_on_a_local_store_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_register_in_process, args=(str(tmp_path), i, start)) for i in range(8)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 8
    index, _ = StoreRegistry(LocalStore(tmp_path), "releases").read(REPO)
    assert set(index["pulls"]) == {str(i) for i in range(8)}
    assert not [p for p in tmp_path.rglob("*.partial")]


def test_a_retried_registration_is_applied_once(s3_server):
    registry = StoreRegistry(s3_store(s3_server), "releases")
    registry.register(REPO, pointer("5", run_id="same"))
    registry.register(REPO, replace(pointer("5", run_id="same"), registered_at="2026-01-01T00:02:00+00:00"))
    index, _ = registry.read(REPO)
    assert len(index["history"]) == 1
    assert len([r for r in s3_server.requests if r.method == "PUT"]) == 1


def test_gives_up_after_max_attempts_of_conflicts(s3_server):
    s3_server.fault(method="PUT", key="*index.json", status=412, code="PreconditionFailed", times=100)
    delays: list[float] = []
    registry = StoreRegistry(s3_store(s3_server), "releases", max_attempts=4, base_delay=0.1, sleep=delays.append)
    with pytest.raises(InfraError, match="changed 4 times"):
        registry.register(REPO, pointer("9"))
    assert len(delays) == 4 and all(0 <= d <= 0.1 * 2**i for i, d in enumerate(delays))


def test_latest_and_history_limit():
    index: dict = {}
    for i in range(HISTORY_LIMIT + 5):
        index = apply_pointer(index, REPO, pointer("main", target="branches", sha=f"{i:040x}", run_id=f"r{i}"))
    assert len(index["history"]) == HISTORY_LIMIT
    assert index["branches"]["main"]["sha"] == f"{HISTORY_LIMIT + 4:040x}"
    assert index["history"][0]["sha"] == f"{5:040x}"


def test_latest_reads_the_pointer(tmp_path):
    registry = StoreRegistry(LocalStore(tmp_path))
    assert registry.latest(REPO, "branches", "main") is None
    registry.register(REPO, pointer("main", target="branches"))
    assert registry.latest(REPO, "branches", "main")["sha"] == SHA
    assert (tmp_path / REPO / "index.json").is_file()


def test_an_older_pointer_is_recorded_but_does_not_become_latest():
    older, newer = "a" * 40, "b" * 40
    index = apply_pointer({}, REPO, pointer("main", target="branches", sha=newer))
    ordering = lambda target, name, current, new: new == newer  # noqa: E731 - newer comes after older
    late = apply_pointer(index, REPO, pointer("main", target="branches", sha=older), ordering)
    assert late["branches"]["main"]["sha"] == newer
    assert late["history"][-1] == {
        "target": "branches",
        "name": "main",
        "sha": older,
        "run_id": f"run-branches-main-{older[:7]}",
        "latest": False,
        "manifest_key": f"releases/{REPO}/{older}/manifest.json",
    }
    tag = apply_pointer(
        apply_pointer({}, REPO, pointer("v1", target="tags", sha=newer)),
        REPO,
        pointer("v1", target="tags", sha=older),
        ordering,
    )
    assert tag["tags"]["v1"]["sha"] == older  # a tag is moved on purpose; its last registration wins
    assert apply_pointer(index, REPO, pointer("main", target="branches", sha=older))["branches"]["main"]["sha"] == older


def test_registering_the_older_commit_last_keeps_the_branch_at_the_newer_one(github_env, tmp_path):
    # Push A, then B; B's run registers first, A's run (slower) last: the pointer must stay at B.
    from steps.github.app import repo_client
    from steps.github.compare import compare_status, is_newer

    base, a, b = "1" * 40, "a" * 40, "b" * 40
    github_env.add_commits(REPO, base, a, b)
    github_env.add_installation(4242, github_env.app_id, account="octo-org", repositories=[REPO])
    client = repo_client(REPO, {"contents": "read"}, installation_id=4242)
    assert compare_status(client, a, b) == "ahead" and compare_status(client, b, a) == "behind"
    assert compare_status(client, a, a) == "identical" and compare_status(client, a, "c" * 40) is None

    store = LocalStore(tmp_path / "store")
    for sha in (b, a):
        out = built_release(tmp_path / sha[:4], sha=sha)
        publish_release(out, store, "releases")

    def ordering(target, name, current, new):
        return is_newer(client, current, new, branch=name)

    first = register_outputs(
        str(tmp_path / b[:4]), str(tmp_path / "store"), key_prefix="releases", run_id="B", is_newer=ordering
    )
    late = register_outputs(
        str(tmp_path / a[:4]), str(tmp_path / "store"), key_prefix="releases", run_id="A", is_newer=ordering
    )
    assert (first["latest"], late["latest"]) == (True, False)
    index = StoreRegistry(store, "releases").read(REPO)[0]
    assert index["branches"]["main"]["sha"] == b
    assert [(h["run_id"], h.get("latest", True)) for h in index["history"]] == [("B", True), ("A", False)]
    calls = github_env.count("GET", r"/compare/")
    assert calls == 4 + 1  # the four checks above, then one compare for the late registration

    # A force push: C replaces B (diverged); C is where main points now, so it moves; B registering later does not.
    c = github_env.add_commits(REPO, "c" * 40, parent=a)[0]
    github_env.set_ref(REPO, "main", c)
    out_c = built_release(tmp_path / "c", sha=c)
    publish_release(out_c, store, "releases")
    assert register_outputs(str(out_c), str(tmp_path / "store"), key_prefix="releases", run_id="C", is_newer=ordering)[
        "latest"
    ]
    assert StoreRegistry(store, "releases").latest(REPO, "branches", "main")["sha"] == c
