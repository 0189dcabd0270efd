"""Check a runtime-only install the way the runner image is built: every module imports, schemas load, a step runs.

``python3 tasks.py test`` runs this with the interpreter of ``.venv-runtime`` (the package installed with
``constraints.txt`` and no extras, as the Dockerfile does) from a scratch directory, so nothing from the source
tree or the test extra can stand in for a missing runtime dependency. Only the standard library is imported
at the top; the project is imported from the installed package.

Usage: ``python runtime_probe.py REPO_ROOT``. Exit 0 when everything holds; otherwise one line per problem.
"""

import importlib
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import traceback
from pathlib import Path


def import_everything() -> list[str]:
    """Import every module of ``steps`` and ``pipelines`` from the installed package."""
    problems = []
    for package_name in ("steps", "pipelines"):
        package = importlib.import_module(package_name)
        location = Path(package.__file__ or "").resolve()
        installed = Path(sysconfig.get_paths()["purelib"]).resolve()
        if installed not in location.parents:
            problems.append(f"{package_name} was imported from {location}, not from the install in {installed}")
        for module in pkgutil.walk_packages(package.__path__, package_name + "."):
            if module.name == "pipelines.__main__":
                continue
            try:
                importlib.import_module(module.name)
            except Exception:  # noqa: BLE001 - every failure is reported, with its cause
                cause = traceback.format_exc(limit=1).strip().splitlines()[-1]
                problems.append(f"import {module.name}: {cause}")
    return problems


def load_schemas(root: Path) -> list[str]:
    """Load every example schema file, as check-metadata does (pandera's YAML loader needs pandas)."""
    from steps.data.schemas import resolve_schema

    problems = []
    for data in ("release-data", "release-data-bad"):
        base = root / "examples" / data
        for schema in sorted((base / "schemas").glob("*.yaml")):
            try:
                resolve_schema(f"schemas/{schema.name}", base)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"load {schema.relative_to(root)}: {type(exc).__name__}: {exc}")
    return problems


def run_step(root: Path, work: Path) -> list[str]:
    """Run check-metadata and check-table through ``python -m hera.workflows.runner``, as a pod does."""
    workspace = work / "workspace"
    shutil.copytree(root / "examples" / "release-data", workspace / "input")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "RELEASE_WORKSPACE": str(workspace),
        "STEP_TERMINATION_LOG": str(work / "termination-log"),
        "TMPDIR": str(work),
    }
    problems = []
    for entrypoint, inputs in (
        ("steps.release:check_metadata", {"repo": "acme/data", "sha": "0" * 40}),
        ("steps.release:check_table", {"repo": "acme/data", "sha": "0" * 40, "table": "products"}),
    ):
        inputs_file = work / "inputs.json"
        inputs_file.write_text(json.dumps([{"name": k, "value": v} for k, v in inputs.items()]))
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "hera.workflows.runner", "-e", entrypoint, str(inputs_file)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            problems.append(f"{entrypoint} exited {done.returncode}: {tail}")
    return problems


def main(argv: list[str]) -> int:
    """Run every check; print the problems; 0 when there are none."""
    root = Path(argv[0]).resolve()
    with tempfile.TemporaryDirectory(prefix="runtime-probe-") as tmp:
        problems = import_everything() + load_schemas(root) + run_step(root, Path(tmp))
    for problem in problems:
        print(f"runtime install: {problem}", file=sys.stderr)
    if not problems:
        print("runtime install: every module of steps/ and pipelines/ imports, schemas load, steps run")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
