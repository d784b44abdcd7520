"""--restart: the monitor (C) restarts the container with Docker's back-off, keeps its network,
counts the restarts; stop and rm -f end them; `start --all-restart` does at boot what Docker's
daemon does when it starts. As root, on real containers.

One store per module with busybox as `bb`; the module ends with no container, cgroup or
monitor left.
"""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from pyminidocker.native import monitor
from tests.integration import servers as S
from tests.integration.conftest import module_ctr

ctr = module_ctr("restart")


def inspect(ctr, cid: str) -> dict:
    return json.loads(ctr("inspect", cid).stdout)[0]


def until(what, timeout: float = 15.0):
    return S.wait_until(what, timeout=timeout, interval=0.05, what="the container's state")


def monitors() -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink(f"/proc/{p}/exe") == monitor.MONITOR_PATH:
                    out.append(int(p))
            except OSError:
                pass
    return out


def test_on_failure_restarts_at_most_n_times(ctr):
    cid = ctr("run", "-d", "--restart", "on-failure:2", "bb", "sh", "-c",
              "echo run; exit 3").stdout.strip()
    assert ctr("wait", cid).stdout.strip() == "3"
    st = until(lambda: (s := inspect(ctr, cid))["State"]["Status"] == "exited" and s)
    assert st["RestartCount"] == 2 and st["State"]["ExitCode"] == 3
    assert st["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    until(lambda: ctr("logs", cid).stdout == "run\n" * 3)
    ctr("rm", cid)
    # a clean exit is no failure
    cid = ctr("run", "-d", "--restart", "on-failure", "bb", "true").stdout.strip()
    until(lambda: inspect(ctr, cid)["State"]["Status"] == "exited")
    time.sleep(0.5)
    assert inspect(ctr, cid)["RestartCount"] == 0
    ctr("rm", cid)


def test_always_restarts_with_backoff_keeps_the_address_and_stop_ends_it(ctr):
    cid = ctr("run", "-d", "--restart", "always", "bb", "sh", "-c",
              "hostname -i; exit 1").stdout.strip()
    first_ip = until(lambda: ctr("logs", cid).stdout.split())[0]
    # back-off 100, 200, 400, 800 ms...: 4 restarts take 1.5 s, the 5th comes at 3.1 s
    time.sleep(2.2)
    count = inspect(ctr, cid)["RestartCount"]
    assert 2 <= count <= 5, count
    ips = set(ctr("logs", cid).stdout.split())
    assert ips == {first_ip}  # the same address on every run: its network stayed
    ctr("stop", "-t", "1", cid)
    st = inspect(ctr, cid)["State"]
    assert st["Status"] == "exited"
    count = inspect(ctr, cid)["RestartCount"]
    time.sleep(1.0)
    assert inspect(ctr, cid)["State"]["Status"] == "exited"
    assert inspect(ctr, cid)["RestartCount"] == count
    ctr("rm", cid)


def test_a_restarted_container_runs_again_under_its_new_pid(ctr):
    cid = ctr("run", "-d", "--restart", "unless-stopped", "bb", "sh", "-c",
              "sleep 0.5; exit 5").stdout.strip()
    pid0 = inspect(ctr, cid)["State"]["Pid"]
    st = until(lambda: (s := inspect(ctr, cid))["RestartCount"] >= 1 and
               s["State"]["Status"] == "running" and s["State"]["Pid"] != pid0 and s)
    assert os.path.exists(f"/proc/{st['State']['Pid']}")
    assert "Up" in ctr("ps").stdout or "Restarting" in ctr("ps").stdout
    ctr("rm", "-f", cid)
    time.sleep(0.5)
    assert cid[:12] not in ctr("ps", "-a", "-q").stdout


def test_rm_f_of_a_restarting_container_leaves_nothing(ctr):
    before = set(monitors())
    cid = ctr("run", "-d", "--restart", "always", "bb", "true").stdout.strip()
    time.sleep(0.8)
    ctr("rm", "-f", cid)
    until(lambda: set(monitors()) <= before, 10)
    assert not any(p.name == cid for p in
                   __import__("pathlib").Path("/sys/fs/cgroup/pids/pyminidocker").glob("*"))


def test_start_all_restart_after_a_reboot(ctr):
    """A reboot is: every container process and monitor killed at once. Then start
    --all-restart starts those Docker's daemon would."""
    always = ctr("run", "-d", "--restart", "always", "bb", "sleep", "60").stdout.strip()
    failing = ctr("run", "-d", "--restart", "on-failure", "bb", "sleep", "60").stdout.strip()
    stopped = ctr("run", "-d", "--restart", "unless-stopped", "bb", "sleep", "60").stdout.strip()
    plain = ctr("run", "-d", "bb", "sleep", "60").stdout.strip()
    ctr("stop", "-t", "0", stopped)
    for cid in (always, failing, plain):
        st = inspect(ctr, cid)["State"]
        mon = [m for m in monitors() if os.getppid() != m]
        for pid in mon:
            try:
                if str(st["Pid"]) in open(f"/proc/{pid}/task/{pid}/children").read().split():
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os.kill(st["Pid"], signal.SIGKILL)
    for cid in (always, failing, plain):
        until(lambda c=cid: inspect(ctr, c)["State"]["Status"] == "exited")
    out = ctr("start", "--all-restart").stdout.split()
    assert set(out) == {always, failing}
    for cid in (always, failing):
        assert inspect(ctr, cid)["State"]["Status"] == "running"
    for cid in (stopped, plain):
        assert inspect(ctr, cid)["State"]["Status"] == "exited"
    ctr("rm", "-f", always, failing, stopped, plain)


@pytest.mark.parametrize("flags, message", [
    (["--restart", "sometimes"], "invalid restart policy 'sometimes'"),
    (["--restart", "always:3"], "maximum retry count cannot be used with restart policy "
                                "'always'"),
    (["--restart", "on-failure:x"], "invalid restart policy format"),
    (["--rm", "--restart", "always"], "Conflicting options: --restart and --rm"),
])
def test_bad_restart_values(ctr, flags, message):
    res = ctr("run", "-d", *flags, "bb", "true", check=False)
    assert res.returncode == 125 and message in res.stderr and res.stderr.count("\n") == 1
