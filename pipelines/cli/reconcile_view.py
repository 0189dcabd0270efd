"""What ``python -m pipelines reconcile`` prints: one line per repair, then storage, notes and a summary."""

from steps.reconcile import PassReport


def report_lines(report: PassReport) -> list[str]:
    """The pass as lines of text; a dry run says "would" where a pass acts."""
    verb = "would report" if report.dry_run else "reported"
    lines = []
    for repair in report.repairs:
        where = f"{repair.repo}@{repair.sha[:7]} ({repair.workflow}, {repair.reason})"
        if repair.skipped:
            lines.append(f"  skip   {where}: {repair.skipped}")
            continue
        lines.append(f"  {repair.state:<7} {where}: {repair.description}")
        for deployment_id, state in sorted(repair.deployments.items()):
            lines.append(f"           deployment {deployment_id} -> {state}")
    remove = "would remove" if report.dry_run else "removed"
    lines += [f"  {remove} workspace {w}" for w in report.workspaces_removed]
    lines += [f"  aborted upload {u}" for u in report.uploads_aborted]
    lines += [f"  note: {n}" for n in report.notes]
    counts = report.counts()
    planned = sum(1 for r in report.repairs if not r.skipped)
    lines.append(
        f"{report.runs_listed} run(s) listed; {verb} {planned if report.dry_run else counts['statuses']} final "
        f"status(es), {counts['deployments']} deployment(s) ended, {len(report.workspaces_removed)} workspace(s) "
        f"{'to remove' if report.dry_run else 'removed'}"
    )
    return lines


__all__ = ["report_lines"]
