"""The API server's machinery, over a real unix socket: versions, Docker's error bodies, bounded
JSON bodies, the multiplexed stream format and hijacked connections with half-close. (The
endpoints over the engine are tested with real clients in tests/integration/test_api_*.py.)"""
from __future__ import annotations

import asyncio
import json
import os
import socket

import pytest
from aiohttp import web

from pyminidocker.api import app as A
from pyminidocker.api import server as S
from pyminidocker.api import serving, streams
from pyminidocker.api.routes import make_app
from pyminidocker.errors import UsageError

# ---- pure parts -------------------------------------------------------------------------


def test_frame_is_docker_stdcopy_format():
    assert streams.frame(streams.STDOUT, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert streams.frame(streams.STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    with pytest.raises(ValueError):
        streams.frame(7, b"x")


def test_unframe_keeps_an_incomplete_chunk():
    data = streams.frame(1, b"out") + streams.frame(2, b"err") + streams.frame(1, b"more")[:9]
    chunks, rest = streams.unframe(data)
    assert chunks == [(1, b"out"), (2, b"err")]
    assert rest == streams.frame(1, b"more")[:9]


@pytest.mark.parametrize("uri, scheme, where", [
    ("unix:///run/x.sock", "unix", "/run/x.sock"),
    ("tcp://127.0.0.1:2376", "tcp", ("127.0.0.1", 2376)),
    ("tcp://[::1]:2376", "tcp", ("::1", 2376)),
])
def test_parse_uri(uri, scheme, where):
    ep = S.parse_uri(uri)
    assert ep.scheme == scheme
    assert (ep.path if scheme == "unix" else (ep.host, ep.port)) == where


@pytest.mark.parametrize("uri", ["/run/x.sock", "unix://rel.sock", "tcp://host", "tcp://h:0",
                                 "tcp://h:99999", "http://h:1", "fd://"])
def test_parse_uri_refuses(uri):
    with pytest.raises(UsageError):
        S.parse_uri(uri)


FIELDS = {"Image": str, "Cmd": list, "Tty": bool, "StopTimeout": int,
          "Labels": dict[str, str],
          "HostConfig": {"Memory": int, "NanoCpus": int, "Binds": list}}


@pytest.mark.parametrize("body, message", [
    ({"Imag": "x"}, "json: unknown field 'Imag'"),
    ({"Image": 3}, "json: cannot unmarshal number into field Image of type string"),
    ({"Tty": "yes"}, "json: cannot unmarshal string into field Tty of type bool"),
    ({"StopTimeout": True}, "json: cannot unmarshal bool into field StopTimeout of type int64"),
    ({"HostConfig": []}, "json: cannot unmarshal array into field HostConfig of type object"),
    ({"HostConfig": {"Memory": "1g"}},
     "json: cannot unmarshal string into field HostConfig.Memory of type int64"),
    ({"HostConfig": {"Foo": 1}}, "json: unknown field 'HostConfig.Foo'"),
    ({"HostConfig": {"Memory": 10**30}},
     f"json: cannot unmarshal number {10**30} into field HostConfig.Memory of type int64"),
    ({"Labels": {"a": 1}}, "json: cannot unmarshal object into field Labels of type "
     "map[string]string"),
])
def test_check_fields_refuses(body, message):
    with pytest.raises(A.APIError) as e:
        A.check_fields(body, FIELDS)
    assert e.value.status == 400
    assert e.value.message == message


def test_check_fields_accepts_null_and_nested():
    A.check_fields({"Image": "bb", "Cmd": None, "HostConfig": {"Memory": 0}}, FIELDS)


# ---- over a real socket -----------------------------------------------------------------

def _test_app() -> web.Application:
    app = make_app()

    async def echo_body(request: web.Request) -> web.Response:
        body = await A.json_body(request, FIELDS)
        return web.json_response({"got": body, "version": request[A.VERSION]})

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("kaboom")

    async def hijack(request: web.Request) -> web.StreamResponse:
        # echoes each chunk of input as a stdout frame, then "bye" once the client half-closes
        await A.json_body(request, optional=True)
        resp = streams.Hijacked(request, multiplexed=True)
        await resp.start()
        while data := await resp.input.stream.read(65536):
            await resp.send(streams.frame(streams.STDOUT, data.upper()))
        await resp.send(streams.frame(streams.STDERR, b"bye"))
        return resp

    A.route(app, "POST", "/test/echo", echo_body)
    A.route(app, "GET", "/test/boom", boom)
    A.route(app, "POST", "/test/hijack", hijack)
    return app


async def _serve(path: str, app: web.Application):
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen()
    sock.setblocking(False)
    await serving._Site(runner, sock).start()
    return runner


async def _request(path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size, 16)
            out += rest[:n]
            body = rest[n + 2:]
        body = out
    return int(lines[0].split()[1]), headers, body


def _req(method: str, target: str, body: bytes = b"", extra: str = "") -> bytes:
    return (f"{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "api.sock")


def test_versions_errors_and_bodies(sock_path):
    async def main():
        runner = await _serve(sock_path, _test_app())
        try:
            out = {}
            out["ping"] = await _request(sock_path, _req("GET", "/_ping"))
            out["head"] = await _request(sock_path, _req("HEAD", "/v1.24/_ping"))
            out["new"] = await _request(sock_path, _req("GET", "/v1.50/version"))
            out["old"] = await _request(sock_path, _req("GET", "/v1.12/version"))
            out["echo"] = await _request(sock_path, _req("POST", "/v1.41/test/echo",
                                                         b'{"Image": "bb", "Tty": true}'))
            out["badjson"] = await _request(sock_path, _req("POST", "/test/echo", b'{"Image":'))
            out["array"] = await _request(sock_path, _req("POST", "/test/echo", b"[1]"))
            out["unknown"] = await _request(sock_path, _req("POST", "/test/echo", b'{"X": 1}'))
            out["huge"] = await _request(sock_path, _req(
                "POST", "/test/echo", b'{"Image": "' + b"a" * (A.MAX_JSON_BODY + 1) + b'"}'))
            out["nopath"] = await _request(sock_path, _req("GET", "/v1.43/nothing/here"))
            out["method"] = await _request(sock_path, _req("PUT", "/version"))
            out["boom"] = await _request(sock_path, _req("GET", "/test/boom"))
            out["pending"] = await _request(sock_path, _req("GET", "/v1.43/images/search?term=x"))
            out["build"] = await _request(sock_path, _req("POST", "/v1.43/build"))
            return out
        finally:
            await runner.cleanup()

    out = run(main())
    status, headers, body = out["ping"]
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == A.API_VERSION
    assert headers["server"].startswith("pyminidocker/")
    status, headers, body = out["head"]
    assert (status, body, headers["api-version"]) == (200, b"", A.API_VERSION)

    def error(key):
        status, headers, body = out[key]
        assert headers["content-type"] == "application/json"  # exactly: the CLI checks it
        return status, json.loads(body)["message"]

    assert error("new") == (400, "client version 1.50 is too new. Maximum supported API "
                                 "version is 1.43")
    assert error("old")[0] == 400 and "Minimum supported API version is 1.24" in error("old")[1]
    status, _, body = out["echo"]
    assert (status, json.loads(body)) == (200, {"got": {"Image": "bb", "Tty": True},
                                                "version": "1.41"})
    assert error("badjson")[0] == 400 and error("badjson")[1].startswith("invalid JSON")
    assert error("array") == (400, "invalid JSON: expected an object, got array")
    assert error("unknown") == (400, "json: unknown field 'X'")
    assert error("huge")[0] == 413
    assert error("nopath") == (404, "page not found")
    assert error("method") == (405, "method not allowed")
    assert error("boom") == (500, "internal error: RuntimeError: kaboom")
    assert error("pending") == (501, "image search is not implemented by pyminidocker yet")
    assert error("build") == (501, "image build is not implemented by pyminidocker yet")


@pytest.mark.parametrize("upgrade", [True, False])
def test_hijacked_connection_with_half_close(sock_path, upgrade):
    """As `docker exec -i` uses it: POST with a JSON body and the upgrade headers, 101, input
    both ways; the client shuts its writing side at the end of its stdin and still reads the
    output to the end. Without the upgrade headers (old clients) the answer is 200 and the
    same raw stream."""
    async def main():
        runner = await _serve(sock_path, _test_app())
        try:
            reader, writer = await asyncio.open_unix_connection(sock_path)
            extra = "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else ""
            body = b'{"Detach": false, "Tty": false}'
            writer.write((f"POST /v1.43/test/hijack HTTP/1.1\r\nHost: docker\r\n{extra}"
                          "Content-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.write(b"hello ")
            await writer.drain()
            first = await asyncio.wait_for(reader.readexactly(8 + 6), 10)
            writer.write(b"world")
            writer.write_eof()
            rest = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return head, first + rest
        finally:
            await runner.cleanup()

    head, data = run(main())
    status_line = head.split(b"\r\n")[0]
    if upgrade:
        assert status_line == b"HTTP/1.1 101 UPGRADED"
        assert b"\r\nUpgrade: tcp\r\n" in head
    else:
        assert status_line == b"HTTP/1.1 200 OK"
    assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head
    assert b"Transfer-Encoding" not in head
    chunks, rest = streams.unframe(data)
    assert rest == b""
    assert chunks == [(1, b"HELLO "), (1, b"WORLD"), (2, b"bye")]


def test_a_body_that_arrives_in_pieces_is_read_whole(sock_path):
    """A client's body may come in several writes (docker-py's create did): all of it is the
    JSON, not what had arrived when the handler first read."""
    async def main():
        runner = await _serve(sock_path, _test_app())
        try:
            body = b'{"Image": "' + b"b" * 200000 + b'", "Tty": true}'
            reader, writer = await asyncio.open_unix_connection(sock_path)
            writer.write((f"POST /test/echo HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n").encode())
            for i in range(0, len(body), 7000):
                writer.write(body[i:i + 7000])
                await writer.drain()
                await asyncio.sleep(0.001)
            data = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return data
        finally:
            await runner.cleanup()

    data = run(main())
    assert data.startswith(b"HTTP/1.1 200 ")
    assert json.loads(data.partition(b"\r\n\r\n")[2])["got"]["Image"] == "b" * 200000


# ---- create and update bodies onto the engine's options ----------------------------------

def test_create_body_healthcheck_mounts_aliases_restart():
    from pyminidocker.api.container_config import create_options

    opts = create_options({
        "Image": "bb", "Volumes": {"/a": {}, "/srv": {}, "/t": {}},
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000, "Retries": 3,
                        "Timeout": 0},
        "HostConfig": {
            "Binds": ["data:/srv:rw"], "NetworkMode": "appnet",
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
            "Mounts": [{"Type": "volume", "Source": "v", "Target": "/t", "ReadOnly": True,
                        "VolumeOptions": {"NoCopy": True, "Labels": {"k": "v"}}},
                       {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {
                           "SizeBytes": 1 << 20, "Mode": 0o1777}}]},
        "NetworkingConfig": {"EndpointsConfig": {"appnet": {"Aliases": ["web", "w2"]}}},
    }, "web")
    assert opts.volumes == ["data:/srv:rw", "/a"]
    assert opts.mounts == [
        "type=volume,source=v,target=/t,readonly=true,volume-nocopy=true,volume-label=k=v",
        "type=tmpfs,target=/tmp,tmpfs-size=1048576,tmpfs-mode=1777"]
    assert opts.extra == {"aliases": ["web", "w2"], "restart": {"name": "on-failure", "max": 2},
                          "health_flags": {"Test": ["CMD", "true"], "Interval": 1_000_000_000,
                                           "Retries": 3}}
    assert opts.network == "appnet"


def test_create_body_of_docker_py_7_run_with_a_network():
    """docker-py 7.1's containers.run(network=X) sends NetworkingConfig {X: null} beside
    HostConfig.NetworkMode X: dockerd ignores the stray key, so does the server; a key with
    a value is still an unknown field."""
    from pyminidocker.api.containers import create_options

    opts = create_options({"Image": "bb", "HostConfig": {"NetworkMode": "appnet"},
                           "NetworkingConfig": {"appnet": None}}, None)
    assert opts.network == "appnet"
    with pytest.raises(A.APIError, match="unknown field 'NetworkingConfig.appnet'"):
        create_options({"Image": "bb", "NetworkingConfig": {"appnet": {}}}, None)


@pytest.mark.parametrize("body, status, message", [
    ({"Healthcheck": {"Test": ["RUN", "x"]}}, 400,
     "unknown healthcheck type 'RUN': NONE, CMD or CMD-SHELL"),
    ({"Healthcheck": {"Test": ["CMD"]}}, 400, "healthcheck CMD needs a command"),
    ({"Healthcheck": {"Interval": 5}}, 400, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"Probe": 1}}, 400, "json: unknown field 'Healthcheck.Probe'"),
    ({"HostConfig": {"Mounts": ["x"]}}, 400, "json: cannot unmarshal into field "
     "HostConfig.Mounts of type mount.Mount"),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/a,b", "Target": "/x"}]}}, 400,
     "invalid mount source: '/a,b'"),
    ({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, 400,
     "invalid restart policy 'sometimes'"),
    ({"HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}}, 400,
     "can't create 'AutoRemove' container with restart policy"),
    # each of these was an internal error (500, an AttributeError)
    ({"HostConfig": {"RestartPolicy": "always"}}, 400,
     "json: cannot unmarshal string into field HostConfig.RestartPolicy of type object"),
    ({"HostConfig": {"PortBindings": {"80/tcp": "8080"}}}, 400,
     "json: cannot unmarshal into field HostConfig.PortBindings.80/tcp of type "
     "[]nat.PortBinding"),
    ({"NetworkingConfig": {"EndpointsConfig": {"appnet": 5}}}, 400,
     "json: cannot unmarshal int into field NetworkingConfig.EndpointsConfig.appnet of type "
     "network.EndpointSettings"),
    ({"StopSignal": "SIGBOGUS"}, 400, "Invalid signal: SIGBOGUS"),   # was dropped
])
def test_create_body_refused(body, status, message):
    from pyminidocker.api.container_config import create_options
    from pyminidocker.errors import PmdError

    with pytest.raises((A.APIError, PmdError)) as e:
        create_options({"Image": "bb", **body}, None)
    got = (e.value.status, e.value.message) if isinstance(e.value, A.APIError) else \
        (A.status_of(e.value), str(e.value))
    assert got == (status, message)


def test_create_body_stop_signal_and_timeout_reach_the_engine():
    """docker run --stop-signal/--stop-timeout (and compose's stop_signal) send these; they
    were accepted and dropped."""
    from pyminidocker.api.container_config import create_options

    opts = create_options({"Image": "bb", "StopSignal": "SIGUSR1", "StopTimeout": 3}, None)
    assert opts.extra["stop_signal"] == "SIGUSR1" and opts.extra["stop_timeout"] == 3
    assert "stop_signal" not in create_options({"Image": "bb"}, None).extra


def test_update_body():
    from pyminidocker.api.verbs import update_changes

    assert update_changes({"Memory": 64 << 20, "MemorySwap": -1, "NanoCpus": 500_000_000,
                           "CpuShares": 0, "CpusetCpus": "",
                           "RestartPolicy": {"Name": "always"}}) == {
        "memory": 64 << 20, "memory_swap": -1, "cpus": 0.5,
        "restart": {"name": "always", "max": 0}}
    with pytest.raises(A.APIError) as e:
        update_changes({"Ulimits": [{"Name": "nofile"}]})
    assert (e.value.status, e.value.message) == (
        501, "updating Ulimits is not supported by pyminidocker yet")
    with pytest.raises(A.APIError) as e:
        update_changes({"Memory": "1g"})
    assert e.value.status == 400


# ---- archives between a worker thread and the event loop (streams.out_of_thread/into_thread)

def _archive_app(seen: dict) -> web.Application:
    """Endpoints over the two helpers: a producer of n 1 MiB chunks that fails after `fail`
    of them (-1: never), and a consumer that reads `take` bytes of the body and stops."""
    app = web.Application(middlewares=[A.docker_errors])

    async def produce(request):
        n, fail = int(request.query["n"]), int(request.query.get("fail", -1))

        def work(out):
            out.begin({"X-Begun": "yes"})
            for i in range(n):
                if i == fail:
                    raise UsageError("the producer failed")
                out.write(bytes([65 + i]) * (1 << 20))
            seen["produced"] = n

        return await streams.out_of_thread(request, work)

    async def early(request):
        def work(out):
            raise UsageError("nothing to send")
        return await streams.out_of_thread(request, work)

    async def consume(request):
        take = int(request.query["take"])

        def work(fd):
            got = b""
            while len(got) < take and (chunk := os.read(fd, take - len(got))):
                got += chunk
            return got

        got = await streams.into_thread(request, work)
        return web.json_response({"got": len(got), "head": got[:3].decode()})

    A.route(app, "GET", "/produce", produce)
    A.route(app, "GET", "/early", early)
    A.route(app, "PUT", "/consume", consume)
    return app


def test_a_thread_streams_out_and_an_error_before_it_begins_is_an_answer(sock_path):
    seen: dict = {}

    async def main():
        runner = await _serve(sock_path, _archive_app(seen))
        try:
            ok = await _request(sock_path, _req("GET", "/produce?n=3"))
            early = await _request(sock_path, _req("GET", "/early"))
            reader, writer = await asyncio.open_unix_connection(sock_path)
            writer.write(_req("GET", "/produce?n=3&fail=1"))
            cut = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return ok, early, cut
        finally:
            await runner.cleanup()

    ok, early, cut = run(main())
    assert (ok[0], ok[1]["x-begun"], ok[1]["content-type"]) == (200, "yes", "application/x-tar")
    assert ok[2] == b"A" * (1 << 20) + b"B" * (1 << 20) + b"C" * (1 << 20)
    assert seen["produced"] == 3
    assert (early[0], json.loads(early[2])) == (400, {"message": "nothing to send"})
    # begun: the client sees the connection end before the body does (no last chunk)
    assert cut.startswith(b"HTTP/1.1 200 ") and b"A" * 1000 in cut
    assert not cut.endswith(b"0\r\n\r\n")


def test_a_thread_consumes_the_body_as_it_comes_and_may_stop_early(sock_path):
    body = b"xyz" + os.urandom(3 << 20)

    async def main():
        runner = await _serve(sock_path, _archive_app({}))
        try:
            whole = await _request(sock_path, _req("PUT", f"/consume?take={len(body)}", body))
            part = await _request(sock_path, _req("PUT", "/consume?take=5", body))
            return whole, part
        finally:
            await runner.cleanup()

    whole, part = run(main())
    assert (whole[0], json.loads(whole[2])) == (200, {"got": len(body), "head": "xyz"})
    assert (part[0], json.loads(part[2])) == (200, {"got": 5, "head": "xyz"})
