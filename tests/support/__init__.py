"""Test support: emulators of GitHub, Argo CD and the Argo Server, the S3 server fixture and helpers.

The names below are the public face of this package: the benchmarks use the emulators through them.
"""

from tests.support.emulators.argo_server import ArgoServerEmulator
from tests.support.emulators.argocd import ArgoCDEmulator
from tests.support.emulators.github import GitHubEmulator
from tests.support.emulators.github_fixtures import SeededGitHubEmulator, make_app_key
from tests.support.step_env import point_steps_at

__all__ = [
    "ArgoCDEmulator",
    "ArgoServerEmulator",
    "GitHubEmulator",
    "SeededGitHubEmulator",
    "make_app_key",
    "point_steps_at",
]
