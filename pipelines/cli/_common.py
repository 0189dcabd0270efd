"""What every command shares: the config it was given, the package version, an Argo Server client."""

import argparse
import os
from importlib.metadata import version

from pipelines.config import Config, load_config
from steps.argo import server as argo_server


def load(args: argparse.Namespace) -> Config:
    """The config file named by ``--config``."""
    return load_config(args.config)


def package_version() -> str:
    """The installed version of this project (what the runner image is tagged with)."""
    return version("gitops-status-matrix")


def server(config: Config) -> argo_server.ArgoServer:
    """An Argo Server client from the ``argo`` section, with the token from ``argo.tokenEnv``."""
    verify: bool | str = config.argo.ca_bundle or config.argo.verify_tls
    return argo_server.ArgoServer(
        config.argo.host, config.argo.namespace, os.environ.get(config.argo.token_env, ""), verify=verify
    )


__all__ = ["load", "package_version", "server"]
