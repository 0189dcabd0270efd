"""Labels of a run: who manages it, and its repository as ``owner.repo``, valid for every legal GitHub name."""

import hashlib
import re

LABEL_LIMIT = 63
#: Every release-data-prep and fork-validation run carries ``MANAGED_BY_LABEL: RELEASE_RUNS``; the reconciler
#: lists runs by it (``RUN_SELECTOR``).
MANAGED_BY_LABEL = "gitops-status-matrix/managed-by"
RELEASE_RUNS = "release-data-prep"
RUN_SELECTOR = f"{MANAGED_BY_LABEL}={RELEASE_RUNS}"
_KEEP = 52
_HASH_DIGITS = 10

_DOTTED = "sprig.replace('/', '.', workflow.parameters.repo)"
REPO_LABEL_EXPRESSION = (
    f"len({_DOTTED}) <= {LABEL_LIMIT} && {_DOTTED} matches '[A-Za-z0-9]$' ? {_DOTTED}"
    f" : sprig.trunc({_KEEP}, {_DOTTED}) + '-' + sprig.trunc({_HASH_DIGITS}, sprig.sha256sum(workflow.parameters.repo))"
)


def repo_label(repo: str) -> str:
    """The label value of ``owner/repo``, exactly as ``REPO_LABEL_EXPRESSION`` computes it in Argo."""
    dotted = repo.replace("/", ".")
    if len(dotted) <= LABEL_LIMIT and re.search(r"[A-Za-z0-9]$", dotted):
        return dotted
    digest = hashlib.sha256(repo.encode()).hexdigest()[:_HASH_DIGITS]
    return f"{dotted[:_KEEP]}-{digest}"


__all__ = ["LABEL_LIMIT", "MANAGED_BY_LABEL", "RELEASE_RUNS", "REPO_LABEL_EXPRESSION", "RUN_SELECTOR", "repo_label"]
