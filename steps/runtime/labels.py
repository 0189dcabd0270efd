"""Kubernetes label values for a run's repository: ``owner.repo``, valid for every legal GitHub name.

A label value has at most 63 characters and starts and ends alphanumeric
(https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set); a GitHub
owner has up to 39 and a repository name up to 100. ``owner.repo`` is used as it is when it fits and ends
alphanumeric; otherwise its first 52 characters, ``-`` and the first 10 hex digits of the SHA-256 of
``owner/repo`` (63 characters, unique, ending in a hex digit). Owners start alphanumeric, so the start is
always valid. ``REPO_LABEL_EXPRESSION`` is the same rule as an Argo expression for ``labelsFrom``.
"""

import hashlib
import re

LABEL_LIMIT = 63
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


__all__ = ["LABEL_LIMIT", "REPO_LABEL_EXPRESSION", "repo_label"]
