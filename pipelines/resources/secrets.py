"""Which Secret holds which credential, rendered as Secret templates that name every key but carry no value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.config import Config
from pipelines.resources import PART_OF

NOTIFICATIONS_SECRET_NAME = "argocd-notifications-secret"  # noqa: S105 - fixed by Argo CD
S3_KEYS = ("access-key-id", "secret-access-key")  # as pipelines.resources.workflows mounts them
ARGOCD_TOKEN_KEY = "token"  # noqa: S105 - a key name, not a value
# Argo CD's GitHub App credentials fields (repo-creds), read by the pull-request generator's appSecretName.
REPO_CREDS_KEYS = ("githubAppID", "githubAppInstallationID", "githubAppPrivateKey")
KEYS_ANNOTATION = "gitops-status-matrix/required-keys"
PURPOSE_ANNOTATION = "gitops-status-matrix/purpose"
SYNC_OPTIONS = "Prune=false,Delete=false"


@dataclass(frozen=True)
class SecretSpec:
    """One Secret a component expects: where it lives, which keys it must hold and who reads it."""

    name: str
    namespace: str
    keys: tuple[str, ...]
    purpose: str


def webhook_secret_key(app_id: int | None) -> str:
    """Key of ``github-webhook-secret`` holding the webhook secret of one GitHub App (its own HMAC key)."""
    return f"webhook-secret-app-{app_id}" if app_id is not None else "webhook-secret"


def notifications_private_key(installation_id: int) -> str:
    """Key of ``argocd-notifications-secret`` referenced as ``$<key>`` by one installation's service."""
    return f"github-privateKey-{installation_id}"


def repo_creds_secret(installation_id: int) -> str:
    """Secret (Argo CD's namespace) with an installation's GitHub App, for the preview ApplicationSet's generator."""
    return f"github-app-repo-creds-{installation_id}"


def app_key_secret(config: Config, app_id: int) -> str:
    """Name of the Secret holding a GitHub App's private key for the workflow steps."""
    return config.github.private_key_secret.format(app_id=app_id)


def _app_ids(config: Config) -> list[int | None]:
    return sorted({config.app_id_for(reg) for reg in config.repo_registrations}, key=lambda a: (a is None, a))


def _notified_installations(config: Config) -> list[int]:
    return sorted(
        {
            reg.installation_id
            for reg in config.repo_registrations
            if reg.installation_id is not None and any(env.argocd_app for env in reg.environments)
        }
    )


def layout(config: Config) -> list[SecretSpec]:
    """Every Secret the rendered resources and the workflow steps expect, sorted by namespace and name."""
    if not config.repo_registrations:
        return []
    specs = [
        SecretSpec(
            config.events.webhook_secret_name,
            config.events.namespace,
            tuple(webhook_secret_key(app_id) for app_id in _app_ids(config)),
            "Argo Events EventSource: the webhook secret of each GitHub App, to verify X-Hub-Signature-256",
        ),
        SecretSpec(
            config.argocd.token_secret,
            config.argo.namespace,
            (ARGOCD_TOKEN_KEY,),
            "workflow steps: Argo CD API token (read-only on the registered Applications)",
        ),
    ]
    if config.s3.credentials_secret:
        specs.append(
            SecretSpec(
                config.s3.credentials_secret,
                config.argo.namespace,
                S3_KEYS,
                "workflow steps: S3/MinIO credentials for publishing released data",
            )
        )
    own = sorted({r.s3_credentials_secret for r in config.repo_registrations if r.s3_credentials_secret})
    specs += [
        SecretSpec(
            name,
            config.argo.namespace,
            S3_KEYS,
            "workflow steps of the registrations naming it (s3CredentialsSecret): S3 credentials limited to their "
            "OWNER/REPO prefixes (docs/ops.md, bucket policy)",
        )
        for name in own
    ]
    specs += [
        SecretSpec(
            app_key_secret(config, app_id),
            config.argo.namespace,
            (config.github.private_key_secret_key,),
            f"workflow steps: the PEM private key of GitHub App {app_id}",
        )
        for app_id in _app_ids(config)
        if app_id is not None
    ]
    previews = sorted({r.installation_id for r in config.repo_registrations if r.preview.enabled and r.installation_id})
    specs += [
        SecretSpec(
            repo_creds_secret(installation_id),
            config.argocd.namespace,
            REPO_CREDS_KEYS,
            f"Argo CD ApplicationSet pull-request generator: GitHub App of installation {installation_id}",
        )
        for installation_id in previews
    ]
    installations = _notified_installations(config)
    if installations:
        specs.append(
            SecretSpec(
                NOTIFICATIONS_SECRET_NAME,
                config.argocd.namespace,
                tuple(notifications_private_key(i) for i in installations),
                "Argo CD notifications: the PEM private key of each installation's GitHub App",
            )
        )
    return sorted(specs, key=lambda s: (s.namespace, s.name))


def secret_template(spec: SecretSpec) -> dict[str, Any]:
    """A Secret manifest without ``data``: it names the Secret and lists its required keys."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": dict(PART_OF),
            "annotations": {
                KEYS_ANNOTATION: ",".join(spec.keys),
                PURPOSE_ANNOTATION: spec.purpose,
                "argocd.argoproj.io/sync-options": SYNC_OPTIONS,
            },
        },
    }


def resources(config: Config) -> list[dict[str, Any]]:
    """Secret templates (no values) for every Secret in :func:`layout`."""
    return [secret_template(spec) for spec in layout(config)]


__all__ = [
    "ARGOCD_TOKEN_KEY",
    "KEYS_ANNOTATION",
    "NOTIFICATIONS_SECRET_NAME",
    "S3_KEYS",
    "SecretSpec",
    "app_key_secret",
    "layout",
    "notifications_private_key",
    "repo_creds_secret",
    "resources",
    "secret_template",
    "webhook_secret_key",
]
