"""The command line: ``python -m pipelines render | lint | submit | run | reconcile``."""

import argparse
import sys

from pipelines.cli import lint, reconcile, render, run, submit
from pipelines.config import ConfigFileError
from steps.argo import server as argo_server

COMMANDS = (render, lint, submit, run, reconcile)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pipelines``: one sub-command per module of this package."""
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default="hera_config.yaml", help="config file (default: hera_config.yaml)")
        return p

    for command in COMMANDS:
        command.add_parser(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except ConfigFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except argo_server.ArgoServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


__all__ = ["build_parser", "main"]
