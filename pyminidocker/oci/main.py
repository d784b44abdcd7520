"""pyminidocker-runc: runc's command line (the verbs, flags, exit codes and output containerd,
Podman and dockerd rely on) over pyminidocker's shim.

Errors are one line on stderr and, with --log, a record in the log (containerd reads the last
"error" record of a json log to say why a runtime failed); the exit code is 1 as runc's, 255
for a failed exec, the container's own for run and exec.
"""
from __future__ import annotations

import os
import sys

from pyminidocker.cli.args import REMAINDER, Help, Parser
from pyminidocker.errors import NotFound, PmdError, UsageError
from pyminidocker.oci import state as st


class _Lazy:
    """A module imported on first use: containerd's shim calls `state` many times per
    container, and `state` needs neither the config reader nor the shim (milliseconds each)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        module = __import__(self._name, fromlist=["_"])
        return getattr(module, attr)


TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from pyminidocker import shim
    from pyminidocker.oci import config as cfg
    from pyminidocker.oci import runtime as rt
else:
    shim = _Lazy("pyminidocker.shim")
    cfg = _Lazy("pyminidocker.oci.config")
    rt = _Lazy("pyminidocker.oci.runtime")

VERSION = "0.1.0"
PROG = "pyminidocker-runc"

_SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}


class ExecFailed(PmdError):
    exit_code = 255


def parse_signal(text: str) -> int:
    """"KILL", "SIGKILL", "9", "SIGRTMIN+3" → the number. Raises UsageError."""
    name = text.upper().removeprefix("SIG")
    if text.isdigit() and 0 < int(text) <= 64:
        return int(text)
    if name in _SIGNALS:
        return _SIGNALS[name]
    if name.startswith("RTMIN") or name.startswith("RTMAX"):
        base, _, off = name[5:].partition("+") if "+" in name else (name[5:], "", "")
        if not base and (not off or off.isdigit()):
            return 34 + int(off or 0) if name.startswith("RTMIN") else 64 - int(off or 0)
    raise UsageError(f"unknown signal {text!r}", exit_code=1)


# ---- the parser -------------------------------------------------------------------------------

def _parser() -> Parser:
    p = Parser(PROG, "an OCI runtime with runc's command line, over pyminidocker's C shim")
    p.add_argument("--root", default=st.DEFAULT_ROOT, help="root directory for container state")
    p.add_argument("--log", default="", help="log file (default: stderr only)")
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--debug", action="store_true", help="debug output")
    p.add_argument("--systemd-cgroup", action="store_true",
                   help="use systemd for cgroups (not supported)")
    p.add_argument("--criu", default="", help="(ignored: no checkpoint/restore)")
    p.add_argument("--rootless", default="auto", help="(ignored: runs as root)")
    p.add_argument("-v", "--version", action="store_true", help="print the version")
    cmds = p.add_subparsers("verb")

    def bundle(q: Parser) -> None:
        q.add_argument("-b", "--bundle", default="", help="path to the bundle (default: .)")
        q.add_argument("--console-socket", default="",
                       help="unix socket to which the pty master is sent")
        q.add_argument("--pid-file", default="", help="file to write the init's pid to")
        q.add_argument("--no-pivot", action="store_true", help="(accepted; pivot_root is used)")
        q.add_argument("--no-new-keyring", action="store_true",
                       help="(accepted; no session keyring is made)")
        q.add_argument("--preserve-fds", type=int, default=0,
                       help="extra fds to pass to the container")
        q.add_argument("id")

    q = cmds.add_parser("create", help="create a container (held until start)")
    bundle(q)
    q = cmds.add_parser("run", help="create and start a container")
    q.add_argument("-d", "--detach", action="store_true", help="detach from the container")
    q.add_argument("--keep", action="store_true", help="keep the container's state at exit")
    bundle(q)
    cmds.add_parser("start", help="start a created container").add_argument("id")
    cmds.add_parser("state", help="output the state of a container").add_argument("id")
    q = cmds.add_parser("kill", help="send a signal to a container's init")
    q.add_argument("-a", "--all", action="store_true", help="every process of the container")
    q.add_argument("id")
    q.add_argument("signal", nargs="?", default="SIGTERM")
    q = cmds.add_parser("delete", help="delete a container's resources")
    q.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")
    q.add_argument("id")
    q = cmds.add_parser("exec", help="run a process in a running container")
    q.add_argument("--console-socket", default="")
    q.add_argument("--cwd", default="")
    q.add_argument("-e", "--env", action="append")
    q.add_argument("-t", "--tty", action="store_true")
    q.add_argument("-u", "--user", default="")
    q.add_argument("-g", "--additional-gids", action="append")
    q.add_argument("-p", "--process", default="")
    q.add_argument("-d", "--detach", action="store_true")
    q.add_argument("--pid-file", default="")
    q.add_argument("--process-label", default="")
    q.add_argument("--apparmor", default="")
    q.add_argument("--no-new-privs", action="store_true")
    q.add_argument("-c", "--cap", action="append")
    q.add_argument("--preserve-fds", type=int, default=0)
    q.add_argument("--ignore-paused", action="store_true")
    q.add_argument("--cgroup", action="append")
    q.add_argument("id")
    q.add_argument("command", nargs=REMAINDER)
    q = cmds.add_parser("list", help="list containers")
    q.add_argument("-f", "--format", default="table", choices=("table", "json"))
    q.add_argument("-q", "--quiet", action="store_true")
    q = cmds.add_parser("ps", help="processes of a container")
    q.add_argument("-f", "--format", default="table", choices=("table", "json"))
    q.add_argument("id")
    q.add_argument("ps_args", nargs=REMAINDER)
    cmds.add_parser("pause", help="freeze a container").add_argument("id")
    cmds.add_parser("resume", help="thaw a container").add_argument("id")
    q = cmds.add_parser("update", help="change a container's resources")
    q.add_argument("-r", "--resources", default="", help="linux.resources JSON file (- = stdin)")
    for flag in ("--memory", "--memory-swap", "--memory-reservation", "--kernel-memory",
                 "--cpu-quota", "--cpu-period", "--cpu-shares", "--cpuset-cpus",
                 "--cpuset-mems", "--pids-limit", "--blkio-weight", "--cpu-rt-period",
                 "--cpu-rt-runtime", "--l3-cache-schema", "--mem-bw-schema"):
        q.add_argument(flag, default=None)
    q.add_argument("id")
    cmds.add_parser("features", help="the features this runtime supports (JSON)")
    q = cmds.add_parser("spec", help="write a default config.json")
    q.add_argument("-b", "--bundle", default="")
    q.add_argument("--rootless", action="store_true")
    q = cmds.add_parser("events", help="container events (--stats: one sample)")
    q.add_argument("--stats", action="store_true")
    q.add_argument("--interval", default="5s")
    q.add_argument("id")
    return p


_LONG_FLAGS = frozenset({
    "root", "log", "log-format", "debug", "systemd-cgroup", "criu", "rootless", "version",
    "bundle", "console-socket", "pid-file", "no-pivot", "no-new-keyring", "preserve-fds",
    "detach", "keep", "all", "force", "cwd", "env", "tty", "user", "additional-gids",
    "process", "process-label", "apparmor", "no-new-privs", "cap", "ignore-paused", "cgroup",
    "format", "quiet", "resources", "memory", "memory-swap", "memory-reservation",
    "kernel-memory", "cpu-quota", "cpu-period", "cpu-shares", "cpuset-cpus", "cpuset-mems",
    "pids-limit", "blkio-weight", "stats", "interval", "help",
})


def _go_flags(argv: list[str]) -> list[str]:
    """Go's flag package (runc's CLI) takes `-root X` as `--root X`; so do we, for the flags
    we know, up to the container's command (exec ID CMD... is left alone)."""
    out: list[str] = []
    for i, a in enumerate(argv):
        if a == "--":
            return out + argv[i:]
        name = a[1:].partition("=")[0]
        out.append("-" + a if a.startswith("-") and not a.startswith("--")
                   and name in _LONG_FLAGS else a)
        if a == "exec":  # the rest may hold the container's own flags: stop at its id
            rest = argv[i + 1:]
            j = 0
            while j < len(rest) and rest[j].startswith("-"):
                j += 1
            return out + _go_flags(rest[:j]) + rest[j:] if j < len(rest) else out + rest
    return out


