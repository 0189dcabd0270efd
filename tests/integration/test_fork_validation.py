"""Fork pull requests with forks: validate: checked in one pod that holds only the App key, nothing published."""

import copy
import json
from pathlib import Path

import pytest

from pipelines.config import Config
from pipelines.lint import lint_all
from pipelines.parameters import FORK_TEMPLATE
from pipelines.render import render
from pipelines.resources import events
from steps.release import validate_fork
from steps.runtime.errors import DataError
from tests.support.sensor_eval import evaluate, github_event_data

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "release-data"
WEBHOOKS = ROOT / "tests" / "support" / "specs" / "webhooks"
REPO = "acme/data"
SHA = "f" * 40
APP = 123456


def _config(forks: str) -> Config:
    return Config.model_validate(
        {
            "github": {"appId": APP},
            "repoRegistrations": [
                {"name": "hello", "repoUrl": "https://github.com/Codertocat/Hello-World", "forks": forks},
            ],
        }
    )


def _fork_pr(fork: str = "attacker/Hello-World") -> dict:
    payload = json.loads((WEBHOOKS / "pull_request_opened_1.json").read_text())
    forked = copy.deepcopy(payload)
    forked["pull_request"]["head"]["repo"]["full_name"] = fork
    return forked


def _fired(config: Config, payload: dict) -> list:
    sensor = events.sensor(config)
    return evaluate(sensor, "github", events.event_name(APP), github_event_data("pull_request", payload)).fired


def test_a_fork_pull_request_is_validated_only_when_the_registration_opts_in():
    assert _fired(_config("ignore"), _fork_pr()) == []
    [fired] = _fired(_config("validate"), _fork_pr())
    assert fired.resource["spec"]["workflowTemplateRef"] == {"name": FORK_TEMPLATE}
    assert fired.parameters["repo"] == "Codertocat/Hello-World" and fired.parameters["pr-number"] == "2"
    # The same repository's own pull request still runs the full release, not the fork check.
    own = json.loads((WEBHOOKS / "pull_request_opened_1.json").read_text())
    assert [f.resource["spec"]["workflowTemplateRef"]["name"] for f in _fired(_config("validate"), own)] == [
        "release-data-prep"
    ]


def test_the_fork_template_mounts_no_s3_and_has_no_publish_or_deploy_step():
    rendered = render(_config("validate"))
    assert lint_all((r.path, r.resource) for r in rendered) == []
    template = next(r.resource for r in rendered if r.resource.get("metadata", {}).get("name") == FORK_TEMPLATE)
    text = json.dumps(template)
    assert "AWS_" not in text and "s3-credentials" not in text and "RELEASE_STORE" not in text
    scripts = {t["name"] for t in template["spec"]["templates"] if "script" in t}
    assert scripts == {"report-pending", "validate-fork", "report-final"}
    assert not any(r.resource.get("metadata", {}).get("name") == FORK_TEMPLATE for r in render(_config("ignore")))


def _tarball(root: Path) -> dict[str, bytes]:
    return {f"release-data/{p.relative_to(root).as_posix()}": p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_validate_fork_checks_every_table_and_publishes_nothing(github_env, monkeypatch, tmp_path):
    monkeypatch.delenv("RELEASE_STORE", raising=False)
    monkeypatch.delenv("RELEASE_WORKSPACE", raising=False)
    github_env.set_tarball(REPO, SHA, _tarball(DATA))
    result = validate_fork(REPO, SHA, "release-data/", str(github_env.installation_id), "")
    assert result["published"] is False and result["tables"] >= 1
    assert github_env.tokens_issued()[-1].permissions == {"contents": "read", "metadata": "read"}
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in DATA.rglob("*"):
        if path.is_file():
            target = bad / path.relative_to(DATA)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    csv = bad / "products.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], *(line.replace(",", ",,", 1) for line in lines[1:3]), *lines[3:]]) + "\n")
    other = "e" * 40
    github_env.set_tarball(REPO, other, _tarball(bad))
    with pytest.raises(DataError, match="tables failed"):
        validate_fork(REPO, other, "release-data/", str(github_env.installation_id), "")
