"""A container's standard streams and signals while we wait for it: its output relayed to
ours and into its log, the signals an attached `run` receives passed on, the exit codes of a
start that failed, and --oom-score-adj around the spawn.
"""
from __future__ import annotations

import errno
import os

from pyminidocker import native as _native
from pyminidocker.container import spec as policy
from pyminidocker.errors import PmdError, StartError, suppress

try:
    import _signal as signal  # the signal module without its enum wrappers (enum costs ms)
except ImportError:  # pragma: no cover - not CPython
    import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def spawn_failure(e: BaseException) -> OSError | None:
    """The shim's error when spawning failed; a StoreError is an OSError too, but says what it
    means itself."""
    return e if isinstance(e, OSError) and not isinstance(e, PmdError) else None


def start_error(e: OSError) -> StartError:
    return StartError(start_message(e), exit_code=policy.exec_exit_code(e))


def start_message(e: OSError | None) -> str:
    if e is None:
        return ""
    if e.errno == errno.ENOENT and e.filename:
        return (f'failed to create task: exec: "{e.filename}": executable file not found in '
                "$PATH")
    if e.errno == errno.EACCES and e.filename:
        return f'failed to create task: exec: "{e.filename}": permission denied'
    where = f": {e.filename}" if e.filename else ""
    return f"failed to create task: {e.strerror}{where}"


class oom_score:
    """--oom-score-adj: the kernel copies oom_score_adj into every child, so ours is set for
    the spawn (the container and its monitor get it) and put back after."""

    def __init__(self, value: int | None):
        self.value = value
        self.old = b""

    def __enter__(self) -> None:
        if self.value is not None:
            with open("/proc/self/oom_score_adj", "r+b", buffering=0) as f:
                self.old = f.read().strip()
                f.seek(0)
                f.write(str(self.value).encode())

    def __exit__(self, *_: object) -> None:
        if self.value is not None and self.old:
            with open("/proc/self/oom_score_adj", "wb", buffering=0) as f:
                f.write(self.old)


class Output:
    """A process's output on its way to us (see _native.relay): the json-file log of an
    attached container (None: not logged, as an exec's output is not), and the pipes its
    stdout and stderr write to, unless it has a tty, whose master is read instead (a pty has
    one stream: logged as stdout, as Docker does)."""

    def __init__(self, log_path: str | None, tty: bool):
        self.log = -1 if log_path is None else \
            os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.read: list[int] = []
        self.write: list[int] = []
        try:
            for _ in range(0 if tty else 2):
                r, w = os.pipe()
                self.read.append(r)
                self.write.append(w)
        except BaseException:
            self.close()
            raise

    def spawned(self) -> None:
        """The child has its copies of the write ends: ours go, so that the relay sees EOF
        once the container's processes have closed theirs."""
        for fd in self.write:
            os.close(fd)
        self.write = []

    def relay(self, proc: Any, stdio: tuple[int, int, int]) -> int:
        """Relay to stdio[1] and stdio[2] (-1: ours) until the process has exited; reap it
        and return its code (-signal if killed). A tty's master stays the caller's."""
        src = self.read or [os.dup(proc.console_fd)]
        self.read = []  # the relay's now
        return _native.relay(proc.pid, src, [stdio[1] if stdio[1] >= 0 else 1,
                                             stdio[2] if stdio[2] >= 0 else 2], self.log)

    def close(self) -> None:
        for fd in (self.log, *self.read, *self.write):
            if fd >= 0:
                os.close(fd)
        self.log, self.read, self.write = -1, [], []


class forward_signals:
    """`with forward_signals(pid):` passes the signals an attached `run` receives on to the
    container (Docker's sig-proxy)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
               signal.SIGUSR2)

    def __init__(self, pid: int, enabled: bool = True):
        self.pid = pid
        self.enabled = enabled  # --sig-proxy=false: our signals are ours
        self.old: dict[int, Any] = {}

    def forward(self, signum: int, _frame: object) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def __enter__(self) -> None:
        if not self.enabled:
            return
        try:
            self.old = {s: signal.signal(s, self.forward) for s in self.SIGNALS}
        except ValueError:  # not the main thread (the API server's workers): its own
            self.old = {}   # signals are not the container's business there

    def __exit__(self, *_: object) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)