# ---- logging ----------------------------------------------------------------------------------

class Log:
    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        t = rt.now_rfc3339()
        if self.fmt == "json":
            import json

            line = json.dumps({"level": level, "msg": msg, "time": t})
        else:
            line = f'time="{t}" level={level} msg="{msg}"'.replace("\n", " ")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line.encode() + b"\n")
            finally:
                os.close(fd)
        except OSError:
            pass  # a log that cannot be written must not hide the error itself


# ---- helpers ----------------------------------------------------------------------------------

def _write_pid_file(path: str, pid: int) -> None:
    if not path:
        return
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def _open_console(size: tuple[int, int] | None) -> tuple[int, int]:
    """A pty pair from the host's devpts: (master, slave), the size set if given."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    if size and size[0] and size[1]:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    return master, slave


def _send_console(socket_path: str, master: int) -> None:
    """Send the pty master over the console socket with SCM_RIGHTS, as runc does (containerd's
    console.ReceiveMaster, conmon's)."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(socket_path)
        socket.send_fds(s, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise rt.RuntimeError_(f"console socket {socket_path}: {e.strerror}") from None
    finally:
        s.close()


def _start_error(e: OSError, argv0: str) -> str:
    op = getattr(e, "op", None) or ""
    if op.startswith("startContainer hook "):  # runc's words: error running ... hook #N: ...
        why = "timeout" if e.errno == 110 else op.partition(": ")[2] or e.strerror
        return f"error running startContainer hook #{op.split()[2].rstrip(':')}: {why}"
    if op == "exec":
        if e.errno == 2:
            return f'exec: "{argv0}": executable file not found in $PATH'
        return f'exec: "{argv0}": {(e.strerror or "").split(": ", 1)[-1]}'
    where = f": {e.filename}" if e.filename else ""
    return f"unable to start container process: {e.strerror}{where}"


def _stdio_pty(spec: shim.SpawnSpec, slave: int) -> None:
    spec.stdin = spec.stdout = spec.stderr = slave
    spec.setsid = spec.ctty = True


class _Forward:
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


def _relay_tty(pid: int, master: int) -> int:
    """Copy our stdin to the pty and its output to our stdout until pid exits; its code."""
    import threading

    def pump() -> None:
        try:
            while data := os.read(0, 4096):
                os.write(master, data)
        except OSError:
            pass

    threading.Thread(target=pump, daemon=True).start()
    return shim.relay(pid, [master], [1])


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code


# ---- create / start / run ---------------------------------------------------------------------

def _prepare(args: Any, root: str) -> rt.Prepared:
    # systemd's socket activation hands fds to the process LISTEN_PID names: ours only then
    listen = os.environ.get("LISTEN_FDS") and os.environ.get("LISTEN_PID") == str(os.getpid())
    if args.preserve_fds or listen:
        raise rt.RuntimeError_("--preserve-fds and LISTEN_FDS are not supported: the shim "
                               "closes every fd but the container's stdio")
    doc, bundle = cfg.load(args.bundle)
    c = cfg.parse(doc, bundle)
    return rt.prepare(c, doc, root, args.id)


def _hold(p: rt.Prepared, root: str, w: int, close_fds: list[int]) -> None:
    """The holder (see oci/runtime.py): spawn the init held, report its pid on w, wait for
    `start` or `delete` on ctl.sock. Never returns."""
    import _socket  # socket.py imports enum and selectors: milliseconds before the report
    import select

    code = 0
    try:
        os.setsid()  # the caller's terminal signals are not ours
        for fd in close_fds:
            os.close(fd)
        c = p.container
        # The control socket first: made after a network namespace is joined, it would be
        # bound in that namespace. Bound through a short relative path: <root>/<id>/ctl.sock
        # can pass the 108 bytes of sun_path (containerd's roots and 64-hex ids do).
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        os.chdir(os.path.dirname(p.record["ctl"]))
        sock.bind("ctl.sock")
        os.chdir("/")
        rt.join_paths(c)
        p.spec.hold = True
        rt.hooks_stdin(p.spec)
        if p.spec.stdin >= 0:
            # A terminal: the held init must not keep the caller's stdio open until start (the
            # shim applies spec's stdio after the release): containerd waits for EOF on the
            # pipes it gave `create` before it calls start.
            for fd in (0, 1, 2):
                os.dup2(p.spec.stdin, fd)
        proc = shim.spawn(p.spec)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the init has its copies: the caller's pipes must not wait on us
            os.dup2(null, fd)
        for fd in {p.spec.stdin, null} - {-1, 0, 1, 2}:
            os.close(fd)
        rec = dict(p.record, pid=proc.pid, pid_start=st.pid_start(proc.pid))
        ctl = rec["ctl"]
        try:
            rt.wait_in_cgroup(proc.pid, p.cgroup)
            rt.configure_init(c, proc.pid)
            state_obj = st.oci_state(rec, "created")
            rt.write_hooks_state(p.spec, state_obj)
            for stage in ("createRuntime", "createContainer"):
                rt.run_hooks(c.hooks.get(stage, []), stage, state_obj)
            sock.listen(4)
        except BaseException:
            proc.abort()
            raise
        os.write(w, f"P{proc.pid} {rec['pid_start']}".encode())
        os.close(w)
        w = -1
        pidfd = os.pidfd_open(proc.pid)
        while True:
            ready, _, _ = select.select([sock.fileno(), pidfd], [], [])
            if pidfd in ready:  # killed while held: nothing to start any more
                os.unlink(ctl)
                proc.abort()
                break
            conn = _socket.socket(fileno=sock._accept()[0])  # type: ignore[attr-defined]
            cmd = conn.recv(16)
            os.unlink(ctl)
            if cmd == b"start":
                # Prestart hooks run when start is called, before the process runs (the
                # runtime spec; runc runs them at create).
                try:
                    rt.run_hooks(c.hooks.get("prestart", []), "prestart", state_obj)
                    proc.release()
                    reply = b"OK"
                except OSError as e:
                    reply = b"E" + _start_error(e, p.spec.argv[0]).encode()
                except PmdError as e:  # a prestart hook failed: `start` deletes it
                    proc.abort()
                    reply = b"H" + str(e).encode()
            else:
                proc.abort()
                reply = b"OK"
            conn.sendall(reply)
            conn.close()
            break
    except BaseException as e:  # reported to `create`, which exits with it
        if w >= 0:
            if isinstance(e, OSError) and hasattr(e, "op"):  # the shim's: op, errno, path
                msg = _start_error(e, p.spec.argv[0])
            elif isinstance(e, OSError) and e.strerror:
                msg = f"{e.strerror}: {e.filename}"
            else:
                msg = str(e)
            os.write(w, b"E" + msg.encode())
        code = 1
    os._exit(code)


def _create(args: Any, root: str) -> tuple[rt.Prepared, int]:
    p = _prepare(args, root)
    c = p.container
    master = slave = -1
    try:
        if c.terminal and not args.console_socket:
            raise UsageError("cannot allocate tty if runc will detach without setting console "
                             "socket", exit_code=1)
        if not c.terminal and args.console_socket:
            raise UsageError("cannot use console socket if runc will not detach or allocate "
                             "tty", exit_code=1)
        if c.terminal:
            master, slave = _open_console(c.console_size)
            _stdio_pty(p.spec, slave)
        p.record["ctl"] = os.path.join(root, args.id, "ctl.sock")
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            if os.fork() != 0:
                os._exit(0)
            _hold(p, root, w, [master] if master >= 0 else [])
        os.close(w)
        os.waitpid(child, 0)
        with os.fdopen(r, "rb") as f:
            msg = f.read().decode(errors="replace")
        if not msg.startswith("P"):
            raise rt.RuntimeError_(msg[1:] or "the holder process died")
        pid_text, _, start = msg[1:].partition(" ")
        p.record.update(pid=int(pid_text), pid_start=start)
        st.save(root, p.record)
        if master >= 0:
            _send_console(args.console_socket, master)
        _write_pid_file(args.pid_file, p.record["pid"])
        return p, p.record["pid"]
    except BaseException:
        rec = p.record
        if rec.get("pid"):
            os.kill(rec["pid"], 9)
            rt.wait_gone(rec, 2)
        rt.cleanup(root, rec)
        raise
    finally:
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)


def _short_path(path: str) -> str:
    """path through /proc/self/fd/N of its directory: short enough for sun_path, whatever
    the root's length (the fd stays open until the process exits)."""
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{os.path.basename(path)}"


def _start(root: str, container_id: str) -> None:
    import _socket  # not socket: see _hold

    rec = st.load(root, container_id)
    status = st.status(rec)
    if status == "stopped":
        raise rt.RuntimeError_("cannot start a container that has stopped")
    if status != "created":
        raise rt.RuntimeError_("cannot start an already running container")
    no_process = "process" not in (rec.get("config") or {})
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(_short_path(rec["ctl"]))
        s.sendall(b"abort" if no_process else b"start")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    except OSError as e:
        raise rt.RuntimeError_(f"cannot start container: {e.strerror}") from None
    finally:
        s.close()
    if no_process:
        raise rt.RuntimeError_("cannot start a container without a process (config.json has "
                               "none)")
    if reply.startswith(b"H"):
        # A prestart hook failed: the container is stopped and the lifecycle goes on to its
        # deletion (the runtime spec's step 9), poststop hooks included.
        rt.run_hooks(rt.hooks_of(rec).get("poststop", []), "poststop",
                     st.oci_state(rec, "stopped"), warn_only=True)
        rt.cleanup(root, rec)
    if reply != b"OK":
        raise rt.RuntimeError_(reply[1:].decode(errors="replace") or "start failed")
    rec["started"] = True
    st.save(root, rec)
    # A failing poststart hook is a warning: the container runs on (the runtime spec).
    # "running" as this start made it, even if a short process has already exited (runc's)
    for msg in rt.run_hooks(rt.hooks_of(rec).get("poststart", []), "poststart",
                            st.oci_state(rec, "running"), warn_only=True):
        sys.stderr.write(f"warning: {msg}\n")


def _run(args: Any, root: str) -> int:
    if args.detach:
        _create(args, root)
        _start(root, args.id)
        return 0
    p = _prepare(args, root)
    c, spec = p.container, p.spec
    if not c.has_process:
        rt.cleanup(root, p.record)
        raise rt.RuntimeError_("cannot run a container without a process (config.json has "
                               "none)")
    master = slave = -1
    proc = None
    fwd = None
    try:
        if c.terminal:
            master, slave = _open_console(c.console_size)
            _stdio_pty(spec, slave)
        rt.join_paths(c)
        spec.hold = True
        rt.hooks_stdin(spec)
        proc = shim.spawn(spec)
        rec = p.record
        rec.update(pid=proc.pid, pid_start=st.pid_start(proc.pid), started=True)
        rt.configure_init(c, proc.pid)
        state_obj = st.oci_state(rec, "created")
        rt.write_hooks_state(spec, state_obj)
        for stage in ("prestart", "createRuntime", "createContainer"):
            rt.run_hooks(c.hooks.get(stage, []), stage, state_obj)
        st.save(root, rec)
        _write_pid_file(args.pid_file, proc.pid)
        try:
            proc.release()
        except OSError as e:
            raise rt.RuntimeError_(_start_error(e, spec.argv[0])) from None
        if slave >= 0:
            os.close(slave)
            slave = -1
        fwd = _Forward(proc.pid)
        for msg in rt.run_hooks(c.hooks.get("poststart", []), "poststart",
                                st.oci_state(rec, "running"), warn_only=True):
            sys.stderr.write(f"warning: {msg}\n")
        if master >= 0:
            code = _relay_tty(proc.pid, master)
            master = -1
        else:
            code = shim.wait(proc.pid)
        proc = None
        return _exit_code(code)
    finally:
        if fwd is not None:
            fwd.restore()
        if proc is not None:
            if proc.held:
                proc.abort()
            else:
                try:
                    os.kill(proc.pid, 9)
                    shim.wait(proc.pid)
                except OSError:
                    pass
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
        rec = p.record
        rt.run_hooks(c.hooks.get("poststop", []), "poststop", st.oci_state(rec, "stopped"),
                     warn_only=True)
        if not args.keep:
            rt.cleanup(root, rec)


# ---- the other verbs --------------------------------------------------------------------------

def _state(root: str, container_id: str) -> dict[str, Any]:
    return st.oci_state(st.load(root, container_id))


def _kill(root: str, args: Any) -> None:
    rec = st.load(root, args.id)
    sig = parse_signal(args.signal)
    if st.status(rec) == "stopped":
        raise rt.RuntimeError_("container not running")
    if args.all:
        cg_id, parent = rec["cgroup"]
        rt.Cgroup(cg_id, parent).kill(sig)
        return
    try:
        os.kill(rec["pid"], sig)
    except ProcessLookupError:
        raise rt.RuntimeError_("container not running") from None


def _delete(root: str, args: Any) -> None:
    try:
        rec = st.load(root, args.id)
    except NotFound:
        if args.force:
            return
        raise
    status = st.status(rec)
    if status != "stopped":
        # The runtime spec's rule ("MUST generate an error"); runc 1.1 deletes a created one.
        if not args.force:
            raise rt.RuntimeError_(f"cannot delete container {args.id} that is not stopped: "
                                   f"{status}")
    if status != "stopped":
        cg_id, parent = rec["cgroup"]
        cg = rt.Cgroup(cg_id, parent)
        if status == "paused":
            _freeze(rec, False)
        cg.kill(9)
        try:
            os.kill(rec["pid"], 9)
        except ProcessLookupError:
            pass
        if not rt.wait_gone(rec, 10):
            raise rt.RuntimeError_(f"container {args.id} does not die")
    failures = rt.run_hooks(rt.hooks_of(rec).get("poststop", []), "poststop",
                            st.oci_state(rec, "stopped"), warn_only=True)
    rt.cleanup(root, rec)
    for msg in failures:
        sys.stderr.write(f"warning: {msg}\n")


def _freeze(rec: dict[str, Any], on: bool) -> None:
    freezer = rec.get("freezer")
    if not freezer:
        raise rt.RuntimeError_("this host has no freezer cgroup: cannot pause")
    try:
        with open(os.path.join(freezer, "freezer.state"), "w") as f:
            f.write("FROZEN" if on else "THAWED")
    except OSError as e:
        raise rt.RuntimeError_(f"freezer: {e.strerror}") from None


def _pause(root: str, container_id: str, on: bool) -> None:
    rec = st.load(root, container_id)
    status = st.status(rec)
    if on and status != "running":
        raise rt.RuntimeError_("container not running")
    if not on and status != "paused":
        raise rt.RuntimeError_("container not paused")
    _freeze(rec, on)


def _list(root: str, args: Any) -> str:
    import json

    recs = []
    for cid in st.ids(root):
        try:
            recs.append(st.load(root, cid))
        except PmdError:
            continue
    if args.quiet:
        return "".join(r["id"] + "\n" for r in recs)
    states = [st.oci_state(r) for r in recs]
    if args.format == "json":
        return json.dumps(states or None) + "\n"
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")] + [
        (s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], "root") for s in states]
    widths = [max(max(len(r[i]) for r in rows) + 1, 12) for i in range(5)]
    return "".join("".join(v.ljust(w) for v, w in zip(r, widths)) + r[5] + "\n" for r in rows)


