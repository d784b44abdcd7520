"""Detached containers (csrc/monitor.c, specio.c): a spawn spec started under pmd-monitor, the
small C program that outlives us, logs the container's output, applies its restart policy and
healthcheck, and records its exit. A detached start (`run -d`, `start` without -a) needs it;
an attached `run` does not, so it is a module of its own.
"""
from __future__ import annotations

import os

from pyminidocker.native import _c_spec, _cstr, _cstrv, _raise, ffi, lib
from pyminidocker.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from pyminidocker.native import CData, SpawnSpec

__all__ = [
    "RESTART_ALWAYS",
    "RESTART_NO",
    "RESTART_ON_FAILURE",
    "RESTART_UNLESS_STOPPED",
    "HealthCheck",
    "MonitorInfo",
    "RestartPolicy",
    "monitor_start",
    "spec_write",
]

# in pyminidocker/, one directory up, where setup.py builds it next to the C modules
MONITOR_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "pmd-monitor")


@dataclass
class MonitorInfo:
    """A detached container: pid (its init, in our pid namespace) and monitor_pid; a held one
    (spec.hold) also has the channel that release() and abort() use."""

    pid: int
    monitor_pid: int
    status_fd: int = -1

    def release(self) -> None:
        """Let a held container run; raises its setup error as spawn() would."""
        info = ffi.new("struct pmd_monitor_info *")
        info.pid, info.monitor_pid, info.status_fd = self.pid, self.monitor_pid, self.status_fd
        self.status_fd = -1
        err = ffi.new("struct pmd_error *")
        if lib.pmd_monitor_release(info, err) != 0:
            _raise(err)

    def abort(self) -> None:
        """End a held container unrun: the monitor sees the channel close."""
        if self.status_fd >= 0:
            os.close(self.status_fd)
            self.status_fd = -1


def _c_monitor_spec(keep: list[CData], log_path: str | os.PathLike[str] | None,
                    exit_path: str | os.PathLike[str] | None,
                    cleanup_mounts: Iterable[str | os.PathLike[str]] | None,
                    cleanup_dirs: Iterable[str | os.PathLike[str]] | None,
                    exit_argv: Sequence[str | os.PathLike[str]] | None,
                    exit_env: Sequence[str] | None) -> CData:
    m = ffi.new("struct pmd_monitor_spec *")
    keep.append(m)
    m.log_path = _cstr(keep, log_path)
    m.exit_path = _cstr(keep, exit_path)
    m.cleanup_mounts = _cstrv(keep, None if cleanup_mounts is None else list(cleanup_mounts))
    m.cleanup_dirs = _cstrv(keep, None if cleanup_dirs is None else list(cleanup_dirs))
    m.exit_argv = _cstrv(keep, None if not exit_argv else list(exit_argv))
    m.exit_envp = _cstrv(keep, None if exit_env is None else list(exit_env))
    return m


@dataclass(frozen=True)
class RestartPolicy:
    """A monitored container's restart policy (see pmd_monitor_spec in csrc/pmd.h): policy one
    of RESTART_NO/ALWAYS/ON_FAILURE/UNLESS_STOPPED, max_count (on-failure: at most this many
    restarts, 0 = no limit), restart_path (the monitor's record of the restarts), stop_path
    (once it exists, no more restarts)."""

    policy: int
    max_count: int
    restart_path: str
    stop_path: str


@dataclass(frozen=True)
class HealthCheck:
    """A monitored container's healthcheck (see pmd_monitor_spec in csrc/pmd.h): the monitor
    runs argv (argv[0] a path; environment env) every interval_ms, kills it after timeout_ms,
    counts retries failures in a row as unhealthy (not within start_ms of the start), and
    writes {"Status", "FailingStreak", "Log"} to path after each run."""

    argv: list[str]
    env: list[str]
    path: str
    interval_ms: int
    timeout_ms: int
    start_ms: int
    retries: int


RESTART_NO = lib.PMD_RESTART_NO
RESTART_ALWAYS = lib.PMD_RESTART_ALWAYS
RESTART_ON_FAILURE = lib.PMD_RESTART_ON_FAILURE
RESTART_UNLESS_STOPPED = lib.PMD_RESTART_UNLESS_STOPPED


