"""Test fixtures: moto's S3 server over real HTTP on 127.0.0.1, with request recording and fault injection.

The server is moto's own WSGI application (the one ``moto_server`` runs) behind a small middleware that
records every request server-side (method, key, query, body bytes received, status) and can inject S3
errors or rewrite a response checksum, plus a TCP proxy that cuts connections mid-request. It models
the S3 REST API the artifact store talks to (https://docs.aws.amazon.com/AmazonS3/latest/API/).

Use it from a test module with ``pytest_plugins = ["tests.support.s3_helpers"]`` (or
``from tests.support.s3_helpers import s3_server  # noqa: F401``). Run
``python -m tests.support.s3_helpers --port 0`` to serve it in its own process (the benchmark does); it prints
``PORT <n>`` and answers ``GET /_s3_helpers/stats`` and ``POST /_s3_helpers/reset``.
"""

from __future__ import annotations

import argparse
import atexit
import fnmatch
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

import boto3
import pytest
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

CONTROL_PREFIX = "/_s3_helpers/"
_LINGER_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends a TCP reset
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    bucket: str
    key: str
    query: frozenset[str]
    body_bytes: int
    status: int
    seconds: float


@dataclass
class Fault:
    """A misbehaviour to inject for requests that match ``method``, ``key`` (fnmatch) and ``query``.

    With ``status`` set the request is answered with that S3 error without reaching moto; with
    ``checksum`` set it reaches moto and the response's ``x-amz-checksum-sha256`` or ``-crc32`` is replaced.
    """

    method: str | None = None
    key: str | None = None
    query: str | None = None
    times: int = 1
    status: int | None = 500
    code: str = "InternalError"
    checksum: str | None = None
    hits: int = 0

    def matches(self, method: str, key: str, query: frozenset[str]) -> bool:
        return (
            self.hits < self.times
            and (self.method is None or self.method == method)
            and (self.key is None or fnmatch.fnmatchcase(key, self.key))
            and (self.query is None or self.query in query)
        )


class _CountingInput:
    """Wraps ``wsgi.input`` and counts the bytes the application reads from it."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.count = 0

    def read(self, *args):
        data = self._stream.read(*args)
        self.count += len(data)
        return data

    def readline(self, *args):
        data = self._stream.readline(*args)
        self.count += len(data)
        return data

    def readinto(self, buffer):
        n = self._stream.readinto(buffer)
        self.count += n or 0
        return n

    def __getattr__(self, name):
        return getattr(self._stream, name)


class RecordingApp:
    """WSGI middleware in front of moto: records requests, injects faults, makes conditional PUTs atomic."""

    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.conditional_lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []

    def _run_app(self, environ, start_response) -> list[bytes]:
        result = self.app(environ, start_response)
        try:
            return list(result)
        finally:
            if hasattr(result, "close"):
                result.close()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def stats(self) -> dict:
        with self.lock:
            requests = list(self.requests)
        by_method: dict[str, int] = {}
        seconds: dict[str, float] = {}
        for r in requests:
            by_method[r.method] = by_method.get(r.method, 0) + 1
            kind = f"{r.method} {'&'.join(sorted(r.query)) or '-'}"
            seconds[kind] = round(seconds.get(kind, 0.0) + r.seconds, 3)
        return {
            "requests": len(requests),
            "body_bytes": sum(r.body_bytes for r in requests),
            "by_method": by_method,
            "seconds_by_kind": seconds,
        }

    def _control(self, environ, start_response):
        path = environ["PATH_INFO"][len(CONTROL_PREFIX) :]
        if path == "reset":
            self.reset()
        body = json.dumps(self.stats()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response)
        bucket, _, key = unquote(path).lstrip("/").partition("/")
        method = environ["REQUEST_METHOD"]
        query = frozenset(parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        started = time.perf_counter()
        counting = _CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = counting
        with self.lock:
            fault = next((f for f in self.faults if f.matches(method, key, query)), None)
            if fault is not None:
                fault.hits += 1
        status_seen: list[int] = []

        def recording_start_response(status, headers, exc_info=None):
            status_seen.append(int(status.split()[0]))
            if fault is not None and fault.checksum is not None:
                rewritten = ("x-amz-checksum-sha256", "x-amz-checksum-crc32")
                headers = [(h, fault.checksum if h.lower() in rewritten else v) for h, v in headers]
            return start_response(status, headers, exc_info)

        try:
            if fault is not None and fault.status is not None:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                while length > 0:
                    chunk = counting.read(min(length, 1 << 20))
                    if not chunk:
                        break
                    length -= len(chunk)
                body = (
                    f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                    f"<Message>injected by tests.support.s3_helpers</Message></Error>"
                ).encode()
                recording_start_response(
                    f"{fault.status} Injected",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
                )
                return [body]
            if method == "PUT" and ("HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ):
                # S3 decides a conditional write atomically; moto checks and then writes, so serialize.
                with self.conditional_lock:
                    return self._run_app(environ, recording_start_response)
            return self._run_app(environ, recording_start_response)
        finally:
            with self.lock:
                self.requests.append(
                    RecordedRequest(
                        method,
                        bucket,
                        key,
                        query,
                        counting.count,
                        status_seen[0] if status_seen else 0,
                        time.perf_counter() - started,
                    )
                )


class _QuietHandler(MotoRequestHandler):
    def log_request(self, code="-", size="-") -> None:
        """Keep test output clean: no access log line per request."""


class MotoS3Server:
    """moto's S3 server in a background thread on 127.0.0.1, wrapped by :class:`RecordingApp`."""

    def __init__(self, port: int = 0) -> None:
        self.app = RecordingApp(DomainDispatcherApplication(create_backend_app))
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class TcpProxy:
    """A TCP relay to 127.0.0.1:``target_port`` that resets connections mid-request or mid-response.

    A connection is reset once it has carried ``cut_after`` bytes upstream (client to server) or
    ``cut_down_after`` bytes downstream; at most ``max_cuts`` connections are cut (``None``: all).
    """

    def __init__(
        self,
        target_port: int,
        *,
        cut_after: int | None = None,
        cut_down_after: int | None = None,
        max_cuts: int | None = None,
    ) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.cut_down_after = cut_down_after
        self.max_cuts = max_cuts
        self.cuts = 0
        self.bytes_upstream = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump_up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(upstream, client), daemon=True).start()

    def _may_cut(self) -> bool:
        with self._lock:
            if self.max_cuts is not None and self.cuts >= self.max_cuts:
                return False
            self.cuts += 1
            return True

    def _pump_up(self, client: socket.socket, upstream: socket.socket) -> None:
        carried = 0
        try:
            while data := client.recv(65536):
                carried += len(data)
                with self._lock:
                    self.bytes_upstream += len(data)
                if self.cut_after is not None and carried > self.cut_after and self._may_cut():
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                    break
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                s.close()

    def _pump_down(self, upstream: socket.socket, client: socket.socket) -> None:
        carried = 0
        try:
            while data := upstream.recv(65536):
                if self.cut_down_after is not None and carried + len(data) > self.cut_down_after and self._may_cut():
                    client.sendall(data[: max(self.cut_down_after - carried, 0)])
                    # shutdown, not just close: the other pump thread is blocked in recv on this socket.
                    client.shutdown(socket.SHUT_RDWR)
                    break
                carried += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()


