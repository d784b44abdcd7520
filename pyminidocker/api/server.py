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

The requests are served by a worker process, forked when a client connects (as systemd starts
a service on its socket's first connection): it inherits the listening sockets, loads aiohttp
and the engine, serves every client that comes while it is busy, and exits once it has had no
request for WORKER_LINGER seconds. Between workers the server is only this process and its
sockets, a fourth of the size of one with aiohttp and the engine loaded (asyncio alone pulls
in OpenSSL); a connection that arrives meanwhile waits in the backlog for the next worker.
What the server keeps between requests lives in the store (containers, the event log), so a
new worker takes over where the last one stopped.
"""
from __future__ import annotations

import contextlib
import errno
import grp
import os
import signal
import socket
import stat
import sys
import time

from pyminidocker.errors import UsageError, suppress

TYPE_CHECKING = False  # typing, ssl, asyncio and aiohttp wait for the first client
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterator
    from typing import Any

DEFAULT_URI = "unix:///run/pyminidocker/docker.sock"
DEFAULT_IDLE = 5
# how long a worker waits for the next request before it exits: a client's commands come
# within this of each other (compose, scripts, `docker run` then `docker logs`) without each
# paying the worker's start (about 0.3 s); an idle server is back to its small self soon after
WORKER_LINGER = 5.0
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3)


class Endpoint:
    def __init__(self, scheme: str, path: str = "", host: str = "", port: int = 0):
        self.scheme = scheme  # "unix" or "tcp"
        self.path = path      # unix
        self.host = host      # tcp
        self.port = port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Endpoint) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"Endpoint({vars(self)})"


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
    import ssl

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


def listeners(uri: str | None, group: str | None, tls: ssl.SSLContext | None
              ) -> tuple[list[socket.socket], tuple[str, int] | None]:
    """The sockets to serve (systemd's, else the URI's) and the unix socket created (path,
    inode) to remove at the end. Raises UsageError for a URI that cannot be served as asked."""
    socks = activation_sockets()
    if socks:
        return socks, None
    ep = parse_uri(uri or DEFAULT_URI)
    if ep.scheme == "tcp":
        if tls is None:
            raise UsageError("refusing to serve the API on tcp:// without TLS: use "
                             "--tlsverify with --tlscacert, --tlscert and --tlskey")
        return [tcp_listener(ep)], None
    if tls is not None:
        raise UsageError("--tlsverify applies to tcp:// only")
    sock = unix_listener(ep.path, socket_group(group))
    return [sock], (ep.path, os.stat(ep.path).st_ino)


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped


def wait_for_client(socks: list[socket.socket], timeout: float | None) -> bool:
    """Wait, with nothing but the sockets loaded, until a client connects (True) or for
    timeout seconds (None: forever; False). The connection waits in the backlog meanwhile."""
    import select

    ready, _, _ = select.select(socks, [], [], timeout)
    return bool(ready)


class WorkerFailed(Exception):
    def __init__(self, code: int):
        super().__init__(f"the API worker failed (exit status {code})")
        self.code = code


def serve_on_demand(socks: list[socket.socket], idle: float,
                    start_worker: Callable[[float], int]) -> None:
    """Serve the sockets until `idle` seconds pass without a request (0: never). Each time
    a client connects, start_worker(linger) forks a worker (its pid) that serves until it
    has had no request for linger seconds. Raises WorkerFailed when a worker fails (rather
    than start another on the same connection, over and over); _Stopped on SIGTERM/SIGINT,
    once the worker, stopped too, has exited."""
    quiet_since = time.monotonic()
    linger = WORKER_LINGER if idle <= 0 else min(WORKER_LINGER, idle)
    while True:
        timeout = None if idle <= 0 else max(0.0, idle - (time.monotonic() - quiet_since))
        if not wait_for_client(socks, timeout):
            return
        # a stop that comes while the worker is forked waits until its pid is known here
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = start_worker(linger)
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            _, status = os.waitpid(pid, 0)
        except _Stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
            raise
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise WorkerFailed(code)
        quiet_since = time.monotonic() - linger  # its last request ended then


@contextlib.contextmanager
def _no_ca_paths() -> Iterator[None]:
    """aiohttp makes its client's two TLS contexts as it is imported, each loading the
    system's CA certificates: a quarter of a worker's start (60 ms) and 2 MB. The server
    never uses aiohttp's client, so they load nothing here (OpenSSL reads these variables
    when a context loads its default paths); later contexts load them as usual."""
    saved = {k: os.environ.get(k) for k in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    os.environ.update(SSL_CERT_FILE="/nonexistent", SSL_CERT_DIR="/nonexistent")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _fork_worker(args: Any, socks: list[socket.socket], tls: ssl.SSLContext | None,
                 linger: float) -> int:
    """A worker process serving socks until linger seconds without a request; its pid.
    The worker never returns here: it leaves with os._exit, so that none of the parent's
    cleanup (removing the socket) runs in it, nor a wait for its threads (serving.run)."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        import logging

        with _no_ca_paths():
            from pyminidocker.api import serving

        logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(message)s")
        serving.run(args.engine.config, socks, linger, tls)
        code = 0
    except _Stopped:
        code = 0  # SIGTERM/SIGINT before the event loop took them over
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def service_command(args: Any, env: Any) -> int:
    """`system service [--time SECONDS] [URI]`. Raises ImportError without aiohttp."""
    import importlib.util

    if importlib.util.find_spec("aiohttp") is None:
        raise ImportError("No module named 'aiohttp'", name="aiohttp")
    if args.time is not None and args.time < 0:
        raise UsageError("--time must be 0 (never exit) or a number of seconds")
    tls = tls_context(args.tlscacert, args.tlscert, args.tlskey) if args.tlsverify else None
    if not args.tlsverify and (args.tlscacert or args.tlscert or args.tlskey):
        raise UsageError("--tlscacert, --tlscert and --tlskey need --tlsverify")
    idle = DEFAULT_IDLE if args.time is None else args.time
    socks, created = listeners(args.uri, args.group, tls)
    # SIGTERM/SIGINT stop the server here (and a worker, until its event loop takes them
    # over): the wait and a worker's imports (half a second on a busy host) end as cleanly
    # as a serve
    old = {sig: signal.signal(sig, _stop) for sig in _STOP_SIGNALS}
    code = 0
    try:
        serve_on_demand(socks, idle, lambda linger: _fork_worker(args, socks, tls, linger))
    except _Stopped:
        pass
    except WorkerFailed as e:
        print(f"pyminidocker: {e}", file=sys.stderr)
        code = 1
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    for s in socks:
        s.close()
    if created is not None:
        path, ino = created
        with suppress(FileNotFoundError):
            if os.stat(path).st_ino == ino:  # ours still, not a successor's
                os.unlink(path)
    return code
