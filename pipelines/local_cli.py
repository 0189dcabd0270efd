"""``python -m pipelines run``: the release-data-prep WorkflowTemplate on this machine, shown to people.

It renders the template from the config in memory (or reads the committed manifests with
``--from-manifests``) and hands that exact resource to ``pipelines.local_run``, which runs every step as
a subprocess the way a pod runs it (https://argo-workflows.readthedocs.io/en/latest/workflow-templates/).
Defaults let a fresh clone run with no cluster and no credentials:

- data: ``examples/release-data`` (``--data DIR``), exposed to the fetch step as ``RELEASE_SOURCE``;
- repository: ``local/example``, with a deterministic sha (SHA-1 of the data directory's file names and
  contents), event ``push``, ref ``refs/heads/main``; an unregistered repository gets a synthetic
  registration (no environments) in the registrations ConfigMap;
- artifact store: the local directory ``.local-run/store`` (``RELEASE_STORE``); the run's workspace,
  pods, logs and reports live in ``.local-run/runs/NAME/`` (``RELEASE_WORKSPACE``); ``--workdir`` moves both;
- GitHub: without ``GITHUB_APP_PRIVATE_KEY_PATH`` / ``GITHUB_APP_PRIVATE_KEY`` in the environment, steps
  record the statuses, deployments and comments they would send to ``.local-run/runs/NAME/github.jsonl``
  (``GITHUB_RECORD_FILE``) instead of calling GitHub; with a key they report for real. An Argo CD token
  comes from ``ARGOCD_TOKEN_FILE``; S3 credentials from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``;
- retries: backoff capped at 0.2 s (``--no-fast-retries`` waits as the template says).

On a terminal the steps are redrawn in place (ANSI escapes, no extra dependency); otherwise one line is
printed per step state change. A summary follows: steps and durations, the statuses posted (pending ->
final), artifacts and the registry entry written, and where logs and reports are. The exit code is 0
only when the workflow Succeeded.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import yaml

from pipelines import local_run
from pipelines.config import Config, load_config
from pipelines.local_run import LocalRun, LocalRunRefused, Node, Row, RunOptions, RunResult
from steps.registrations import DEFAULT_REGISTRATIONS, RepoRegistration, dump_registrations

LOCAL_REPO = "local/example"
LOCAL_ROOT = Path(".local-run")
DEFAULT_DATA = Path("examples/release-data")
REGISTRATIONS_KEY = DEFAULT_REGISTRATIONS.rsplit("/", 1)[-1]
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
TAIL_LINES = 12

_COLORS = {
    "succeeded": "32",
    "running": "33",
    "failed": "31",
    "error": "31",
    "skipped": "2",
    "omitted": "2",
    "pending": "2",
    "waiting": "36",
    "not run": "2",
}
_PHASE_WORD = {
    "Pending": "pending",
    "Running": "running",
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Error": "error",
    "Skipped": "skipped",
    "Omitted": "omitted",
}


def data_sha(data_dir: Path) -> str:
    """A deterministic stand-in commit id: SHA-1 of the directory's relative file names and contents."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(data_dir).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def local_registration(repo: str, config: Config) -> RepoRegistration:
    """The synthetic registration of an unregistered repository: no environments, nothing to deploy."""
    name = re.sub(r"[^a-z0-9-]+", "-", repo.lower()).strip("-")[:63].strip("-") or "local"
    return RepoRegistration(
        name=name,
        repo_url=f"https://{config.github.web_host}/{repo}",
        environments=[],
    )


def run_parameters(config: Config, repo: str, sha: str, event: str, pr: str) -> dict[str, str]:
    """Workflow arguments for a local run: the registration's when there is one, local defaults otherwise.

    Raises:
        ValueError: a bad sha, or ``pull_request`` without a PR number.
    """
    from pipelines.cli import submit_parameters
    from pipelines.parameters import RELEASE_PARAMETERS

    try:
        config.registration(repo)
    except KeyError:
        if not SHA_RE.fullmatch(sha):
            raise ValueError(f"--sha {sha!r} is not a full 40-character lowercase hex commit id") from None
        if event == "pull_request" and not pr.isdigit():
            raise ValueError("--event pull_request needs --pr NUMBER") from None
        params = dict(RELEASE_PARAMETERS)
        params.update(
            {
                "repo": repo,
                "sha": sha,
                "event": event,
                "pr-number": pr if event == "pull_request" else "",
                "ref": f"refs/pull/{pr}/head" if event == "pull_request" else "refs/heads/main",
                "installation-id": "",
                "app-id": str(config.github.app_id or ""),
            }
        )
        return params
    return submit_parameters(config, repo, sha, event, pr)


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
    from pipelines import render

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
        if extra is not None and REGISTRATIONS_KEY in data:
            loaded = yaml.safe_load(data[REGISTRATIONS_KEY]) or {}
            regs = [RepoRegistration.model_validate(r) for r in loaded.get("repoRegistrations") or []]
            data[REGISTRATIONS_KEY] = dump_registrations([*regs, extra])
        out[resource["metadata"]["name"]] = data
    return out


