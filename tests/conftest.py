"""Shared pytest configuration: the emulators' fixtures are loaded as plugins."""

from importlib.util import find_spec

pytest_plugins = [
    name
    for name in (
        "tests.emulators.github_fixtures",
        "tests.emulators.argocd_fixtures",
        "tests.emulators.argo_server_fixtures",
        "tests.github_env",
    )
    if find_spec(name) is not None
]
