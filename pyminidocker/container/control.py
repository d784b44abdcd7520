"""The Runtime's operations on a running or stopped container that `run` never needs: stop,
kill, exec, pause/unpause, top, diff, stats, update, restart, rename, and the restarts at boot.
Functions of the Runtime (rt), which imports this module only when one of them is called.
"""
from __future__ import annotations

import os
import time

from pyminidocker import native as _native
from pyminidocker.container import spec as policy
from pyminidocker.container import specconv as conv
from pyminidocker.container.specconv import INIT_DIRS, INIT_FILES, cgroup_of
from pyminidocker.container.stdio import Output, forward_signals, start_error
from pyminidocker.errors import Conflict, PmdError, suppress
from pyminidocker.proc import alive as _alive
from pyminidocker.store.containers import check_name

try:
    import _signal as signal  # the signal module without its enum wrappers (as runtime's)
except ImportError:  # pragma: no cover - not CPython
    import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyminidocker.container.runtime import Runtime
    from pyminidocker.store.containers import ContainerRecord


def kill(rt: Runtime, rec: ContainerRecord, sig: int) -> None:
    """Raises Conflict if the container is not running."""
    rec = rt.refresh(rec)
    if rec.state.status != "running":
        raise Conflict(f"Cannot kill container: {rec.name}: container {rec.id} is not "
                       "running")
    _no_more_restarts(rt, rec)
    with suppress(ProcessLookupError):
        os.kill(rec.state.pid, sig)
    rt.log(rec, "kill", signal=str(int(sig)))
    if rec.state.paused:  # a frozen process acts on its signals once thawed (as Docker)
        rt.unpause(rec)


