"""A detached container's start, under its pmd-monitor: the monitor's options (its log, exit
record, --restart policy, healthcheck, the `rm` of run -d --rm) and its spawn. Functions of the
Runtime (rt), imported by the start of a detached container (run -d, start), never by an
attached run's.
"""
from __future__ import annotations

import os
import sys

from pyminidocker.container.specconv import cgroup_of, log_of
from pyminidocker.errors import suppress
from pyminidocker.native import monitor as pmd_monitor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pyminidocker.container.runtime import Runtime
    from pyminidocker.store.containers import ContainerRecord

_RESTART_POLICIES = {"always": pmd_monitor.RESTART_ALWAYS,
                     "on-failure": pmd_monitor.RESTART_ON_FAILURE,
                     "unless-stopped": pmd_monitor.RESTART_UNLESS_STOPPED}


def spawn(rt: Runtime, rec: ContainerRecord, d: str, sp: Any) -> Any:
    """Start the container under its pmd-monitor (see pmd_monitor_start in csrc/pmd.h):
    returns once it runs, with .pid and .monitor_pid. The monitor logs its output to
    <id>-json.log and, when it exits, unmounts the rootfs, removes the cgroup and writes
    the exit record that refresh() reads. Raises OSError as spawn does."""
    opts = options(rt.store.root, rec, d)
    if rec.open_stdin:  # run -d -i: a stdin that `attach` writes into
        opts["stdin_path"] = stdin = os.path.join(d, "stdin")
        with suppress(FileNotFoundError):
            os.unlink(stdin)  # a previous run's: what was written there is not this one's
        os.mkfifo(stdin, 0o600)
    with rt.trace.phase("monitor+clone+setup+exec"):
        return pmd_monitor.monitor_start(sp, **opts)


def restart_policy(host: Mapping[str, Any]) -> tuple[str, int]:
    """(name, maximum retry count) of a host config's --restart ("no", 0 by default)."""
    r = host.get("restart") or {}
    return str(r.get("name") or "no"), int(r.get("max") or 0)


def options(root: str, rec: ContainerRecord, d: str) -> dict[str, Any]:
    """What the pmd-monitor of the container rec (its directory d; root the store's) is
    told besides its spawn spec (pmd_monitor.monitor_start): its log, exit record, what to clean
    up, its restart policy and healthcheck, and for --rm the `rm` it becomes at the end."""
    exit_argv = None
    if rec.host.auto_remove:
        # run -d --rm: the monitor becomes `rm` once it has recorded the exit. A plain rm,
        # not rm -f: should the container have been started again meanwhile, it stays.
        exit_argv = [sys.executable, "-m", "pyminidocker", "--root", root,
                     "rm", "-v", rec.id]
    restart = None
    policy_name, max_count = restart_policy(rec.host)
    if policy_name != "no":  # the monitor restarts it (see pmd_monitor_spec)
        restart = pmd_monitor.RestartPolicy(
            _RESTART_POLICIES[policy_name], max_count, os.path.join(d, "restart"),
            os.path.join(d, "stop"))
    health = None
    hc = rec.host.get("healthcheck")
    if hc:  # run by the monitor: our own exec of the test, at its intervals
        test = list(hc["Test"])
        cmd = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
        health = pmd_monitor.HealthCheck(
            [sys.executable, "-m", "pyminidocker", "--root", root, "exec",
             rec.id, *cmd], [f"{k}={v}" for k, v in os.environ.items()],
            os.path.join(d, "health"), (hc.get("Interval") or 30_000_000_000) // 1_000_000,
            (hc.get("Timeout") or 30_000_000_000) // 1_000_000,
            (hc.get("StartPeriod") or 0) // 1_000_000, hc.get("Retries") or 3)
    log = log_of(rec.host)
    return {"log_path": os.devnull if log["driver"] == "none" else
            os.path.join(d, f"{rec.id}-json.log"), "exit_path": os.path.join(d, "exit"),
            "cleanup_mounts": [os.path.join(d, "rootfs")],
            "cleanup_dirs": list(cgroup_of(rec).dirs.values()), "exit_argv": exit_argv,
            "exit_env": [f"{k}={v}" for k, v in os.environ.items()] if exit_argv else None,
            "restart": restart, "health": health, "log_max_size": log.get("max_size", 0),
            "log_max_file": log.get("max_file", 1)}
