"""Point the step functions at the emulators the way a pod's mounts do (for benchmarks run in one process)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from tests.support.emulators.argocd import ArgoCDEmulator
from tests.support.emulators.github_fixtures import SeededGitHubEmulator

BENCH_TOKEN = "bench-token"  # noqa: S105 - a value the local emulator accepts, not a credential


def point_steps_at(
    tmp: Path, gh: SeededGitHubEmulator, argo: ArgoCDEmulator, registration: dict[str, Any], *apps: str
) -> None:
    """Write the App key and one registration under ``tmp``, set the steps' variables, and add ``apps`` to Argo CD."""
    key = tmp / "key.pem"
    key.write_bytes(gh.app_key.pem)
    registrations = tmp / "registrations.yaml"
    registrations.write_text(yaml.safe_dump({"repoRegistrations": [registration]}))
    os.environ.update(
        {
            "GITHUB_API_URL": gh.url,
            "GITHUB_APP_ID": str(gh.app_id),
            "GITHUB_APP_PRIVATE_KEY_PATH": str(key),
            "GITHUB_TARGET_URL": "https://argo.example.com/workflows/argo/bench",
            "STEP_REGISTRATIONS_FILE": str(registrations),
            "ARGOCD_SERVER_URL": argo.url,
            "ARGOCD_TOKEN": BENCH_TOKEN,
            "ARGOCD_NAMESPACE": "argocd",
            "ARGOCD_STABILITY_SECONDS": "0",
            "ARGOCD_TIMEOUT_SECONDS": "60",
            "STEP_RETRIES": "0",
            "STEP_LOG_LEVEL": "WARNING",
        }
    )
    for name in ("GITHUB_RECORD_FILE", "ARGOCD_TOKEN_FILE", "GITHUB_REQUIRED_CONTEXTS", "STEP_TERMINATION_LOG"):
        os.environ.pop(name, None)
    argo.add_token(BENCH_TOKEN)
    for app in apps:
        argo.add_app(app)


__all__ = ["BENCH_TOKEN", "point_steps_at"]
