"""Workflow label values for every legal repository name: the Python rule and Argo's expression agree."""

import re

import pytest

from pipelines.local import evaluate, parse_expression
from steps.runtime.labels import REPO_LABEL_EXPRESSION, repo_label

VALID = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
OWNER_39 = "a" + "b-c" * 12 + "de"  # GitHub owners: up to 39 characters, alphanumeric or single hyphens
NAME_100 = "data." + "x_y-" * 23 + "end"


@pytest.mark.parametrize(
    "repo",
    [
        "acme/data",
        "Acme-Corp/Data.Set_1",
        "acme/repo-",  # ends with a hyphen: not a valid label end
        "acme/repo.",
        "acme/_",
        f"{OWNER_39}/{NAME_100}",
        f"{OWNER_39}/{NAME_100[:-1]}-",
        "a/" + "b" * 61,  # 63 characters after the dot: fits exactly
        "a/" + "b" * 62,  # one more: hashed
    ],
)
def test_repo_label_is_valid_and_matches_the_rendered_expression(repo):
    assert len(OWNER_39) == 39 and len(NAME_100) == 100
    label = repo_label(repo)
    assert VALID.fullmatch(label) and len(label) <= 63, label
    # What Argo computes for labelsFrom, with the local runner's expr-lang evaluator.
    env = {"workflow": {"parameters": {"repo": repo}}}
    assert evaluate(parse_expression(REPO_LABEL_EXPRESSION), env) == label


def test_short_names_stay_readable_and_long_ones_stay_distinct():
    assert repo_label("acme/data") == "acme.data"
    long_a, long_b = f"{OWNER_39}/{NAME_100}", f"{OWNER_39}/{NAME_100[:-3]}xyz"
    assert repo_label(long_a) != repo_label(long_b)
    assert repo_label(long_a).startswith(f"{OWNER_39}.data.")
    assert repo_label("acme/repo-") != "acme.repo-" and repo_label("acme/repo-").startswith("acme.repo--")
