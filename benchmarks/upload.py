"""Upload benchmark: publish_release against moto's S3 server over HTTP, versus plain boto3.

Measures, against one moto server process (``python -m tests.support.s3_helpers``, which counts the body bytes
it receives):

* one large file (default 1 GiB): ``publish_release`` vs boto3 ``upload_file`` with its default config
  (CRC32 checksums), and for reference the same with ``ChecksumAlgorithm="SHA256"``;
* many small files (default 2,000 x 10 KB): ``publish_release`` vs a sequential ``upload_file`` loop and
  vs the server's ceiling, a raw 16-thread ``put_object`` pool with the bodies already in memory;
* an unchanged re-run of both: payload bytes the server received (target 0).

Targets: large >= 1.0x boto3 default; small >= 1.5x the sequential loop and >= 0.9x the ceiling.
Run from the repository root: ``.venv/bin/python benchmarks/upload.py [--size-mb 64 --files 200]``.
The last line printed is one JSON object with every figure and ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import botocore  # noqa: E402
import moto  # noqa: E402
from botocore.config import Config  # noqa: E402

from steps.store.checksums import sha256_and_crc32  # noqa: E402
from steps.store.publish import publish_release  # noqa: E402
from steps.store.url import open_store  # noqa: E402

MIB = 1024 * 1024
REPO = "bench/upload"
SHA = "ab" * 20


class Server:
    """moto behind tests.support.s3_helpers' recording middleware, in its own process."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.s3_helpers", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"moto server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stats(self, reset: bool = False) -> dict:
        request = urllib.request.Request(f"{self.url}/_s3_helpers/{'reset' if reset else 'stats'}", method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def client(url: str, **config):
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", config=Config(**config) if config else None)


def empty_bucket(s3, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        for i in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000]})


def write_release_dir(out: Path, files: dict[str, Path]) -> None:
    """A release directory as build_release leaves it: the files plus a manifest listing them."""
    artifacts = []
    for rel, path in sorted(files.items()):
        sha256, crc32 = sha256_and_crc32(path)  # what the build records, in the one read it makes
        artifacts.append({"path": rel, "size": path.stat().st_size, "sha256": sha256, "crc32": f"{crc32:08x}"})
    manifest = {"repo": REPO, "sha": SHA, "created_at": "2026-01-01T00:00:00+00:00", "artifacts": artifacts}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


def alternate(contenders: list, repeats: int) -> list[list[float]]:
    """Run each contender ``repeats`` times, rotating who goes first, so drift hits all alike."""
    runs: list[list[float]] = [[] for _ in contenders]
    for run in range(repeats):
        for i in range(len(contenders)):
            index = (i + run) % len(contenders)
            runs[index].append(contenders[index]())
    return runs


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    with open("/proc/meminfo") as fh:
        mem_gib = int(fh.readline().split()[1]) / 1024 / 1024
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "moto": moto.__version__,
        "awscrt": _has_awscrt(),
    }


def _has_awscrt() -> bool:
    try:
        import awscrt  # noqa: F401
    except ImportError:
        return False
    return True


def bench_large(server: Server, work: Path, size_mb: int, repeats: int) -> dict:
    big = work / "large" / "tables" / "big.parquet"
    big.parent.mkdir(parents=True)
    with big.open("wb") as fh:
        for start in range(0, size_mb, 64):
            fh.write(os.urandom(min(64, size_mb - start) * MIB))
    fh_size = big.stat().st_size
    write_release_dir(work / "large", {"tables/big.parquet": big})
    s3 = client(server.url)
    bucket = "bench-large"
    s3.create_bucket(Bucket=bucket)
    store = open_store(f"s3://{bucket}/ours", endpoint_url=server.url)
    peak_rss = 0.0
    sent: dict = {}

    def run_baseline() -> float:
        seconds = timed(lambda: s3.upload_file(str(big), bucket, "boto3-default/big.parquet"))
        empty_bucket(s3, bucket)
        return seconds

    def run_baseline_sha256() -> float:
        extra = {"ChecksumAlgorithm": "SHA256"}
        seconds = timed(lambda: s3.upload_file(str(big), bucket, "boto3-sha256/big.parquet", ExtraArgs=extra))
        empty_bucket(s3, bucket)
        return seconds

    def run_ours() -> float:
        nonlocal peak_rss, sent
        server.stats(reset=True)
        seconds = timed(lambda: publish_release(work / "large", store))
        sent = server.stats()
        peak_rss = max(peak_rss, server.rss_mb())
        empty_bucket(s3, bucket)
        return seconds

    baseline, baseline_sha256, ours = alternate([run_baseline, run_baseline_sha256, run_ours], repeats)
    publish_release(work / "large", store)
    server.stats(reset=True)
    rerun = timed(lambda: publish_release(work / "large", store))
    rerun_stats = server.stats()
    empty_bucket(s3, bucket)
    mb = fh_size / 1e6
    return {
        "size_mb": round(mb, 1),
        "boto3_default_s": round(min(baseline), 2),
        "ours_s": round(min(ours), 2),
        "boto3_default_mb_s": round(mb / min(baseline), 1),
        "ours_mb_s": round(mb / min(ours), 1),
        "ratio_vs_boto3_default": round(min(baseline) / min(ours), 3),
        "ratio_vs_boto3_default_median": round(statistics.median(baseline) / statistics.median(ours), 3),
        "boto3_default_sha256_mb_s": round(mb / min(baseline_sha256), 1),
        "ratio_vs_boto3_default_sha256": round(min(baseline_sha256) / min(ours), 3),
        "ours_requests": sent["requests"],
        "server_peak_rss_mb": round(peak_rss),
        "rerun_s": round(rerun, 2),
        "rerun_payload_bytes": rerun_stats["body_bytes"],
        "rerun_requests": rerun_stats["by_method"],
        "runs_s": {
            "boto3_default": [round(x, 2) for x in baseline],
            "boto3_default_sha256": [round(x, 2) for x in baseline_sha256],
            "ours": [round(x, 2) for x in ours],
        },
    }