def monitor_start(spec: SpawnSpec, log_path: str | os.PathLike[str],
                  exit_path: str | os.PathLike[str],
                  cleanup_mounts: Iterable[str | os.PathLike[str]] = (),
                  cleanup_dirs: Iterable[str | os.PathLike[str]] = (),
                  exit_argv: Sequence[str | os.PathLike[str]] | None = None,
                  exit_env: Sequence[str] | None = None,
                  monitor_path: str | os.PathLike[str] | None = None,
                  restart: RestartPolicy | None = None,
                  health: HealthCheck | None = None,
                  log_max_size: int = 0, log_max_file: int = 0,
                  stdin_path: str | os.PathLike[str] | None = None) -> MonitorInfo:
    """Start spec as a detached container watched by pmd-monitor (see pmd_monitor_start).

    The monitor logs the container's stdout/stderr to log_path (Docker's json-file format),
    and when it exits unmounts cleanup_mounts, removes cleanup_dirs, writes exit_path
    ({"exit_code", "finished_at", "oom_killed"}) and finally execs exit_argv (argv[0] a path;
    environment exit_env, "K=V" strings) if given; with restart, it first restarts the container
    as the policy says (RestartPolicy); with health, it runs the healthcheck while the container
    runs (HealthCheck); with log_max_size, it rotates log_path past that many bytes, keeping
    log_max_file files (Docker's json-file max-size/max-file); with stdin_path (a fifo), the
    container's stdin comes from it and never ends (run -d -i: what `attach` writes there;
    with spec.console, the monitor passes it to the console). spec's stdio must be -1 (the
    monitor provides pipes, or with spec.console the container's own pty). With spec.hold it
    returns once the container exists: call release() (or abort()) on the result.

    Raises OSError as spawn() does (FileNotFoundError with op "exec" for a command not found,
    ...), or for the monitor itself (ENOENT, op "spawn monitor", if it was not built). On error
    no process is left; mounts and cgroups are the caller's.
    """
    if (spec.stdin, spec.stdout, spec.stderr) != (-1, -1, -1):
        raise ValueError("a monitored container gets its stdio from the monitor")
    keep: list[CData] = []
    s = _c_spec(spec, keep)
    m = _c_monitor_spec(keep, log_path, exit_path, cleanup_mounts, cleanup_dirs, exit_argv,
                        exit_env)
    if restart is not None and restart.policy != RESTART_NO:
        m.restart_policy = restart.policy
        m.restart_max = restart.max_count
        m.restart_path = _cstr(keep, restart.restart_path)
        m.stop_path = _cstr(keep, restart.stop_path)
    m.log_max_size = log_max_size
    m.log_max_file = log_max_file
    m.stdin_path = _cstr(keep, stdin_path)
    if health is not None:
        m.health_argv = _cstrv(keep, list(health.argv))
        m.health_envp = _cstrv(keep, list(health.env))
        m.health_path = _cstr(keep, health.path)
        m.health_interval_ms = health.interval_ms
        m.health_timeout_ms = health.timeout_ms
        m.health_start_ms = health.start_ms
        m.health_retries = health.retries
    info = ffi.new("struct pmd_monitor_info *")
    err = ffi.new("struct pmd_error *")
    if lib.pmd_monitor_start(os.fsencode(monitor_path or MONITOR_PATH), s, m, info, err) != 0:
        _raise(err)
    return MonitorInfo(info.pid, info.monitor_pid, info.status_fd)


def spec_write(fd: int, spec: SpawnSpec, log_path: str | os.PathLike[str] | None = None,
               exit_path: str | os.PathLike[str] | None = None,
               cleanup_mounts: Iterable[str | os.PathLike[str]] | None = None,
               cleanup_dirs: Iterable[str | os.PathLike[str]] | None = None,
               exit_argv: Sequence[str | os.PathLike[str]] | None = None,
               exit_env: Sequence[str] | None = None) -> None:
    """Write the serialized spec that pmd_monitor_start hands to pmd-monitor to fd (for tests
    and tools: `pmd-monitor --check FD` validates it). Raises OSError."""
    keep: list[CData] = []
    s = _c_spec(spec, keep)
    m = _c_monitor_spec(keep, log_path, exit_path, cleanup_mounts, cleanup_dirs, exit_argv,
                        exit_env)
    err = ffi.new("struct pmd_error *")
    if lib.pmd_spec_write(fd, s, m, err) != 0:
        _raise(err)
