"""A running container's record reconciled with reality: the monitor's exit and restart
records, a process that is gone (monitor killed, host rebooted), a watcher for a container
whose monitor was killed, its health as the monitor last wrote it; and a start that failed
undone. Functions of the Runtime (rt), imported once a record says a container runs, or a
start fails.
"""
from __future__ import annotations

import os
import sys
import time

from pyminidocker import record
from pyminidocker.container.spec import exec_exit_code
from pyminidocker.container.stdio import start_message
from pyminidocker.errors import PmdError, StoreError, suppress
from pyminidocker.proc import alive as _alive
from pyminidocker.proc import start_time as _pid_start
from pyminidocker.store.files import now_iso

try:
    import _signal as signal  # the signal module without its enum wrappers (as runtime's)
except ImportError:  # pragma: no cover - not CPython
    import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.container.runtime import Runtime
    from pyminidocker.store.containers import ContainerRecord


def _read_restart(path: str) -> dict[str, Any] | None:
    """The monitor's restart record ({"restart_count", "pid", "restarting", "started_at"})."""
    try:
        with open(path, "rb") as f:
            data = record.loads(f.read())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _read_exit(path: str) -> tuple[int, str, bool] | None:
    """The monitor's exit record (exit_code, finished_at, oom_killed), None if not (yet) there.
    The monitor writes it atomically, so a partial record is not expected; a corrupt one is
    treated as missing."""
    try:
        with open(path, "rb") as f:
            data = record.loads(f.read())
        return (int(data["exit_code"]), str(data.get("finished_at") or now_iso()),
                bool(data.get("oom_killed", False)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def refresh(rt: Runtime, rec: ContainerRecord) -> ContainerRecord:
    """Reconcile a running record with reality: the monitor's exit record, or a process
    that is gone (monitor killed, host rebooted). Tears down what the exit left."""
    st = rec.state
    if st.status != "running":
        return rec
    exit_file = os.path.join(rt.containers.path(rec.id), "exit")
    record = _read_exit(exit_file)
    if record is None:
        if _alive(st.pid, st.pid_start):
            if st.monitor_pid and not _alive(st.monitor_pid, st.monitor_start):
                _watch(rt, rec)  # its monitor was killed: someone must keep its code
            if rec.host.get("healthcheck"):
                _log_health(rt, rec)
            return rec
        if rec.host.get("restart") and _alive(st.monitor_pid, st.monitor_start):
            followed = _follow_restart(rt, rec)
            if followed is not None:
                return followed
        # The container is gone. Its monitor (or the watcher that replaced a killed one),
        # if still alive, is between the container's exit and the exit record (draining
        # output, unmounting, removing the cgroup): wait for its word rather than guess.
        # A monitor that is gone too, unwatched (killed, host rebooted), said nothing: as
        # if SIGKILLed.
        deadline = time.monotonic() + 5
        while record is None and (_alive(st.monitor_pid, st.monitor_start)
                                  or _watched(rt, rec)) and time.monotonic() < deadline:
            time.sleep(0.005)
            record = _read_exit(exit_file)
            if record is None and rec.host.get("restart"):
                followed = _follow_restart(rt, rec)
                if followed is not None:
                    return followed
        record = record or _read_exit(exit_file) or (137, now_iso(), False)
    code, finished, oom = record
    with rt.store.lock():
        fresh = rt.containers.get(rec.id)
        if fresh.state.status != "running":
            return fresh
        fresh.state.oom_killed = oom
        r = _read_restart(os.path.join(rt.containers.path(rec.id), "restart"))
        if r is not None:  # the monitor's last word on its restarts
            fresh.state.restart_count = int(r.get("restart_count") or 0)
            fresh.state.restarting = False
        try:
            rt._finish(fresh, code, finished)
        except StoreError:
            # a full disk: the exit record stays, so the next command derives the same state
            # again; reading (ps, inspect, stop, rm) must not need a free block
            return fresh
    rt._unplug(fresh)
    return fresh


def health(rt: Runtime, rec: ContainerRecord) -> dict[str, Any] | None:
    """Docker's State.Health of a container with a healthcheck ({"Status", "FailingStreak",
    "Log"}), as its monitor last wrote it; None without a healthcheck."""
    if not rec.host.get("healthcheck"):
        return None
    try:
        with open(os.path.join(rt.containers.path(rec.id), "health"), "rb") as f:
            data = record.loads(f.read())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        data = {"Status": "starting", "FailingStreak": 0, "Log": []}
    return data


def _log_health(rt: Runtime, rec: ContainerRecord) -> None:
    """Docker's `health_status: healthy|unhealthy` event, once for each change of a running
    container's health (none for "starting", as Docker). No daemon sees the monitor's
    healthcheck change it: a command that looks, or an events follower, logs it (as an
    exit's die); <dir>/health.logged keeps the start and status last logged."""
    from pyminidocker.record import atomic_write

    status = (health(rt, rec) or {}).get("Status", "starting")
    if status == "starting":
        return
    path = os.path.join(rt.containers.path(rec.id), "health.logged")
    mark = f"{rec.state.started_at} {status}".encode()

    def logged() -> bool:
        try:
            with open(path, "rb") as f:
                return f.read() == mark
        except OSError:
            return False

    if logged():
        return
    with suppress(StoreError, OSError), rt.store.lock():
        if not logged():  # another command may have logged it meanwhile
            rt.log(rec, f"health_status: {status}")
            atomic_write(path, mark, durable=False)


def _watched(rt: Runtime, rec: ContainerRecord) -> bool:
    """Whether a watcher (container/watch.py) keeps the container's exit code."""
    from pyminidocker import proc

    try:
        with open(os.path.join(rt.containers.path(rec.id), "watcher"), "rb") as f:
            return proc.token_alive(f.read().decode())
    except OSError:
        return False


def _watch(rt: Runtime, rec: ContainerRecord) -> None:
    """Start container/watch.py for a running container whose monitor is gone, unless one
    watches it already (its token is in <dir>/watcher)."""
    from pyminidocker import proc
    from pyminidocker.record import atomic_write

    if _watched(rt, rec):
        return
    d = rt.containers.path(rec.id)
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package, env.get("PYTHONPATH")) if p)
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(
            sys.executable, [sys.executable, "-m", "pyminidocker.container.watch", d,
                             str(rec.state.pid), rec.state.pid_start], env,
            file_actions=[(os.POSIX_SPAWN_DUP2, devnull, n) for n in (0, 1, 2)],
            setsid=True)
    except OSError:
        return
    finally:
        os.close(devnull)
    with suppress(PmdError):
        atomic_write(os.path.join(d, "watcher"), proc.token(pid).encode(), durable=False)


