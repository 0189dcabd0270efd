"""What a step's pod mounts: each credential or file a step may need, as a typed value a script asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hera.workflows import ConfigMapVolume, EmptyDirVolume, Env, SecretEnv, SecretVolume
from hera.workflows import models as m

from pipelines.config import Config
from pipelines.resources.secrets import ARGOCD_TOKEN_KEY, S3_KEYS
from steps.runtime.registrations import DEFAULT_REGISTRATIONS, REGISTRATIONS_ENV, shard_registrations

GITHUB_KEY_DIR = "/var/run/secrets/github-app"
ARGOCD_TOKEN_DIR = "/var/run/secrets/argocd"  # noqa: S105 - a mount path
REGISTRATIONS_CONFIGMAP = "release-data-prep-registrations"
REGISTRATIONS_DIR = DEFAULT_REGISTRATIONS.split("/registrations-0/")[0]
REGISTRATIONS_KEY = DEFAULT_REGISTRATIONS.rsplit("/", 1)[-1]


def registration_shards(config: Config) -> list[str]:
    """The registrations as ConfigMap documents, each small enough for Argo CD's client-side apply."""
    return shard_registrations(config.repo_registrations)


def registration_configmap_names(config: Config) -> list[str]:
    """One ConfigMap per shard: ``release-data-prep-registrations``, then ``...-1``, ``...-2``."""
    count = len(registration_shards(config))
    return [REGISTRATIONS_CONFIGMAP if i == 0 else f"{REGISTRATIONS_CONFIGMAP}-{i}" for i in range(count)]


SCRATCH_DIR = "/tmp"  # noqa: S108 - an emptyDir: the root filesystem is read-only


def workflow_parameter(name: str) -> str:
    """``{{workflow.parameters.NAME}}``: the run's argument, resolved by Argo."""
    return "{{workflow.parameters.%s}}" % name  # noqa: UP031 - braces are Argo's, not format()'s


@dataclass(frozen=True)
class Mount:
    """Environment variables and volumes that give a pod one credential or file.

    Attributes:
        name: What it is, for people and tests (``github-app``, ``s3``, ...).
        env: Variables to set (plain values or ``secretKeyRef``).
        volumes: Volumes to mount (Hera mounts each at its ``mount_path``).
    """

    name: str
    env: tuple[Env | SecretEnv, ...] = ()
    volumes: tuple[Any, ...] = field(default=())


