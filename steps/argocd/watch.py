"""Wait for an Application to be live at one commit: the watch-stream feed (or polling) and the stability loop."""

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from steps.argocd.settings import ArgoCDSettings
from steps.policy.deploy import OutcomeKind, RevisionWatch, timeout_reason
from steps.runtime.errors import ConfigError, InfraError, StepError

log = logging.getLogger(__name__)

RECONNECT_FIRST_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 5.0
# How long Argo CD may stay Synced at another commit before GitHub is asked whether that commit is newer.
# After a push, the refresh moves the app to the new commit within about a second; asking only when it
# stays put keeps the happy path free of the extra call, and a superseded commit is still known within
# the stability window plus these seconds.
COMPARE_AFTER_SECONDS = 2.0


@dataclass(frozen=True)
class Outcome:
    """How a wait for a commit ended.

    Attributes:
        kind: deployed, degraded, superseded or timed_out.
        reason: Argo CD's message or what was last seen, for people.
        app: The Application.
        sha: The commit waited for.
        revision: The revision Argo CD compared to at the end ("" when unknown).
        elapsed_seconds: How long the wait took.
        via: "stream" or "poll" (the stream endpoint was unavailable).
        reconnects: How often a dropped stream was reopened.
    """

    kind: OutcomeKind
    reason: str
    app: str
    sha: str
    revision: str = ""
    elapsed_seconds: float = 0.0
    via: str = "stream"
    reconnects: int = 0


class AppNotFound(ConfigError):
    """Argo CD answered 403 or 404 for the app: it does not exist (yet), or the token may not see it."""


class StreamUnavailable(Exception):
    """The watch endpoint cannot be used here (404, 405, 501 or connection refused): poll instead."""


