"""Name resolution between the containers of a user network: Debian's aardvark-dns (Podman's
DNS server), one process per store, fed by a directory of files the engine writes.

The directory, /run/pyminidocker/dns/<key of the store root>/, holds one file per network with
members, named after the network's bridge (bridges are unique on the host; the file name is
also the scope of the names aardvark answers on that network), in aardvark 1.4's format:
    <gateway> [<upstream>,...]
    <container id> <ipv4> <ipv6> <name>,<short id>,<alias>,...[ <upstream>,...]
The server listens on every gateway named there, UDP port 53, answers the names of that
network's members and forwards every other name with a dot to the upstreams: on the header
line, the nameservers of the host's resolv.conf (the engine config's "resolv-conf", default
/etc/resolv.conf: aardvark would read /etc/resolv.conf itself, the header lets a test or an
administrator point it elsewhere); on a member's line, its --dns servers (Docker's rule: on a
user network --dns feeds the embedded server, the container asks the server). A server that
runs on the host's side reaches loopback resolvers too, which a container's own file cannot.

aardvark re-reads the directory on SIGHUP. It starts when a network's first member joins and
is stopped when the last file goes (a network's last member left, the network was removed, or
`system reset`): no process and no directory are left. Every change is made under one
host-wide lock, and a change is waited for until the server answers as it should, so that a
container started next resolves the name at once.
"""
from __future__ import annotations

import os
import signal
import time

from pyminidocker.errors import PmdError, suppress
from pyminidocker.store.files import FileLock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from pyminidocker.store import Store
    from pyminidocker.store.networks import Network

RUN_DIR = "/run/pyminidocker/dns"
LOCK = "/run/pyminidocker/dns.lock"
PID_FILE = "aardvark.pid"  # aardvark's own, in the directory it serves
# Debian installs it out of PATH, for Podman (/usr/lib/podman); other distributions in libexec
BINARIES = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns",
            "/usr/local/libexec/podman/aardvark-dns")
START_TIMEOUT = 5.0    # a server that does not answer by then is not used (see join)
RELOAD_TIMEOUT = 2.0


def binary() -> str | None:
    """The aardvark-dns executable, None if it is not installed."""
    for path in (*BINARIES, *(os.path.join(d, "aardvark-dns")
                              for d in os.environ.get("PATH", os.defpath).split(os.pathsep))):
        if os.access(path, os.X_OK):
            return path
    return None


def config_dir(store: Store) -> str:
    """The directory aardvark serves for this store (it may not exist)."""
    import hashlib

    key = hashlib.sha256(os.path.realpath(store.root).encode()).hexdigest()[:16]
    return os.path.join(RUN_DIR, key)


def upstreams(resolv_conf: str) -> list[str]:
    """The nameservers named in a resolv.conf file (none if it cannot be read)."""
    servers = []
    try:
        with open(resolv_conf) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    servers.append(words[1].partition("%")[0])  # no zone index in aardvark's
    except OSError:
        pass
    return servers


def _lock() -> FileLock:
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    return FileLock(LOCK)


def _read(path: str) -> list[str]:
    try:
        with open(path) as f:
            return [line for line in f.read().split("\n") if line]
    except FileNotFoundError:
        return []


def _write(path: str, lines: list[str]) -> None:
    from pyminidocker.record import atomic_write

    # aardvark reads the files only when told to: a rename is seen at the next SIGHUP
    atomic_write(path, ("\n".join(lines) + "\n").encode(), durable=False)


def server_pid(d: str) -> int:
    """The pid of the aardvark-dns serving directory d, 0 if none runs (a pid file left by a
    server that died, or a pid reused by another process, is not one)."""
    try:
        with open(os.path.join(d, PID_FILE)) as f:
            pid = int(f.read().strip() or 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", "rb") as f:
            zombie = f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, ValueError):
        return 0
    return pid if not zombie and d.encode() in argv and b"run" in argv else 0


def _start(exe: str, d: str) -> None:
    """Run aardvark-dns on d: it forks its server and exits once that has written its pid."""
    env = {k: v for k, v in os.environ.items() if k != "AARDVARK_NO_PROXY"}
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        # its server keeps stdio: /dev/null, not our caller's pipes (they would never close)
        pid = os.posix_spawn(exe, [exe, "--config", d, "--port", "53", "run"], env,
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                           (os.POSIX_SPAWN_DUP2, devnull, 1),
                                           (os.POSIX_SPAWN_DUP2, devnull, 2)])
    finally:
        os.close(devnull)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise PmdError(f"aardvark-dns --config {d} run failed "
                       f"(exit {os.waitstatus_to_exitcode(status)})")


def _stop(d: str, timeout: float = 3.0) -> None:
    """End the server of d (SIGTERM, then SIGKILL) and wait until it is gone."""
    pid = server_pid(d)
    if pid:
        with _ignore_gone():
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while server_pid(d) == pid:
            if time.monotonic() > deadline:
                with _ignore_gone():
                    os.kill(pid, signal.SIGKILL)
                deadline += timeout
            time.sleep(0.005)
    with _ignore_gone():
        os.unlink(os.path.join(d, PID_FILE))


