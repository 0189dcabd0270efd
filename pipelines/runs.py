"""The arguments of one run of the release template: from a registration, or local defaults for a local run."""

import hashlib
import re
from pathlib import Path

from pipelines.config import Config, RepoRegistration
from pipelines.parameters import RELEASE_PARAMETERS

SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def submit_parameters(config: Config, repo: str, sha: str, event: str, pr: str) -> dict[str, str]:
    """The workflow arguments for a run, with installation and app id taken from the registration.

    Raises:
        ValueError: unregistered repo, bad sha, or a pull_request without a PR number.
    """
    if not SHA_RE.fullmatch(sha):
        raise ValueError(f"--sha {sha!r} is not a full 40-character lowercase hex commit id")
    try:
        reg = config.registration(repo)
    except KeyError:
        known = ", ".join(r.full_name for r in config.repo_registrations) or "none"
        raise ValueError(f"{repo} is not in repoRegistrations (registered: {known})") from None
    if event == "pull_request" and not pr.isdigit():
        raise ValueError("--event pull_request needs --pr NUMBER")
    params = dict(RELEASE_PARAMETERS)
    params.update(
        {
            "repo": reg.full_name,
            "sha": sha,
            "event": event,
            "pr-number": pr if event == "pull_request" else "",
            "ref": f"refs/pull/{pr}/head" if event == "pull_request" else f"refs/heads/{reg.default_branch}",
            "installation-id": str(reg.installation_id or ""),
            "app-id": str(config.app_id_for(reg) or ""),
            "data-path": reg.data_path,
            "s3-secret": reg.s3_credentials_secret or "",
        }
    )
    return params


def data_sha(data_dir: Path) -> str:
    """A deterministic stand-in commit id: SHA-1 of the directory's relative file names and contents."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(data_dir).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def local_registration(repo: str, config: Config) -> RepoRegistration:
    """The synthetic registration of an unregistered repository: no environments, nothing to deploy."""
    name = re.sub(r"[^a-z0-9-]+", "-", repo.lower()).strip("-")[:63].strip("-") or "local"
    return RepoRegistration(
        name=name,
        repo_url=f"https://{config.github.web_host}/{repo}",
        environments=[],
    )


def run_parameters(config: Config, repo: str, sha: str, event: str, pr: str) -> dict[str, str]:
    """Workflow arguments for a local run: the registration's when there is one, local defaults otherwise.

    Raises:
        ValueError: a bad sha, or ``pull_request`` without a PR number.
    """
    try:
        config.registration(repo)
    except KeyError:
        if not SHA_RE.fullmatch(sha):
            raise ValueError(f"--sha {sha!r} is not a full 40-character lowercase hex commit id") from None
        if event == "pull_request" and not pr.isdigit():
            raise ValueError("--event pull_request needs --pr NUMBER") from None
        params = dict(RELEASE_PARAMETERS)
        params.update(
            {
                "repo": repo,
                "sha": sha,
                "event": event,
                "pr-number": pr if event == "pull_request" else "",
                "ref": f"refs/pull/{pr}/head" if event == "pull_request" else "refs/heads/main",
                "installation-id": "",
                "app-id": str(config.github.app_id or ""),
            }
        )
        return params
    return submit_parameters(config, repo, sha, event, pr)


__all__ = ["data_sha", "local_registration", "run_parameters", "submit_parameters"]
