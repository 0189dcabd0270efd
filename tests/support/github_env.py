"""Point step code at the GitHub emulator: env settings, a key file, small retry budgets for fast tests."""

from pathlib import Path

import pytest

from steps.runtime.settings import GitHubStepSettings


@pytest.fixture
def github_env(github_emulator, github_app_key, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Env for steps talking to the emulator; returns the emulator with ``settings`` attached."""
    key_file = tmp_path / "private-key"
    key_file.write_bytes(github_app_key.pem)
    env = {
        "GITHUB_API_URL": github_emulator.url,
        "GITHUB_APP_ID": str(github_emulator.app_id),
        "GITHUB_APP_PRIVATE_KEY_PATH": str(key_file),
        "GITHUB_STATUS_CONTEXT": "release-data-prep",
        "GITHUB_TARGET_URL": "https://argo.example.com/workflows/argo/release-data-prep-abc12",
        "GITHUB_TIMEOUT_SECONDS": "3",
        "GITHUB_RETRY_BUDGET_SECONDS": "8",
        "GITHUB_BACKOFF_FACTOR": "0.05",
    }
    for name in ("GITHUB_APP_PRIVATE_KEY", "GITHUB_RECORD_FILE", "STEP_TERMINATION_LOG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    github_emulator.settings = GitHubStepSettings.from_env()
    github_emulator.key_file = key_file
    return github_emulator


__all__ = ["github_env"]
