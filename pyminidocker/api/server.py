"""`pyminidocker system service`: the API server's sockets, lifetime and signals.

Where it listens, as `podman system service` (and dockerd's -H):
- `unix:///path` (default unix:///run/pyminidocker/docker.sock): a socket of mode 0660 owned by
  root and the group given with --group (default `docker` where it exists, as dockerd), created
  so under a umask: no moment exists where others could connect. A stale socket of a server that
  is gone is replaced; one where a server answers is refused.
- `tcp://host:port`: only with --tlsverify and the CA, certificate and key: every client must
  present a certificate the CA signed. The API is root on this host, so it is never offered in
  clear or to anonymous peers.
- systemd socket activation: with LISTEN_PID our pid and LISTEN_FDS n, the sockets passed as
  fds 3..3+n-1 are served instead of the URI (contrib/pyminidocker.socket).

With --time N (default 5, as Podman) the server exits once no request has been in flight for
N seconds (0: never), so a socket-activated server costs nothing while unused. Containers keep
running when it exits: their monitors own them, not the server.
"""
from __future__ import annotations

import asyncio
import errno
import grp
import logging
import os
import signal
import socket
import ssl
import stat
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from pyminidocker.api.streams import RawReader
from pyminidocker.errors import UsageError

DEFAULT_URI = "unix:///run/pyminidocker/docker.sock"
DEFAULT_IDLE = 5
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3)

log = logging.getLogger("pyminidocker.api")


@dataclass
class Endpoint:
    scheme: str          # "unix" or "tcp"
    path: str = ""       # unix
    host: str = ""       # tcp
    port: int = 0


def parse_uri(uri: str) -> Endpoint:
    """unix:///abs/path, or tcp://host:port. Raises UsageError."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise UsageError(f"invalid URI {uri!r}: expected unix:///PATH or tcp://HOST:PORT")
    if scheme == "unix":
        if not rest.startswith("/"):
            raise UsageError(f"invalid URI {uri!r}: a unix socket needs an absolute path")
        return Endpoint("unix", path=rest)
    if scheme == "tcp":
        host, _, port = rest.rstrip("/").rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"invalid URI {uri!r}: expected tcp://HOST:PORT")
        return Endpoint("tcp", host=host, port=int(port))
    raise UsageError(f"unsupported URI scheme {scheme!r}: use unix:// or tcp://")


def socket_group(name: str | None) -> int:
    """The gid the unix socket is given: the named group, else `docker` if the host has one,
    else root's. Raises UsageError for a named group that does not exist."""
    if name is None:
        try:
            return grp.getgrnam("docker").gr_gid
        except KeyError:
            return 0
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise UsageError(f"no such group: {name}") from None


