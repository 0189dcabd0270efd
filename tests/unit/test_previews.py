"""The preview ApplicationSet: schema-valid, one Application per pull request, at its head, from the App."""

import functools
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator

from pipelines.config import Config, load_config
from pipelines.resources import previews, secrets

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "pipelines" / "schemas" / "argocd-applicationset-crd.yaml"


@functools.cache
def validator() -> Draft7Validator:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return Draft7Validator(version["schema"]["openAPIV3Schema"])


def config(**preview) -> Config:
    return Config.model_validate(
        {
            "github": {"apiUrl": "https://ghe.example.com/api/v3", "appId": 7},
            "repoRegistrations": [
                {
                    "name": "acme-data",
                    "repoUrl": "https://ghe.example.com/acme/data",
                    "installationId": 42,
                    "argocd": {"path": "deploy/preview", "project": "previews"},
                    "preview": {"enabled": True, "argocdApp": "acme-data-pr-{pr}", **preview},
                },
                {"name": "other", "repoUrl": "https://ghe.example.com/acme/other", "installationId": 42},
            ],
        }
    )


def test_one_schema_valid_application_set_per_registration_with_previews():
    sets = previews.resources(load_config(ROOT / "hera_config.yaml", environ={}))
    assert [s["metadata"]["name"] for s in sets] == ["acme-data-previews"]
    for resource in [*sets, *previews.resources(config(requireLabel="preview", url="https://pr-{pr}.x"))]:
        assert [e.message for e in validator().iter_errors(resource)] == []


def test_each_pull_request_gets_its_own_application_at_its_head_in_its_own_namespace():
    (appset,) = previews.resources(config(url="https://pr-{pr}.preview.example.com", requireLabel="preview"))
    generator = appset["spec"]["generators"][0]["pullRequest"]
    assert generator["github"] == {
        "owner": "acme",
        "repo": "data",
        "appSecretName": "github-app-repo-creds-42",
        "api": "https://ghe.example.com/api/v3",  # GitHub Enterprise Server
        "labels": ["preview"],
    }
    assert appset["spec"]["goTemplate"] is True and generator["requeueAfterSeconds"] == 300
    template = appset["spec"]["template"]
    # What the generator renders for pull request 17 at head abc123 (Go templates with missingkey=error).
    text = yaml.safe_dump(template).replace("{{ .number }}", "17").replace("{{ .head_sha }}", "abc123")
    app = yaml.safe_load(text)
    assert app["metadata"]["name"] == "acme-data-pr-17"
    assert app["metadata"]["annotations"] == {
        "gitops-status-matrix/environment": "preview/pr-17",
        "gitops-status-matrix/environment-url": "https://pr-17.preview.example.com",
    }
    assert app["spec"]["source"] == {
        "repoURL": "https://ghe.example.com/acme/data",
        "path": "deploy/preview",
        "targetRevision": "abc123",
    }
    assert app["spec"]["destination"]["namespace"] == "acme-data-pr-17" and app["spec"]["project"] == "previews"
    assert "CreateNamespace=true" in app["spec"]["syncPolicy"]["syncOptions"]
    assert app["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]  # closing deletes it


def test_the_generator_credentials_are_a_valueless_secret_per_installation():
    layout = {s.name: s for s in secrets.layout(config())}
    creds = layout["github-app-repo-creds-42"]
    assert creds.namespace == "argocd"
    assert creds.keys == ("githubAppID", "githubAppInstallationID", "githubAppPrivateKey")
    assert "data" not in secrets.secret_template(creds)


@pytest.mark.parametrize(
    ("preview", "message"),
    [
        ({"argocdApp": "acme-data-preview"}, "repoRegistrations[0].preview.argocdApp: previews need an Application"),
        ({"namespace": "Preview_{pr}"}, "repoRegistrations[0].preview.namespace: 'Preview_{pr}' does not make"),
    ],
)
def test_preview_settings_are_checked_when_the_config_loads(preview, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{")):
        config(**preview)
