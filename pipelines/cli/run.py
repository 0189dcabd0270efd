"""``python -m pipelines run``: the release-data-prep WorkflowTemplate on this machine, shown to people."""

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import yaml

from pipelines import render
from pipelines.cli.run_summary import summary
from pipelines.cli.run_view import Progress
from pipelines.config import Config, load_config
from pipelines.local import LocalRun, LocalRunRefused, RunOptions, RunResult, generate_name, plan_rows
from pipelines.resources.mounts import REGISTRATIONS_CONFIGMAP, REGISTRATIONS_KEY
from pipelines.runs import data_sha, local_registration, run_parameters
from steps.runtime.registrations import RepoRegistration, dump_registrations

LOCAL_REPO = "local/example"
LOCAL_ROOT = Path(".local-run")
DEFAULT_DATA = Path("examples/release-data")


def _overrides(pairs: Iterable[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"-p {pair!r}: use NAME=VALUE")
        out[name] = value
    return out


def _load_resources(args: argparse.Namespace, config: Config) -> list[dict[str, Any]]:
    if args.from_manifests:
        directory = Path(args.from_manifests)
        files = sorted(directory.rglob("*.yaml"))
        if not files:
            raise ValueError(f"no YAML files under {directory}/; run `python -m pipelines render` first")
        docs = [doc for f in files for doc in yaml.safe_load_all(f.read_text(encoding="utf-8"))]
        return [doc for doc in docs if isinstance(doc, dict)]
    return [r.resource for r in render.render(config)]


def _pick_template(resources: list[dict[str, Any]], name: str) -> dict[str, Any]:
    templates = {r["metadata"]["name"]: r for r in resources if r.get("kind") == "WorkflowTemplate"}
    if name not in templates:
        raise ValueError(f"no WorkflowTemplate {name!r} among {sorted(templates) or 'the resources'}")
    return templates[name]


def config_maps(resources: list[dict[str, Any]], extra: RepoRegistration | None) -> dict[str, dict[str, str]]:
    """ConfigMap contents by name; ``extra`` joins the registrations file of each ConfigMap holding one."""
    out: dict[str, dict[str, str]] = {}
    for resource in resources:
        if resource.get("kind") != "ConfigMap":
            continue
        data = {k: str(v) for k, v in (resource.get("data") or {}).items()}
        if extra is not None and resource["metadata"]["name"] == REGISTRATIONS_CONFIGMAP:
            loaded = json.loads(data.get(REGISTRATIONS_KEY) or "{}")
            regs = [RepoRegistration.model_validate(r) for r in loaded.get("repoRegistrations") or []]
            data[REGISTRATIONS_KEY] = dump_registrations([*regs, extra])
        out[resource["metadata"]["name"]] = data
    return out


def _app_key(environ: Mapping[str, str], keep: list[Path]) -> dict[str, str]:
    """Stand-ins for the GitHub App key: the key file as is, or the PEM from the env in a 0600 file."""
    if environ.get("GITHUB_APP_PRIVATE_KEY_PATH"):
        return {}
    pem = environ.get("GITHUB_APP_PRIVATE_KEY")
    if not pem:
        return {}
    directory = Path(tempfile.mkdtemp(prefix="local-run-key-"))
    path = directory / "private-key"
    path.touch(mode=0o600)
    path.write_text(pem, encoding="utf-8")
    keep.append(directory)
    return {"GITHUB_APP_PRIVATE_KEY_PATH": str(path)}


def _wait(run: LocalRun, progress: Progress, stderr: TextIO) -> RunResult:
    interrupts = 0
    while True:
        try:
            result = run.wait(0.25 if progress.live else 1.0)
            progress.redraw()
            if result is not None:
                return result
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts == 1:
                stderr.write(
                    "\nstopping: running steps are killed, the exit handler still runs (Ctrl-C again to kill it too)\n"
                )
                run.stop()
            else:
                stderr.write("\nterminating\n")
                run.terminate()


def cmd_run(args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the WorkflowTemplate locally; 0 when it Succeeded, 1 when it failed, 2 for bad input."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    config = load_config(args.config)
    try:
        resources = _load_resources(args, config)
        template = _pick_template(resources, args.template or config.workflow.template_name)
        data = Path(args.data) if args.data else (None if args.repo else _default_data())
        if data is not None and not data.is_dir():
            raise ValueError(f"--data {data} is not a directory")
        repo = args.repo or LOCAL_REPO
        if args.sha:
            sha = args.sha.lower()
        elif data is not None:
            sha = data_sha(data)
        else:
            raise ValueError("--repo without --data needs --sha (the commit to fetch from GitHub)")
        declared = {p["name"] for p in (template["spec"].get("arguments") or {}).get("parameters") or []}
        defaults = run_parameters(config, repo, sha, args.event, args.pr or "")
        params = {k: v for k, v in defaults.items() if k in declared}
        params.update(_overrides(args.parameter))
    except ValueError as exc:
        err.write(f"error: {exc}\n")
        return 2
    try:
        config.registration(repo)
        extra = None
    except KeyError:
        extra = local_registration(repo, config)

    name = generate_name(template["metadata"]["name"])
    runs_dir = Path(args.workdir) / "runs"
    run_dir = (runs_dir / name).absolute()
    remote = str(args.store or "").startswith("s3://")
    store = None if remote else Path(args.store or Path(args.workdir) / "store").absolute()
    env = {"RELEASE_STORE": str(args.store) if remote else str(store), "RELEASE_WORKSPACE": str(run_dir)}
    if data is not None:
        env["RELEASE_SOURCE"] = str(data.absolute())
    keep: list[Path] = []
    stand_ins = {**os.environ, **_app_key(os.environ, keep)}
    record_file = None
    if not stand_ins.get("GITHUB_APP_PRIVATE_KEY_PATH"):
        record_file = run_dir / "github.jsonl"
        env["GITHUB_RECORD_FILE"] = str(record_file)
    options = RunOptions(
        name=name,
        runs_dir=runs_dir,
        env=env,
        secrets=stand_ins,
        config_maps=config_maps(resources, extra),
        fast_retries=args.fast_retries,
    )
    live = out.isatty() and os.environ.get("TERM", "") != "dumb" and not args.plain
    progress = Progress(plan_rows(template), out, live)
    try:
        run = LocalRun(template, params, options, progress.on_change)
    except LocalRunRefused as exc:
        err.write("error: the local runner cannot run this template:\n")
        err.writelines(f"  {problem}\n" for problem in exc.problems)
        return 2
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
    out.write(
        f"running {name} ({template['metadata']['name']}) for {repo}@{sha[:12]} "
        f"[{params.get('event')} {params.get('ref')}]\n"
    )
    if record_file is not None:
        out.write(f"no GitHub App key in the environment: GitHub calls are recorded in {record_file}\n")
    out.flush()
    try:
        run.start()
        result = _wait(run, progress, err)
        progress.redraw(result.phase)
    finally:
        for directory in keep:
            for path in directory.iterdir():
                path.unlink()
            directory.rmdir()
    states = progress.states(finished=True)
    out.write(
        "\n"
        + summary(
            result,
            states,
            repo=repo,
            sha=sha,
            ref=params.get("ref", ""),
            store=store,
            record_file=record_file,
            root=Path.cwd(),
        )
    )
    out.flush()
    return 0 if result.phase == "Succeeded" else 1


def _default_data() -> Path:
    if DEFAULT_DATA.is_dir():
        return DEFAULT_DATA
    return Path(__file__).resolve().parents[2] / DEFAULT_DATA


def add_parser(add: Callable[[str, str], argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Create the ``run`` sub-command with ``add(name, help)`` (which already adds ``--config``)."""
    p = add("run", "run the release-data-prep WorkflowTemplate on this machine (no cluster, no credentials)")
    p.add_argument("--repo", help=f"owner/name (default: {LOCAL_REPO}, a synthetic unregistered repository)")
    p.add_argument("--sha", help="40-hex commit id (default: SHA-1 of the data directory's names and contents)")
    p.add_argument(
        "--data",
        help=f"release-data directory to run on (default: {DEFAULT_DATA}; with --repo and "
        "--sha and no --data the fetch step downloads the commit from GitHub)",
    )
    p.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a workflow argument (repeatable), e.g. -p deploy=false",
    )
    p.add_argument("--workdir", default=str(LOCAL_ROOT), help="where runs/ and store/ go (default: .local-run)")
    p.add_argument(
        "--store",
        help="artifact store: a directory (default: WORKDIR/store) or s3://BUCKET/PREFIX (credentials from "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, endpoint from the config's s3.endpointUrl)",
    )
    p.add_argument("--event", choices=["push", "pull_request"], default="push")
    p.add_argument("--pr", help="pull request number (with --event pull_request)")
    p.add_argument(
        "--from-manifests",
        nargs="?",
        const="manifests",
        metavar="DIR",
        help="run the committed YAML under DIR (default: manifests) instead of rendering in memory",
    )
    p.add_argument("--template", help="WorkflowTemplate to run (default: workflow.templateName of the config)")
    p.add_argument(
        "--fast-retries",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cap retry backoff at 0.2 s (default: on)",
    )
    p.add_argument("--plain", action="store_true", help="print log lines even on a terminal")
    p.set_defaults(func=cmd_run)
    return p


__all__ = ["LOCAL_REPO", "add_parser", "cmd_run", "config_maps"]
