#!/usr/bin/env python3
"""Fresh-machine entry points: `python3 tasks.py demo` and `python3 tasks.py test`.

Each creates `.venv` (once, and again when pyproject.toml or constraints.txt changes), installs the project into
it with its test extra at the versions the runner image ships (`-c constraints.txt`), then runs the job. `test`
also checks a runtime-only install, built the way the Dockerfile builds the image (the package and
constraints.txt, no extras) in `.venv-runtime`: every module imports, the example schemas load and a step runs
through Hera's runner. Only python3 and pip are needed; no make, no cluster, no credentials.
"""

import hashlib
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
RUNTIME_VENV = ROOT / ".venv-runtime"
BIN = "Scripts" if sys.platform == "win32" else "bin"
PY = VENV / BIN / ("python.exe" if sys.platform == "win32" else "python")
RUNTIME_PY = RUNTIME_VENV / BIN / ("python.exe" if sys.platform == "win32" else "python")
PIP_QUIET = ["-m", "pip", "install", "--disable-pip-version-check", "-q"]


def _digest() -> str:
    return hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in ("pyproject.toml", "constraints.txt"))).hexdigest()


def _fresh(env_dir: Path, python: Path) -> bool:
    """Create the venv if needed; True when its dependencies must be (re)installed."""
    stamp = env_dir / ".installed"
    if stamp.exists() and stamp.read_text() == _digest() and python.exists():
        return False
    if not python.exists():
        print(f"creating {env_dir}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    subprocess.run([str(python), *PIP_QUIET, "--upgrade", "pip"], check=True, cwd=ROOT)
    return True


def ensure_venv() -> None:
    """`.venv`: the project (editable) with its test extra, pinned by constraints.txt."""
    if _fresh(VENV, PY):
        subprocess.run([str(PY), *PIP_QUIET, "-c", "constraints.txt", "-e", ".[test]"], check=True, cwd=ROOT)
        (VENV / ".installed").write_text(_digest())


def runtime_check() -> int:
    """What the runner image installs, and nothing else, must import, load schemas and run a step."""
    if _fresh(RUNTIME_VENV, RUNTIME_PY):
        subprocess.run([str(RUNTIME_PY), *PIP_QUIET, "-c", "constraints.txt", "."], check=True, cwd=ROOT)
        (RUNTIME_VENV / ".installed").write_text(_digest())
    else:  # dependencies unchanged: only the package itself, as the Dockerfile copies it (seconds)
        subprocess.run(
            [str(RUNTIME_PY), *PIP_QUIET, "--no-deps", "--force-reinstall", "."],
            check=True,
            cwd=ROOT,
        )
    with tempfile.TemporaryDirectory(prefix="runtime-check-") as tmp:  # no source tree on sys.path
        probe = ROOT / "tests" / "support" / "runtime_probe.py"
        return subprocess.run([str(RUNTIME_PY), str(probe), str(ROOT)], cwd=tmp).returncode


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
    steps = (
        lambda: run("-m", "ruff", "check", "."),
        lambda: run("-m", "ruff", "format", "--check", "."),
        lambda: run("-m", "mypy"),
        lambda: run("-m", "pipelines", "render", "--check"),
        lambda: run("-m", "pipelines", "lint"),
        runtime_check,
        lambda: run("-m", "pytest", *argv[1:]),
    )
    for step in steps:
        rc = step()
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
