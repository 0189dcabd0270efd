"""The command line: ``python -m pipelines render | lint | submit | run``.

``render`` writes the manifests Argo CD syncs, ``lint`` validates them, ``submit`` starts a run of the
release-data-prep WorkflowTemplate on an Argo Server (https://argo-workflows.readthedocs.io/en/latest/rest-api/)
and ``run`` executes the same rendered template locally, without a cluster. Every command takes
``--config PATH`` (default ``hera_config.yaml``).
"""

import argparse
import os
import re
import sys
from pathlib import Path

from pipelines import argo_server, events, lint, local_cli, render
from pipelines.config import Config, ConfigFileError, load_config
from pipelines.parameters import RELEASE_PARAMETERS, RELEASE_TEMPLATE

SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _package_version() -> str:
    from importlib.metadata import version

    return version("gitops-status-matrix")


def cmd_render(args: argparse.Namespace) -> int:
    """Render manifests, or with ``--check`` compare them with the committed files."""
    config = _config(args)
    if config.image.tag != _package_version():
        print(
            f"image.tag {config.image.tag!r} in {args.config} differs from the package version "
            f"{_package_version()!r}; the runner image must carry the code that rendered the template",
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


def cmd_lint(args: argparse.Namespace) -> int:
    """Lint the rendered resources (in memory) and the files in the output directory."""
    config = _config(args)
    rendered = render.render(config)
    items = [(f"rendered/{r.path}", r.resource) for r in rendered]
    out = Path(args.output_dir)
    if out.exists():
        items += lint.load_files(sorted(out.rglob("*.yaml")))
    problems = lint.lint_all(items)
    if args.server:
        server = _server(config)
        for r in rendered:
            if r.resource["kind"] == "WorkflowTemplate":
                try:
                    server.lint_template(r.resource)
                except argo_server.ArgoServerError as exc:
                    problems.append(lint.Problem(f"argo-server/{r.path}", str(exc)))
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(items)} resources checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def _server(config: Config) -> argo_server.ArgoServer:
    verify: bool | str = config.argo.ca_bundle or config.argo.verify_tls
    return argo_server.ArgoServer(
        config.argo.host, config.argo.namespace, os.environ.get(config.argo.token_env, ""), verify=verify
    )


def _progress(workflow: dict) -> None:
    status = workflow.get("status") or {}
    nodes = [n for n in (status.get("nodes") or {}).values() if n.get("type") in {"Pod", "Retry"}]
    done = sum(1 for n in nodes if n.get("phase") in argo_server.FINAL_PHASES)
    running = [n.get("displayName", "?") for n in nodes if n.get("phase") == "Running"]
    print(
        f"  {status.get('phase') or 'Pending'}: {done}/{len(nodes)} steps done"
        + (f"; running {', '.join(sorted(running))}" if running else ""),
        flush=True,
    )


def submit_parameters(config: Config, repo: str, sha: str, event: str, pr: str) -> dict[str, str]:
    """The workflow arguments for a run, with installation and app id taken from the registration.

    Raises:
        ValueError: unregistered repo, bad sha, or a pull_request without a PR number.
    """
    if not SHA_RE.fullmatch(sha):
        raise ValueError(f"--sha {sha!r} is not a full 40-character lowercase hex commit id")
    try:
        reg = config.registration(repo)
    except KeyError:
        known = ", ".join(r.full_name for r in config.repo_registrations) or "none"
        raise ValueError(f"{repo} is not in repoRegistrations (registered: {known})") from None
    if event == "pull_request" and not pr.isdigit():
        raise ValueError("--event pull_request needs --pr NUMBER")
    params = dict(RELEASE_PARAMETERS)
    params.update(
        {
            "repo": reg.full_name,
            "sha": sha,
            "event": event,
            "pr-number": pr if event == "pull_request" else "",
            "ref": f"refs/pull/{pr}/head" if event == "pull_request" else f"refs/heads/{reg.default_branch}",
            "installation-id": str(reg.installation_id or ""),
            "app-id": str(config.app_id_for(reg) or ""),
            "data-path": reg.data_path,
        }
    )
    return params


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit a run from the WorkflowTemplate in the cluster, optionally following it to the end."""
    config = _config(args)
    try:
        params = submit_parameters(config, args.repo, args.sha.lower(), args.event, args.pr or "")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = _server(config)
    labels = {"gitops-status-matrix/submitted-by": "cli"}
    workflow = server.submit(config.workflow.template_name or RELEASE_TEMPLATE, params, labels)
    name = workflow["metadata"]["name"]
    print(f"submitted {name}")
    print(f"{config.argo.ui_base}/workflows/{config.argo.namespace}/{name}")
    if not args.wait:
        return 0
    final = server.wait(name, poll=args.poll, timeout=args.timeout, on_change=_progress)
    phase = final["status"]["phase"]
    print(f"{name} {phase}" + (f": {final['status'].get('message')}" if final["status"].get("message") else ""))
    return 0 if phase == "Succeeded" else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pipelines``."""
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default="hera_config.yaml", help="config file (default: hera_config.yaml)")
        return p

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

    p = add("lint", "validate rendered resources against the official schemas and Hera's models")
    p.add_argument("--output-dir", default="manifests", help="also lint the files here (default: manifests)")
    p.add_argument("--server", action="store_true", help="also lint WorkflowTemplates on the Argo Server")
    p.set_defaults(func=cmd_lint)

    p = add("submit", "submit a release-data-prep run to the Argo Server")
    p.add_argument("--repo", required=True, help="owner/name of a registered repository")
    p.add_argument("--sha", required=True, help="full 40-hex commit id")
    p.add_argument("--event", choices=["push", "pull_request"], default="push")
    p.add_argument("--pr", help="pull request number (with --event pull_request)")
    p.add_argument("--wait", action="store_true", help="follow the run until Succeeded/Failed/Error")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between polls with --wait")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    p.set_defaults(func=cmd_submit)

    local_cli.add_parser(add)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except argo_server.ArgoServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


__all__ = ["build_parser", "main", "submit_parameters"]