def _ps(root: str, args: Any) -> str:
    import json
    import subprocess

    rec = st.load(root, args.id)
    cg_id, parent = rec["cgroup"]
    pids = rt.Cgroup(cg_id, parent).pids() if st.status(rec) != "stopped" else []
    if args.format == "json":
        return json.dumps(pids) + "\n"
    out = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise rt.RuntimeError_(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return ""
    try:
        col = lines[0].split().index("PID")
    except ValueError:
        raise rt.RuntimeError_("couldn't find PID field in ps output") from None
    keep = [lines[0]] + [ln for ln in lines[1:] if len(ln.split()) > col and
                         ln.split()[col].isdigit() and int(ln.split()[col]) in pids]
    return "\n".join(keep) + "\n"


def _update(root: str, args: Any) -> None:
    import json

    rec = st.load(root, args.id)
    if st.status(rec) == "stopped":
        raise rt.RuntimeError_("container not running")
    res: dict[str, Any] = {}
    if args.resources:
        try:
            text = sys.stdin.read() if args.resources == "-" else open(args.resources).read()
            res = json.loads(text)
        except (OSError, ValueError) as e:
            raise rt.RuntimeError_(f"resources: {e}") from None
    flags = {"memory": ("memory", "limit"), "memory_swap": ("memory", "swap"),
             "memory_reservation": ("memory", "reservation"),
             "kernel_memory": ("memory", "kernel"), "cpu_quota": ("cpu", "quota"),
             "cpu_period": ("cpu", "period"), "cpu_shares": ("cpu", "shares"),
             "cpuset_cpus": ("cpu", "cpus"), "cpuset_mems": ("cpu", "mems"),
             "pids_limit": ("pids", "limit"), "blkio_weight": ("blockIO", "weight"),
             "cpu_rt_period": ("cpu", "realtimePeriod"),
             "cpu_rt_runtime": ("cpu", "realtimeRuntime")}
    for dest, (group, key) in flags.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if key not in ("cpus", "mems"):
            try:
                value = int(value)
            except ValueError:
                from pyminidocker.container.cgroups import parse_bytes

                value = parse_bytes(value, allow_unlimited=True)
        res.setdefault(group, {})[key] = value
    resources = cfg._resources(res)
    cg_id, parent = rec["cgroup"]
    cg = rt.Cgroup(cg_id, parent)
    extra: dict[str, str] = {}
    for d in rec.get("extra_cgroups") or []:
        for ctl in rt._EXTRA_CONTROLLERS:
            mount = cg.layout.controllers.get(ctl)
            if mount and d.startswith(mount + "/"):
                extra[ctl] = d
    rt._write_resources(cg, resources.files, extra)


def _events(root: str, args: Any) -> str:
    import json

    rec = st.load(root, args.id)
    if st.status(rec) == "stopped":
        raise rt.RuntimeError_("container not running")
    cg_id, parent = rec["cgroup"]
    s = rt.Cgroup(cg_id, parent).stats()
    data = {
        "cpu": {"usage": {"total": s.get("cpu_usage_ns") or 0}},
        "memory": {"usage": {"usage": s.get("memory_usage") or 0,
                             "limit": s.get("memory_limit") or 0}},
        "pids": {"current": s.get("pids") or 0},
    }
    return json.dumps({"type": "stats", "id": args.id, "data": data}) + "\n"


def _exec(root: str, args: Any) -> int:
    import json

    rec = st.load(root, args.id)
    status = st.status(rec)
    if status == "paused" and not args.ignore_paused:
        raise ExecFailed("cannot exec in a paused container (use --ignore-paused to override)")
    if status in ("stopped", "created"):
        raise ExecFailed(f"cannot exec in a {status} container")
    warnings: list[str] = []
    if args.process:
        try:
            with open(args.process) as f:
                proc_doc = json.load(f)
        except (OSError, ValueError) as e:
            raise ExecFailed(f"process {args.process}: {e}") from None
    else:
        proc_doc = dict(rec.get("config", {}).get("process") or {})
        if not args.command:
            raise UsageError("exec: a command is required", exit_code=1)
        proc_doc["args"] = args.command
        proc_doc["env"] = [*(proc_doc.get("env") or []), *args.env]
        proc_doc["terminal"] = args.tty
        if args.cwd:
            proc_doc["cwd"] = args.cwd
        if args.user:
            u, _, g = args.user.partition(":")
            proc_doc["user"] = {"uid": int(u), "gid": int(g or 0),
                                "additionalGids": [int(x) for x in args.additional_gids]}
        if args.no_new_privs:
            proc_doc["noNewPrivileges"] = True
        if args.cap:
            caps = dict(proc_doc.get("capabilities") or {})
            for key in ("bounding", "effective", "permitted"):
                caps[key] = [*caps.get(key, []), *args.cap]
            proc_doc["capabilities"] = caps
    try:
        spec = cfg.process_spec(proc_doc, None, warnings)
    except cfg.ConfigError as e:
        raise ExecFailed(str(e)) from None
    linux = rec.get("config", {}).get("linux") or {}
    seccomp = linux.get("seccomp")
    if isinstance(seccomp, dict):
        try:
            cfg._seccomp(seccomp, spec)
        except cfg.ConfigError as e:
            raise ExecFailed(str(e)) from None
    spec.join_pid = rec["pid"]
    spec.namespaces = rec.get("ns_mask", 0)
    cg_id, parent = rec["cgroup"]
    spec.cgroup_procs = [*rt.Cgroup(cg_id, parent).procs_files(),
                         *(os.path.join(d, "tasks") for d in rec.get("extra_cgroups") or [])]
    spec.setsid = True
    terminal = bool(proc_doc.get("terminal"))
    if terminal and args.detach and not args.console_socket:
        raise ExecFailed("cannot allocate tty if runc will detach without setting console "
                         "socket")
    master = slave = -1
    try:
        if terminal:
            size = proc_doc.get("consoleSize") or {}
            master, slave = _open_console((size.get("height", 0), size.get("width", 0)))
            _stdio_pty(spec, slave)
        try:
            proc = shim.spawn(spec)
        except OSError as e:
            raise ExecFailed(f"exec failed: {_start_error(e, spec.argv[0])}") from None
        if slave >= 0:
            os.close(slave)
            slave = -1
        _write_pid_file(args.pid_file, proc.pid)
        if args.detach:
            if master >= 0:
                _send_console(args.console_socket, master)
            return 0
        fwd = _Forward(proc.pid)
        try:
            if master >= 0:
                code = _relay_tty(proc.pid, master)
                master = -1
            else:
                code = shim.wait(proc.pid)
        finally:
            fwd.restore()
        return _exit_code(code)
    finally:
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)


