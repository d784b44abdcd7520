"""What pyminidocker-runc does around a container's process, for create, run and exec alike:
its console (a pty, or the master sent to a console socket), its pid file, the signals it
forwards, its exit code, and a failed start in runc's words."""
from __future__ import annotations

import os

from pyminidocker.oci.runtime import RuntimeError_

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyminidocker import native as shim


def write_pid_file(path: str, pid: int) -> None:
    if not path:
        return
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def open_console(size: tuple[int, int] | None) -> tuple[int, int]:
    """A pty pair from the host's devpts: (master, slave), the size set if given."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    if size and size[0] and size[1]:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    return master, slave


def send_console(socket_path: str, master: int) -> None:
    """Send the pty master over the console socket with SCM_RIGHTS, as runc does (containerd's
    console.ReceiveMaster, conmon's)."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(socket_path)
        socket.send_fds(s, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise RuntimeError_(f"console socket {socket_path}: {e.strerror}") from None
    finally:
        s.close()


def stdio_pty(spec: shim.SpawnSpec, slave: int) -> None:
    spec.stdin = spec.stdout = spec.stderr = slave
    spec.setsid = spec.ctty = True


def start_error(e: OSError, argv0: str) -> str:
    """The shim's error (op, errno, path) of a process that did not start, in runc's words."""
    op = getattr(e, "op", None) or ""
    stage, _, rest = op.partition(" hook ")
    if rest and stage in ("createContainer", "startContainer"):
        # runc's words: error running <stage> hook #N: ...
        why = "timeout" if e.errno == 110 else rest.partition(": ")[2] or e.strerror or ""
        if e.errno == 5 and e.filename:  # its exit status, then its output
            why += f", {e.filename}"
        return f"error running {stage} hook #{rest.split(':')[0]}: {why}"
    if op == "exec":
        if e.errno == 2:
            return f'exec: "{argv0}": executable file not found in $PATH'
        return f'exec: "{argv0}": {(e.strerror or "").split(": ", 1)[-1]}'
    where = f": {e.filename}" if e.filename else ""
    return f"unable to start container process: {e.strerror}{where}"


class Forward:
    """Signals the runtime gets go to the container's process (runc's signal proxy)."""

    SIGNALS = (1, 2, 3, 10, 12, 15, 28)

    def __init__(self, pid: int):
        import _signal as signal  # without the enum wrappers of `signal` (milliseconds)

        self.pid = pid
        self.old = {s: signal.signal(s, self.forward) for s in self.SIGNALS}

    def forward(self, signum: int, _frame: object) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def restore(self) -> None:
        import _signal as signal

        for s, h in self.old.items():
            signal.signal(s, h)


def relay_tty(pid: int, master: int) -> int:
    """Copy our stdin to the pty and its output to our stdout until pid exits; its code."""
    import threading

    from pyminidocker import native as shim

    def pump() -> None:
        try:
            while data := os.read(0, 4096):
                os.write(master, data)
        except OSError:
            pass

    threading.Thread(target=pump, daemon=True).start()
    return shim.relay(pid, [master], [1])


def wait(pid: int, master: int) -> int:
    """Wait for pid, relaying its pty if it has one (master >= 0, then closed); its exit code
    as a shell reports it (128+N for a signal), with our signals forwarded to it meanwhile."""
    from pyminidocker import native as shim

    fwd = Forward(pid)
    try:
        code = relay_tty(pid, master) if master >= 0 else shim.wait(pid)
    finally:
        fwd.restore()
    return 128 - code if code < 0 else code
