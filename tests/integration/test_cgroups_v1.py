"""cgroups on this machine's real kernel, cgroup v1 (root).

Every cgroup lives under a parent unique to this test run (pyminidocker-test-<pid>), so the
tests never touch a real container's cgroup; each test removes what it made even when it fails,
and the module ends by removing the parent and checking that no directory of this run remains.
Processes are placed in the cgroup the way the C spawn code does it: the child writes its own pid
to every procs_files() entry before exec (here a small sh wrapper, see joined()).
"""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pyminidocker.container.cgroups import (
    CGROUP_ROOT,
    DEFAULT_DEVICE_RULES,
    Cgroup,
    Limits,
    detect,
)
from pyminidocker.container.check import cleanup_stale
from pyminidocker.container.observe import cgroup_usage
from pyminidocker.errors import PmdError
from tests.integration.cgroupfs import cgroup_mount_root

MiB = 1024 * 1024
PARENT = f"pyminidocker-test-{os.getpid()}"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(os.geteuid() == 0 and detect().version != "v1",
                       reason="this host does not use cgroup v1"),
]


def leftovers() -> list[str]:
    return glob.glob(f"{CGROUP_ROOT}/*/{PARENT}")


@pytest.fixture(scope="module", autouse=True)
def parent_removed_at_end():
    yield
    cleanup_stale(set(), parent=PARENT, remove_parent=True)
    assert leftovers() == []


@pytest.fixture
def make():
    """make(limits) -> a created Cgroup; all of them removed after the test, whatever happens."""
    made: list[Cgroup] = []

    def make(limits: Limits | None = None, cid: str | None = None) -> Cgroup:
        cg = Cgroup(cid or uuid.uuid4().hex, parent=PARENT)
        made.append(cg)
        cg.create(limits)
        return cg

    try:
        yield make
    finally:
        for cg in made:
            cg.remove()
        for cg in made:
            assert [d for d in cg.dirs.values() if os.path.exists(d)] == []


def joined(cg: Cgroup, argv: list[str]) -> list[str]:
    """argv wrapped so that the process writes its own pid into every cgroup.procs file and then
    execs argv, as the C spawn code does between clone and execve (and as preexec_fn would,
    without running Python in a forked child)."""
    writes = "".join(f'echo $$ > "{f}" && ' for f in cg.procs_files())
    return ["sh", "-c", writes + 'exec "$@"', "sh", *argv]