def unix_listener(path: str, gid: int) -> socket.socket:
    """A listening unix socket at path, mode 0660, owned by root:gid. Raises UsageError when
    a server already answers there or something else is in the way."""
    os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise UsageError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError as e:
            if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise
            os.unlink(path)  # stale: its server is gone
        else:
            raise UsageError(f"a server is already listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)  # the socket is born 0660: nobody else can connect, even briefly
    try:
        sock.bind(path)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    os.chown(path, 0, gid)
    sock.listen(128)
    return sock


def tls_context(cacert: str | None, cert: str | None, key: str | None) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by cacert. Raises
    UsageError for missing or unreadable files."""
    if not (cacert and cert and key):
        raise UsageError("--tlsverify needs --tlscacert, --tlscert and --tlskey")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(cacert)
    except (OSError, ssl.SSLError) as e:
        raise UsageError(f"TLS configuration: {e}") from None
    return ctx


def tcp_listener(ep: Endpoint) -> socket.socket:
    family = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((ep.host, ep.port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def activation_sockets() -> list[socket.socket]:
    """The sockets systemd passed us (sd_listen_fds), or none. The variables are removed so
    that nothing we start inherits them."""
    pid = os.environ.pop("LISTEN_PID", "")
    count = os.environ.pop("LISTEN_FDS", "")
    os.environ.pop("LISTEN_FDNAMES", None)
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return []
    socks = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        socks.append(socket.socket(fileno=fd))
    return socks


class Activity:
    """Requests in flight, and the idle timer that stops the server after `idle` seconds
    without any (0: never)."""

    def __init__(self, idle: float, stop: asyncio.Event):
        self.idle = idle
        self.stop = stop
        self.active = 0
        self.timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self.idle > 0 and self.active == 0:
            self.timer = asyncio.get_running_loop().call_later(self.idle, self.stop.set)

    def hold(self) -> None:
        """Work of the server's own (a --rm container to remove) keeps it up as a request."""
        self.active += 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def release(self) -> None:
        self.active -= 1
        self.arm()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.active += 1
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            self.active -= 1
            self.arm()


class _Handler(RequestHandler):
    """aiohttp's connection handler, keeping a hijacked connection open when the client
    half-closes it: `docker run -i` shuts its writing side at the end of stdin and reads the
    output to the end. (aiohttp's own closes the connection at EOF.)"""

    def eof_received(self) -> bool:  # type: ignore[override]
        parser = self._payload_parser
        if isinstance(parser, RawReader):
            parser.feed_eof()
            return True
        return False


class _Site(web.BaseSite):
    """A site on a listening socket, served by _Handler."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket,
                 ssl_context: ssl.SSLContext | None = None):
        super().__init__(runner, ssl_context=ssl_context)
        self._sock = sock

    @property
    def name(self) -> str:
        addr = self._sock.getsockname()
        if isinstance(addr, str):
            return f"unix://{addr}"
        return f"{'https' if self._ssl_context else 'http'}://{addr[0]}:{addr[1]}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        kwargs = server._kwargs  # the handler arguments the application was given

        def handler() -> _Handler:
            return _Handler(server, loop=loop, **kwargs)

        self._server = await loop.create_server(handler, sock=self._sock,
                                                ssl=self._ssl_context)


async def serve(config: Any, uri: str | None, idle: float, group: str | None = None,
                tls: ssl.SSLContext | None = None, ready: Any = None) -> None:
    """Serve until SIGTERM/SIGINT or `idle` seconds without a request. Raises UsageError for
    a URI that cannot be served as asked."""
    from pyminidocker.api.app import make_app

    socks = activation_sockets()
    created = None
    if not socks:
        ep = parse_uri(uri or DEFAULT_URI)
        if ep.scheme == "tcp":
            if tls is None:
                raise UsageError("refusing to serve the API on tcp:// without TLS: use "
                                 "--tlsverify with --tlscacert, --tlscert and --tlskey")
            socks = [tcp_listener(ep)]
        else:
            if tls is not None:
                raise UsageError("--tlsverify applies to tcp:// only")
            socks = [unix_listener(ep.path, socket_group(group))]
            created = (ep.path, os.stat(ep.path).st_ino)
    stop = asyncio.Event()
    activity = Activity(idle, stop)
    app = make_app(config, activity)
    runner = web.AppRunner(app, handle_signals=False, access_log=log if
                           log.isEnabledFor(logging.DEBUG) else None,
                           keepalive_timeout=60, shutdown_timeout=5)
    await runner.setup()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for s in socks:
            s.setblocking(False)
            site = _Site(runner, s, tls if s.family != socket.AF_UNIX else None)
            await site.start()
            log.info("serving the Docker API on %s", site.name)
        activity.arm()
        if ready is not None:
            ready()
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        if created is not None:
            path, ino = created
            try:
                if os.stat(path).st_ino == ino:  # ours still, not a successor's
                    os.unlink(path)
            except FileNotFoundError:
                pass


def service_command(args: Any, env: Any) -> int:
    """`system service [--time SECONDS] [URI]`."""
    if args.time is not None and args.time < 0:
        raise UsageError("--time must be 0 (never exit) or a number of seconds")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    tls = tls_context(args.tlscacert, args.tlscert, args.tlskey) if args.tlsverify else None
    if not args.tlsverify and (args.tlscacert or args.tlscert or args.tlskey):
        raise UsageError("--tlscacert, --tlscert and --tlskey need --tlsverify")
    idle = DEFAULT_IDLE if args.time is None else args.time
    asyncio.run(serve(args.engine.config, args.uri, idle, args.group, tls))
    return 0
