"""`create`: a container whose init exists, held before its first step, until `start`.

`create` exits, so the hold is kept by a small holder process it forks (see oci/runtime.py):
the holder spawns the init held, reports its pid back, then waits on <root>/<id>/ctl.sock for
`start` (release) or a delete (abort), answers, and exits. The socket is ctl-plain.sock
instead when the start is that release alone (a process and no hook): the C front
(csrc/ocifront.c) then answers `start` itself, without starting Python.
"""
from __future__ import annotations

import os
import sys

from pyminidocker import native as shim
from pyminidocker.errors import PmdError, UsageError
from pyminidocker.oci import config as cfg
from pyminidocker.oci import process
from pyminidocker.oci import runtime as rt
from pyminidocker.oci import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def prepare(args: Any, root: str) -> rt.Prepared:
    # systemd's socket activation hands fds to the process LISTEN_PID names: ours only then
    listen = os.environ.get("LISTEN_FDS") and os.environ.get("LISTEN_PID") == str(os.getpid())
    if args.preserve_fds or listen:
        raise rt.RuntimeError_("--preserve-fds and LISTEN_FDS are not supported: the shim "
                               "closes every fd but the container's stdio")
    doc, bundle = cfg.load(args.bundle)
    c = cfg.parse(doc, bundle)
    for warning in c.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    return rt.prepare(c, doc, root, args.id)


def create(args: Any, root: str) -> tuple[rt.Prepared, int]:
    p = prepare(args, root)
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
            master, slave = process.open_console(c.console_size)
            process.stdio_pty(p.spec, slave)
        plain = c.has_process and not any(c.hooks.values())
        p.record["ctl"] = os.path.join(root, args.id, "ctl-plain.sock" if plain else "ctl.sock")
        pid, start = _fork_holder(p, [master] if master >= 0 else [])
        p.record.update(pid=pid, pid_start=start)
        st.save(root, p.record)
        if master >= 0:
            process.send_console(args.console_socket, master)
        process.write_pid_file(args.pid_file, pid)
        return p, pid
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


def _fork_holder(p: rt.Prepared, close_fds: list[int]) -> tuple[int, str]:
    """Fork the holder (twice: it is nobody's child once create exits); the init's pid and
    start time it reports, or its error raised."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        if os.fork() != 0:
            os._exit(0)
        _hold(p, w, close_fds)
    os.close(w)
    os.waitpid(child, 0)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode(errors="replace")
    if not msg.startswith("P"):
        raise rt.RuntimeError_(msg[1:] or "the holder process died")
    pid_text, _, start = msg[1:].partition(" ")
    return int(pid_text), start


def _hold(p: rt.Prepared, w: int, close_fds: list[int]) -> None:
    """The holder: spawn the init held, report its pid on w (or the error), serve ctl.sock.
    Never returns."""
    code = 0
    try:
        os.setsid()  # the caller's terminal signals are not ours
        for fd in close_fds:
            os.close(fd)
        sock = _bind_ctl(p.record["ctl"])
        proc, state_obj = _spawn_held(p, sock)
        os.write(w, f"P{proc.pid} {st.pid_start(proc.pid)}".encode())
        os.close(w)
        w = -1
        _serve(p, proc, sock, state_obj)
    except BaseException as e:  # reported to `create`, which exits with it
        if w >= 0:
            if isinstance(e, OSError) and hasattr(e, "op"):  # the shim's: op, errno, path
                msg = process.start_error(e, p.spec.argv[0])
            elif isinstance(e, OSError) and e.strerror:
                msg = f"{e.strerror}: {e.filename}"
            else:
                msg = str(e)
            os.write(w, b"E" + msg.encode())
        code = 1
    os._exit(code)


def _bind_ctl(ctl: str) -> Any:
    """The control socket, made first: made after a network namespace is joined, it would be
    bound in that namespace. Bound through a short relative path: <root>/<id>/ctl.sock can
    pass the 108 bytes of sun_path (containerd's roots and 64-hex ids do)."""
    import _socket  # socket.py imports enum and selectors: milliseconds before the report

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    os.chdir(os.path.dirname(ctl))
    sock.bind(os.path.basename(ctl))
    os.chdir("/")
    return sock


def _spawn_held(p: rt.Prepared, sock: Any) -> tuple[shim.Process, dict[str, Any]]:
    """The init, spawned held in its cgroup and configured, its createRuntime hooks run (here)
    and its createContainer hooks (by the init, after its mounts, where it is held again); the
    caller's stdio let go. Listens on sock once it is so."""
    c = p.container
    rt.join_paths(c)
    p.spec.hold = True
    # Those hooks belong to create and may fail it: the init goes that far now and waits for
    # `start` before pivot_root. Without them it waits before its mounts, which `start` makes.
    p.spec.hold_mounted = bool(p.spec.create_hooks)
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
    try:
        rt.wait_in_cgroup(proc.pid, p.cgroup)
        rt.configure_init(c, proc.pid)
        rt.write_hooks_state(p.spec, rec)
        rt.run_hooks(c.hooks.get("createRuntime", []), "createRuntime",
                     st.oci_state(rec, "creating"))
        if p.spec.hold_mounted:
            proc.release()  # to the second hold; a hook's failure is raised as the shim's
        sock.listen(4)
    except BaseException:
        proc.abort()
        raise
    return proc, st.oci_state(rec, "created")


def _serve(p: rt.Prepared, proc: shim.Process, sock: Any, state_obj: dict[str, Any]) -> None:
    """Wait for `start` (release the init) or a delete (abort it) on ctl.sock, or for the init
    to be killed while held; answer the one command, then stop."""
    import _socket
    import select

    ctl = p.record["ctl"]
    pidfd = os.pidfd_open(proc.pid)
    ready, _, _ = select.select([sock.fileno(), pidfd], [], [])
    if pidfd in ready:  # killed while held: nothing to start any more
        os.unlink(ctl)
        proc.abort()
        return
    conn = _socket.socket(fileno=sock._accept()[0])
    cmd = conn.recv(16)
    os.unlink(ctl)
    if cmd == b"start":
        # Prestart hooks run when start is called, before the process runs (the runtime
        # spec; runc runs them at create).
        try:
            rt.run_hooks(p.container.hooks.get("prestart", []), "prestart", state_obj)
            proc.release()
            reply = b"OK"
        except OSError as e:
            reply = b"E" + process.start_error(e, p.spec.argv[0]).encode()
        except PmdError as e:  # a prestart hook failed: `start` deletes it
            proc.abort()
            reply = b"H" + str(e).encode()
    else:
        proc.abort()
        reply = b"OK"
    conn.sendall(reply)
    conn.close()
