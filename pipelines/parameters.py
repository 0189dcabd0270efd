"""The arguments of the workflows, in the order every caller must use."""

RELEASE_TEMPLATE = "release-data-prep"
CLEANUP_TEMPLATE = "release-preview-cleanup"
FORK_TEMPLATE = "release-data-validate-fork"

# name -> default ("" means required at submission unless noted)
RELEASE_PARAMETERS: dict[str, str] = {
    "repo": "",  # owner/name
    "sha": "",  # 40-hex commit
    "event": "push",  # push | pull_request
    "pr-number": "",  # empty for push
    "ref": "",  # refs/heads/main or refs/pull/N/head
    "installation-id": "",  # empty: the registration's; never from the payload
    "app-id": "",  # GitHub App of that installation
    "data-path": "",  # empty: the registration's dataPath
    "deploy": "true",  # "false": skip the deployment branch (PostSync hooks; Argo CD notifications report)
    "s3-secret": "",  # the registration's own S3 credentials Secret; empty: s3.credentialsSecret
}

# A fork pull request with forks: validate (no S3, no deployment); the same names as RELEASE_PARAMETERS.
FORK_PARAMETERS: dict[str, str] = {
    "repo": "",
    "sha": "",  # the fork's head commit, fetched through the base repository (refs/pull/N/head)
    "pr-number": "",
    "installation-id": "",
    "app-id": "",
    "data-path": "",
}

CLEANUP_PARAMETERS: dict[str, str] = {
    "repo": "",
    "pr-number": "",
    "installation-id": "",
    "app-id": "",
}

__all__ = [
    "CLEANUP_PARAMETERS",
    "CLEANUP_TEMPLATE",
    "FORK_PARAMETERS",
    "FORK_TEMPLATE",
    "RELEASE_PARAMETERS",
    "RELEASE_TEMPLATE",
]
