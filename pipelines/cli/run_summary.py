"""What ``python -m pipelines run`` prints after a run: steps, GitHub calls, artifacts, registry entry, logs."""

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipelines.cli.run_view import RowState, clip, fmt_seconds
from pipelines.local import RunResult

TAIL_LINES = 12


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
    return sorted((p.relative_to(directory).as_posix(), p.stat().st_size) for p in directory.rglob("*") if p.is_file())


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

    took = fmt_seconds(result.finished_at - result.started_at)
    head = f"{result.name}: {result.phase} in {took}"
    if result.phase != "Succeeded" and result.message:
        head += f" ({result.message})"
    out = [head, "", "Steps"]
    width = max([len(s.label()) for s in states] + [10])
    for state in states:
        extra = "  ".join(x for x in (state.count, f"retried {state.retries}x" if state.retries else "") if x)
        line = f"  {state.label():<{width}}  {state.status:<9} {fmt_seconds(state.elapsed):>7}"
        if extra:
            line += f"  {extra}"
        if state.message:
            line += f"  {clip(state.message, 90)}"
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


__all__ = ["read_records", "registry_entry", "summary"]