def _follow_restart(rt: Runtime, rec: ContainerRecord) -> ContainerRecord | None:
    """A container whose monitor restarts it (--restart): its state as the monitor's
    restart record says (a new pid, or between two runs), or None when the record says
    the monitor is done restarting (its exit record follows)."""
    r = _read_restart(os.path.join(rt.containers.path(rec.id), "restart"))
    if r is None:
        return None
    pid = int(r.get("pid") or 0)
    st = rec.state
    if r.get("restarting"):
        st.restarting = True
        st.restart_count = int(r.get("restart_count") or 0)
        return rec
    if pid <= 0 or pid == st.pid:
        return None
    start = _pid_start(pid)
    if not start:
        return None
    with rt.store.lock():
        fresh = rt.containers.get(rec.id)
        if fresh.state.status != "running":
            return fresh
        fresh.state.pid, fresh.state.pid_start = pid, start
        fresh.state.started_at = str(r.get("started_at") or now_iso())
        fresh.state.restart_count = int(r.get("restart_count") or 0)
        fresh.state.restarting = False
        rt.containers.save_state(fresh)
    return fresh


def start_failed(rt: Runtime, rec: ContainerRecord, e: OSError | None) -> None:
    """Undo a start that failed (e: the spawn's error; None: interrupted), and record why:
    a created container stays created, any other is exited."""
    rt._teardown(rec)
    rt._unplug(rec)
    rec.state.status = "created" if rec.state.status == "created" else "exited"
    rec.state.error = start_message(e) if e else "start interrupted"
    if e is not None:
        rec.state.exit_code = exec_exit_code(e)
    rt.containers.save_state(rec)


def abandon(rt: Runtime, rec: ContainerRecord, proc: Any, held: bool) -> None:
    """End a container just spawned (held or running) and wait until nothing of it is left
    (its monitor unmounts and removes its cgroup as it exits; without one, we do)."""
    if held:
        proc.abort()  # a held child is killed unrun (and reaped); a held monitor ends it
    else:
        with suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    monitor_pid = getattr(proc, "monitor_pid", 0)
    if monitor_pid:
        start = _pid_start(monitor_pid)
        deadline = time.monotonic() + 10
        while _alive(monitor_pid, start) and time.monotonic() < deadline:
            time.sleep(0.005)
    elif not held:
        with suppress(ChildProcessError):
            os.waitpid(proc.pid, 0)
    rt._teardown(rec)
