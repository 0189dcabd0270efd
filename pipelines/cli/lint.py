"""``python -m pipelines lint``: validate rendered resources against the official schemas and Hera's models."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from pipelines import lint, render
from pipelines.cli._common import load, server
from steps.argo import server as argo_server


def cmd_lint(args: argparse.Namespace) -> int:
    """Lint the rendered resources (in memory) and the files in the output directory."""
    config = load(args)
    rendered = render.render(config)
    items = [(f"rendered/{r.path}", r.resource) for r in rendered]
    out = Path(args.output_dir)
    if out.exists():
        items += lint.load_files(sorted(out.rglob("*.yaml")))
    problems = lint.lint_all(items)
    if args.server:
        client = server(config)
        for r in rendered:
            if r.resource["kind"] == "WorkflowTemplate":
                try:
                    client.lint_template(r.resource)
                except argo_server.ArgoServerError as exc:
                    problems.append(lint.Problem(f"argo-server/{r.path}", str(exc)))
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(items)} resources checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def add_parser(add: Callable[[str, str], argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Create the sub-command with ``add(name, help)`` (which already adds ``--config``)."""
    p = add("lint", "validate rendered resources against the official schemas and Hera's models")
    p.add_argument("--output-dir", default="manifests", help="also lint the files here (default: manifests)")
    p.add_argument("--server", action="store_true", help="also lint WorkflowTemplates on the Argo Server")
    p.set_defaults(func=cmd_lint)
    return p


__all__ = ["add_parser", "cmd_lint"]
