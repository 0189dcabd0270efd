"""Pytest fixtures for the GitHub emulator: a run-time GitHub App key and a seeded, started emulator.

The emulated app and installations mirror how a GitHub App is installed on organisations
(https://docs.github.com/apps/using-github-apps/installing-your-own-github-app): app 12345, installed
on ``acme`` (installation 11111111: acme/data, acme/other) and on ``globex`` (installation 987654321, a
9-digit id: globex/catalog).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.emulators.github import GitHubEmulator


@dataclass(frozen=True)
class AppKey:
    """An RSA key pair made at test run time for a GitHub App."""

    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey
    pem: bytes  # PKCS#8 PEM of the private key

    def __repr__(self) -> str:
        return "AppKey(<redacted>)"


def make_app_key() -> AppKey:
    """Generate a 2048-bit RSA key (never commit one)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return AppKey(private, private.public_key(), pem)


def sign_app_jwt(
    app_id: int | str,
    key: AppKey,
    *,
    iat_offset: int = -60,
    lifetime: int = 540,
    iss: Any = None,
    now: float | None = None,
) -> str:
    """Sign a GitHub App JWT (RS256) as GitHub documents it; the keywords make bad ones for tests.

    Args:
        app_id: the app id, used as ``iss`` unless ``iss`` is given.
        key: the app's key pair.
        iat_offset: seconds added to now for ``iat`` (GitHub advises 60 s in the past).
        lifetime: seconds from now to ``exp`` (GitHub allows at most 600).
        iss: an explicit issuer claim.
        now: the epoch to sign at (defaults to the current time).
    """
    moment = int(time.time() if now is None else now)
    claims = {"iat": moment + iat_offset, "exp": moment + lifetime, "iss": str(app_id) if iss is None else iss}
    # Signed as JWS bytes: PyJWT's jwt.encode refuses an integer iss, which GitHub accepts.
    return jwt.api_jws.encode(json.dumps(claims).encode(), key.private_key, algorithm="RS256", headers={"typ": "JWT"})


class SeededGitHubEmulator(GitHubEmulator):
    """The emulator with the project's standard app and installations, plus client-side helpers."""

    app_id = 12345
    installation_id = 11111111
    globex_installation_id = 987654321
    acme_repos = ("acme/data", "acme/other")
    globex_repos = ("globex/catalog",)

    def __init__(self, key: AppKey, **kwargs: Any):
        super().__init__(**kwargs)
        self.app_key = key

    def seed(self) -> SeededGitHubEmulator:
        """Register the app and both installations; returns self."""
        self.add_app(self.app_id, self.app_key.public_key, slug="gitops-status-matrix")
        self.add_installation(self.installation_id, self.app_id, account="acme", repositories=list(self.acme_repos))
        self.add_installation(
            self.globex_installation_id, self.app_id, account="globex", repositories=list(self.globex_repos)
        )
        return self

    def jwt(self, **overrides: Any) -> str:
        """A valid app JWT for the seeded app (keywords as in ``sign_app_jwt``)."""
        return sign_app_jwt(self.app_id, self.app_key, **overrides)

    def issue_token(
        self,
        installation_id: int | None = None,
        repositories: list[str] | None = None,
        permissions: dict[str, str] | None = None,
    ) -> str:
        """Obtain an installation token over HTTP, as a client would (defaults: the acme installation)."""
        body: dict[str, Any] = {}
        if repositories is not None:
            body["repositories"] = repositories
        if permissions is not None:
            body["permissions"] = permissions
        answer = requests.post(
            f"{self.url}/app/installations/{installation_id or self.installation_id}/access_tokens",
            json=body,
            headers={"Authorization": f"Bearer {self.jwt()}", "Accept": "application/vnd.github+json"},
            timeout=10,
        )
        if answer.status_code != 201:
            raise RuntimeError(f"the emulator refused a token: {answer.status_code} {answer.json()['message']}")
        return answer.json()["token"]


@pytest.fixture(scope="session")
def github_app_key() -> AppKey:
    """A GitHub App RSA key generated for this test session (``.pem`` PKCS#8, ``.public_key``)."""
    return make_app_key()


@pytest.fixture
def github_emulator(github_app_key: AppKey) -> Iterator[SeededGitHubEmulator]:
    """A started GitHub emulator with app 12345 installed on acme and globex; checks its own answers."""
    emulator = SeededGitHubEmulator(github_app_key).seed().start()
    try:
        yield emulator
    finally:
        emulator.stop()
    assert emulator.invalid_responses == [], "the GitHub emulator broke the OpenAPI description (emulator bug)"


__all__ = ["AppKey", "SeededGitHubEmulator", "github_app_key", "github_emulator", "make_app_key", "sign_app_jwt"]
