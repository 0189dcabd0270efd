"""Secrets never reach a pod log: messages, formatted exceptions, chained causes, stacks, uncaught errors."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from steps.runtime.logs import scrub

ROOT = Path(__file__).resolve().parents[2]
# Shapes of what a step holds (fabricated values): an installation token, a PAT, an App JWT, an AWS secret.
TOKEN = "ghs_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjM0NTYifQ.c2lnbmF0dXJlc2lnbmF0dXJl"
AWS = "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _pem() -> str:
    """A fresh RSA private key in PEM, made when the tests run (no key material is tracked)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


KEY = _pem()
KEY_BODY = KEY.splitlines()[1]  # a line of the key's base64: what a leak would show
SECRETS = [TOKEN, PAT, JWT, AWS.split("=", 1)[1], KEY_BODY]


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        timeout=60,
    )


def assert_clean(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"leaked {leaked} in:\n{text}"


@pytest.mark.parametrize("secret", [TOKEN, PAT, JWT, AWS, KEY])
def test_scrub_redacts_every_shape(secret):
    assert_clean(scrub(f"before {secret} after"))
    assert "[redacted]" in scrub(secret)


def test_log_exception_chained_causes_and_stack_info_are_scrubbed():
    result = run(
        f"""
        import logging
        from steps.runtime.logs import configure_logging
        configure_logging()
        log = logging.getLogger("step")
        try:
            try:
                raise ConnectionError("token {TOKEN} was refused")
            except ConnectionError as inner:
                raise RuntimeError("retry with {JWT} failed") from inner
        except RuntimeError:
            log.exception("upload failed for {PAT}")
        log.warning("where: %s", "here", stack_info=True, extra={{}})
        def deep():
            secret = "{TOKEN}"
            log.error("deep %s", secret, stack_info=True)
        deep()
        log.error("aws %s", {AWS!r})
        log.error("key\\n%s", {KEY!r})
        """
    )
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "Traceback" in err and "ConnectionError" in err and "RuntimeError" in err  # the trace is kept
    assert "The above exception was the direct cause" in err  # the chained cause too
    assert err.count("[redacted]") >= 6
    assert_clean(err)


def test_an_uncaught_exception_is_scrubbed_by_the_excepthook():
    result = run(
        f"""
        from steps.runtime.logs import configure_logging
        configure_logging()
        raise PermissionError("installation token {TOKEN} lacks contents:read")
        """
    )
    assert result.returncode == 1
    assert "PermissionError" in result.stderr and "[redacted]" in result.stderr
    assert_clean(result.stderr)


def test_a_step_that_crashes_with_a_token_leaks_it_nowhere(tmp_path):
    # In a pod (termination log set) the decorator logs the traceback and writes the termination message,
    # which Argo copies into the node message and {{workflow.failures}}: neither may carry the token.
    termination = tmp_path / "termination-log"
    result = run(
        f"""
        from steps.runtime.step import step
        @step
        def leaky() -> str:
            headers = {{"Authorization": "token {TOKEN}"}}
            raise ValueError(f"GitHub refused {{headers}} with {JWT}")
        leaky()
        """,
        STEP_TERMINATION_LOG=str(termination),
    )
    assert result.returncode == 1
    assert "ValueError" in result.stderr and "Traceback" in result.stderr
    assert_clean(result.stderr + result.stdout)
    message = termination.read_text()
    assert message.startswith("leaky crashed: ValueError") and "[redacted]" in message
    assert_clean(message)
