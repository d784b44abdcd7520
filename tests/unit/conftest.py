"""Shared fixtures for unit tests: a scriptable HTTP server on 127.0.0.1."""
from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    server: _Server

    def handle(self) -> None:
        # The client tries HTTPS first on loopback registries. A TLS ClientHello starts with
        # 0x16; drop such connections at once instead of waiting for a request line that
        # never comes, so the client falls back to HTTP without delay.
        try:
            first = self.request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":
            self.server.owner.tls_attempts += 1
            return
        super().handle()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean

    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def _dispatch(self) -> None:
        owner = self.server.owner
        owner.requests.append(Request(self.command, self.path, dict(self.headers.items())))
        route = owner.routes.get(self.path_only)
        if route is None:
            self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no route"}]})
            return
        route(self)

    do_GET = _dispatch
    do_HEAD = _dispatch

    def reply(
        self,
        status: int,
        body: bytes | dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if isinstance(body, dict):
            data = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        else:
            data = body or b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class Request:
    def __init__(self, method: str, path: str, headers: dict[str, str]):
        self.method = method
        self.path = path
        self.headers = {k.lower(): v for k, v in headers.items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: TestServer


class TestServer:
    """An HTTP/1.0 server in a thread whose routes tests set: path → fn(handler)."""

    __test__ = False

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.tls_attempts = 0
        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def route(self, path: str) -> Callable[[Route], Route]:
        def deco(fn: Route) -> Route:
            self.routes[path] = fn
            return fn

        return deco

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if urlsplit(r.path).path == path]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[TestServer]:
    s = TestServer()
    yield s
    s.stop()


@pytest.fixture
def server2() -> Iterator[TestServer]:
    s = TestServer()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def ipam_books(tmp_path, monkeypatch):
    """The host-wide address books of the bridges (network/ipam.py) in the test's own
    directory, never in the host's /run."""
    from pyminidocker.network import ipam

    monkeypatch.setattr(ipam, "BOOK_DIR", str(tmp_path / "ipam-books"))


def containers_exist(root, *ids: str) -> None:
    """The store directories of containers ids, so that the reconciliation of addresses
    (network/ipam.py) takes them for living containers being set up by this process."""
    for cid in ids:
        (root / "containers" / cid).mkdir(parents=True, exist_ok=True)
