"""Preview environments' Argo CD side: an ApplicationSet with the pull-request generator per registration."""

from __future__ import annotations

from typing import Any

from pipelines.config import Config


def resources(config: Config) -> list[dict[str, Any]]:
    """One ApplicationSet per registration with ``preview.enabled``."""
    return []


__all__ = ["resources"]