# --- progress -------------------------------------------------------------------------------------


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class RowState:
    """What one plan row shows: status word, fan-out count, attempts, elapsed time and a message."""

    def __init__(self, row: Row, nodes: list[Node], finished: bool) -> None:
        self.row = row
        mine = [n for n in nodes if n.row == row.key and n.type != "StepGroup"]
        attempts = [n for n in mine if n.attempt is not None]
        logical = [n for n in mine if n.attempt is None]
        group = next((n for n in logical if n.type == "TaskGroup"), None)
        items = [n for n in logical if n.item is not None]
        main = group or (logical[0] if len(logical) == 1 and not items else None)
        if main is not None:
            self.status = _PHASE_WORD[main.phase]
            if main.phase == "Pending" and main.message:
                self.status = "waiting"
        elif items:
            phases = {n.phase for n in items}
            if phases - local_run.FINAL:
                self.status = "running"
            elif phases & local_run.FAILED:
                self.status = "failed" if "Failed" in phases else "error"
            elif phases <= {"Skipped", "Omitted"}:
                self.status = "skipped"
            else:
                self.status = "succeeded"
        else:
            self.status = "not run" if finished else "pending"
        total = group.expected if group and group.expected else len(items)
        self.count = f"{sum(n.fulfilled for n in items)}/{total}" if row.fan_out and (items or group) else ""
        extra = sum(1 for n in attempts if n.attempt)
        self.retries = extra
        started = [n.started_at for n in mine if n.started_at]
        ended = [n.finished_at or time.time() for n in mine if n.started_at]
        self.elapsed = (max(ended) - min(started)) if started else None
        failed = [
            n for n in mine if n.phase in local_run.FAILED and n.message and n.type in ("Pod", "Skipped")
        ]
        self.message = failed[0].message if failed and self.status in ("failed", "error") else ""
        if self.status == "waiting" and main is not None:
            self.message = main.message
        self.log = next((n.log_path for n in failed if n.log_path), None)

    def label(self) -> str:
        """The row's indented name."""
        depth = len(self.row.key) - 1
        return "  " * depth + self.row.key[-1]


