"""`start` (release what `create` holds) and `run` (create and start in one process, which
waits for the container unless --detach)."""
from __future__ import annotations

import os
import sys

from pyminidocker.oci import state as st

REPLY_ENV = "PMD_RUNC_START_REPLY"  # set by the C front: see _forwarded_reply

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.native import Process
    from pyminidocker.oci.runtime import Prepared


def _short_path(path: str) -> str:
    """path through /proc/self/fd/N of its directory: short enough for sun_path, whatever
    the root's length (the fd stays open until the process exits)."""
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{os.path.basename(path)}"


def _ask_holder(rec: dict[str, Any], cmd: bytes) -> bytes:
    import _socket  # not socket: see create._bind_ctl

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(_short_path(rec["ctl"]))
        s.sendall(cmd)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    except OSError as e:
        raise st.RuntimeError_(f"cannot start container: {e.strerror}") from None
    finally:
        s.close()
    return reply


def _forwarded_reply() -> bytes | None:
    """The holder's reply to the start the C front sent (csrc/ocifront.c), which passes on
    every reply but "OK" to be worded here: hex-encoded, or "!" and the errno of a failed
    exchange. None when this process asks the holder itself."""
    value = os.environ.pop(REPLY_ENV, None)
    if value is None:
        return None
    if value.startswith("!"):
        code = int(value[1:]) if value[1:].isdigit() else 5  # EIO
        raise st.RuntimeError_(f"cannot start container: {os.strerror(code)}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        return b""


def start(root: str, container_id: str) -> None:
    rec = st.load(root, container_id)
    reply = _forwarded_reply()
    if reply is None:
        status = st.status(rec)
        if status == "stopped":
            raise st.RuntimeError_("cannot start a container that has stopped")
        if status != "created":
            raise st.RuntimeError_("cannot start an already running container")
        no_process = "process" not in (rec.get("config") or {})
        reply = _ask_holder(rec, b"abort" if no_process else b"start")
        if no_process:
            raise st.RuntimeError_("cannot start a container without a process (config.json "
                                   "has none)")
    if reply == b"OK" and not (rec.get("config") or {}).get("hooks"):
        return  # the usual start: nothing more to load or run
    from pyminidocker.oci import runtime as rt

    if reply.startswith(b"H"):
        # A prestart hook failed: the container is stopped and the lifecycle goes on to its
        # deletion (the runtime spec's step 9), poststop hooks included.
        rt.run_hooks(rt.hooks_of(rec).get("poststop", []), "poststop",
                     st.oci_state(rec, "stopped"), warn_only=True)
        rt.cleanup(root, rec)
    if reply != b"OK":
        raise rt.RuntimeError_(reply[1:].decode(errors="replace") or "start failed")
    # Not saved again: the holder removed its socket, so the record says "running" from now on.
    # A failing poststart hook is a warning: the container runs on (the runtime spec).
    # "running" as this start made it, even if a short process has already exited (runc's)
    for msg in rt.run_hooks(rt.hooks_of(rec).get("poststart", []), "poststart",
                            st.oci_state(rec, "running"), warn_only=True):
        sys.stderr.write(f"warning: {msg}\n")


def run(args: Any, root: str) -> int:
    from pyminidocker.oci import create, process
    from pyminidocker.oci import runtime as rt

    if args.detach:
        create.create(args, root)
        start(root, args.id)
        return 0
    p = create.prepare(args, root)
    c, spec = p.container, p.spec
    if not c.has_process:
        rt.cleanup(root, p.record)
        raise rt.RuntimeError_("cannot run a container without a process (config.json has "
                               "none)")
    master = slave = -1
    proc = None
    try:
        if c.terminal:
            master, slave = process.open_console(c.console_size)
            process.stdio_pty(spec, slave)
        proc = _spawn_started(p, root, args.pid_file)
        if slave >= 0:
            os.close(slave)
            slave = -1
        for msg in rt.run_hooks(c.hooks.get("poststart", []), "poststart",
                                st.oci_state(p.record, "running"), warn_only=True):
            sys.stderr.write(f"warning: {msg}\n")
        pid, proc = proc.pid, None
        fd, master = master, -1  # wait closes it
        return process.wait(pid, fd)
    finally:
        if proc is not None:
            _end(proc)
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
        rt.run_hooks(c.hooks.get("poststop", []), "poststop", st.oci_state(p.record, "stopped"),
                     warn_only=True)
        if not args.keep:
            rt.cleanup(root, p.record)


def _spawn_started(p: Prepared, root: str, pid_file: str) -> Process:
    """run's init: spawned held, configured, its prestart and createRuntime hooks run,
    recorded, then released (the shim runs its createContainer and startContainer hooks)."""
    from pyminidocker import native as shim
    from pyminidocker.oci import process
    from pyminidocker.oci import runtime as rt

    c, spec, rec = p.container, p.spec, p.record
    rt.join_paths(c)
    spec.hold = True
    rt.hooks_stdin(spec)
    proc = shim.spawn(spec)
    try:
        rec.update(pid=proc.pid, pid_start=st.pid_start(proc.pid))
        rt.configure_init(c, proc.pid)
        rt.write_hooks_state(spec, rec)
        state_obj = st.oci_state(rec, "creating")
        for stage in ("prestart", "createRuntime"):
            rt.run_hooks(c.hooks.get(stage, []), stage, state_obj)
        st.save(root, rec)
        process.write_pid_file(pid_file, proc.pid)
        try:
            proc.release()
        except OSError as e:
            raise rt.RuntimeError_(process.start_error(e, spec.argv[0])) from None
    except BaseException:
        _end(proc)
        raise
    return proc


def _end(proc: Process) -> None:
    """A spawned init that must not run on: aborted while held, killed and reaped after."""
    from pyminidocker import native as shim

    if proc.held:
        proc.abort()
        return
    try:
        os.kill(proc.pid, 9)
        shim.wait(proc.pid)
    except OSError:
        pass