def _features() -> dict[str, Any]:
    from pyminidocker.container.defaults import CAPS

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": cfg.SUPPORTED_OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": sorted(cfg.MOUNT_OPTIONS),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": [f"CAP_{c}" for c in CAPS],
            "cgroup": {"v1": True, "v2": False, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": [], "operators": [], "archs": []},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runc.version": f"pyminidocker-runc {VERSION}"},
    }


def _spec(args: Any) -> None:
    import json

    from pyminidocker.container import defaults

    path = os.path.join(args.bundle or ".", "config.json")
    if os.path.exists(path):
        raise rt.RuntimeError_("File config.json exists. Remove it first.")
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    nsd = ["nosuid", "noexec", "nodev"]
    doc = {
        "ociVersion": cfg.SUPPORTED_OCI_VERSION,
        "process": {
            "terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": [defaults.DEFAULT_ENV_PATH, "TERM=xterm"], "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": [*nsd, "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": nsd},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": [*nsd, "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": [*nsd, "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                                 "cgroup")],
            "maskedPaths": defaults.MASKED_PATHS,
            "readonlyPaths": defaults.READONLY_PATHS,
        },
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent="\t")
        f.write("\n")


# ---- main -------------------------------------------------------------------------------------

def _json(obj: Any, indent: int) -> str:
    """obj indented as runc prints it, in its own key order; through jsonio, as the json
    package imports re (milliseconds of every `state`)."""
    from pyminidocker import jsonio

    def emit(o: Any, level: int) -> str:
        inner, outer = " " * indent * (level + 1), " " * indent * level
        if isinstance(o, dict) and o:
            items = [f"{inner}{jsonio.dumps(str(k))}: {emit(v, level + 1)}" for k, v in o.items()]
            return "{\n" + ",\n".join(items) + f"\n{outer}}}"
        if isinstance(o, list) and o:
            return "[\n" + ",\n".join(inner + emit(v, level + 1) for v in o) + f"\n{outer}]"
        return jsonio.dumps(o)

    return emit(obj, 0) + "\n"