class Progress:
    """Shows a run: a live, redrawn table on a terminal; one line per state change otherwise.

    Args:
        rows: The plan (``local_run.plan_rows``).
        stream: Where to write.
        live: Redraw in place with ANSI escapes (a terminal) instead of printing log lines.
    """

    def __init__(self, rows: list[Row], stream: TextIO, live: bool) -> None:
        self.rows, self.stream, self.live = rows, stream, live
        self.nodes: dict[str, Node] = {}
        self._phases: dict[str, str] = {}
        self._lock = threading.Lock()
        self._drawn = 0
        self.name = ""
        self.started = time.time()

    def on_change(self, node: Node) -> None:
        """Take a node update from the runner (plain mode prints it at once)."""
        with self._lock:
            self.nodes[node.id] = node
            if not self.name and node.row == ():
                self.name = node.name
            if not self.live:
                self._log_line(node)

    def _log_line(self, node: Node) -> None:
        previous = self._phases.get(node.id)
        self._phases[node.id] = node.phase
        if node.type == "StepGroup" or node.row == () or previous == node.phase:
            return
        if node.phase == "Pending" and not node.message:
            return
        if node.type in ("DAG", "Steps") and not node.fulfilled:
            return
        name = node.name[len(self.name) :].lstrip(".") if self.name else node.name
        if node.attempt is not None:  # a retry attempt: its Retry node reports start and end
            if node.phase == "Succeeded" or (node.phase == "Running" and node.attempt == 0):
                return
            name = f"{name.removesuffix(f'({node.attempt})')} attempt {node.attempt + 1}"
        word = "waiting" if node.phase == "Pending" else _PHASE_WORD[node.phase]
        detail = f" ({_fmt_seconds(node.duration)})" if node.fulfilled and node.duration is not None else ""
        note = f": {node.message}" if node.message and node.phase != "Succeeded" else ""
        self.stream.write(f"{time.strftime('%H:%M:%S')}  {word:<9}  {name}{detail}{note}\n")
        self.stream.flush()

    def states(self, finished: bool = False) -> list[RowState]:
        """The current state of every plan row."""
        with self._lock:
            nodes = list(self.nodes.values())
        return [RowState(row, nodes, finished) for row in self.rows]

    def redraw(self, phase: str = "Running") -> None:
        """Redraw the live table in place (no-op in plain mode)."""
        if not self.live:
            return
        lines = [
            f"\x1b[1m{self.name or 'starting'}\x1b[0m  {phase}  {_fmt_seconds(time.time() - self.started)}"
        ]
        width = shutil.get_terminal_size((100, 24)).columns - 1
        for state in self.states(finished=phase != "Running"):
            color = _COLORS.get(state.status, "0")
            extra = "  ".join(
                x for x in (state.count, f"retried {state.retries}x" if state.retries else "") if x
            )
            plain = f"  {state.status:<9}  {state.label():<34} {_fmt_seconds(state.elapsed):>7}"
            plain += f"  {extra}" if extra else ""
            text = f"  \x1b[{color}m{state.status:<9}\x1b[0m" + plain[11:width]
            room = width - len(plain) - 2
            if state.message and room > 10:
                text += f"  \x1b[2m{_clip(state.message, room)}\x1b[0m"
            lines.append(text)
        out = ""
        if self._drawn:
            out += f"\x1b[{self._drawn}F\x1b[J"
        out += "\n".join(lines) + "\n"
        self._drawn = len(lines)
        self.stream.write(out)
        self.stream.flush()


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- summary --------------------------------------------------------------------------------------


def read_records(path: Path) -> list[dict[str, Any]]:
    """The entries of a ``GITHUB_RECORD_FILE`` (empty when it does not exist)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def _record_line(entry: Mapping[str, Any]) -> str:
    at = time.strftime("%H:%M:%S", time.localtime(entry.get("at", 0)))
    get = {k: str(v) for k, v in entry.items()}.get
    kind = entry.get("kind", "?")
    if kind == "commit_status":
        return f"{at}  status      {get('state', ''):<8} {get('context', '')}: {get('description', '')}"
    if kind == "deployment":
        return f"{at}  deployment  {get('environment', '')} #{get('id', '')}: {get('description', '')}"
    if kind == "deployment_status":
        return f"{at}  deploy st.  {get('state', ''):<8} {get('environment', '')}: {get('description', '')}"
    if kind == "pr_comment":
        first = str(entry.get("body", "")).strip().splitlines()[:1]
        return f"{at}  PR comment  #{get('pr_number', '')}: {first[0] if first else ''}"
    if kind == "check_run":
        notes = f"({len(entry.get('annotations') or [])} annotations)"
        return f"{at}  check run   {get('conclusion', ''):<8} {get('name', '')}: {get('title', '')} {notes}"
    return f"{at}  {kind}"


def _files(directory: Path) -> list[tuple[str, int]]:
    return sorted(
        (p.relative_to(directory).as_posix(), p.stat().st_size) for p in directory.rglob("*") if p.is_file()
    )


def registry_entry(index: Path, ref: str, sha: str, rel: Callable[[Path], str], workflow: str) -> list[str]:
    """Lines showing the registry entry of ``ref`` in the repository's ``index.json``."""
    kinds = {"refs/heads/": "branches", "refs/tags/": "tags", "refs/pull/": "pulls"}
    kind, key = next(
        ((k, ref.removeprefix(p).removesuffix("/head")) for p, k in kinds.items() if ref.startswith(p)),
        ("branches", ref),
    )
    head = f"Registry entry {kind}/{key} in {rel(index)}"
    if not index.exists():
        return [head, "  none (the index does not exist)"]
    entry = (json.loads(index.read_text(encoding="utf-8")).get(kind) or {}).get(key)
    if entry is None:
        return [head, "  none"]
    lines = [head] + [f"  {line}" for line in json.dumps(entry, indent=2).splitlines()]
    if entry.get("sha") != sha or entry.get("workflow_name", workflow) != workflow:
        by = entry.get("workflow_name") or str(entry.get("sha"))[:12]
        lines.append(f"  (from an earlier run, {by}; this run registered nothing)")
    return lines