def _no_more_restarts(rt: Runtime, rec: ContainerRecord) -> None:
    """stop, kill and rm -f end a restart policy's restarts (Docker: manually stopped):
    the monitor looks for this file before each restart."""
    if rec.host.get("restart"):
        with suppress(OSError):
            os.close(os.open(os.path.join(rt.containers.path(rec.id), "stop"),
                             os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def stop(rt: Runtime, rec: ContainerRecord, timeout: int | None = None) -> None:
    """The container's stop signal (--stop-signal, SIGTERM), then SIGKILL after timeout
    seconds (None: its --stop-timeout, else 10); returns once it has exited."""
    rec = rt.refresh(rec)
    if rec.state.status != "running":
        return
    if timeout is None:
        timeout = rec.host.get("stop_timeout", 10)
    sig = signal.SIGTERM
    if rec.host.get("stop_signal"):
        sig = policy.parse_signal(rec.host["stop_signal"])
    _no_more_restarts(rt, rec)
    st = rec.state
    if _alive(st.pid, st.pid_start):  # not between two runs of a restart policy
        with suppress(ProcessLookupError):
            os.kill(st.pid, sig)
        rt.log(rec, "kill", signal=str(int(sig)))
    if st.paused:  # a frozen process acts on its signal once thawed (as Docker)
        rt.unpause(rec)
    if not wait_gone(rt, rec, timeout) and _alive(st.pid, st.pid_start):
        with suppress(ProcessLookupError):
            os.kill(st.pid, signal.SIGKILL)
        rt.log(rec, "kill", signal=str(int(signal.SIGKILL)))
        wait_gone(rt, rec, 10)
    rt.log(rec, "stop")


def wait_gone(rt: Runtime, rec: ContainerRecord, timeout: float) -> bool:
    """True once the container has stopped (or was removed)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while time.monotonic() < deadline:
        if not rt.running(rec):
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return False


def exec(rt: Runtime, rec: ContainerRecord, argv: list[str], env: list[str], user: str | None,
         workdir: str | None, tty: bool, stdio: tuple[int, int, int],
         on_started: Callable[[Any], None] | None = None) -> int:
    """Run argv in the running container: its namespaces and cgroup, the same confinement
    as its init. Returns the exit code; raises StartError (125/126/127) if it cannot start
    and Conflict if the container is not running."""

    rec = rt.refresh(rec)
    if rec.state.status != "running":
        raise Conflict(f"Container {rec.id} is not running")
    sp = conv.exec_spec(rt.store.root, rec, os.path.join(rt.containers.path(rec.id), "rootfs"),
                   argv, env, user, workdir, tty)
    if not tty:
        sp.stdin, sp.stdout, sp.stderr = stdio
    try:
        proc = _native.spawn(sp)
    except OSError as e:
        raise start_error(e) from None
    if on_started:
        on_started(proc)
    with forward_signals(proc.pid):
        if tty:  # its pty's output to ours, not logged (Docker logs no exec's output)
            code = Output(None, tty=True).relay(proc, stdio)
        else:
            code = _native.wait(proc.pid)
    return 128 - code if code < 0 else code


def start_all_restart(rt: Runtime) -> list[str]:
    """What Docker's daemon does when it starts, for a daemonless engine at boot (see
    contrib/pyminidocker-restart.service): start every stopped container whose policy
    asks for it: always; unless-stopped unless it was stopped by stop/kill; on-failure
    when it last exited non-zero. Returns the ids started."""
    from pyminidocker.container.monitor import restart_policy

    started = []
    for rec in rt.list():
        name, _ = restart_policy(rec.host)
        st = rec.state
        if st.status == "running" or name == "no":
            continue
        stopped = os.path.exists(os.path.join(rt.containers.path(rec.id), "stop"))
        if (name == "unless-stopped" and stopped) or (name == "on-failure" and (
                st.exit_code == 0 or stopped)):
            continue
        with suppress(PmdError, OSError):
            rt.start(rec, attach=False)
            started.append(rec.id)
    return started


def _freeze(rt: Runtime, rec: ContainerRecord, frozen: bool) -> None:
    """The freezer: v1 freezer.state FROZEN/THAWED, v2 cgroup.freeze 1/0; returns once the
    kernel says it is done (v1 reports FREEZING meanwhile)."""
    cg = cgroup_of(rec)
    if cg.version == "v2":
        path, value, done = os.path.join(cg.dirs[""], "cgroup.freeze"), \
            "1" if frozen else "0", None
    else:
        if "freezer" not in cg.dirs:
            raise PmdError("cannot pause: the cgroup v1 freezer controller is not mounted")
        path, value = os.path.join(cg.dirs["freezer"], "freezer.state"), \
            "FROZEN" if frozen else "THAWED"
        done = value
    try:
        with open(path, "w") as f:
            f.write(value)
        deadline = time.monotonic() + 5
        while done is not None and time.monotonic() < deadline:
            with open(path) as f:
                if f.read().strip() == done:
                    break
            time.sleep(0.005)
    except OSError as e:
        raise PmdError(f"cannot {'pause' if frozen else 'unpause'} {rec.name}: "
                       f"{e.strerror}: {path}") from None


def pause(rt: Runtime, rec: ContainerRecord) -> None:
    """Freeze every process of the container. Raises Conflict (not running, paused)."""
    rec = rt.refresh(rec)
    if rec.state.status != "running":
        raise Conflict(f"Container {rec.id} is not running")
    if rec.state.paused:
        raise Conflict(f"Container {rec.id} is already paused")
    _freeze(rt, rec, True)
    with rt.store.lock():
        rec.state.paused = True
        rt.containers.save_state(rec)


def unpause(rt: Runtime, rec: ContainerRecord) -> None:
    """Raises Conflict for a container that is not paused."""
    rec = rt.refresh(rec)
    if rec.state.status != "running" or not rec.state.paused:
        raise Conflict(f"Container {rec.id} is not paused")
    _freeze(rt, rec, False)
    with rt.store.lock():
        fresh = rt.containers.get(rec.id)
        fresh.state.paused = rec.state.paused = False
        rt.containers.save_state(fresh)


def top(rt: Runtime, rec: ContainerRecord, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
    """`top`: (titles, rows) of ps for the container's processes. Raises Conflict."""
    from pyminidocker.container import observe

    rec = rt.refresh(rec)
    if rec.state.status != "running":
        raise Conflict(f"Container {rec.id} is not running")
    return observe.top(cgroup_of(rec).pids(), ps_args)


def changes(rt: Runtime, rec: ContainerRecord) -> list[tuple[str, str]]:
    """`diff`: the container's changes to its image, from its upper layer."""
    from pyminidocker.container import observe

    image = rt.store.images.get(rec.image)
    lowers = [rt.store.layers.diff_path(layer.id)
              for layer in rt.store.layers.chain(image.layer)] if image.layer else []
    # mount points the engine makes are not the container's changes (Docker: its init layer)
    skip = {f"/{n}" for n in INIT_DIRS} | {f"/etc/{n}" for n in INIT_FILES}
    return observe.changes(os.path.join(rt.containers.path(rec.id), "upper"), lowers, skip)


def stats(rt: Runtime, rec: ContainerRecord) -> dict[str, Any]:
    """One reading of the container's counters (observe.sample). Raises Conflict."""
    from pyminidocker.container import observe

    rec = rt.refresh(rec)
    return observe.sample(rec, cgroup_of(rec))


def restart(rt: Runtime, rec: ContainerRecord, timeout: int | None = None) -> None:
    """stop (if running), then start detached."""
    rt.stop(rec, timeout)
    rt.start(rt.refresh(rt.containers.get(rec.id)), attach=False)


def update(rt: Runtime, rec: ContainerRecord, changes: dict[str, Any]) -> None:
    """`update`: new limits (memory, memory_swap, memory_reservation, cpus, cpu_shares,
    cpu_period, cpu_quota, cpuset_cpus, cpuset_mems, pids_limit) kept in the record and,
    for a running container, written to its cgroup at once. Raises UsageError, PmdError."""
    host = {**rec.host, **changes}
    limits = conv.limits(host, devices=False)  # checks the combination as create does
    rec = rt.refresh(rec)
    if rec.state.status == "running":
        cgroup_of(rec).create(limits)
    with rt.store.lock():
        fresh = rt.containers.get(rec.id)
        fresh.host.update(changes)
        rt.containers.save_config(fresh)


def rename(rt: Runtime, rec: ContainerRecord, new: str) -> None:
    new = check_name(new)
    with rt.store.lock():
        names = rt.containers.names()
        if new in names:
            raise Conflict(f'Conflict. The container name "/{new}" is already in use by '
                           f'container "{names[new]}". You have to remove (or rename) that '
                           "container to be able to reuse that name.")
        rec.name = new
        rt.containers.save_config(rec)
    if rec.state.status == "running":
        from pyminidocker.container import plugging

        plugging.rename(rt, rec)

