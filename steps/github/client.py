"""How to call GitHub: PyGithub with a time-bounded retry policy and a token re-minted once on 401."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import requests
from github import Auth, BadCredentialsException, Github, GithubException, GithubRetry
from github.Repository import Repository
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse

from steps.runtime.errors import ConfigError, InfraError

log = logging.getLogger(__name__)
T = TypeVar("T")


class LostAnswer(InfraError):
    """GitHub did not answer (connection dropped or timed out): the request may or may not have been carried out."""


class BudgetRetry(GithubRetry):
    """``GithubRetry`` that stops once a call's retries would outlast ``budget`` seconds.

    Args:
        budget: Seconds from the first failed attempt after which no further attempt starts.
        deadline: Internal: the monotonic deadline carried between attempts of one call.
        **kwargs: Passed to ``GithubRetry``/``urllib3.Retry``.
    """

    def __init__(self, budget: float = 90.0, deadline: float | None = None, **kwargs: Any) -> None:
        self.budget = budget
        self.deadline = deadline
        super().__init__(**kwargs)

    def new(self, **kw: Any) -> BudgetRetry:  # noqa: D102
        kw.update(budget=self.budget, deadline=self.deadline)
        return super().new(**kw)

    def increment(  # noqa: D102
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> BudgetRetry:
        if error is not None and response is None and (method or "").upper() == "POST":
            if not self._is_connection_error(error):
                # Sent, then no answer (a dropped connection, a read time-out): GitHub may have carried the create
                # out. Never resend it here; RepoClient.create looks up what the lost attempt made first.
                raise MaxRetryError(
                    _pool,  # type: ignore[arg-type]  # urllib3 itself passes None here
                    url or "",
                    error,
                ) from error
        deadline = self.deadline if self.deadline is not None else time.monotonic() + self.budget
        retry = super().increment(method, url, response, error, _pool, _stacktrace)  # type: ignore[arg-type]
        assert isinstance(retry, BudgetRetry)  # new() keeps the class
        retry.deadline = deadline
        wait = retry.get_backoff_time()
        if response is not None:
            wait = max(wait, retry.get_retry_after(response) or 0.0)
        if time.monotonic() + wait > deadline:
            cause = f"HTTP {response.status}" if response is not None else type(error).__name__
            raise MaxRetryError(
                _pool,  # type: ignore[arg-type]  # urllib3 itself passes None here
                url,
                ResponseError(f"gave up after the {self.budget:g} s retry budget ({cause})"),
            )
        log.info(
            "GitHub %s %s failed (%s); retrying in %.1f s",
            method,
            url,
            response.status if response is not None else type(error).__name__,
            wait,
        )
        return retry


def make_retry(budget: float, *, backoff_factor: float = 0.5, backoff_max: float = 30.0) -> BudgetRetry:
    """The retry policy for every GitHub call (see the module docstring)."""
    return BudgetRetry(
        budget=budget,
        total=12,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=backoff_factor,
        status_forcelist=[*range(500, 600), 429],
        secondary_rate_wait=min(60.0, budget),
        max_rate_limit_wait=budget,
        raise_on_status=False,
    )


def github_for(
    api_url: str,
    *,
    token: str | None = None,
    jwt_token: str | None = None,
    timeout: float = 10.0,
    budget: float = 90.0,
    backoff_factor: float = 0.5,
) -> Github:
    """A lazy PyGithub client for ``api_url`` authenticated by an installation token or an App JWT."""
    auth = Auth.AppAuthToken(jwt_token) if jwt_token else Auth.Token(token) if token else None
    return Github(
        base_url=api_url.rstrip("/"),
        auth=auth,
        timeout=max(1, round(timeout)),
        retry=make_retry(budget, backoff_factor=backoff_factor),
        per_page=100,
        lazy=True,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


class RepoClient:
    """PyGithub bound to one repository, with an installation token minted on first use.

    Args:
        api_url: REST API base URL.
        repository: ``owner/name``.
        mint: Returns a fresh installation token string for this repository.
        timeout: Seconds per request.
        budget: Seconds of retries per call.
    """

    def __init__(
        self,
        api_url: str,
        repository: str,
        mint: Callable[[], str],
        *,
        timeout: float = 10.0,
        budget: float = 90.0,
        backoff_factor: float = 0.5,
    ) -> None:
        self.api_url = api_url
        self.repository = repository
        self._mint = mint
        self._timeout = timeout
        self._budget = budget
        self._backoff = backoff_factor
        self._repo: Repository | None = None

    def _repository(self) -> Repository:
        if self._repo is None:
            gh = github_for(
                self.api_url,
                token=self._mint(),
                timeout=self._timeout,
                budget=self._budget,
                backoff_factor=self._backoff,
            )
            self._repo = gh.get_repo(self.repository)
        return self._repo

    def call(self, action: str, fn: Callable[[Repository], T]) -> T:
        """Run ``fn`` against the repository; on 401 mint a new token once and run it again.

        Args:
            action: What the call does, for error messages ("set the commit status").
            fn: Receives the lazy ``Repository``.

        Raises:
            InfraError: GitHub failed beyond the retry budget, or still refused the token.
            ConfigError: GitHub refused the request itself (403 permission, 404, 422).
        """
        for attempt in (1, 2):
            try:
                return fn(self._repository())
            except BadCredentialsException:
                self._repo = None
                if attempt == 2:
                    raise InfraError(
                        f"GitHub refused a freshly minted token to {action} in {self.repository}"
                    ) from None
                log.warning("GitHub answered 401 to %s; minting a new installation token once", action)
            except GithubException as exc:
                raise github_error(exc, action, self.repository) from None
            except requests.RequestException as exc:
                # A retry budget spent on answers (5xx, rate limits) is final; no answer at all may hide a write.
                kind = InfraError if isinstance(exc, requests.exceptions.RetryError) else LostAnswer
                raise kind(
                    f"GitHub unreachable to {action} in {self.repository}: {type(exc).__name__}",
                    detail=f"{action} in {self.repository}: {exc}",
                ) from None
        raise AssertionError("unreachable")

    def create(
        self, action: str, fn: Callable[[Repository], T], find: Callable[[Repository], T | None] | None = None
    ) -> T:
        """Run a create (a POST) that is never blindly resent: after a lost answer, look up before retrying.

        A dropped connection, a time-out or a 5xx can come after GitHub wrote the object; ``find`` returns what
        that attempt made (by the payload's run id, a comment's marker), else None and the create is sent
        again. Without ``find`` the create must be harmless to repeat (a commit status). Retries stop after
        the client's retry budget.
        """
        deadline = time.monotonic() + self._budget
        delay = self._backoff * 2
        while True:
            try:
                return self.call(action, fn)
            except LostAnswer as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s; looking up what GitHub made before trying again in %.1f s", exc.summary, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
            if find is not None:
                made = self.call(f"look up the result of: {action}", find)
                if made is not None:
                    log.info("GitHub had done it: %s", action)
                    return made


def github_error(exc: GithubException, action: str, repository: str) -> Exception:
    """Turn a PyGithub error into a step error whose message names the action and GitHub's reason."""
    data = exc.data if isinstance(exc.data, dict) else {}
    reason = data.get("message", "")
    errors = data.get("errors") or []
    if errors and isinstance(errors[0], dict) and errors[0].get("message"):
        reason = f"{reason}: {errors[0]['message']}"
    text = f"GitHub {exc.status} trying to {action} in {repository}: {reason}".strip().rstrip(":")
    if exc.status in (403, 404, 422) and "rate limit" not in reason.lower():
        return ConfigError(text)
    return InfraError(text)


__all__ = ["BudgetRetry", "LostAnswer", "RepoClient", "github_error", "github_for", "make_retry"]