_SERVER: MotoS3Server | None = None


def shared_server() -> MotoS3Server:
    """Start (once per process) and return the shared moto S3 server."""
    global _SERVER
    if _SERVER is None:
        _SERVER = MotoS3Server()
        atexit.register(_SERVER.stop)
    return _SERVER


def s3_client(endpoint_url: str, max_attempts: int = 3):
    """A boto3 S3 client for ``endpoint_url`` with the fake credentials."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        config=Config(retries={"mode": "standard", "max_attempts": max_attempts}),
    )


@dataclass
class S3Fixture:
    """What the ``s3_server`` fixture yields: the endpoint, a client, a fresh bucket and server controls."""

    endpoint_url: str
    client: object
    bucket: str
    server: MotoS3Server
    proxies: list[TcpProxy] = field(default_factory=list)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.server.app.lock:
            return list(self.server.app.requests)

    def new_client(self, endpoint_url: str | None = None, max_attempts: int = 3):
        """Another client with the fake credentials, for this server or a proxy in front of it."""
        return s3_client(endpoint_url or self.endpoint_url, max_attempts)

    def fault(self, **kwargs) -> Fault:
        """Inject a :class:`Fault` for the rest of this test."""
        return self.server.app.add_fault(Fault(**kwargs))

    def proxy(self, *, cut_after: int | None = None, max_cuts: int | None = None) -> TcpProxy:
        """A :class:`TcpProxy` in front of the server that cuts requests, closed when the test ends."""
        p = TcpProxy(self.server.port, cut_after=cut_after, max_cuts=max_cuts)
        self.proxies.append(p)
        return p

    def keys(self, prefix: str = "") -> list[str]:
        """Every key in the bucket under ``prefix``, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def open_multipart_uploads(self) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        return sorted(u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []))


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Fixture]:
    """moto's S3 server over HTTP with a fresh bucket; the fake credentials are set in the environment."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    server = shared_server()
    server.app.reset()
    client = s3_client(server.endpoint_url)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    server.app.reset()
    fixture = S3Fixture(server.endpoint_url, client, bucket, server)
    yield fixture
    for p in fixture.proxies:
        p.close()
    server.app.reset()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[..., TcpProxy]]:
    """Factory for :class:`TcpProxy` instances in front of any local port, closed when the test ends."""
    proxies: list[TcpProxy] = []

    def make(target_port: int, **kwargs) -> TcpProxy:
        proxies.append(TcpProxy(target_port, **kwargs))
        return proxies[-1]

    yield make
    for p in proxies:
        p.close()


def main(argv: list[str] | None = None) -> None:
    """Serve moto behind the recording middleware until killed (used by the benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = MotoS3Server(args.port)
    print(f"PORT {server.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])

__all__ = [
    "FAKE_CREDENTIALS",
    "Fault",
    "MotoS3Server",
    "RecordedRequest",
    "RecordingApp",
    "S3Fixture",
    "TcpProxy",
    "s3_client",
    "s3_server",
    "shared_server",
    "tcp_proxy",
]