class ArgoCDApi(Protocol):
    """What the wait needs of an Argo CD client; :class:`steps.argocd.client.ArgoCDClient` is one."""

    settings: ArgoCDSettings

    def get_application(self, name: str, *, project: str | None = None, refresh: str | None = None) -> dict[str, Any]:
        """``GET /api/v1/applications/{name}``."""

    def watch(
        self, name: str, *, project: str | None = None, holder: list[requests.Response] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow one watch stream of application ``name``, yielding ``(event type, application)``."""


def _abort(holder: list[requests.Response]) -> None:
    """Wake a thread blocked reading a stream by shutting its socket down."""
    for response in list(holder):
        raw = response.raw
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        if sock is None:  # http.client took the socket over ("Connection: close"): fp -> SocketIO -> socket
            sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Feed(threading.Thread):
    """Background reader: watch events (reconnecting), or polls when the stream is unavailable, into a queue."""

    def __init__(self, client: ArgoCDApi, app: str, project: str | None, out: "queue.Queue[tuple[Any, ...]]") -> None:
        super().__init__(name=f"argocd-watch-{app}", daemon=True)
        self.client, self.app, self.project, self.out = client, app, project, out
        self.stop = threading.Event()
        self.holder: list[requests.Response] = []
        self.via = "stream"
        self.reconnects = 0

    def close(self) -> None:
        self.stop.set()
        for _ in range(4):  # a stream opened while stopping is aborted on the next round
            _abort(self.holder)
            self.join(timeout=0.5)
            if not self.is_alive():
                return

    def run(self) -> None:
        try:
            if not self._stream():
                self._poll()
        except StepError as exc:
            self.out.put(("error", exc))
        except Exception as exc:  # a bug must not leave the waiter hanging until its timeout
            self.out.put(("error", InfraError(f"Argo CD watch failed: {type(exc).__name__}: {exc}")))

    def _stream(self) -> bool:
        """Follow the stream until stopped (True) or until it proves unavailable (False)."""
        delay = RECONNECT_FIRST_SECONDS
        while not self.stop.is_set():
            delivered = False
            try:
                for kind, application in self.client.watch(self.app, project=self.project, holder=self.holder):
                    delivered = True
                    self.out.put(("event", kind, application))
                    if self.stop.is_set():
                        return True
                reason = "ended"
            except StreamUnavailable as exc:
                log.warning(
                    "Argo CD watch stream unavailable (%s); polling every %g s instead",
                    exc,
                    self.client.settings.poll_seconds,
                )
                return False
            except (requests.RequestException, Urllib3Error, OSError, InfraError) as exc:
                reason = type(exc).__name__
            if self.stop.is_set():
                return True
            delay = RECONNECT_FIRST_SECONDS if delivered else min(delay * 2, RECONNECT_MAX_SECONDS)
            self.reconnects += 1
            log.info("Argo CD watch stream %s; reconnecting in %.1f s", reason, delay)
            self.stop.wait(delay)
        return True

    def _poll(self) -> None:
        self.via = "poll"
        interval = self.client.settings.poll_seconds
        while not self.stop.wait(interval):
            try:
                self.out.put(("event", "POLL", self.client.get_application(self.app, project=self.project)))
            except InfraError as exc:
                log.warning("polling Argo CD failed (%s); trying again in %g s", exc.summary, interval)


@dataclass
class Wait:
    """One wait for ``app`` to be live at ``sha``: a first GET, then the feed's events until a verdict holds."""

    client: ArgoCDApi
    app: str
    sha: str
    stability: float
    timeout: float
    project: str | None
    started: float = field(default=0.0, init=False)
    deadline: float = field(default=0.0, init=False)
    last_error: str = field(default="", init=False)
    wait_for_app: bool = field(default=False, init=False)
    is_newer: Callable[[str], bool] | None = field(default=None, init=False)

    def outcome(self, kind: OutcomeKind, reason: str, feed: _Feed | None, revision: str = "") -> Outcome:
        """The :class:`Outcome` of this wait, timed from its start."""
        return Outcome(
            kind,
            reason,
            self.app,
            self.sha,
            revision,
            round(time.monotonic() - self.started, 3),
            feed.via if feed else "stream",
            feed.reconnects if feed else 0,
        )

    def first_look(self, refresh: bool) -> dict[str, Any] | None:
        """GET the application, retrying while Argo CD is unreachable; None once the deadline passes."""
        delay = 0.5
        while True:
            try:
                mode = "normal" if refresh else None
                return self.client.get_application(self.app, project=self.project, refresh=mode)
            except AppNotFound as exc:
                if not self.wait_for_app:
                    raise
                # Not there yet: the ApplicationSet controller creates a preview app on its next PR poll
                # (requeueAfterSeconds), so look again at the polling interval until the deadline.
                pause = self.client.settings.poll_seconds
                if time.monotonic() + pause >= self.deadline:
                    self.last_error = f"application {self.app} did not appear ({exc.summary[:60]})"
                    return None
                log.info("Argo CD has no application %s yet; looking again in %g s", self.app, pause)
                time.sleep(pause)
            except InfraError as exc:
                if time.monotonic() + delay >= self.deadline:
                    self.last_error = exc.summary
                    return None
                log.warning("%s; trying again in %.1f s", exc.summary, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def run(self, refresh: bool) -> Outcome:
        """Wait until a verdict is final (or the timeout passes), stopping the feed on the way out."""
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout
        watch = RevisionWatch(self.sha, self.is_newer)
        first = self.first_look(refresh)
        if first is None:
            if self.last_error.startswith("application "):
                return self.outcome("timed_out", f"{self.last_error} within {self.timeout:g} s", None)
            return self.outcome("timed_out", f"Argo CD unreachable for {self.timeout:g} s: {self.last_error}", None)
        events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        feed: _Feed | None = None
        stable_key: tuple[str, ...] | None = None
        stable_since = 0.0
        other: str | None = None  # another revision Argo CD is Synced at, not yet compared
        other_since = 0.0
        item: tuple[Any, ...] | None = ("event", "GET", first)
        try:
            while True:
                if item is not None and item[0] == "error":
                    raise item[1]
                if item is not None:
                    kind, application = item[1], item[2]
                    if kind == "DELETED":
                        return self.outcome("degraded", f"Argo CD application {self.app} was deleted", feed)
                    verdict = watch.observe(application)
                    revision = verdict.snapshot.sync_revisions[0] if verdict.snapshot.sync_revisions else ""
                    if verdict.state in ("degraded", "superseded"):
                        return self.outcome(verdict.state, verdict.reason, feed, revision)
                    if verdict.state == "deployed":
                        if verdict.snapshot.fingerprint != stable_key:
                            stable_key, stable_since = verdict.snapshot.fingerprint, time.monotonic()
                    else:
                        stable_key = None
                    pending = watch.pending_compare()
                    if pending != other:
                        other, other_since = pending, time.monotonic()
                now = time.monotonic()
                if other is not None and now - other_since >= COMPARE_AFTER_SECONDS:
                    other = None
                    verdict = watch.ask()
                    if verdict.state == "superseded":
                        revision = verdict.snapshot.sync_revisions[0]
                        return self.outcome("superseded", verdict.reason, feed, revision)
                if stable_key is not None and now - stable_since >= self.stability:
                    return self.outcome("deployed", watch.last.reason if watch.last else "", feed, self.sha)
                if now >= self.deadline:
                    reason = timeout_reason(self.app, self.sha, self.timeout, watch.last)
                    last = watch.last.snapshot.sync_revisions if watch.last else ()
                    return self.outcome("timed_out", reason, feed, last[0] if last else "")
                if feed is None:
                    feed = _Feed(self.client, self.app, self.project, events)
                    feed.start()
                wait = self.deadline - now
                if stable_key is not None:
                    wait = min(wait, stable_since + self.stability - now)
                if other is not None:
                    wait = min(wait, other_since + COMPARE_AFTER_SECONDS - now)
                try:
                    item = events.get(timeout=max(wait, 0.0))
                except queue.Empty:
                    item = None
        finally:
            if feed is not None:
                feed.close()


__all__ = [
    "COMPARE_AFTER_SECONDS",
    "AppNotFound",
    "ArgoCDApi",
    "Outcome",
    "RECONNECT_FIRST_SECONDS",
    "RECONNECT_MAX_SECONDS",
    "StreamUnavailable",
    "Wait",
]