def summary(
    result: RunResult,
    states: list[RowState],
    *,
    repo: str,
    sha: str,
    ref: str,
    store: Path | None,
    record_file: Path | None,
    root: Path,
) -> str:
    """The text printed after a run: steps, GitHub reports, artifacts, registry entry and where files are."""

    def rel(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            return str(path)

    took = _fmt_seconds(result.finished_at - result.started_at)
    head = f"{result.name}: {result.phase} in {took}"
    if result.phase != "Succeeded" and result.message:
        head += f" ({result.message})"
    out = [head, "", "Steps"]
    width = max([len(s.label()) for s in states] + [10])
    for state in states:
        extra = "  ".join(x for x in (state.count, f"retried {state.retries}x" if state.retries else "") if x)
        line = f"  {state.label():<{width}}  {state.status:<9} {_fmt_seconds(state.elapsed):>7}"
        if extra:
            line += f"  {extra}"
        if state.message:
            line += f"  {_clip(state.message, 90)}"
        out.append(line.rstrip())
    if record_file is not None:
        records = read_records(record_file)
        out += ["", f"GitHub (recorded in {rel(record_file)}; nothing was sent)"]
        out += [f"  {_record_line(e)}" for e in records] or ["  nothing recorded"]
    else:
        out += ["", "GitHub: reported for real with the configured GitHub App"]
    if store is not None:
        release = store / repo / sha
        out += ["", f"Artifacts in {rel(release)}/"]
        files = _files(release) if release.is_dir() else []
        earlier = {name for name, _ in files if (release / name).stat().st_mtime < result.started_at}
        out += [
            f"  {name}  ({size:,} bytes)" + ("  (from an earlier run)" if name in earlier else "")
            for name, size in files
        ] or ["  none written"]
        out += ["", *registry_entry(store / repo / "index.json", ref, sha, rel, result.name)]
    failed = [s for s in states if s.status in ("failed", "error") and s.log]
    for state in failed[:3]:
        assert state.log is not None
        out += ["", f"Log of {state.label().strip()}: {rel(state.log)}"]
        lines = state.log.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
        out += [f"  | {line}" for line in lines]
    out += ["", f"Run directory: {rel(result.run_dir)}/ (logs/, pods/, reports/, summary.json)"]
    if result.notes:
        out += ["", "Local differences:"] + [f"  {note}" for note in result.notes]
    return "\n".join(out) + "\n"


# --- the command ----------------------------------------------------------------------------------


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
                    "\nstopping: running steps are killed, the exit handler still runs "
                    "(Ctrl-C again to kill it too)\n"
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

    name = local_run.generate_name(template["metadata"]["name"])
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
    progress = Progress(local_run.plan_rows(template), out, live)
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
    return Path(__file__).resolve().parents[1] / DEFAULT_DATA


def add_parser(add: Callable[[str, str], argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Create the ``run`` sub-command with ``add(name, help)`` (which already adds ``--config``)."""
    p = add("run", "run the release-data-prep WorkflowTemplate on this machine (no cluster, no credentials)")
    p.add_argument("--repo", help=f"owner/name (default: {LOCAL_REPO}, a synthetic unregistered repository)")
    p.add_argument(
        "--sha", help="40-hex commit id (default: SHA-1 of the data directory's names and contents)"
    )
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
    p.add_argument(
        "--workdir", default=str(LOCAL_ROOT), help="where runs/ and store/ go (default: .local-run)"
    )
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
    p.add_argument(
        "--template", help="WorkflowTemplate to run (default: workflow.templateName of the config)"
    )
    p.add_argument(
        "--fast-retries",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cap retry backoff at 0.2 s (default: on)",
    )
    p.add_argument("--plain", action="store_true", help="print log lines even on a terminal")
    p.set_defaults(func=cmd_run)
    return p


__all__ = [
    "LOCAL_REPO",
    "Progress",
    "RowState",
    "add_parser",
    "cmd_run",
    "config_maps",
    "data_sha",
    "local_registration",
    "read_records",
    "registry_entry",
    "run_parameters",
    "summary",
]