def members(cg: Cgroup, n: int) -> list[int]:
    """The cgroup's pids once at least n processes are in every hierarchy: joined() children join
    one hierarchy after another a moment after Popen returns, and a test that acts when the first
    shows them would race the writes to the rest."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(len(read(os.path.join(d, "cgroup.procs")).split()) >= n for d in cg.dirs.values()):
            break
        time.sleep(0.005)
    return cg.pids()


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_limits_are_in_the_kernel_files(make):
    cg = make(Limits(memory=64 * MiB, cpus=0.5, pids=20))
    d = cg.dirs
    assert read(f"{d['memory']}/memory.limit_in_bytes") == f"{64 * MiB}\n"
    if os.path.exists(f"{CGROUP_ROOT}/memory/memory.memsw.limit_in_bytes"):
        assert read(f"{d['memory']}/memory.memsw.limit_in_bytes") == f"{128 * MiB}\n"
        assert cg.warnings == []
    assert read(f"{d['cpu']}/cpu.cfs_period_us") == "100000\n"
    assert read(f"{d['cpu']}/cpu.cfs_quota_us") == "50000\n"
    assert read(f"{d['pids']}/pids.max") == "20\n"
    # the cpuset was given the parent's CPUs and memory nodes, or nothing could join it
    for name in ("cpuset.cpus", "cpuset.mems"):
        assert read(f"{d['cpuset']}/{name}") == read(f"{CGROUP_ROOT}/cpuset/{name}") != "\n"
    # the kernel lists exceptions in the order they were added, after "deny a" emptied the list
    allowed = [rule for verb, rule in DEFAULT_DEVICE_RULES if verb == "allow"]
    assert read(f"{d['devices']}/devices.list").splitlines() == allowed
    assert set(d) == {"cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "pids"}


def test_unlimited_leaves_kernel_defaults(make):
    cg = make(Limits(devices=()))
    assert read(f"{cg.dirs['memory']}/memory.limit_in_bytes") == "9223372036854771712\n"
    assert read(f"{cg.dirs['cpu']}/cpu.cfs_quota_us") == "-1\n"
    assert read(f"{cg.dirs['pids']}/pids.max") == "max\n"
    assert read(f"{cg.dirs['devices']}/devices.list") == "a *:* rwm\n"


def test_add_and_pids(make):
    cg = make(Limits(memory=64 * MiB))
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert cg.pids() == []
        cg.add(child.pid)
        assert cg.pids() == [child.pid]
        own = read(f"/proc/{child.pid}/cgroup")
        for ctl in ("memory", "pids", "cpuset", "devices", "freezer"):
            assert f":{ctl}:{cgroup_mount_root(ctl)}{PARENT}/{cg.id}\n" in own
        assert cgroup_usage(cg)["pids"] == 1
    finally:
        child.kill()
        child.wait()


def test_init_joins_before_exec(make):
    cg = make(Limits(pids=10))
    out = subprocess.run(joined(cg, ["cat", "/proc/self/cgroup"]), capture_output=True,
                         text=True, timeout=30, check=True).stdout
    for ctl in ("memory", "pids", "cpu", "cpuacct", "cpuset", "devices", "freezer"):
        assert f":{ctl}:{cgroup_mount_root(ctl)}{PARENT}/{cg.id}\n" in out


def test_device_rules_apply(make):
    cg = make(Limits())
    ok = subprocess.run(joined(cg, ["sh", "-c", "echo x > /dev/null && head -c1 /dev/zero | wc -c"]),
                        capture_output=True, text=True, timeout=30, check=False)
    assert (ok.returncode, ok.stdout.strip()) == (0, "1")
    # /dev/kmsg (c 1:11) is not in the default list
    denied = subprocess.run(joined(cg, ["head", "-c1", "/dev/kmsg"]), capture_output=True,
                            text=True, timeout=30, check=False)
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr


def test_oom_kill(make):
    cg = make(Limits(memory=32 * MiB))
    assert not cg.oom_killed()
    # b"\1" * n touches every page (a zeroed bytearray might never be faulted in).
    hog = "a = []\nwhile True:\n    a.append(b'\\1' * (1 << 20))\n"
    proc = subprocess.Popen(joined(cg, [sys.executable, "-c", hog]), stderr=subprocess.DEVNULL)
    try:
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    assert cg.oom_killed()


def test_pids_limit_stops_forks(make):
    cg = make(Limits(pids=5))
    # The sleeps get their own stdio so that run() need not wait for them to close our pipes.
    loop = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 </dev/null >/dev/null 2>&1 & done; wait"
    shell = subprocess.run(joined(cg, ["sh", "-c", loop]), capture_output=True, text=True,
                           timeout=60, check=False)
    # dash gives up at the first failed fork ("Cannot fork"): the shell and 4 sleeps make the 5
    # tasks allowed. The sleeps stay behind in the cgroup; remove() at teardown kills them.
    assert shell.returncode != 0
    assert "fork" in shell.stderr.lower()
    events = dict(line.split() for line in read(f"{cg.dirs['pids']}/pids.events").splitlines())
    assert int(events["max"]) >= 1
    assert len(cg.pids()) == 4


def test_kill_reaches_members(make):
    cg = make()
    kids = [subprocess.Popen(joined(cg, ["sleep", "60"])) for _ in range(3)]
    try:
        assert members(cg, 3) == sorted(k.pid for k in kids)
        assert cg.kill(signal.SIGTERM) == 3
        assert [k.wait(timeout=10) for k in kids] == [-signal.SIGTERM] * 3
    finally:
        for k in kids:
            k.kill()
            k.wait()


def test_remove_kills_forking_members_and_leaves_nothing(make):
    cg = make(Limits(pids=50))
    # A shell that keeps forking: the freezer makes the kill atomic, so none escapes it.
    busy = subprocess.Popen(joined(cg, ["sh", "-c", "while :; do sleep 30 & sleep 0.01; done"]))
    try:
        assert len(members(cg, 3)) >= 3
        cg.remove()
        assert busy.wait(timeout=10) == -signal.SIGKILL
        assert [d for d in cg.dirs.values() if os.path.exists(d)] == []
        assert glob.glob(f"{CGROUP_ROOT}/*/{PARENT}/{cg.id}") == []
        cg.remove()  # idempotent
    finally:
        busy.kill()
        busy.wait()


def test_kernel_refusal_names_the_file_and_cleans_up(make):
    cid = uuid.uuid4().hex
    with pytest.raises(PmdError) as info:
        make(Limits(devices=(("deny", "a"), ("allow", "x 1:3 rwm"))), cid=cid)
    path = f"{CGROUP_ROOT}/devices/{PARENT}/{cid}/devices.allow"
    assert str(info.value) == f"cannot set device rule allow x 1:3 rwm: {path}: Invalid argument"
    assert glob.glob(f"{CGROUP_ROOT}/*/{PARENT}/{cid}") == []


def test_cleanup_stale(make):
    live, dead = make(), make()
    sleeper = subprocess.Popen(joined(dead, ["sleep", "60"]))
    try:
        assert members(dead, 1) == [sleeper.pid]
        removed = cleanup_stale({live.id}, parent=PARENT)
        assert removed == [dead.id]
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
        assert glob.glob(f"{CGROUP_ROOT}/*/{PARENT}/{dead.id}") == []
        assert len(glob.glob(f"{CGROUP_ROOT}/*/{PARENT}/{live.id}")) == 7
    finally:
        sleeper.kill()
        sleeper.wait()
