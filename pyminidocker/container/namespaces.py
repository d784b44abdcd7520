"""Work done inside another process's namespaces: setns(2), and what a container gets from
outside while its init is held (see "Holding" in csrc/pmd.h): its namespaced sysctls and its
NIS domain name. The engine's `run --sysctl/--domainname` and the OCI runtime's linux.sysctl
and domainname both come here. Imported only by containers that need it (not the start path).
"""
from __future__ import annotations

import os

from pyminidocker.errors import PmdError, StartError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

# The names under /proc/PID/ns/ of each type (OCI's names as keys).
NS_FILES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
            "cgroup": "cgroup", "user": "user", "time": "time"}


def setns(path: str, nstype: int = 0, fd: int = -1) -> None:
    """setns(2) into the namespace at path, or through fd (opened from path) if given (Python
    3.11 has no os.setns). Raises PmdError."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    own = fd < 0
    if own:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, nstype) != 0:
            e = ctypes.get_errno()
            raise PmdError(f"setns {path}: {os.strerror(e)}")
    finally:
        if own:
            os.close(fd)


def in_namespaces(pid: int, kinds: tuple[str, ...], work: Callable[[], None]) -> None:
    """Run work() in a child that has entered the namespaces kinds of pid (sysctls and the
    domain name are per namespace, read from the writer's). Raises PmdError with the
    child's message."""
    from pyminidocker.container.spec import NAMESPACES

    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        code = 0
        try:
            for kind in kinds:
                setns(f"/proc/{pid}/ns/{NS_FILES[kind]}", NAMESPACES[kind])
            work()
        except BaseException as e:  # reported to the parent, which raises it
            os.write(w, str(e).encode()[:4000])
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode(errors="replace")
    os.waitpid(child, 0)
    if msg:
        raise PmdError(msg)


def configure(pid: int, sysctl: Mapping[str, str], domainname: str | None) -> None:
    """Write the sysctls (each in the namespace that owns it) and set the domain name of the
    (held) process pid's namespaces. Raises PmdError naming the sysctl the kernel refused."""
    if not sysctl and not domainname:
        return

    def work() -> None:
        for key, value in sysctl.items():
            path = "/proc/sys/" + key.replace(".", "/")
            try:
                with open(path, "w") as f:
                    f.write(value)
            except OSError as e:
                raise PmdError(f"write sysctl {key}={value}: {e.strerror}") from None
        if domainname:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            name = domainname.encode()
            if libc.setdomainname(name, len(name)) != 0:
                raise PmdError(f"setdomainname: {os.strerror(ctypes.get_errno())}")

    in_namespaces(pid, ("network", "ipc", "uts"), work)


def configure_held(proc: Any, sysctl: Mapping[str, str], domainname: str | None) -> None:
    """The engine's --sysctl and --domainname, written in its held container proc's
    namespaces (configure). Raises StartError (exit 125); the container is ended unrun."""
    try:
        configure(proc.pid, sysctl, domainname)
    except BaseException as e:
        proc.abort()
        if isinstance(e, PmdError):
            raise StartError(str(e), exit_code=125) from None
        raise
