"""Registrations as the pods read them: compact JSON without defaults, sharded under 256 KiB, one entry validated."""

import json

import pytest

from pipelines.config import Config
from pipelines.resources import workflows
from pipelines.resources.mounts import REGISTRATIONS_KEY, Mounts
from steps.runtime.errors import ConfigError
from steps.runtime.registrations import (
    REGISTRATIONS_ENV,
    RepoRegistration,
    dump_registrations,
    load_registration,
    mounted_registration,
    registration_files,
    shard_registrations,
)


def _regs(count: int) -> list[RepoRegistration]:
    return [
        RepoRegistration.model_validate(
            {
                "name": f"repo-{i:04d}",
                "repoUrl": f"https://github.com/org-{i % 5}/Repo-{i:04d}",
                "installationId": 100 + i % 5,
                "environments": [{"name": "staging", "argocdApp": f"repo-{i:04d}-staging"}],
            }
        )
        for i in range(count)
    ]


def test_defaults_are_left_out_and_loading_gives_the_same_registration(tmp_path):
    reg = RepoRegistration.model_validate(
        {"name": "a", "repoUrl": "https://github.com/acme/A", "dataPath": "data/", "preview": {"enabled": True}}
    )
    text = dump_registrations([reg])
    entry = json.loads(text)["repoRegistrations"][0]
    assert entry == {
        "name": "a",
        "repoUrl": "https://github.com/acme/A",
        "dataPath": "data/",
        "preview": {"enabled": True},
    }
    assert "\n" not in text and ": " not in text
    path = tmp_path / "r.json"
    path.write_text(text)
    assert load_registration("ACME/a", path) == reg  # GitHub names ignore case


def test_shards_stay_under_the_limit_and_every_registration_is_found_across_them(tmp_path, monkeypatch):
    regs = _regs(300)
    shards = shard_registrations(regs, limit=8 * 1024)
    assert len(shards) > 3 and all(len(json.dumps(s)) <= 8 * 1024 for s in shards)  # escaped, as stored
    assert sum(len(json.loads(s)["repoRegistrations"]) for s in shards) == 300
    for i, shard in enumerate(shards):
        (tmp_path / f"{i}.json").write_text(shard)
        monkeypatch.setenv(REGISTRATIONS_ENV if i == 0 else f"{REGISTRATIONS_ENV}_{i}", str(tmp_path / f"{i}.json"))
    assert len(registration_files()) == len(shards)
    assert load_registration("org-4/repo-0299").installation_id == 104
    assert load_registration("org-0/repo-0000").name == "repo-0000"
    unknown = r"nobody/nothing is not registered in .*0.json and \d+ more shard\(s\); add it"
    with pytest.raises(ConfigError, match=unknown):
        load_registration("nobody/nothing")
    with pytest.raises(ValueError, match="alone is"):
        shard_registrations(regs[:1], limit=64)


def test_mounted_registration_is_none_without_a_mount_and_an_error_for_an_unknown_repository(tmp_path, monkeypatch):
    monkeypatch.delenv(REGISTRATIONS_ENV, raising=False)
    assert mounted_registration("org-0/repo-0000") is None
    monkeypatch.setenv(REGISTRATIONS_ENV, str(tmp_path / "missing.json"))  # an optional ConfigMap not there
    assert mounted_registration("org-0/repo-0000") is None
    (tmp_path / "missing.json").write_text(dump_registrations(_regs(1)))
    assert mounted_registration("org-0/repo-0000").name == "repo-0000"
    with pytest.raises(ConfigError, match="is not registered"):
        mounted_registration("org-9/other")
    (tmp_path / "missing.json").write_text("{not json: [")
    with pytest.raises(ConfigError, match="cannot read registrations from .*missing.json.*re-render"):
        mounted_registration("org-0/repo-0000")


def test_a_thousand_registrations_render_several_configmaps_each_mounted_and_under_256_kib():
    regs = [r.model_dump(by_alias=True, exclude_defaults=True) for r in _regs(1000)]
    for r in regs:  # realistic, larger entries: two environments with URLs
        r["environments"] = [
            {"name": "staging", "argocdApp": f"{r['name']}-staging", "url": f"https://{r['name']}.staging.example.com"},
            {
                "name": "production",
                "argocdApp": f"{r['name']}-prod",
                "after": "staging",
                "production": True,
                "argocd": {"destinationNamespace": f"{r['name']}-prod"},
            },
        ]
    config = Config.model_validate({"repoRegistrations": regs})
    maps = workflows.registrations_configmaps(config)
    assert len(maps) >= 2
    assert all(len(json.dumps(m, separators=(",", ":"))) < 256 * 1024 for m in maps)
    names = [m["metadata"]["name"] for m in maps]
    assert names[0] == "release-data-prep-registrations" and names[1] == "release-data-prep-registrations-1"
    mount = Mounts(config).registrations
    assert [v.name for v in mount.volumes] == names
    assert [e.name for e in mount.env] == [REGISTRATIONS_ENV] + [
        f"{REGISTRATIONS_ENV}_{i}" for i in range(1, len(maps))
    ]
    assert all(e.value.endswith("/" + REGISTRATIONS_KEY) for e in mount.env)
    assert len({e.value for e in mount.env}) == len(maps)
    found = sum(len(json.loads(m["data"][REGISTRATIONS_KEY])["repoRegistrations"]) for m in maps)
    assert found == 1000
