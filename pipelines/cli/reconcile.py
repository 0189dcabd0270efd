"""``python -m pipelines reconcile``: the reconciler's pass from a laptop, against the Argo Server."""

import argparse
import os
import sys
from collections.abc import Callable

from pipelines.cli._common import load, server
from pipelines.cli.reconcile_view import report_lines
from pipelines.config import Config
from steps.policy.reconcile import parse_duration
from steps.reconcile import Limits, Reconciler
from steps.runtime.errors import StepError
from steps.runtime.settings import GitHubStepSettings
from steps.store.url import open_store


def _settings(config: Config) -> GitHubStepSettings:
    g = config.github
    return GitHubStepSettings(
        api_url=g.api_url,
        app_id=str(g.app_id or ""),
        status_context=g.status_context,
        timeout=g.request_timeout_seconds,
        budget=g.retry_budget_seconds,
    )


def reconciler(config: Config, args: argparse.Namespace) -> Reconciler:
    """A reconciler built from the config: the same pass the CronWorkflow runs, with the laptop's credentials."""
    ids = {reg.full_name.lower(): (reg.installation_id, config.app_id_for(reg)) for reg in config.repo_registrations}
    store = None
    if not args.skip_storage:
        s3 = config.s3
        store = open_store(
            os.environ.get("RELEASE_STORE") or s3.root,
            endpoint_url=s3.endpoint_url,
            region=s3.region,
        )
    look_back = parse_duration(args.since or config.reconciler.look_back, "--since")
    return Reconciler(
        argo=server(config),
        settings=_settings(config),
        target_url=config.target_url,
        github_ids=lambda repo: ids.get(repo.lower(), (None, config.github.app_id)),
        store=store,
        limits=Limits(look_back=look_back, max_repairs=args.max_repairs or config.reconciler.max_repairs),
        dry_run=args.dry_run,
    )


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Run one pass and print what it did (or, with ``--dry-run``, would do)."""
    config = load(args)
    try:
        report = reconciler(config, args).run()
    except StepError as exc:
        print(f"error: {exc.summary}", file=sys.stderr)
        return 2 if exc.kind == "failure" else 1
    print("\n".join(report_lines(report)))
    return 0


def add_parser(add: Callable[[str, str], argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Create the sub-command with ``add(name, help)`` (which already adds ``--config``)."""
    p = add("reconcile", "report runs that ended without their final commit status (the CronWorkflow's pass)")
    p.add_argument("--dry-run", action="store_true", help="read everything, change nothing; print the repairs")
    p.add_argument("--since", metavar="DURATION", help="look-back window, e.g. 90m, 24h, 2d (default: the config's)")
    p.add_argument("--max-repairs", type=int, help="runs reported at most (default: the config's)")
    p.add_argument("--skip-storage", action="store_true", help="leave S3 alone (no workspace clean-up, no memo)")
    p.set_defaults(func=cmd_reconcile)
    return p


__all__ = ["add_parser", "cmd_reconcile", "reconciler"]