def program(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(_go_flags(argv))
    except Help as h:
        sys.stdout.write(h.parser.format_help())
        return 0
    if args.version:
        sys.stdout.write(f"{PROG} version {VERSION}\nspec: {cfg.SUPPORTED_OCI_VERSION}\n")
        return 0
    if args.verb is None:
        sys.stdout.write(parser.format_help())
        return 0
    if args.systemd_cgroup:
        raise rt.RuntimeError_("--systemd-cgroup is not supported: pyminidocker-runc drives "
                               "cgroupfs only (configure the caller with SystemdCgroup=false)")
    root = os.path.abspath(args.root)
    cmd = args.verb
    if hasattr(args, "id"):
        st.check_id(args.id)
    if cmd == "create":
        _create(args, root)
    elif cmd == "start":
        _start(root, args.id)
    elif cmd == "run":
        return _run(args, root)
    elif cmd == "state":
        sys.stdout.write(_json(_state(root, args.id), 2))
    elif cmd == "kill":
        _kill(root, args)
    elif cmd == "delete":
        _delete(root, args)
    elif cmd == "exec":
        return _exec(root, args)
    elif cmd == "list":
        sys.stdout.write(_list(root, args))
    elif cmd == "ps":
        sys.stdout.write(_ps(root, args))
    elif cmd in ("pause", "resume"):
        _pause(root, args.id, cmd == "pause")
    elif cmd == "update":
        _update(root, args)
    elif cmd == "events":
        if not args.stats:
            raise rt.RuntimeError_("events: only --stats (one sample) is supported")
        sys.stdout.write(_events(root, args))
    elif cmd == "features":
        sys.stdout.write(_json(_features(), 4))
    elif cmd == "spec":
        _spec(args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    log = Log("", "text")
    try:
        # the log flags are read first, so that a usage error is logged too
        for i, a in enumerate(argv):
            if a.lstrip("-") in ("log", "log-format") and i + 1 < len(argv):
                if a.lstrip("-") == "log":
                    log.path = argv[i + 1]
                else:
                    log.fmt = argv[i + 1]
            elif a.lstrip("-").startswith("log="):
                log.path = a.partition("=")[2]
            elif a.lstrip("-").startswith("log-format="):
                log.fmt = a.partition("=")[2]
        return program(argv)
    except PmdError as e:
        msg = str(e)
        code = 1 if isinstance(e, (UsageError, NotFound)) or e.exit_code == 125 \
            else e.exit_code
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        msg, code = f"{e.strerror or e}{where}", 1
    except KeyboardInterrupt:
        return 130
    log.write("error", msg)
    sys.stderr.write(f"{msg}\n")
    return code


def command() -> None:
    """The `pyminidocker-runc` console script: main(), flushed, then exit without the
    interpreter's finalisation (as pyminidocker's command; see cli/main.py)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    command()
