"""Benchmark table validation: this project's streaming validator against a naive pandas one.

Generates a synthetic Parquet table (default 10,000,000 rows x 12 columns, one row group per million rows,
with a handful of planted bad rows), then runs each contender in a fresh subprocess, three times, and
reports the median wall time of the work (imports excluded) and the child's peak RSS (from wait4):

- read floor: the faster of ``pyarrow.parquet.read_table`` and ``polars.read_parquet`` (read only);
- naive: ``pandas.read_parquet`` plus pandera's pandas backend, ``lazy=True``, the same checks;
- project: ``steps.data.validation.validate_table_file``, with the allocator setting its pods get.

The project also runs at 1,000,000 rows to show that its peak RSS does not grow with the table.
The last line printed is one JSON object with the figures. Usage::

    .venv/bin/python benchmarks/validate.py [--rows 10000000] [--small-rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = [f"cat_{i:02d}" for i in range(20)]
ROW_GROUP = 1_000_000
GENERATOR_VERSION = 2
# Planted failures: (check label in the project's report, rows) -- the same for every table size.
PLANTED = {"unit_price >= 0": 5, r"checksum matches ^[0-9a-f]{32}$": 3, "unique order_id": 1}


def checks() -> dict:
    """Column -> (polars dtype name, pandas dtype, checks, nullable); the same checks for both backends."""
    from pandera.api.checks import Check
    from pandera.engines.pandas_engine import Date as date

    return {
        "order_id": ("String", str, [Check.str_matches(r"^O\d{9}$")], False),
        "customer_id": ("String", str, [Check.str_matches(r"^C\d{7}$")], False),
        "product_id": ("String", str, [Check.str_length(6, 6)], False),
        "quantity": ("Int64", "int64", [Check.in_range(1, 1000)], False),
        "unit_price": ("Float64", "float64", [Check.ge(0)], False),
        "discount": ("Float64", "float64", [Check.in_range(0, 1)], True),
        "category": ("String", str, [Check.isin(CATEGORIES)], False),
        "order_date": ("Date", date, [Check.in_range(dt.date(2020, 1, 1), dt.date(2030, 12, 31))], False),
        "checksum": ("String", str, [Check.str_matches(r"^[0-9a-f]{32}$")], False),
        "is_gift": ("Boolean", "bool", [], False),
        "store_id": ("Int64", "int64", [Check.ge(1)], False),
        "weight_kg": ("Float64", "float64", [Check.gt(0)], False),
    }


def polars_schema():
    import pandera.polars as pa
    import polars as pl

    columns = {
        name: pa.Column(getattr(pl, dtype), checks=c, nullable=nullable)
        for name, (dtype, _, c, nullable) in checks().items()
    }
    return pa.DataFrameSchema(columns, strict=True, name="orders")


def pandas_schema():
    import pandera.pandas as ppa

    columns = {
        name: ppa.Column(
            dtype, checks=c, nullable=nullable, unique=name == "order_id", report_duplicates="exclude_first"
        )
        for name, (_, dtype, c, nullable) in checks().items()
    }
    return ppa.DataFrameSchema(columns, strict=True, name="orders")


def generate(path: Path, rows: int) -> None:
    """Write the synthetic table one row group at a time (bounded memory, deterministic)."""
    import numpy as np
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for start in range(0, rows, ROW_GROUP):
        n = min(ROW_GROUP, rows - start)
        rng = np.random.default_rng(start)
        digests = pa.array(np.frombuffer(rng.bytes(16 * n).hex().encode(), dtype="S32")).cast(pa.string())
        frame = pl.select(order_id=pl.lit("O") + pl.int_range(start, start + n).cast(pl.String).str.zfill(9))
        frame = frame.with_columns(
            customer_id=pl.lit("C") + pl.Series(rng.integers(0, 10**7, n)).cast(pl.String).str.zfill(7),
            product_id=pl.lit("P") + pl.Series(rng.integers(0, 10**5, n)).cast(pl.String).str.zfill(5),
            quantity=pl.Series(rng.integers(1, 100, n)),
            unit_price=pl.Series(rng.random(n) * 500).round(2),
            discount=pl.Series(np.where(rng.random(n) < 0.1, np.nan, rng.random(n).round(2))).fill_nan(None),
            category=pl.Series(np.array(CATEGORIES)[rng.integers(0, 20, n)]),
            order_date=pl.Series(rng.integers(18262, 18262 + 3650, n).astype(np.int32)).cast(pl.Date),
            checksum=pl.Series(digests),
            is_gift=pl.Series(rng.random(n) < 0.1),
            store_id=pl.Series(rng.integers(1, 500, n)),
            weight_kg=pl.Series(rng.random(n) * 20 + 0.01),
        )
        if start == 0:  # planted failures: 5 negative prices, 3 upper-case digests, 1 repeated order id
            row = pl.int_range(pl.len())
            frame = frame.with_columns(
                unit_price=pl.when(row.is_in([3, 30, 300, 3000, 30000])).then(-1.0).otherwise("unit_price"),
                checksum=pl.when(row.is_in([7, 70, 700]))
                .then(pl.col("checksum").str.to_uppercase())
                .otherwise("checksum"),
            )
        if start + n == rows:
            frame = frame.with_columns(
                order_id=pl.when(pl.int_range(pl.len()) == n - 1).then(pl.lit("O000000042")).otherwise("order_id")
            )
        table = frame.to_arrow()
        writer = writer or pq.ParquetWriter(path.with_suffix(".tmp"), table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP)
    writer.close()
    path.with_suffix(".tmp").rename(path)


def run_child(mode: str, path: Path) -> dict:
    """Run one contender in this (fresh) process and return its figures."""
    if mode == "read-pyarrow":
        import pyarrow.parquet as pq

        started = time.perf_counter()
        rows = pq.read_table(path).num_rows
        return {"seconds": time.perf_counter() - started, "rows": rows}
    if mode == "read-polars":
        import polars as pl

        started = time.perf_counter()
        rows = pl.read_parquet(path).height
        return {"seconds": time.perf_counter() - started, "rows": rows}
    if mode == "naive":
        import pandas as pd
        import pandera.pandas as ppa

        schema = pandas_schema()
        started = time.perf_counter()
        frame = pd.read_parquet(path)
        try:
            schema.validate(frame, lazy=True)
            failures = 0
        except ppa.errors.SchemaErrors as exc:
            failures = len(exc.failure_cases)
        return {"seconds": time.perf_counter() - started, "rows": len(frame), "failures": failures}
    if mode == "project":
        sys.path.insert(0, str(ROOT))
        from steps.data.validation import validate_table_file

        schema = polars_schema()
        started = time.perf_counter()
        report = validate_table_file(path, schema, ["order_id"])
        seconds = time.perf_counter() - started
        assert report.check_counts == PLANTED, report.check_counts
        return {"seconds": seconds, "rows": report.rows, "failures": report.failure_count}
    raise SystemExit(f"unknown mode {mode}")


def pod_allocator_env() -> dict[str, str]:
    """The allocator environment the WorkflowTemplate sets for every step (pipelines/resources/scripts.py)."""
    sys.path.insert(0, str(ROOT))
    from pipelines.resources.scripts import POD_ALLOCATOR_ENV

    return dict(POD_ALLOCATOR_ENV)


def measure(mode: str, path: Path) -> dict:
    """Run ``mode`` in a fresh interpreter; peak RSS comes from wait4 for that child alone."""
    started = time.perf_counter()
    # The project runs with the allocator setting its pods get from the WorkflowTemplate (what ships).
    env = {**os.environ, **(pod_allocator_env() if mode == "project" else {})}
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{mode} failed with exit code {child.returncode}")
    figures = json.loads(output.strip().splitlines()[-1])
    figures["process_seconds"] = time.perf_counter() - started
    figures["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    figures["peak_rss_mb"] = usage.ru_maxrss / 1024
    return figures


def medians(runs: list[dict]) -> dict:
    """Median time of the runs (max peak RSS: the conservative figure)."""
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "best_seconds": min(r["seconds"] for r in runs),
        "process_seconds": statistics.median(r["process_seconds"] for r in runs),
        "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "rows": runs[0]["rows"],
        "failures": runs[0].get("failures"),
        "all_seconds": [round(r["seconds"], 2) for r in runs],
    }


def table_file(cache: Path, rows: int) -> Path:
    path = cache / f"orders-{rows}-v{GENERATOR_VERSION}.parquet"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(rows), str(path)], check=True, cwd=ROOT)
        print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")
    return path


def machine() -> dict:
    memory = next(
        (int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line),
        None,
    )
    libraries = {name: metadata.version(name) for name in ["polars", "pyarrow", "pandera", "pandas", "numpy"]}
    return {"nproc": os.cpu_count(), "ram_mb": memory, "python": platform.python_version(), **libraries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "validate-bench")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, metavar=("ROWS", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child[0], Path(args.child[1]))))
        return
    if args.generate:
        generate(Path(args.generate[1]), int(args.generate[0]))
        return

    info = machine()
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    big, small = table_file(args.cache, args.rows), table_file(args.cache, args.small_rows)
    results: dict[tuple[str, int], dict] = {}
    # Rounds interleave the contenders, so that load from other processes falls on all of them alike.
    plan = [(mode, args.small_rows, small) for mode in ["read-pyarrow", "read-polars", "project"]]
    plan += [(mode, args.rows, big) for mode in ["read-pyarrow", "read-polars", "naive", "project"]]
    runs: dict[tuple[str, int], list[dict]] = {(mode, rows): [] for mode, rows, _ in plan}
    for round_number in range(args.repeats):
        for mode, rows, path in plan:
            runs[(mode, rows)].append(measure(mode, path))
        print(f"round {round_number + 1}/{args.repeats} done", flush=True)
    header = ["contender".rjust(13), "rows".rjust(11), "median s", "process s", " cpu s", "peak RSS MB", "runs (s)"]
    print("  ".join(header))
    for (mode, rows), measured in runs.items():
        results[(mode, rows)] = figures = medians(measured)
        print(
            f"{mode:>13} {rows:>11,}  {figures['seconds']:8.2f}  {figures['process_seconds']:9.2f}"
            f"  {figures['cpu_seconds']:6.2f}  {figures['peak_rss_mb']:11.0f}  {figures['all_seconds']}"
        )

    def floor(rows: int, figure: str = "seconds") -> float:
        return min(results[("read-pyarrow", rows)][figure], results[("read-polars", rows)][figure])

    project, naive = results[("project", args.rows)], results[("naive", args.rows)]
    summary = {
        "rows": args.rows,
        "small_rows": args.small_rows,
        "repeats": args.repeats,
        "read_floor_s": round(floor(args.rows), 3),
        "read_pyarrow_s": round(results[("read-pyarrow", args.rows)]["seconds"], 3),
        "read_polars_s": round(results[("read-polars", args.rows)]["seconds"], 3),
        "naive_s": round(naive["seconds"], 3),
        "project_s": round(project["seconds"], 3),
        "project_small_s": round(results[("project", args.small_rows)]["seconds"], 3),
        "speedup_vs_naive": round(naive["seconds"] / project["seconds"], 2),
        "ratio_to_read_floor": round(project["seconds"] / floor(args.rows), 2),
        "best_of_runs": {
            "read_floor_s": round(floor(args.rows, "best_seconds"), 3),
            "naive_s": round(naive["best_seconds"], 3),
            "project_s": round(project["best_seconds"], 3),
            "speedup_vs_naive": round(naive["best_seconds"] / project["best_seconds"], 2),
            "ratio_to_read_floor": round(project["best_seconds"] / floor(args.rows, "best_seconds"), 2),
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "naive_failures": naive["failures"],
        "project_failures": project["failures"],
        "peak_rss_mb": {
            "project_small": round(results[("project", args.small_rows)]["peak_rss_mb"]),
            "project": round(project["peak_rss_mb"]),
            "naive": round(naive["peak_rss_mb"]),
            "read_pyarrow": round(results[("read-pyarrow", args.rows)]["peak_rss_mb"]),
            "read_polars": round(results[("read-polars", args.rows)]["peak_rss_mb"]),
        },
        "machine": info,
    }
    print()
    print(
        f"{args.rows:,} rows: project {summary['project_s']} s, naive {summary['naive_s']} s "
        f"({summary['speedup_vs_naive']}x faster), read floor {summary['read_floor_s']} s "
        f"(project = {summary['ratio_to_read_floor']}x floor); peak RSS {summary['peak_rss_mb']['project']} MB "
        f"at {args.rows:,} rows vs {summary['peak_rss_mb']['project_small']} MB at {args.small_rows:,}"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
