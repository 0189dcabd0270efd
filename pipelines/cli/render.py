"""``python -m pipelines render``: write the manifests Argo CD syncs, or with ``--check`` show how they drift."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from pipelines import render
from pipelines.cli._common import load, package_version
from pipelines.resources import events


def cmd_render(args: argparse.Namespace) -> int:
    """Render manifests, or with ``--check`` compare them with the committed files."""
    config = load(args)
    if config.image.tag != package_version():
        print(
            f"image.tag {config.image.tag!r} in {args.config} differs from the package version "
            f"{package_version()!r}; the runner image must carry the code that rendered the template",
            file=sys.stderr,
        )
        return 2
    rendered = render.render(config)
    out = Path(args.output_dir)
    if args.check:
        diff = render.check(rendered, out)
        if diff:
            sys.stdout.write(diff)
            print(f"\n{out}/ differs from the Python definitions: run `python -m pipelines render` and commit.")
            return 1
        print(f"{out}/ is up to date ({len(rendered)} resources)")
        return 0
    for path in render.write(rendered, out):
        print(path)
    if args.postsync_hooks:
        hooks = [
            render.Rendered(f"workflow-{h['metadata']['name']}.yaml", h, render.to_yaml(h))
            for h in events.postsync_hook_resources(config)
        ]
        for path in render.write(hooks, Path(args.postsync_hooks)):
            print(path)
    return 0


def add_parser(add: Callable[[str, str], argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Create the sub-command with ``add(name, help)`` (which already adds ``--config``)."""
    p = add("render", "write the manifests Argo CD syncs (one file per resource)")
    p.add_argument("--output-dir", default="manifests", help="where to write (default: manifests)")
    p.add_argument("--check", action="store_true", help="do not write; exit 1 with a diff when files differ")
    p.add_argument(
        "--postsync-hooks",
        metavar="DIR",
        help="also write the optional PostSync-hook Workflows (one per Application) into DIR, for each "
        "Application's own source path; never into the directory Argo CD syncs for this project",
    )
    p.set_defaults(func=cmd_render)
    return p


__all__ = ["add_parser", "cmd_render"]