class Mounts:
    """The mounts a step can ask for, built from the config.

    Args:
        config: The loaded ``hera_config.yaml``.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    def _app_key(self, name: str, app_id: int | str, directory: str) -> SecretVolume:
        """The Secret of App ``app_id``'s private key, its key mounted as ``directory/private-key``."""
        github = self.config.github
        return SecretVolume(
            name=name,
            secret_name=github.private_key_secret.format(app_id=app_id),
            mount_path=directory,
            items=[m.KeyToPath(key=github.private_key_secret_key, path="private-key")],
            default_mode=0o440,
            optional=True,
        )

    def _key_env(self, app_id: str, directory: str) -> tuple[Env, ...]:
        github = self.config.github
        secret = github.private_key_secret.format(app_id=app_id)
        return (
            Env(name="GITHUB_APP_PRIVATE_KEY_PATH", value=f"{directory}/private-key"),
            Env(name="GITHUB_APP_PRIVATE_KEY_SECRET", value=f"{secret}/{github.private_key_secret_key}"),
        )

    @property
    def github_app(self) -> Mount:
        """The run's GitHub App private key (Secret ``github-app-<app-id>``), as a file."""
        app_id = workflow_parameter("app-id")
        env = (
            *self._key_env(app_id, GITHUB_KEY_DIR),
            # A first attempt ("0") skips the look-ups only a retry needs (an earlier status or deployment).
            Env(name="STEP_RETRIES", value="{{retries}}"),
        )
        return Mount("github-app", env, (self._app_key("github-app", app_id, GITHUB_KEY_DIR),))

    def github_apps(self, app_ids: list[int]) -> Mount:
        """Every App's private key, one directory per App id: the reconciler reports for all registrations."""
        volumes = tuple(self._app_key(f"github-app-{i}", i, f"{GITHUB_KEY_DIR}/{i}") for i in app_ids)
        # steps.github.app.load_private_key fills in "{app_id}" for the App whose token it mints.
        return Mount("github-apps", self._key_env("{app_id}", f"{GITHUB_KEY_DIR}/{{app_id}}"), volumes)

    def _s3_env(self, secret: str | None) -> list[Env | SecretEnv]:
        """Region, endpoint and, when ``secret`` names one, the keys of that Secret (optional references)."""
        s3 = self.config.s3
        env: list[Env | SecretEnv] = [Env(name="AWS_DEFAULT_REGION", value=s3.region)]
        if s3.endpoint_url:
            env.append(Env(name="AWS_ENDPOINT_URL_S3", value=s3.endpoint_url))
        if secret:
            env += [
                Env(name="S3_CREDENTIALS_SECRET", value=secret),
                SecretEnv(name="AWS_ACCESS_KEY_ID", secret_name=secret, secret_key=S3_KEYS[0], optional=True),
                SecretEnv(name="AWS_SECRET_ACCESS_KEY", secret_name=secret, secret_key=S3_KEYS[1], optional=True),
            ]
        return env

    @property
    def s3_shared(self) -> Mount:
        """The release store with the shared credentials (``s3.credentialsSecret``) and no run workspace."""
        s3 = self.config.s3
        env = [Env(name="RELEASE_STORE", value=s3.root), *self._s3_env(s3.credentials_secret)]
        return Mount("s3-shared", tuple(env))

    @property
    def s3(self) -> Mount:
        """Where releases and the run's workspace are, and the S3 credentials (``s3.credentialsSecret``).

        With ``credentialsSecret: null`` no keys are mounted and boto3 finds credentials itself (e.g. IRSA).
        """
        s3 = self.config.s3
        # The run's registration may name its own Secret (parameter s3-secret); else the shared one.
        secret = (
            "{{=workflow.parameters['s3-secret'] != '' ? workflow.parameters['s3-secret'] : "
            f"'{s3.credentials_secret}'}}}}"
        )
        env: list[Env | SecretEnv] = [
            Env(name="RELEASE_STORE", value=s3.root),
            # Under the repository, so a registration's own credentials can be limited to OWNER/REPO prefixes.
            Env(
                name="RELEASE_WORKSPACE",
                value=f"{s3.root}/_runs/{{{{workflow.parameters.repo}}}}/{{{{workflow.name}}}}",
            ),
            *self._s3_env(secret if s3.credentials_secret else None),
        ]
        return Mount("s3", tuple(env))

    @property
    def argocd(self) -> Mount:
        """The Argo CD API server, its settings and its token (Secret ``argocd.tokenSecret``), as a file."""
        a = self.config.argocd
        env = [
            Env(name="ARGOCD_SERVER_URL", value=a.server_url),
            Env(name="ARGOCD_UI_URL", value=a.ui_base),
            Env(name="ARGOCD_TOKEN_FILE", value=f"{ARGOCD_TOKEN_DIR}/token"),
            Env(name="ARGOCD_TOKEN_SECRET", value=f"{a.token_secret}/{ARGOCD_TOKEN_KEY}"),
            Env(name="ARGOCD_NAMESPACE", value=a.namespace),
            Env(name="ARGOCD_PROJECT", value=a.project),
            Env(name="ARGOCD_STABILITY_SECONDS", value=str(a.stability_seconds)),
            Env(name="ARGOCD_TIMEOUT_SECONDS", value=str(a.timeout_seconds)),
            Env(name="ARGOCD_INSECURE", value="false" if a.verify_tls else "true"),
        ]
        if a.ca_bundle:
            env.append(Env(name="ARGOCD_CA_BUNDLE", value=a.ca_bundle))
        volume = SecretVolume(
            name="argocd-token",
            secret_name=a.token_secret,
            mount_path=ARGOCD_TOKEN_DIR,
            items=[m.KeyToPath(key=ARGOCD_TOKEN_KEY, path="token")],
            optional=True,
        )
        return Mount("argocd", tuple(env), (volume,))

    @property
    def registrations(self) -> Mount:
        """The registrations ConfigMaps (one per shard), as the files ``steps.runtime.registrations`` reads."""
        return self._registrations(optional=False)

    @property
    def registrations_if_present(self) -> Mount:
        """The registrations for the status reporters: a missing ConfigMap must not keep their pods from starting.

        Without the files they fall back to looking the installation up (one more GitHub call), so the
        commit never stays ``pending`` because of a ConfigMap (the same reason the S3 mount is optional there).
        """
        return self._registrations(optional=True)

    def _registrations(self, *, optional: bool) -> Mount:
        env, volumes = [], []
        for index, name in enumerate(registration_configmap_names(self.config)):
            directory = f"{REGISTRATIONS_DIR}/registrations-{index}"
            # Hera names the ConfigMap after the volume.
            volumes.append(ConfigMapVolume(name=name, mount_path=directory, optional=optional or None))
            var = REGISTRATIONS_ENV if index == 0 else f"{REGISTRATIONS_ENV}_{index}"
            env.append(Env(name=var, value=f"{directory}/{REGISTRATIONS_KEY}"))
        return Mount("registrations", tuple(env), tuple(volumes))

    @property
    def scratch(self) -> Mount:
        """``/tmp`` as an emptyDir: the only writable place, since the root filesystem is read-only."""
        return Mount("scratch", (), (EmptyDirVolume(name="scratch", mount_path=SCRATCH_DIR),))


__all__ = [
    "ARGOCD_TOKEN_DIR",
    "GITHUB_KEY_DIR",
    "REGISTRATIONS_CONFIGMAP",
    "SCRATCH_DIR",
    "Mount",
    "Mounts",
    "workflow_parameter",
]
