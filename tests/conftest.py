"""Shared pytest configuration: the emulators' fixtures are loaded as plugins."""

pytest_plugins = [
    "tests.support.emulators.github_fixtures",
    "tests.support.emulators.argocd_fixtures",
    "tests.support.emulators.argo_server_fixtures",
    "tests.support.github_env",
    "tests.support.s3_helpers",
]
