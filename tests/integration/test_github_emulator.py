"""Tests of the GitHub REST emulator itself, over real HTTP with requests and PyGithub.

They prove the emulator behaves like GitHub where the project relies on it: app JWTs and scoped
installation tokens (https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app),
OpenAPI request validation, documented limits, auto_inactive, pagination, faults, tarballs and the
GitHub Enterprise Server base path.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from concurrent.futures import ThreadPoolExecutor

import github
import pytest
import requests
from github import Auth, Github, GithubIntegration

from tests.support.emulators.github import Fault, GitHubEmulator
from tests.support.emulators.github_fixtures import SeededGitHubEmulator, make_app_key, sign_app_jwt

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"


# PyGithub waits 0.25 s between requests and 1 s between writes by default: not needed against 127.0.0.1.
NO_THROTTLE = {"seconds_between_requests": 0, "seconds_between_writes": 0}


def auth(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}", "Accept": "application/vnd.github+json"}


@pytest.fixture
def token(github_emulator: SeededGitHubEmulator) -> str:
    return github_emulator.issue_token()


def post_status(emu: GitHubEmulator, token: str, **body: object) -> requests.Response:
    return requests.post(f"{emu.url}/repos/acme/data/statuses/{SHA}", json=body, headers=auth(token), timeout=10)


def deploy(emu: GitHubEmulator, token: str, **body: object) -> int:
    answer = requests.post(
        f"{emu.url}/repos/acme/data/deployments",
        json={"ref": SHA, "auto_merge": False, "required_contexts": [], **body},
        headers=auth(token),
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def deployment_status(emu: GitHubEmulator, token: str, deployment_id: int, **body: object) -> requests.Response:
    return requests.post(
        f"{emu.url}/repos/acme/data/deployments/{deployment_id}/statuses", json=body, headers=auth(token), timeout=10
    )


# ------------------------------------------------------------------------------------------- auth


def test_valid_jwt_lists_installations_of_the_app(github_emulator: SeededGitHubEmulator) -> None:
    answer = requests.get(f"{github_emulator.url}/app/installations", headers=auth(github_emulator.jwt()), timeout=10)
    assert answer.status_code == 200
    assert [(i["id"], i["account"]["login"]) for i in answer.json()] == [(11111111, "acme"), (987654321, "globex")]
    assert github_emulator.calls[-1].auth_kind == "jwt"


@pytest.mark.parametrize(
    ("make_jwt", "message"),
    [
        (lambda emu: sign_app_jwt(emu.app_id, make_app_key()), "A JSON web token could not be decoded"),
        (lambda emu: emu.jwt(iat_offset=-1200, lifetime=-600), "'Expiration time' claim ('exp') must be a numeric"),
        (lambda emu: emu.jwt(lifetime=1200), "'Expiration time' claim ('exp') is too far in the future"),
        (lambda emu: emu.jwt(iat_offset=300, lifetime=540), "'Issued at' claim ('iat') must be an Integer"),
        (lambda emu: emu.jwt(iss="54321"), "Integration not found"),
        (lambda emu: "not-a-jwt", "A JSON web token could not be decoded"),
    ],
    ids=["bad-signature", "expired", "exp-too-far", "iat-in-future", "wrong-iss", "garbage"],
)
def test_bad_jwts_are_refused(github_emulator: SeededGitHubEmulator, make_jwt, message: str) -> None:
    answer = requests.get(
        f"{github_emulator.url}/app/installations", headers=auth(make_jwt(github_emulator)), timeout=10
    )
    assert answer.status_code == 401
    assert answer.json()["message"].startswith(message)


def test_jwt_iss_may_be_an_integer_and_github_docs_lifetime_is_accepted(github_emulator: SeededGitHubEmulator) -> None:
    # GitHub's own sample signs iat = now - 60 and exp = now + 600.
    jwt_token = github_emulator.jwt(iss=github_emulator.app_id, lifetime=600)
    answer = requests.get(f"{github_emulator.url}/app/installations", headers=auth(jwt_token), timeout=10)
    assert answer.status_code == 200


def test_installation_token_shape_and_scope(github_emulator: SeededGitHubEmulator) -> None:
    answer = requests.post(
        f"{github_emulator.url}/app/installations/{github_emulator.installation_id}/access_tokens",
        json={"repositories": ["data"], "permissions": {"statuses": "write"}},
        headers=auth(github_emulator.jwt()),
        timeout=10,
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["token"].startswith("ghs_")
    assert body["permissions"] == {"statuses": "write", "metadata": "read"}
    assert [r["full_name"] for r in body["repositories"]] == ["acme/data"]
    (issued,) = github_emulator.tokens_issued()
    assert issued.repositories == ["acme/data"]
    assert issued.permissions == {"statuses": "write", "metadata": "read"}
    assert body["token"] not in repr(github_emulator.tokens_issued())
    lengths = {len(github_emulator.issue_token()) for _ in range(8)}
    assert len(lengths) > 1, "installation tokens must not have a fixed length"


def test_scoped_token_is_refused_outside_its_repositories_and_permissions(
    github_emulator: SeededGitHubEmulator,
) -> None:
    scoped = github_emulator.issue_token(repositories=["data"], permissions={"statuses": "write"})
    assert post_status(github_emulator, scoped, state="success").status_code == 201
    refused = [
        requests.post(
            f"{github_emulator.url}/repos/acme/other/statuses/{SHA}",
            json={"state": "success"},
            headers=auth(scoped),
            timeout=10,
        ),
        requests.post(
            f"{github_emulator.url}/repos/globex/catalog/statuses/{SHA}",
            json={"state": "success"},
            headers=auth(scoped),
            timeout=10,
        ),
        requests.get(f"{github_emulator.url}/repos/acme/data/deployments", headers=auth(scoped), timeout=10),
        requests.post(
            f"{github_emulator.url}/repos/acme/data/issues/1/comments",
            json={"body": "x"},
            headers=auth(scoped),
            timeout=10,
        ),
    ]
    assert [r.status_code for r in refused] == [403] * 4
    assert {r.json()["message"] for r in refused} == {"Resource not accessible by integration"}
    read_only = github_emulator.issue_token(permissions={"statuses": "read"})
    assert post_status(github_emulator, read_only, state="success").status_code == 403
    listed = requests.get(
        f"{github_emulator.url}/repos/acme/data/commits/{SHA}/statuses", headers=auth(read_only), timeout=10
    )
    assert listed.status_code == 200


def test_token_requests_beyond_the_installation_are_refused(github_emulator: SeededGitHubEmulator) -> None:
    github_emulator.add_installation(
        22222222,
        github_emulator.app_id,
        account="initech",
        repositories=["initech/app"],
        permissions={"statuses": "read", "metadata": "read"},
    )
    jwt_headers = auth(github_emulator.jwt())
    base = f"{github_emulator.url}/app/installations"
    too_much = requests.post(
        f"{base}/22222222/access_tokens", json={"permissions": {"statuses": "write"}}, headers=jwt_headers, timeout=10
    )
    assert too_much.status_code == 422
    assert too_much.json()["message"] == "The permissions requested are not granted to this installation."
    foreign_repo = requests.post(
        f"{base}/22222222/access_tokens", json={"repositories": ["data"]}, headers=jwt_headers, timeout=10
    )
    assert foreign_repo.status_code == 422
    unknown = requests.post(f"{base}/424242/access_tokens", headers=jwt_headers, timeout=10)
    assert unknown.status_code == 404
    with_token = requests.post(
        f"{base}/22222222/access_tokens", headers=auth(github_emulator.issue_token()), timeout=10
    )
    assert with_token.status_code == 401
    assert github_emulator.invalid_requests == []


def test_both_authorization_schemes_and_nine_digit_installation(github_emulator: SeededGitHubEmulator) -> None:
    globex = github_emulator.issue_token(github_emulator.globex_installation_id)
    for scheme in ("Bearer", "token"):
        answer = requests.post(
            f"{github_emulator.url}/repos/globex/catalog/statuses/{SHA}",
            json={"state": "pending"},
            headers=auth(globex, scheme),
            timeout=10,
        )
        assert answer.status_code == 201
    assert [t.installation_id for t in github_emulator.tokens_issued()] == [987654321]
    no_auth = requests.post(
        f"{github_emulator.url}/repos/globex/catalog/statuses/{SHA}", json={"state": "pending"}, timeout=10
    )
    assert no_auth.status_code == 401
    assert [c.auth_kind for c in github_emulator.calls[-3:]] == ["installation", "installation", "none"]


def test_repository_installation_lookup_with_pygithub(github_emulator: SeededGitHubEmulator) -> None:
    app_auth = Auth.AppAuth(github_emulator.app_id, github_emulator.app_key.pem.decode())
    integration = GithubIntegration(auth=app_auth, base_url=github_emulator.url, **NO_THROTTLE)
    assert [i.id for i in integration.get_installations()] == [11111111, 987654321]
    assert integration.get_repo_installation("acme", "other").id == 11111111
    assert integration.get_repo_installation("globex", "catalog").id == 987654321
    with pytest.raises(github.UnknownObjectException):
        integration.get_repo_installation("acme", "missing")
    assert github_emulator.invalid_requests == []


def test_expired_tokens_answer_bad_credentials(github_emulator: SeededGitHubEmulator, token: str) -> None:
    github_emulator.expire_tokens()
    answer = post_status(github_emulator, token, state="success")
    assert (answer.status_code, answer.json()["message"]) == (401, "Bad credentials")
    fresh = github_emulator.issue_token()
    assert post_status(github_emulator, fresh, state="success").status_code == 201
    github_emulator.advance_clock(3601)
    assert post_status(github_emulator, fresh, state="success").status_code == 401


def test_calls_are_recorded_without_secrets(github_emulator: SeededGitHubEmulator, token: str) -> None:
    jwt_token = github_emulator.jwt()
    requests.get(f"{github_emulator.url}/app/installations", headers=auth(jwt_token), timeout=10)
    post_status(github_emulator, token, state="success", context="ci")
    recorded = repr(github_emulator.calls)
    assert token not in recorded and jwt_token not in recorded
    last = github_emulator.calls[-1]
    assert (last.method, last.repo, last.status, last.body) == (
        "POST",
        "acme/data",
        201,
        {"state": "success", "context": "ci"},
    )
    assert "authorization" not in last.headers
    assert github_emulator.count("POST", r"/statuses/") == 1
    assert github_emulator.count(path_regex=r"access_tokens$") == 1


# ------------------------------------------------------------------------------ validation, limits


def test_invalid_body_is_refused_and_recorded(github_emulator: SeededGitHubEmulator, token: str) -> None:
    answer = post_status(github_emulator, token, state="Succeeded")
    assert answer.status_code == 422
    assert answer.json()["message"].startswith("Invalid request.")
    assert "Succeeded" in answer.json()["message"]
    assert answer.json()["documentation_url"].startswith("https://docs.github.com/rest/commits/statuses")
    (problem,) = github_emulator.invalid_requests
    assert problem.method == "POST" and "Succeeded" in problem.detail
    assert github_emulator.statuses("acme/data", SHA) == []


def test_unknown_endpoints_are_recorded_as_invalid(github_emulator: SeededGitHubEmulator, token: str) -> None:
    answer = requests.get(f"{github_emulator.url}/repos/acme/data", headers=auth(token), timeout=10)
    assert answer.status_code == 404
    assert [p.path for p in github_emulator.invalid_requests] == ["/repos/acme/data"]


def test_status_description_over_140_characters(github_emulator: SeededGitHubEmulator, token: str) -> None:
    assert post_status(github_emulator, token, state="success", description="x" * 140).status_code == 201
    answer = post_status(github_emulator, token, state="success", description="x" * 141)
    assert answer.status_code == 422
    assert answer.json() == {
        "message": "Validation Failed",
        "errors": [
            {
                "resource": "Status",
                "field": "description",
                "code": "custom",
                "message": "description is too long (maximum is 140 characters)",
            }
        ],
        "documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status",
    }


def test_status_limit_per_sha_and_context(github_emulator: SeededGitHubEmulator, token: str) -> None:
    github_emulator.status_limit = 5
    codes = [
        post_status(github_emulator, token, state="pending", context=ctx).status_code
        for ctx in ["deploy", "Deploy", "deploy", "deploy", "deploy", "DEPLOY"]
    ]
    assert codes == [201] * 5 + [422]
    assert post_status(github_emulator, token, state="pending", context="other").status_code == 201
    assert len(github_emulator.statuses("acme/data", SHA)) == 6


def test_commit_status_reads(github_emulator: SeededGitHubEmulator, token: str) -> None:
    for state, context in [("pending", "a"), ("success", "a"), ("success", "b")]:
        post_status(github_emulator, token, state=state, context=context)
    listed = requests.get(
        f"{github_emulator.url}/repos/acme/data/commits/{SHA}/statuses", headers=auth(token), timeout=10
    ).json()
    assert [(s["context"], s["state"]) for s in listed] == [("b", "success"), ("a", "success"), ("a", "pending")]
    combined = requests.get(
        f"{github_emulator.url}/repos/acme/data/commits/{SHA}/status", headers=auth(token), timeout=10
    ).json()
    assert (combined["state"], combined["total_count"]) == ("success", 2)
    post_status(github_emulator, token, state="error", context="c")
    combined = requests.get(
        f"{github_emulator.url}/repos/acme/data/commits/{SHA}/status", headers=auth(token), timeout=10
    ).json()
    assert combined["state"] == "failure"
    assert [s.state for s in github_emulator.statuses("acme/data", SHA)] == ["pending", "success", "success", "error"]


def test_concurrent_requests_are_served_and_stored_consistently(
    github_emulator: SeededGitHubEmulator, token: str
) -> None:
    def one(i: int) -> int:
        return post_status(github_emulator, token, state="pending", context=f"c{i}").status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(one, range(16)))
    assert codes == [201] * 16
    stored = github_emulator.statuses("acme/data", SHA)
    assert len({s.id for s in stored}) == 16 and len(github_emulator.calls) == 17


def test_status_on_a_branch_name_is_refused(github_emulator: SeededGitHubEmulator, token: str) -> None:
    answer = requests.post(
        f"{github_emulator.url}/repos/acme/data/statuses/main",
        json={"state": "success"},
        headers=auth(token),
        timeout=10,
    )
    assert (answer.status_code, answer.json()["message"]) == (422, "No commit found for SHA: main")


def test_deployment_status_description_over_140(github_emulator: SeededGitHubEmulator, token: str) -> None:
    deployment_id = deploy(github_emulator, token, environment="staging")
    answer = deployment_status(github_emulator, token, deployment_id, state="success", description="y" * 141)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["message"] == "description is too long (maximum is 140 characters)"
    assert github_emulator.deployment_statuses("acme/data", deployment_id) == []


def test_check_run_annotations_limit_and_accumulation(github_emulator: SeededGitHubEmulator, token: str) -> None:
    created = requests.post(
        f"{github_emulator.url}/repos/acme/data/check-runs",
        json={"name": "release-data-prep", "head_sha": SHA, "status": "in_progress"},
        headers=auth(token),
        timeout=10,
    )
    assert created.status_code == 201
    url = f"{github_emulator.url}/repos/acme/data/check-runs/{created.json()['id']}"

    def annotations(count: int) -> list[dict[str, object]]:
        return [
            {
                "path": "data.csv",
                "start_line": i + 1,
                "end_line": i + 1,
                "annotation_level": "warning",
                "message": f"row {i}",
            }
            for i in range(count)
        ]

    too_many = requests.patch(
        url,
        json={"output": {"title": "t", "summary": "s", "annotations": annotations(51)}},
        headers=auth(token),
        timeout=10,
    )
    assert too_many.status_code == 422
    assert len(github_emulator.invalid_requests) == 1
    for count in (50, 20):
        answer = requests.patch(
            url,
            json={"output": {"title": "t", "summary": "s", "annotations": annotations(count)}},
            headers=auth(token),
            timeout=10,
        )
        assert answer.status_code == 200
    done = requests.patch(url, json={"conclusion": "success"}, headers=auth(token), timeout=10).json()
    assert (done["status"], done["conclusion"], done["output"]["annotations_count"]) == ("completed", "success", 70)
    (run,) = github_emulator.check_runs("acme/data")
    assert len(run.annotations) == 70


# ------------------------------------------------------------------------------------ deployments


def test_auto_inactive_follows_github_documentation(github_emulator: SeededGitHubEmulator, token: str) -> None:
    emu = github_emulator
    old = deploy(emu, token, environment="staging")
    deployment_status(emu, token, old, state="success")
    never_succeeded = deploy(emu, token, environment="staging")
    deployment_status(emu, token, never_succeeded, state="failure")
    transient = deploy(emu, token, environment="staging", transient_environment=True)
    deployment_status(emu, token, transient, state="success")
    production = deploy(emu, token, environment="production")
    deployment_status(emu, token, production, state="success")
    other_env = deploy(emu, token, environment="qa")
    deployment_status(emu, token, other_env, state="success")

    new = deploy(emu, token, environment="staging")
    assert deployment_status(emu, token, new, state="success").status_code == 201
    states = {d.id: d.state for d in emu.deployments("acme/data")}
    assert states == {
        old: "inactive",
        never_succeeded: "failure",
        transient: "success",
        production: "success",
        other_env: "success",
        new: "success",
    }
    assert emu.deployment_statuses("acme/data", old)[-1].auto is True

    newer = deploy(emu, token, environment="staging")
    deployment_status(emu, token, newer, state="success", auto_inactive=False)
    assert {d.id: d.state for d in emu.deployments("acme/data")}[new] == "success"


def test_transient_deployment_set_inactive_is_destroyed(github_emulator: SeededGitHubEmulator, token: str) -> None:
    preview = deploy(github_emulator, token, environment="pr-7", transient_environment=True)
    deployment_status(github_emulator, token, preview, state="inactive")
    (stored,) = github_emulator.deployments("acme/data")
    assert stored.destroyed and stored.production_environment is False


def test_delete_only_inactive_deployments_unless_only_one(github_emulator: SeededGitHubEmulator, token: str) -> None:
    emu = github_emulator
    first = deploy(emu, token, environment="staging")
    second = deploy(emu, token, environment="staging")
    url = f"{emu.url}/repos/acme/data/deployments"
    refused = requests.delete(f"{url}/{first}", headers=auth(token), timeout=10)
    assert refused.status_code == 422
    deployment_status(emu, token, first, state="inactive")
    assert requests.delete(f"{url}/{first}", headers=auth(token), timeout=10).status_code == 204
    assert requests.delete(f"{url}/{second}", headers=auth(token), timeout=10).status_code == 204
    assert requests.delete(f"{url}/{second}", headers=auth(token), timeout=10).status_code == 404
    assert emu.deployments("acme/data") == []


def test_deployment_required_contexts_and_list_filters(github_emulator: SeededGitHubEmulator, token: str) -> None:
    emu = github_emulator
    post_status(emu, token, state="failure", context="lint")
    conflict = requests.post(
        f"{emu.url}/repos/acme/data/deployments",
        json={"ref": SHA, "auto_merge": False},
        headers=auth(token),
        timeout=10,
    )
    assert conflict.status_code == 409
    unknown_ref = requests.post(
        f"{emu.url}/repos/acme/data/deployments",
        json={"ref": "release", "required_contexts": []},
        headers=auth(token),
        timeout=10,
    )
    assert unknown_ref.status_code == 422
    emu.set_ref("acme/data", "release", OTHER_SHA)
    ids = [deploy(emu, token, ref="release", environment=env) for env in ("staging", "production", "staging")]
    listed = requests.get(
        f"{emu.url}/repos/acme/data/deployments", params={"environment": "staging"}, headers=auth(token), timeout=10
    ).json()
    assert [d["id"] for d in listed] == [ids[2], ids[0]]
    assert {d["sha"] for d in listed} == {OTHER_SHA}
    assert emu.deployments("acme/data")[0].production_environment is False
    assert emu.deployments("acme/data")[1].production_environment is True


# ------------------------------------------------------------------------------- comments, paging


def test_comment_pagination_uses_link_headers(github_emulator: SeededGitHubEmulator, token: str) -> None:
    for i in range(65):
        github_emulator.add_comment("acme/data", 7, f"comment {i}")
    github_emulator.add_comment("acme/data", 8, "elsewhere")
    url = f"{github_emulator.url}/repos/acme/data/issues/7/comments?per_page=30"
    bodies, pages = [], []
    while url:
        answer = requests.get(url, headers=auth(token), timeout=10)
        assert answer.status_code == 200
        pages.append(answer.headers.get("Link", ""))
        bodies += [c["body"] for c in answer.json()]
        url = answer.links.get("next", {}).get("url")
    assert bodies == [f"comment {i}" for i in range(65)]
    assert len(pages) == 3
    assert 'rel="next"' in pages[0] and 'rel="last"' in pages[0] and "page=3" in pages[0]
    assert 'rel="prev"' in pages[2] and 'rel="first"' in pages[2] and 'rel="next"' not in pages[2]


def test_comment_create_update_and_size_limit(github_emulator: SeededGitHubEmulator, token: str) -> None:
    base = f"{github_emulator.url}/repos/acme/data/issues"
    created = requests.post(f"{base}/3/comments", json={"body": "x" * 65536}, headers=auth(token), timeout=10)
    assert created.status_code == 201
    assert created.json()["user"]["login"] == "gitops-status-matrix[bot]"
    too_long = requests.post(f"{base}/3/comments", json={"body": "x" * 65537}, headers=auth(token), timeout=10)
    assert too_long.status_code == 422
    comment_id = created.json()["id"]
    edited = requests.patch(f"{base}/comments/{comment_id}", json={"body": "short"}, headers=auth(token), timeout=10)
    assert edited.status_code == 200
    assert (
        requests.patch(
            f"{base}/comments/{comment_id}", json={"body": "y" * 65537}, headers=auth(token), timeout=10
        ).status_code
        == 422
    )
    fetched = requests.get(f"{base}/comments/{comment_id}", headers=auth(token), timeout=10).json()
    assert fetched["body"] == "short"
    assert [c.body for c in github_emulator.comments("acme/data", 3)] == ["short"]


def test_pull_request_comments_accept_pull_requests_permission(github_emulator: SeededGitHubEmulator) -> None:
    github_emulator.add_pull_request("acme/data", 12)
    prs_only = github_emulator.issue_token(permissions={"pull_requests": "write"})
    base = f"{github_emulator.url}/repos/acme/data/issues"
    on_pr = requests.post(f"{base}/12/comments", json={"body": "ok"}, headers=auth(prs_only), timeout=10)
    on_issue = requests.post(f"{base}/13/comments", json={"body": "no"}, headers=auth(prs_only), timeout=10)
    assert (on_pr.status_code, on_issue.status_code) == (201, 403)
    assert "/pull/12#" in on_pr.json()["html_url"]


# ------------------------------------------------------------------------------------------ faults


def test_http_error_fault_is_consumed_then_normal_service(github_emulator: SeededGitHubEmulator, token: str) -> None:
    fault = github_emulator.add_fault(
        Fault(
            "http_error", method="POST", path_regex=r"/statuses/", times=2, status=502, body={"message": "Bad Gateway"}
        )
    )
    codes = [post_status(github_emulator, token, state="success").status_code for _ in range(3)]
    assert codes == [502, 502, 201]
    assert fault.remaining == 0
    assert [c.fault for c in github_emulator.calls[-3:]] == ["http_error", "http_error", None]
    assert len(github_emulator.statuses("acme/data", SHA)) == 1


def test_faults_match_method_and_path_and_apply_in_order(github_emulator: SeededGitHubEmulator, token: str) -> None:
    github_emulator.add_fault(Fault("http_error", method="GET", path_regex=r"/statuses/", status=500))
    github_emulator.add_fault(Fault("http_error", path_regex=r"/statuses/", status=503))
    github_emulator.add_fault(Fault("http_error", path_regex=r"/statuses/", status=504))
    codes = [post_status(github_emulator, token, state="success").status_code for _ in range(3)]
    assert codes == [503, 504, 201]


def test_rate_limit_faults(github_emulator: SeededGitHubEmulator, token: str) -> None:
    github_emulator.add_fault(Fault("too_many_requests", retry_after=7))
    github_emulator.add_fault(Fault("secondary_rate_limit", retry_after=3))
    github_emulator.add_fault(Fault("primary_rate_limit", reset_in=120))
    too_many, secondary, primary = (post_status(github_emulator, token, state="success") for _ in range(3))
    assert (too_many.status_code, too_many.headers["Retry-After"]) == (429, "7")
    assert (secondary.status_code, secondary.headers["Retry-After"]) == (403, "3")
    assert secondary.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert primary.status_code == 403
    assert primary.headers["x-ratelimit-remaining"] == "0"
    assert int(primary.headers["x-ratelimit-reset"]) > int(github_emulator.now())
    assert post_status(github_emulator, token, state="success").status_code == 201


def test_latency_fault_delays_the_answer(github_emulator: SeededGitHubEmulator, token: str) -> None:
    github_emulator.add_fault(Fault("latency", path_regex=r"/statuses/", seconds=1.0))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            f"{github_emulator.url}/repos/acme/data/statuses/{SHA}",
            json={"state": "success"},
            headers=auth(token),
            timeout=0.2,
        )
    assert post_status(github_emulator, token, state="success").status_code == 201


def test_dropped_connection_fault(github_emulator: SeededGitHubEmulator, token: str) -> None:
    github_emulator.add_fault(Fault("drop", method="POST"))
    with pytest.raises(requests.exceptions.ConnectionError):
        post_status(github_emulator, token, state="success")
    assert (github_emulator.calls[-1].status, github_emulator.calls[-1].fault) == (0, "drop")
    assert post_status(github_emulator, token, state="success").status_code == 201


def test_rate_limit_endpoint_and_headers(github_emulator: SeededGitHubEmulator, token: str) -> None:
    first = post_status(github_emulator, token, state="success")
    answer = requests.get(f"{github_emulator.url}/rate_limit", headers=auth(token), timeout=10)
    assert answer.status_code == 200
    core = answer.json()["resources"]["core"]
    assert core["limit"] == 5000 and core["used"] == 1
    assert int(first.headers["x-ratelimit-remaining"]) == 4999


# ----------------------------------------------------------------------------------------- tarball


def test_tarball_redirects_to_codeload_and_serves_github_layout(
    github_emulator: SeededGitHubEmulator, token: str
) -> None:
    commit = github_emulator.set_tarball("acme/data", "main", {"data/rows.csv": b"a,b\n1,2\n", "README.md": b"hi"})
    answer = requests.get(f"{github_emulator.url}/repos/acme/data/tarball/main", headers=auth(token), timeout=10)
    assert answer.status_code == 200
    assert [r.status_code for r in answer.history] == [302]
    assert re.search(r"/_codeload/acme/data/legacy\.tar\.gz/main\?token=", answer.history[0].headers["Location"])
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as archive:
        names = archive.getnames()
        assert archive.pax_headers["comment"] == commit
        assert archive.extractfile(f"acme-data-{commit[:7]}/data/rows.csv").read() == b"a,b\n1,2\n"
    assert {n.split("/")[0] for n in names} == {f"acme-data-{commit[:7]}"}
    assert "<redacted>" in github_emulator.calls[-1].query["token"]
    forged = requests.get(f"{github_emulator.url}/_codeload/acme/data/legacy.tar.gz/main?token=forged", timeout=10)
    assert forged.status_code == 404


def test_tarball_permissions_missing_ref_and_raw_bytes(github_emulator: SeededGitHubEmulator, token: str) -> None:
    hostile = gzip.compress(b"not a tar at all")
    github_emulator.set_tarball("acme/data", SHA, hostile)
    github_emulator.tarball_redirect = False
    direct = requests.get(f"{github_emulator.url}/repos/acme/data/tarball/{SHA}", headers=auth(token), timeout=10)
    assert (direct.status_code, direct.history, direct.content) == (200, [], hostile)
    no_contents = github_emulator.issue_token(permissions={"statuses": "write"})
    refused = requests.get(
        f"{github_emulator.url}/repos/acme/data/tarball/{SHA}", headers=auth(no_contents), timeout=10
    )
    assert refused.status_code == 403
    missing = requests.get(f"{github_emulator.url}/repos/acme/data/tarball/nope", headers=auth(token), timeout=10)
    assert missing.status_code == 404


# ------------------------------------------------------------------------------------------- GHES


def test_ghes_base_path_with_pygithub(github_emulator: SeededGitHubEmulator) -> None:
    app_auth = Auth.AppAuth(github_emulator.app_id, github_emulator.app_key.pem.decode())
    installation_auth = app_auth.get_installation_auth(github_emulator.installation_id)
    gh = Github(base_url=github_emulator.ghes_url, auth=installation_auth, lazy=True, **NO_THROTTLE)
    repo = gh.get_repo("acme/data")
    commit = repo.get_commit(SHA)
    commit.create_status(state="success", context="release-data-prep", description="published")
    assert [s.state for s in commit.get_statuses()] == ["success"]
    assert commit.get_combined_status().state == "success"
    deployment = repo.create_deployment(
        ref=SHA, environment="staging", auto_merge=False, required_contexts=[], production_environment=False
    )
    deployment.create_status("success", description="synced", environment_url="https://staging.example")
    assert [d.state for d in github_emulator.deployments("acme/data")] == ["success"]
    assert {c.path.startswith("/api/v3/") for c in github_emulator.calls} == {True}
    for i in range(35):
        github_emulator.add_comment("acme/data", 4, f"c{i}")
    listed = requests.get(
        f"{github_emulator.ghes_url}/repos/acme/data/issues/4/comments",
        headers=auth(github_emulator.issue_token()),
        timeout=10,
    )
    assert listed.links["next"]["url"].startswith(f"{github_emulator.ghes_url}/repos/acme/data/issues/4/comments?")
    assert github_emulator.calls[-1].path == "/api/v3/repos/acme/data/issues/4/comments"
    assert github_emulator.invalid_requests == []


def test_the_emulators_own_answers_are_checked_against_the_description(github_app_key) -> None:
    class Broken(SeededGitHubEmulator):
        def _status_json(self, ctx, status, full=True):
            answer = super()._status_json(ctx, status, full)
            del answer["context"]
            return answer

    with Broken(github_app_key).seed() as emu:
        assert post_status(emu, emu.issue_token(), state="success").status_code == 201
    (problem,) = emu.invalid_responses
    assert "'context' is a required property" in problem.detail
