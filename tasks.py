#!/usr/bin/env python3
"""Fresh-machine entry points: `python3 tasks.py demo` and `python3 tasks.py test`.

Each creates `.venv` (once, and again when pyproject.toml changes), installs the project into it with its
test extra, then runs the job. Only python3 and pip are needed; no make, no cluster, no credentials.
"""

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure_venv() -> None:
    stamp = VENV / ".installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and PY.exists():
        return
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, cwd=ROOT)
    subprocess.run([*pip, "-e", ".[test]"], check=True, cwd=ROOT)
    stamp.write_text(digest)


def run(*args: str) -> int:
    return subprocess.run([str(PY), *args], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    job = argv[0] if argv else "help"
    if job not in {"demo", "test", "setup"}:
        print("usage: python3 tasks.py demo|test|setup [pytest args...]")
        return 2
    ensure_venv()
    if job == "setup":
        return 0
    if job == "demo":
        return run("-m", "pipelines", "run", *argv[1:])
    for cmd in (
        ("-m", "ruff", "check", "."),
        ("-m", "ruff", "format", "--check", "."),
        ("-m", "pipelines", "render", "--check"),
        ("-m", "pipelines", "lint"),
        ("-m", "pytest", *argv[1:]),
    ):
        rc = run(*cmd)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
