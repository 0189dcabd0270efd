"""``python -m pipelines submit``: start a run of the WorkflowTemplate on the Argo Server and follow it."""

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pipelines.cli._common import load, server
from pipelines.parameters import RELEASE_TEMPLATE
from pipelines.runs import submit_parameters
from steps.argo import server as argo_server


def _progress(workflow: dict[str, Any]) -> None:
    status = workflow.get("status") or {}
    nodes = [n for n in (status.get("nodes") or {}).values() if n.get("type") in {"Pod", "Retry"}]
    done = sum(1 for n in nodes if n.get("phase") in argo_server.FINAL_PHASES)
    running = [n.get("displayName", "?") for n in nodes if n.get("phase") == "Running"]
    print(
        f"  {status.get('phase') or 'Pending'}: {done}/{len(nodes)} steps done"
        + (f"; running {', '.join(sorted(running))}" if running else ""),
        flush=True,
    )


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit a run from the WorkflowTemplate in the cluster, optionally following it to the end."""
    config = load(args)
    try:
        params = submit_parameters(config, args.repo, args.sha.lower(), args.event, args.pr or "")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    client = server(config)
    labels = {"gitops-status-matrix/submitted-by": "cli"}
    workflow = client.submit(config.workflow.template_name or RELEASE_TEMPLATE, params, labels)
    name = workflow["metadata"]["name"]
    print(f"submitted {name}")
    print(f"{config.argo.ui_base}/workflows/{config.argo.namespace}/{name}")
    if not args.wait:
        return 0
    final = client.wait(name, poll=args.poll, timeout=args.timeout, on_change=_progress)
    phase = final["status"]["phase"]
    print(f"{name} {phase}" + (f": {final['status'].get('message')}" if final["status"].get("message") else ""))
    return 0 if phase == "Succeeded" else 1


def add_parser(add: Callable[[str, str], argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Create the sub-command with ``add(name, help)`` (which already adds ``--config``)."""
    p = add("submit", "submit a release-data-prep run to the Argo Server")
    p.add_argument("--repo", required=True, help="owner/name of a registered repository")
    p.add_argument("--sha", required=True, help="full 40-hex commit id")
    p.add_argument("--event", choices=["push", "pull_request"], default="push")
    p.add_argument("--pr", help="pull request number (with --event pull_request)")
    p.add_argument("--wait", action="store_true", help="follow the run until Succeeded/Failed/Error")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between polls with --wait")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    p.set_defaults(func=cmd_submit)
    return p


__all__ = ["add_parser", "cmd_submit"]
