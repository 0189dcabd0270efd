"""Shared pytest configuration: the emulators' fixtures are loaded as plugins."""

pytest_plugins = [
    "tests.emulators.github_fixtures",
    "tests.emulators.argocd_fixtures",
    "tests.emulators.argo_server_fixtures",
    "tests.github_env",
    "tests.s3_helpers",
]
