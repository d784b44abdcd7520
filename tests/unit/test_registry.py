"""The registry client against a scripted HTTP server on 127.0.0.1.

The server injects what a real registry rarely does on demand: auth challenges, rate limits,
flaky connections, cross-host redirects, servers that ignore Range.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import stat
from email.utils import formatdate
from pathlib import Path

import pytest

from pyminidocker.config import Config
from pyminidocker.errors import (
    AuthError,
    ManifestUnknown,
    NotFound,
    PmdError,
    RegistryError,
    UnsupportedMedia,
    UsageError,
    VerificationError,
)
from pyminidocker.image import auth, blobs, manifest, transport
from pyminidocker.image.auth import load_credentials, parse_www_authenticate
from pyminidocker.image.manifest import (
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
    Manifest,
    layer_compression,
    parse_manifest,
)
from pyminidocker.image.registry import RegistryClient

REPO = "foo/bar"


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    # No real waiting in tests: backoff starts at zero, sleeps are recorded instead.
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.0)


class Sleeps(list):
    def __call__(self, secs: float) -> None:
        self.append(secs)


def make_client(server, tmp_path: Path, creds: tuple[str, str] | None = None,
                registry: str | None = None, **cfg) -> RegistryClient:
    dc = tmp_path / "docker" / "config.json"
    if creds:
        dc.parent.mkdir(exist_ok=True)
        auth = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        dc.write_text(json.dumps({"auths": {server.host: {"auth": auth}}}))
    config = Config(root=tmp_path / "root", docker_config=dc, **cfg)
    return RegistryClient(config, registry or server.host, sleep=Sleeps())


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": MEDIA_TYPE_OCI_MANIFEST,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": "sha256:" + "1" * 64, "size": 10},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + "2" * 64, "size": 20}],
}).encode()


def serve_manifest(server, body=MANIFEST, ctype=MEDIA_TYPE_OCI_MANIFEST, ref="latest"):
    @server.route(f"/v2/{REPO}/manifests/{ref}")
    def _(h):
        h.reply(200, body, {"Content-Type": ctype})


# --- endpoint -----------------------------------------------------------------------------------


def test_loopback_tries_https_then_remembers_http(server, tmp_path):
    server.routes["/v2/"] = lambda h: h.reply(200, {})
    c = make_client(server, tmp_path)
    c.ping()
    c.ping()
    assert c.scheme == "http"
    assert server.tls_attempts == 1  # the choice is remembered
    assert server.requests[0].headers["user-agent"].startswith("pyminidocker/")


def test_public_registry_is_https_only(tmp_path):
    c = RegistryClient(Config(root=tmp_path), "example.com")
    assert not c.insecure and c.scheme == "https"
    assert RegistryClient(Config(root=tmp_path), "docker.io").host == "registry-1.docker.io"


@pytest.mark.parametrize("registry,insecure_list,expected", [
    ("localhost:5000", [], True),
    ("127.0.0.2:5000", [], True),
    ("[::1]:5000", [], True),
    ("myreg:5000", ["myreg:5000"], True),
    ("myreg:5000", ["myreg"], True),
    ("10.1.2.3:5000", ["10.0.0.0/8"], True),
    ("myreg:5000", ["other:5000"], False),
    ("docker.io", [], False),
])
def test_insecure_registries(registry, insecure_list, expected):
    assert transport.is_insecure_registry(registry, insecure_list) is expected


def test_unreachable_registry_is_one_line(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = RegistryClient(Config(root=tmp_path, docker_config=tmp_path / "c.json"),
                       f"127.0.0.1:{port}", sleep=Sleeps())
    with pytest.raises(RegistryError) as ei:
        c.ping()
    assert str(ei.value) == f"cannot reach registry 127.0.0.1:{port}: connection refused"
    assert len(c.sleep) == transport.MAX_ATTEMPTS - 1


# --- auth ---------------------------------------------------------------------------------------


def bearer_registry(server, *, user="alice", password="s3cret", anonymous=False,
                    token_key="token", expires_in=300):
    """A registry that wants a Bearer token from /token; the token server checks creds."""
    challenge = f'Bearer realm="{server.url}/token",service="test, registry"'

    @server.route("/token")
    def _(h):
        auth = h.headers.get("Authorization")
        ok_auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if auth != ok_auth and not (anonymous and auth is None):
            h.reply(401, {"details": "incorrect username or password"})
            return
        h.reply(200, {token_key: "tok123", "expires_in": expires_in})

    def guarded(inner):
        def route(h):
            if h.headers.get("Authorization") != "Bearer tok123":
                h.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                          "message": "authentication required"}]},
                        {"WWW-Authenticate": challenge + (
                            "" if h.path == "/v2/" else f',scope="repository:{REPO}:pull"')})
                return
            inner(h)
        return route

    return guarded


def test_bearer_token_flow_with_credentials(server, tmp_path):
    guarded = bearer_registry(server)
    server.routes[f"/v2/{REPO}/manifests/latest"] = guarded(
        lambda h: h.reply(200, MANIFEST, {"Content-Type": MEDIA_TYPE_OCI_MANIFEST}))
    c = make_client(server, tmp_path, creds=("alice", "s3cret"))
    m = c.get_manifest(REPO, "latest")
    assert m.body == MANIFEST and m.digest == sha(MANIFEST)
    assert m.media_type == MEDIA_TYPE_OCI_MANIFEST
    (tok,) = server.hits("/token")
    assert "scope=repository%3Afoo%2Fbar%3Apull" in tok.path
    assert "service=test%2C+registry" in tok.path  # the quoted comma survived parsing
    assert tok.headers["authorization"].startswith("Basic ")
    # The token is cached for the scope: a second pull asks the token server nothing.
    c.get_manifest(REPO, "latest")
    assert len(server.hits("/token")) == 1
    assert len(server.hits(f"/v2/{REPO}/manifests/latest")) == 3  # 401, ok, ok


def test_bearer_anonymous_and_access_token(server, tmp_path):
    guarded = bearer_registry(server, anonymous=True, token_key="access_token")
    server.routes[f"/v2/{REPO}/manifests/latest"] = guarded(
        lambda h: h.reply(200, MANIFEST, {"Content-Type": MEDIA_TYPE_OCI_MANIFEST}))
    c = make_client(server, tmp_path)
    assert c.get_manifest(REPO, "latest").body == MANIFEST
    (tok,) = server.hits("/token")
    assert "authorization" not in tok.headers


def test_expired_token_is_renewed(server, tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(auth, "_now", lambda: clock[0])
    guarded = bearer_registry(server, anonymous=True, expires_in=100)
    server.routes[f"/v2/{REPO}/manifests/latest"] = guarded(
        lambda h: h.reply(200, MANIFEST, {"Content-Type": MEDIA_TYPE_OCI_MANIFEST}))
    c = make_client(server, tmp_path)
    c.get_manifest(REPO, "latest")
    clock[0] += 80
    c.get_manifest(REPO, "latest")
    assert len(server.hits("/token")) == 1
    clock[0] += 15  # within the renewal margin: fetched again before the request
    c.get_manifest(REPO, "latest")
    assert len(server.hits("/token")) == 2
    assert len(server.hits(f"/v2/{REPO}/manifests/latest")) == 4  # one 401, then no more


def test_bearer_wrong_credentials(server, tmp_path):
    guarded = bearer_registry(server)
    server.routes[f"/v2/{REPO}/manifests/latest"] = guarded(lambda h: h.reply(200, MANIFEST))
    c = make_client(server, tmp_path, creds=("alice", "wrong"))
    with pytest.raises(AuthError) as ei:
        c.get_manifest(REPO, "latest")
    assert str(ei.value) == f"{server.host}: unauthorized: incorrect username or password"
    assert isinstance(ei.value, PermissionError)


def test_bearer_anonymous_refused_says_login(server, tmp_path):
    guarded = bearer_registry(server)  # anonymous not allowed
    server.routes[f"/v2/{REPO}/manifests/latest"] = guarded(lambda h: h.reply(200, MANIFEST))
    c = make_client(server, tmp_path)
    with pytest.raises(AuthError) as ei:
        c.get_manifest(REPO, "latest")
    assert "\n" not in str(ei.value) and "unauthorized" in str(ei.value)
    assert "login" in (ei.value.hint or "")


def basic_registry(server, user="bob", password="pw"):
    ok = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def guarded(inner):
        def route(h):
            if h.headers.get("Authorization") != ok:
                h.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                          "message": "authentication required"}]},
                        {"WWW-Authenticate": 'Basic realm="Registry Realm"'})
                return
            inner(h)
        return route

    return guarded


def test_basic_auth(server, tmp_path):
    guarded = basic_registry(server)
    server.routes[f"/v2/{REPO}/manifests/latest"] = guarded(
        lambda h: h.reply(200, MANIFEST, {"Content-Type": MEDIA_TYPE_OCI_MANIFEST}))
    c = make_client(server, tmp_path, creds=("bob", "pw"))
    assert c.get_manifest(REPO, "latest").body == MANIFEST
    c.get_manifest(REPO, "latest")  # Basic is now sent up front
    assert len(server.hits(f"/v2/{REPO}/manifests/latest")) == 3


def test_basic_auth_wrong_and_missing_credentials(server, tmp_path):
    guarded = basic_registry(server)
    server.routes[f"/v2/{REPO}/manifests/latest"] = guarded(lambda h: h.reply(200, MANIFEST))
    with pytest.raises(AuthError, match="incorrect username or password$"):
        make_client(server, tmp_path, creds=("bob", "nope")).get_manifest(REPO, "latest")
    with pytest.raises(AuthError, match="unauthorized: authentication required$"):
        make_client(server, tmp_path / "x").get_manifest(REPO, "latest")


@pytest.mark.parametrize("header,expected", [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
     [("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"})]),
    ('Bearer realm="r",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"',
     [("bearer", {"realm": "r", "scope": "repository:a/b:pull,push repository:c:pull",
                  "error": "insufficient_scope"})]),
    ('Basic realm="x, y", Bearer realm=tok,service = svc',
     [("basic", {"realm": "x, y"}), ("bearer", {"realm": "tok", "service": "svc"})]),
    ('bearer realm="a\\"b"', [("bearer", {"realm": 'a"b'})]),
    ("", []),
    ('=,"junk', [("junk", {})]),
])
def test_parse_www_authenticate(header, expected):
    assert parse_www_authenticate(header) == expected


# --- retries ------------------------------------------------------------------------------------


def flaky(server, path, statuses, headers=None):
    """Answer `statuses` in turn (then 200 with the manifest) on `path`."""
    todo = list(statuses)

    @server.route(path)
    def _(h):
        if todo:
            h.reply(todo.pop(0), {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]},
                    headers)
        else:
            h.reply(200, MANIFEST, {"Content-Type": MEDIA_TYPE_OCI_MANIFEST})


def test_429_honours_retry_after(server, tmp_path):
    flaky(server, f"/v2/{REPO}/manifests/latest", [429], {"Retry-After": "3"})
    c = make_client(server, tmp_path)
    assert c.get_manifest(REPO, "latest").body == MANIFEST
    assert c.sleep == [3.0]


def test_retry_after_http_date_and_cap(server, tmp_path):
    import time

    assert transport.parse_retry_after("120") == transport.RETRY_AFTER_CAP
    assert transport.parse_retry_after(formatdate(time.time() + 5, usegmt=True)) == pytest.approx(5, abs=1.5)
    assert transport.parse_retry_after("garbage") is None
    assert transport.parse_retry_after("-4") == 0.0


def test_503_is_retried_with_backoff(server, tmp_path, monkeypatch):
    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.001)
    flaky(server, f"/v2/{REPO}/manifests/latest", [503, 502, 500])
    c = make_client(server, tmp_path)
    assert c.get_manifest(REPO, "latest").body == MANIFEST
    assert c.sleep == [0.001, 0.002, 0.004]  # doubling


def test_503_forever_gives_up(server, tmp_path):
    flaky(server, f"/v2/{REPO}/manifests/latest", [503] * 10)
    c = make_client(server, tmp_path)
    with pytest.raises(RegistryError) as ei:
        c.get_manifest(REPO, "latest")
    assert len(server.hits(f"/v2/{REPO}/manifests/latest")) == transport.MAX_ATTEMPTS
    assert str(ei.value).startswith(f"{server.host}/foo/bar: ")


def test_a_500_is_reported_with_its_status(server, tmp_path):
    flaky(server, f"/v2/{REPO}/manifests/latest", [500] * 10)
    c = make_client(server, tmp_path)
    with pytest.raises(RegistryError) as ei:
        c.get_manifest(REPO, "latest")
    assert str(ei.value) == (f"{server.host}/foo/bar: received unexpected HTTP status: "
                             "500 Internal Server Error: toomanyrequests: slow down")


def test_404_is_not_retried(server, tmp_path):
    c = make_client(server, tmp_path)
    with pytest.raises(ManifestUnknown) as ei:
        c.get_manifest("nope", "latest")
    assert str(ei.value) == f"manifest for {server.host}/nope:latest not found: manifest unknown"
    assert isinstance(ei.value, NotFound)
    assert c.sleep == []


def test_name_unknown(server, tmp_path):
    server.routes["/v2/nope/manifests/v1"] = lambda h: h.reply(404, {"errors": [
        {"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]})
    with pytest.raises(ManifestUnknown, match="manifest for .*/nope:v1 not found: manifest unknown"):
        make_client(server, tmp_path).get_manifest("nope", "v1")


# --- redirects ----------------------------------------------------------------------------------


def test_redirect_to_other_host_drops_authorization(server, server2, tmp_path):
    blob = b"layer bytes" * 100
    digest = sha(blob)
    guarded = bearer_registry(server)
    server.routes[f"/v2/{REPO}/blobs/{digest}"] = guarded(
        lambda h: h.reply(307, b"", {"Location": f"{server2.url}/cdn/blob?sig=1"}))
    server2.routes["/cdn/blob"] = lambda h: h.reply(200, blob)
    c = make_client(server, tmp_path, creds=("alice", "s3cret"))
    got = bytearray()
    n = c.stream_blob(REPO, {"digest": digest, "size": len(blob)}, got.extend)
    assert bytes(got) == blob and n == len(blob)
    (cdn,) = server2.requests
    assert "authorization" not in cdn.headers
    # The registry itself did get the token.
    assert server.hits(f"/v2/{REPO}/blobs/{digest}")[-1].headers["authorization"] == "Bearer tok123"


def test_same_host_redirect_keeps_authorization(server, tmp_path):
    guarded = bearer_registry(server)
    server.routes[f"/v2/{REPO}/manifests/latest"] = guarded(
        lambda h: h.reply(302, b"", {"Location": "/elsewhere"}))
    server.routes["/elsewhere"] = guarded(
        lambda h: h.reply(200, MANIFEST, {"Content-Type": MEDIA_TYPE_OCI_MANIFEST}))
    c = make_client(server, tmp_path, creds=("alice", "s3cret"))
    assert c.get_manifest(REPO, "latest").body == MANIFEST


def test_redirect_loop(server, tmp_path):
    server.routes[f"/v2/{REPO}/manifests/latest"] = lambda h: h.reply(
        302, b"", {"Location": h.path})
    with pytest.raises(RegistryError, match="too many redirects"):
        make_client(server, tmp_path).get_manifest(REPO, "latest")


# --- manifests ----------------------------------------------------------------------------------


def test_manifest_accept_header_excludes_schema1(server, tmp_path):
    serve_manifest(server)
    make_client(server, tmp_path).get_manifest(REPO, "latest")
    accept = server.hits(f"/v2/{REPO}/manifests/latest")[0].headers["accept"]
    assert MEDIA_TYPE_OCI_INDEX in accept and MEDIA_TYPE_DOCKER_MANIFEST in accept
    assert manifest.MEDIA_TYPE_DOCKER_SCHEMA1 not in accept and "prettyjws" not in accept


def test_schema1_refused(server, tmp_path):
    body = json.dumps({"schemaVersion": 1, "name": REPO, "tag": "latest",
                       "fsLayers": [], "signatures": []}).encode()
    serve_manifest(server, body, MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED)
    with pytest.raises(UnsupportedMedia, match="schema1 manifests are not supported.*newer client"):
        make_client(server, tmp_path).get_manifest(REPO, "latest")
    # Also when the server does not say what it is.
    serve_manifest(server, body, "application/json")
    with pytest.raises(UnsupportedMedia, match="schema1"):
        make_client(server, tmp_path).get_manifest(REPO, "latest")


def test_pull_by_digest_verified(server, tmp_path):
    good = sha(MANIFEST)
    serve_manifest(server, ref=good)
    c = make_client(server, tmp_path)
    assert c.get_manifest(REPO, good).digest == good
    bad = "sha256:" + "f" * 64
    serve_manifest(server, ref=bad)
    with pytest.raises(VerificationError) as ei:
        c.get_manifest(REPO, bad)
    assert bad in str(ei.value) and good in str(ei.value)


def test_generic_content_type_is_inferred(server, tmp_path):
    serve_manifest(server, ctype="application/json")
    m = make_client(server, tmp_path).get_manifest(REPO, "latest")
    assert m.media_type == MEDIA_TYPE_OCI_MANIFEST
    index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    serve_manifest(server, index, "")
    assert make_client(server, tmp_path).get_manifest(REPO, "latest").media_type == \
        MEDIA_TYPE_OCI_INDEX


def test_parse_manifest_validation():
    m = Manifest(MANIFEST, MEDIA_TYPE_OCI_MANIFEST, sha(MANIFEST))
    assert parse_manifest(m)["layers"][0]["size"] == 20
    assert manifest.is_index(MEDIA_TYPE_OCI_INDEX) and not manifest.is_index(MEDIA_TYPE_OCI_MANIFEST)
    with pytest.raises(UnsupportedMedia, match="does not match"):
        parse_manifest(Manifest(MANIFEST, MEDIA_TYPE_OCI_INDEX, "sha256:x"))
    with pytest.raises(UnsupportedMedia, match="not JSON"):
        parse_manifest(Manifest(b"{", MEDIA_TYPE_OCI_MANIFEST, "sha256:x"))
    bad = json.loads(MANIFEST)
    bad["layers"][0]["digest"] = "sha256:zz"
    with pytest.raises(UnsupportedMedia, match="bad digest"):
        parse_manifest(Manifest(json.dumps(bad).encode(), MEDIA_TYPE_OCI_MANIFEST, "sha256:x"))
    bad = json.loads(MANIFEST)
    bad["schemaVersion"] = 3
    with pytest.raises(UnsupportedMedia, match="schemaVersion"):
        parse_manifest(Manifest(json.dumps(bad).encode(), MEDIA_TYPE_OCI_MANIFEST, "sha256:x"))
    # A missing Content-Type is inferred from the body.
    assert parse_manifest(Manifest(MANIFEST, "", "sha256:x"))["schemaVersion"] == 2


@pytest.mark.parametrize("mt,expected", [
    ("application/vnd.oci.image.layer.v1.tar", "none"),
    ("application/vnd.oci.image.layer.v1.tar+gzip", "gzip"),
    ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
    ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "gzip"),
    ("application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"),
    ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "gzip"),
])
def test_layer_compression(mt, expected):
    assert layer_compression(mt) == expected


def test_layer_compression_unknown():
    with pytest.raises(UnsupportedMedia):
        layer_compression("application/x-tar+bzip2")


# --- blobs --------------------------------------------------------------------------------------

BLOB = os.urandom(300_000)


def range_start(h) -> int:
    value = h.headers.get("Range")
    return int(value.split("=")[1].split("-")[0]) if value else 0


def test_blob_cut_mid_body_resumes_with_range(server, tmp_path):
    digest = sha(BLOB)
    calls = []

    @server.route(f"/v2/{REPO}/blobs/{digest}")
    def _(h):
        start = range_start(h)
        calls.append(start)
        if len(calls) == 1:
            # Promise everything, send a third, then drop the connection.
            h.send_response(200)
            h.send_header("Content-Length", str(len(BLOB)))
            h.end_headers()
            h.wfile.write(BLOB[:100_000])
            h.wfile.flush()
            h.close_connection = True
            return
        part = BLOB[start:]
        h.reply(206, part, {"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"})

    got = bytearray()
    seen: list[int] = []
    c = make_client(server, tmp_path)
    n = c.stream_blob(REPO, {"digest": digest, "size": len(BLOB)}, got.extend, seen.append)
    assert n == len(BLOB) and bytes(got) == BLOB
    # Resumed exactly where delivery stopped (progress reported that offset).
    assert len(calls) == 2 and calls[0] == 0 and 0 < calls[1] < len(BLOB) and calls[1] in seen
    assert seen[-1] == len(BLOB)
    assert server.hits(f"/v2/{REPO}/blobs/{digest}")[0].headers["accept-encoding"] == "identity"


def test_blob_server_ignoring_range(server, tmp_path):
    digest = sha(BLOB)
    calls = []

    @server.route(f"/v2/{REPO}/blobs/{digest}")
    def _(h):
        calls.append(h.headers.get("Range"))
        h.send_response(200)
        h.send_header("Content-Length", str(len(BLOB)))
        h.end_headers()
        # First answer is short; the second ignores Range and sends everything again.
        h.wfile.write(BLOB[:123_456] if len(calls) == 1 else BLOB)

    got = bytearray()
    c = make_client(server, tmp_path)
    assert c.stream_blob(REPO, {"digest": digest, "size": len(BLOB)}, got.extend) == len(BLOB)
    assert bytes(got) == BLOB
    assert calls == [None, "bytes=123456-"]


def test_blob_too_many_bytes(server, tmp_path):
    digest = sha(BLOB)
    server.routes[f"/v2/{REPO}/blobs/{digest}"] = lambda h: h.reply(200, BLOB + b"x")
    with pytest.raises(VerificationError, match="more than the expected"):
        make_client(server, tmp_path).stream_blob(
            REPO, {"digest": digest, "size": len(BLOB)}, lambda b: None)


def test_blob_always_short_gives_up(server, tmp_path):
    digest = sha(BLOB)
    server.routes[f"/v2/{REPO}/blobs/{digest}"] = lambda h: h.reply(200, b"")
    with pytest.raises(VerificationError, match="short read"):
        make_client(server, tmp_path).stream_blob(
            REPO, {"digest": digest, "size": len(BLOB)}, lambda b: None)


def test_sink_errors_propagate(server, tmp_path):
    digest = sha(BLOB)
    server.routes[f"/v2/{REPO}/blobs/{digest}"] = lambda h: h.reply(200, BLOB)

    class Boom(Exception):
        pass

    def sink(b):
        raise Boom()

    with pytest.raises(Boom):
        make_client(server, tmp_path).stream_blob(REPO, {"digest": digest, "size": len(BLOB)}, sink)


def test_get_blob_verifies(server, tmp_path):
    cfg = b'{"architecture":"amd64"}'
    digest = sha(cfg)
    server.routes[f"/v2/{REPO}/blobs/{digest}"] = lambda h: h.reply(200, cfg)
    c = make_client(server, tmp_path)
    assert c.get_blob(REPO, {"digest": digest, "size": len(cfg)}) == cfg
    wrong = "sha256:" + "0" * 64
    server.routes[f"/v2/{REPO}/blobs/{wrong}"] = lambda h: h.reply(200, cfg)
    with pytest.raises(VerificationError, match=wrong):
        c.get_blob(REPO, {"digest": wrong, "size": len(cfg)})
    with pytest.raises(blobs.BlobUnknown):
        c.get_blob(REPO, {"digest": "sha256:" + "9" * 64, "size": 3})


def test_foreign_layer_urls(server, server2, tmp_path):
    digest = sha(BLOB)
    server2.routes["/mirror/layer"] = lambda h: h.reply(200, BLOB)
    server2.routes["/gone"] = lambda h: h.reply(404, b"")
    server.routes[f"/v2/{REPO}/blobs/{digest}"] = lambda h: h.reply(200, BLOB)
    c = make_client(server, tmp_path, creds=("alice", "s3cret"))
    c.auth._basic = True  # credentials would be sent to the registry up front
    desc = {"digest": digest, "size": len(BLOB),
            "urls": ["ftp://example.invalid/x", f"{server2.url}/gone", f"{server2.url}/mirror/layer"]}
    got = bytearray()
    assert c.stream_blob(REPO, desc, got.extend) == len(BLOB) and bytes(got) == BLOB
    assert [r.path for r in server2.requests] == ["/gone", "/mirror/layer"]
    assert all("authorization" not in r.headers for r in server2.requests)
    assert server.requests == []  # the registry was not needed
    # All URLs failing: the registry serves it, with credentials.
    desc["urls"] = [f"{server2.url}/gone"]
    got.clear()
    assert c.stream_blob(REPO, desc, got.extend) == len(BLOB) and bytes(got) == BLOB
    assert server.requests[-1].headers["authorization"].startswith("Basic ")


# --- tags ---------------------------------------------------------------------------------------


def test_list_tags_paginated(server, tmp_path):
    @server.route(f"/v2/{REPO}/tags/list")
    def _(h):
        if "last" not in h.query:
            h.reply(200, {"name": REPO, "tags": ["a", "b"]},
                    {"Link": f'</v2/{REPO}/tags/list?n=2&last=b>; rel="next"'})
        else:
            h.reply(200, {"name": REPO, "tags": ["c"]})

    assert make_client(server, tmp_path).list_tags(REPO) == ["a", "b", "c"]


def test_list_tags_unknown_repo(server, tmp_path):
    with pytest.raises(ManifestUnknown):
        make_client(server, tmp_path).list_tags("nope")


# --- credentials file ---------------------------------------------------------------------------


def test_login_writes_credentials_atomically(server, tmp_path):
    guarded = basic_registry(server, "bob", "pw")
    server.routes["/v2/"] = guarded(lambda h: h.reply(200, {}))
    dc = tmp_path / "docker" / "config.json"
    dc.parent.mkdir()
    dc.write_text(json.dumps({"auths": {"other:5000": {"auth": "eDp5"}}, "psFormat": "x"}))
    c = make_client(server, tmp_path)
    c.login("bob", "pw")
    data = json.loads(dc.read_text())
    assert data["psFormat"] == "x" and "other:5000" in data["auths"]
    assert base64.b64decode(data["auths"][server.host]["auth"]) == b"bob:pw"
    assert stat.S_IMODE(dc.stat().st_mode) == 0o600
    assert [p.name for p in dc.parent.iterdir()] == ["config.json"]  # no temp files left
    # A fresh client reads them back.
    assert make_client(server, tmp_path).credentials == ("bob", "pw")

    c.logout()
    data = json.loads(dc.read_text())
    assert server.host not in data["auths"] and "other:5000" in data["auths"]
    with pytest.raises(NotFound, match=f"not logged in to {server.host}"):
        c.logout()


def test_login_wrong_password_writes_nothing(server, tmp_path):
    guarded = basic_registry(server, "bob", "pw")
    server.routes["/v2/"] = guarded(lambda h: h.reply(200, {}))
    c = make_client(server, tmp_path)
    with pytest.raises(AuthError, match="incorrect username or password"):
        c.login("bob", "bad")
    assert not (tmp_path / "docker" / "config.json").exists()
    assert c.credentials is None


def test_login_bearer(server, tmp_path):
    guarded = bearer_registry(server)
    server.routes["/v2/"] = guarded(lambda h: h.reply(200, {}))
    c = make_client(server, tmp_path)
    c.login("alice", "s3cret")
    (tok,) = server.hits("/token")
    assert "scope" not in tok.path and "account=alice" in tok.path
    with pytest.raises(AuthError, match="incorrect username or password"):
        make_client(server, tmp_path / "2").login("alice", "nope")


def test_load_credentials_variants(tmp_path):
    p = tmp_path / "config.json"
    b64 = base64.b64encode(b"u:p:with:colons").decode()
    p.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": b64},
        "http://myreg:5000/v2/": {"username": "m", "password": "n"},
        "bad.io": {"auth": "!!!"},
    }}))
    assert load_credentials(p, "docker.io") == ("u", "p:with:colons")
    assert load_credentials(p, "myreg:5000") == ("m", "n")
    assert load_credentials(p, "nothere.io") is None
    with pytest.raises(UsageError):
        load_credentials(p, "bad.io")
    assert load_credentials(tmp_path / "missing.json", "docker.io") is None
    p.write_text("{not json")
    with pytest.raises(UsageError):
        load_credentials(p, "docker.io")


def test_hub_credentials_stored_under_v1_url(tmp_path):
    p = tmp_path / "config.json"
    auth.store_credentials(p, "docker.io", "u", "p")
    assert list(json.loads(p.read_text())["auths"]) == ["https://index.docker.io/v1/"]
    assert auth.remove_credentials(p, "docker.io") is True
    assert auth.remove_credentials(p, "docker.io") is False


def test_errors_are_pmd_errors(server, tmp_path):
    server.routes[f"/v2/{REPO}/manifests/latest"] = lambda h: h.reply(418, b"teapot")
    with pytest.raises(PmdError) as ei:
        make_client(server, tmp_path).get_manifest(REPO, "latest")
    assert type(ei.value) is RegistryError
    assert str(ei.value) == f"{server.host}/foo/bar: received unexpected HTTP status: 418 I'm a Teapot"


@pytest.mark.parametrize("flags", [[], ["-u", ""], ["-u", "me"]])
def test_login_without_tty_refuses_to_prompt(tmp_path, flags):
    # stdin at EOF once made getpass raise EOFError: "internal error" instead of a refusal
    import io

    from pyminidocker.cli.main import Env, main

    out, err = io.StringIO(), io.StringIO()
    rc = main(["--root", str(tmp_path), "login", *flags, "localhost:1"],
              Env(stdout=out, stderr=err, stdin=io.StringIO("")))
    assert (rc, err.getvalue()) == \
        (1, "Error: Cannot perform an interactive login from a non TTY device\n")
