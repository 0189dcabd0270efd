"""How a step ends in a pod: exit code (what the retryStrategy reads) and termination message (what Argo shows)."""

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.resources.scripts import RETRY_EXPRESSION

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ("InfraError", 75, "[infra] GitHub answered 503"),  # retried: an outage may pass
        ("TimedOut", 2, "[infra] GitHub answered 503"),  # error, but final: a retry would wait again
        ("DataError", 2, "GitHub answered 503"),  # failure, final
    ],
)
def test_exit_codes_and_markers(tmp_path, error, code, message):
    termination = tmp_path / "termination-log"
    script = (
        "from steps.runtime.step import step\n"
        f"from steps.runtime.errors import {error}\n"
        "@step\n"
        "def s() -> str:\n"
        f"    raise {error}('GitHub answered 503')\n"
        "s()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "STEP_TERMINATION_LOG": str(termination)},
        timeout=60,
    )
    assert result.returncode == code, result.stderr
    assert termination.read_text() == message
    # The template retries exactly exit 75 (and pod errors): a time-out is never run twice.
    assert ("== 75" in RETRY_EXPRESSION) and (code == 75) == (error == "InfraError")
