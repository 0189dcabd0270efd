"""Step functions for the local-runner tests: each runs in its own process through Hera's runner.

The templates in tests/support/local_templates/ call these as ``tests.support.local_steps:<function>`` exactly as the
release template calls ``steps.*`` (https://hera.readthedocs.io/en/stable/user-guides/script-runner-io/).
No ``from __future__ import annotations`` here: the runner reads the real annotations. Coordination
between concurrent steps goes through files in a directory the test passes in.
"""

import json
import os
import sys
import time
from pathlib import Path

from steps.runtime.errors import DataError, InfraError
from steps.runtime.step import step


def _trace(trace_dir: str, event: str, name: str) -> None:
    with (Path(trace_dir) / "trace.log").open("a", encoding="utf-8") as fh:
        fh.write(f"{event} {name}\n")


def echo(text: str, trace_dir: str = "") -> str:
    """Return ``text`` (becomes ``outputs.result``), tracing the call when ``trace_dir`` is set."""
    if trace_dir:
        _trace(trace_dir, "run", text)
    return text


def make_items(count: str) -> list:
    """A JSON list of ``{"name": "tN"}`` items for a ``withParam`` fan-out."""
    return [{"name": f"t{i}"} for i in range(int(count))]


def overlap(trace_dir: str, name: str, barrier: str = "0") -> str:
    """Mark ``name`` active, record how many are active at once, wait for ``barrier`` peers (max 20 s)."""
    active = Path(trace_dir) / "active"
    active.mkdir(exist_ok=True)
    mine = active / name
    mine.touch()
    _trace(trace_dir, "begin", name)
    deadline = time.monotonic() + 20
    want = int(barrier)
    seen = 0
    while True:
        seen = max(seen, len(list(active.iterdir())))
        if seen >= want or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    seen = max(seen, len(list(active.iterdir())))
    with (Path(trace_dir) / "max-active").open("a", encoding="utf-8") as fh:
        fh.write(f"{seen}\n")
    _trace(trace_dir, "end", name)
    mine.unlink()
    return name


@step
def flaky(trace_dir: str, name: str, failures: str, kind: str = "infra") -> str:
    """Fail the first ``failures`` calls (InfraError: exit 75, DataError: exit 2), then succeed."""
    counter = Path(trace_dir) / f"calls-{name}"
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    _trace(trace_dir, f"attempt {os.environ.get('ATTEMPT')}", name)
    if calls <= int(failures):
        error = InfraError if kind == "infra" else DataError
        raise error(f"{name}: attempt {calls} failed on purpose")
    return f"{name} ok after {calls}"


@step
def crash(name: str) -> str:
    """An unexpected exception: the @step decorator turns it into exit code 1."""
    raise RuntimeError(f"{name} hit a bug")


def exit_code(code: str) -> None:
    """Exit with ``code`` without writing a termination message."""
    print("about to fail", file=sys.stderr)
    sys.exit(int(code))


def sleep(seconds: str) -> str:
    """Sleep, for deadline tests."""
    time.sleep(float(seconds))
    return "slept"


def record(out: str, status: str, failures: str) -> str:
    """The exit handler of the tests: write what it received (raw) and the environment it saw."""
    seen = {
        key: os.environ.get(key)
        for key in ("STEP_REGISTRATIONS_FILE", "STEP_TERMINATION_LOG", "SECRET_TOKEN", "KEY_PATH", "LOCAL_ONLY")
    }
    Path(out).write_text(json.dumps({"status": status, "failures": failures, "env": seen}), encoding="utf-8")
    return status


def read_env(names: str) -> dict:
    """Return the named environment variables (and the file contents when a value is an existing file)."""
    out = {}
    for name in names.split(","):
        value = os.environ.get(name)
        path = Path(value) if value else None
        out[name] = {"value": value, "content": path.read_text() if path and path.is_file() else None}
    return out


__all__ = ["crash", "echo", "exit_code", "flaky", "make_items", "overlap", "read_env", "record", "sleep"]