def _ignore_gone() -> suppress:
    return suppress(ProcessLookupError, FileNotFoundError)


def _query(name: str) -> bytes:
    """A DNS query (RFC 1035 4.1) for the A record of name, recursion desired."""
    q = b"\x50\x4d\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"


def answers(server: str, name: str, timeout: float = 0.2) -> bool | None:
    """Whether the DNS server at server:53 answers name with at least one record (False: it
    answers with none; None: it does not answer within timeout)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(_query(name), (server, 53))
            while True:
                reply = s.recv(512)
                if reply[:2] == b"\x50\x4d" and len(reply) >= 12:
                    return int.from_bytes(reply[6:8], "big") > 0
        except OSError:  # the timeout, or ICMP port unreachable (nothing bound yet)
            return None


def _settled(gateway: str, name: str, resolves: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        # a short wait for each reply: a query that reached the socket of the server being
        # replaced is never answered, the next one reaches the new socket
        if answers(gateway, name, timeout=0.03) is resolves:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def _apply(store: Store, d: str, probe: tuple[str, str, bool] | None) -> bool:
    """After a change of d's files (the lock held): start, reload or stop its server, and wait
    until the server gives the answer of probe (gateway, name, whether it resolves). Returns
    whether it does (False: no aardvark-dns, or it did not answer in time)."""
    files = [f for f in os.listdir(d) if f != PID_FILE] if os.path.isdir(d) else []
    if not files:
        _stop(d)
        with _ignore_gone():
            os.rmdir(d)
        return True
    pid = server_pid(d)
    if pid:
        with _ignore_gone():
            os.kill(pid, signal.SIGHUP)
        return probe is None or _settled(*probe, timeout=RELOAD_TIMEOUT)
    exe = binary()
    if exe is None:
        return False
    _start(exe, d)
    # The server installs its SIGHUP handler after it has said it is ready and before it
    # binds its sockets: once it answers, the next change's SIGHUP cannot kill it.
    if probe is None or _settled(*probe, timeout=START_TIMEOUT):
        return True
    _stop(d)
    return False


def join(store: Store, net: Network, container_id: str, address: str, names: Iterable[str],
         resolv_conf: str = "/etc/resolv.conf", dns: Iterable[str] = ()) -> bool:
    """Make the container's names (its name, short id, aliases) resolve to address on net,
    starting the store's server if it is the first member of a user network. resolv_conf:
    the file naming the host's resolvers; dns: the container's own upstreams (--dns).
    Returns whether the network's DNS server answers the container's first name (False: no
    aardvark-dns installed, or a server that did not answer: the names are still in
    /etc/hosts). Raises OSError, PmdError (aardvark-dns failed)."""
    names = [n for n in dict.fromkeys(names) if n]
    d = config_dir(store)
    with _lock():
        os.makedirs(d, mode=0o700, exist_ok=True)
        path = os.path.join(d, net.bridge)
        up = ",".join(upstreams(resolv_conf))
        lines = [f"{net.gateway} {up}".rstrip()]
        lines += [line for line in _read(path)[1:]
                  if line.split(" ", 1)[0] != container_id and line.split(" ")[1] != address]
        own = ",".join(dns)
        lines.append(f"{container_id} {address}  {','.join(names)}" + (f" {own}" if own else ""))
        _write(path, lines)
        return _apply(store, d, (net.gateway, names[0], True) if names else None)


def leave(store: Store, bridge: str, address: str) -> None:
    """The names that resolve to address on the network of bridge resolve no more; the
    server stops with the last member of the store's user networks. Raises OSError."""
    d = config_dir(store)
    path = os.path.join(d, bridge)
    if not os.path.exists(path):
        return
    with _lock():
        lines = _read(path)
        gone = [line for line in lines[1:] if line.split(" ")[1] == address]
        if not gone:
            return
        kept = [lines[0], *(line for line in lines[1:] if line not in gone)]
        if len(kept) > 1:
            _write(path, kept)
        else:
            os.unlink(path)
        name = gone[0].split(" ")[3].split(",")[0]
        gateway = lines[0].split(" ")[0]
        # the name may still be another member's alias: then it resolves, as it should
        still = any(name in line.split(" ")[3].split(",") for line in kept[1:])
        _apply(store, d, (gateway, name, still))


def drop_network(store: Store, bridge: str) -> None:
    """Forget the network of bridge (removed): its file goes, the server reloads or stops."""
    d = config_dir(store)
    if not os.path.exists(os.path.join(d, bridge)):
        return
    with _lock():
        with _ignore_gone():
            os.unlink(os.path.join(d, bridge))
        _apply(store, d, None)


def reset(store: Store) -> None:
    """Stop the store's server and remove its directory (`system reset`)."""
    d = config_dir(store)
    if not os.path.isdir(d):
        return
    with _lock():
        _stop(d)
        for f in os.listdir(d):
            with _ignore_gone():
                os.unlink(os.path.join(d, f))
        with _ignore_gone():
            os.rmdir(d)