def bench_small(server: Server, work: Path, files: int, size_kb: int, repeats: int) -> dict:
    out = work / "small"
    paths = {}
    for i in range(files):
        path = out / "stats" / f"part-{i:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size_kb * 1000))
        paths[f"stats/{path.name}"] = path
    write_release_dir(out, paths)
    bodies = {rel: p.read_bytes() for rel, p in paths.items()}
    bucket = "bench-small"
    s3 = client(server.url)
    s3.create_bucket(Bucket=bucket)

    def sequential() -> None:
        for rel, path in paths.items():
            s3.upload_file(str(path), bucket, f"sequential/{rel}")

    raw = client(server.url, max_pool_connections=16)

    def ceiling() -> None:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda kv: raw.put_object(Bucket=bucket, Key=f"ceiling/{kv[0]}", Body=kv[1]), bodies.items()))

    seq_s = timed(sequential)
    empty_bucket(s3, bucket)
    store = open_store(f"s3://{bucket}/ours", endpoint_url=server.url)
    sent: dict = {}

    def run_ceiling() -> float:
        seconds = timed(ceiling)
        empty_bucket(s3, bucket)
        return seconds

    def run_ours() -> float:
        nonlocal sent
        server.stats(reset=True)
        seconds = timed(lambda: publish_release(out, store))
        sent = server.stats()
        empty_bucket(s3, bucket)
        return seconds

    ceiling_runs, ours_runs = alternate([run_ceiling, run_ours], repeats)
    publish_release(out, store)
    server.stats(reset=True)
    rerun_s = timed(lambda: publish_release(out, store))
    rerun_stats = server.stats()
    empty_bucket(s3, bucket)
    ceil_s, ours_s = min(ceiling_runs), min(ours_runs)
    return {
        "files": files,
        "file_kb": size_kb,
        "sequential_files_s": round(files / seq_s, 1),
        "ceiling_files_s": round(files / ceil_s, 1),
        "ours_files_s": round(files / ours_s, 1),
        "ratio_vs_sequential": round(seq_s / ours_s, 3),
        "ratio_vs_ceiling": round(ceil_s / ours_s, 3),
        "ratio_vs_ceiling_median": round(statistics.median(ceiling_runs) / statistics.median(ours_runs), 3),
        "ours_requests": sent["by_method"],
        "rerun_s": round(rerun_s, 2),
        "rerun_payload_bytes": rerun_stats["body_bytes"],
        "rerun_requests": rerun_stats["by_method"],
        "rerun_requests_total": sum(rerun_stats["by_method"].values()),
        "runs_s": {
            "sequential": round(seq_s, 2),
            "ceiling": [round(x, 2) for x in ceiling_runs],
            "ours": [round(x, 2) for x in ours_runs],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the large file (MiB)")
    parser.add_argument("--files", type=int, default=2000, help="number of small files")
    parser.add_argument("--file-kb", type=int, default=10, help="size of each small file (KB)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant except the slow sequential loop")
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(name, value)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    work = Path(tempfile.mkdtemp(prefix="upload-bench-"))
    server = Server()
    try:
        small = bench_small(server, work, args.files, args.file_kb, args.repeats)
        print(f"small: {json.dumps(small)}", flush=True)
        large = bench_large(server, work, args.size_mb, args.repeats)
        print(f"large: {json.dumps(large)}", flush=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    targets = {
        "large_ge_1.0x_boto3_default": large["ratio_vs_boto3_default"] >= 1.0,
        "small_ge_1.5x_sequential": small["ratio_vs_sequential"] >= 1.5,
        "small_ge_0.9x_ceiling": small["ratio_vs_ceiling"] >= 0.9,
        "rerun_0_payload_bytes": small["rerun_payload_bytes"] == 0 and large["rerun_payload_bytes"] == 0,
    }
    print(json.dumps({"machine": machine(), "large": large, "small": small, "targets_met": targets}))


if __name__ == "__main__":
    main()
