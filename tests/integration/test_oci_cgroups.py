"""pyminidocker-runc's linux.resources in a real container's cgroup, on cgroup v1 and on pure
cgroup v2 (tests/vm/test_cgroup_v2.py runs this module in a VM): the files the limits become,
read back from the host and from inside the container, what `update` changes, `unified` (v2),
and what each version refuses. Each test checks that nothing is left (state, cgroup, empty
default parent, process, mount)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pyminidocker.container.cgroups import detect
from tests.integration.test_oci_runtime import (
    CGROUP_PARENT,
    Runc,
    edit,
    make_bundle,
    runc_checked,
)

LAYOUT = detect()
V2 = LAYOUT.version == "v2"
MIB = 1 << 20

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]
v2_only = pytest.mark.skipif(not V2, reason="cgroup v2 only: this host runs cgroup v1 (the VM "
                             "test tests/vm/test_cgroup_v2.py runs it on v2)")
v1_only = pytest.mark.skipif(V2, reason="cgroup v1 only: this host runs pure cgroup v2")


def cgroup_dirs(cid: str) -> list[str]:
    """The directories of a container's cgroup in this host's hierarchies, that exist."""
    mounts = {LAYOUT.root} if V2 else set(LAYOUT.controllers.values())
    return [d for m in mounts for d in (os.path.join(m, CGROUP_PARENT, cid),) if os.path.isdir(d)]


def empty_default_parents() -> list[str]:
    mounts = {LAYOUT.root} if V2 else set(LAYOUT.controllers.values())
    parents = [Path(m, CGROUP_PARENT) for m in mounts]
    return [str(p) for p in parents
            if p.is_dir() and not any(c.is_dir() for c in p.iterdir())]


def cgroup_file(pid: int, ctl: str, name: str) -> str:
    """The content of a control file of pid's cgroup, found through /proc/PID/cgroup."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctls, path = line.rstrip("\n").split(":", 2)
            if V2 and ctls == "":
                mount = LAYOUT.root
            elif not V2 and ctl in ctls.split(","):
                mount = LAYOUT.controllers[ctl]
            else:
                continue
            with open(os.path.join(mount, path.lstrip("/"), name)) as g:
                return g.read().strip()
    raise AssertionError(f"pid {pid} is in no {ctl} cgroup")


def v(v1: str, v2: str) -> str:
    return v2 if V2 else v1


@pytest.fixture
def runc(tmp_path):
    yield from runc_checked(tmp_path, cgroup_dirs, empty_default_parents)


def start(runc: Runc, tmp_path: Path, cid: str, resources: dict) -> int:
    """A container running `sleep` with resources; its pid."""
    b = make_bundle(tmp_path / cid, ["sleep", "60"])
    edit(b, lambda cfg: cfg["linux"]["resources"].update(resources))
    runc.ids.append(cid)
    runc("run", "-d", "--bundle", str(b), cid)
    pid = runc.state(cid)["pid"]
    runc.pids.append(pid)
    return pid


def inside(runc: Runc, cid: str, *names: str) -> list[str]:
    """Control files as the container sees them, in its own cgroup namespace at /sys/fs/cgroup
    (v1: below the controller's directory, "memory/memory.limit_in_bytes")."""
    out = runc("exec", cid, "cat", *(f"/sys/fs/cgroup/{n}" for n in names)).stdout
    return out.split()


def stop(runc: Runc, cid: str) -> None:
    runc("delete", "--force", cid)
    assert not cgroup_dirs(cid)


def assert_cpu(pid: int, weight: str, quota: str, period: str) -> None:
    """pid's cgroup has that CPU weight (v1 shares), quota and period."""
    assert cgroup_file(pid, "cpu", v("cpu.shares", "cpu.weight")) == weight
    if V2:
        assert cgroup_file(pid, "cpu", "cpu.max") == f"{quota} {period}"
    else:
        assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == quota
        assert cgroup_file(pid, "cpu", "cpu.cfs_period_us") == period

def test_limits_are_the_containers_cgroup_files_and_update_changes_them(runc, tmp_path):
    pid = start(runc, tmp_path, "lim", {
        "memory": {"limit": 64 * MIB, "reservation": 32 * MIB},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 42}})
    assert cgroup_file(pid, "memory", v("memory.limit_in_bytes", "memory.max")) == \
        str(64 * MIB)
    assert cgroup_file(pid, "memory", v("memory.soft_limit_in_bytes", "memory.low")) == \
        str(32 * MIB)
    assert_cpu(pid, v("512", "20"), "50000", "100000")
    assert cgroup_file(pid, "pids", "pids.max") == "42"
    assert cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"
    assert cgroup_file(pid, "cpuset", "cpuset.mems") == "0"
    with open(f"/proc/{pid}/status") as f:
        assert "Cpus_allowed_list:\t0\n" in f.read()
    # the container sees its own limits
    assert inside(runc, "lim", v("memory/memory.limit_in_bytes", "memory.max"),
                  "pids/pids.max" if not V2 else "pids.max") == [str(64 * MIB), "42"]

    runc("update", "--memory", "128m", "--cpu-quota", "20000", "--cpu-period", "50000",
         "--cpu-shares", "1024", "--pids-limit", "50", "--cpuset-cpus", "0-1", "lim")
    assert cgroup_file(pid, "memory", v("memory.limit_in_bytes", "memory.max")) == \
        str(128 * MIB)
    assert_cpu(pid, v("1024", "39"), "20000", "50000")
    assert cgroup_file(pid, "pids", "pids.max") == "50"
    assert cgroup_file(pid, "cpuset", "cpuset.cpus") == "0-1"
    assert inside(runc, "lim", "pids/pids.max" if not V2 else "pids.max") == ["50"]
    runc("update", "--pids-limit", "-1", "--cpu-quota", "-1", "lim")
    assert cgroup_file(pid, "pids", "pids.max") == "max"
    if V2:
        assert cgroup_file(pid, "cpu", "cpu.max") == "max 100000"
    else:
        assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "-1"
    stop(runc, "lim")


def test_swap_is_memory_plus_swap_on_v1_and_swap_alone_on_v2(runc, tmp_path):
    pid = start(runc, tmp_path, "swp", {"memory": {"limit": 64 * MIB, "swap": 96 * MIB}})
    swap = cgroup_dirs("swp")[0] if V2 else None
    if V2 and not os.path.exists(os.path.join(swap, "memory.swap.max")):
        pytest.skip("this kernel does not account swap (no memory.swap.max)")
    assert cgroup_file(pid, "memory", v("memory.memsw.limit_in_bytes", "memory.swap.max")) == \
        v(str(96 * MIB), str(32 * MIB))
    # update's swap alone: on v2, less the limit in force
    runc("update", "--memory-swap", str(160 * MIB), "swp")
    assert cgroup_file(pid, "memory", v("memory.memsw.limit_in_bytes", "memory.swap.max")) == \
        v(str(160 * MIB), str(96 * MIB))
    runc("update", "--memory-swap", "-1", "swp")
    assert cgroup_file(pid, "memory", v("memory.memsw.limit_in_bytes", "memory.swap.max")) \
        in ("max", str((1 << 63) - 4096), str((1 << 63) - 1))
    stop(runc, "swp")


def test_what_v2_has_no_file_for_is_set_on_v1_and_ignored_on_v2(runc, tmp_path):
    pid = start(runc, tmp_path, "v1f", {"memory": {"limit": 64 * MIB, "swappiness": 7,
                                                   "disableOOMKiller": True}})
    if not V2:
        assert cgroup_file(pid, "memory", "memory.swappiness") == "7"
        assert "oom_kill_disable 1" in cgroup_file(pid, "memory", "memory.oom_control")
    assert cgroup_file(pid, "memory", v("memory.limit_in_bytes", "memory.max")) == \
        str(64 * MIB)
    stop(runc, "v1f")


def test_a_limit_the_kernel_refuses_fails_create_and_leaves_nothing(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["true"])
    edit(b, lambda cfg: cfg["linux"]["resources"].update(cpu={"cpus": "1023"}))
    runc.ids.append("nocpu")
    r = runc("run", "--bundle", str(b), "nocpu", check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cpuset.cpus" in r.stderr and "1023" in r.stderr, r.stderr
    assert not cgroup_dirs("nocpu") and not (runc.root / "nocpu").exists()


@v2_only
def test_unified_keys_are_written_last_and_update_takes_them(runc, tmp_path):
    pid = start(runc, tmp_path, "uni", {
        "pids": {"limit": 42},
        # cpuset is not among the controllers the engine enables for itself
        "unified": {"pids.max": "17", "memory.high": str(48 * MIB), "cpuset.cpus": "0",
                    "cgroup.max.depth": "2"}})
    assert cgroup_file(pid, "pids", "pids.max") == "17"  # the unified key wins
    assert cgroup_file(pid, "memory", "memory.high") == str(48 * MIB)
    assert cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"
    assert cgroup_file(pid, "", "cgroup.max.depth") == "2"
    assert inside(runc, "uni", "memory.high") == [str(48 * MIB)]
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"unified": {"memory.high": str(40 * MIB)},
                               "memory": {"limit": 80 * MIB}}))
    runc("update", "--resources", str(res), "uni")
    assert cgroup_file(pid, "memory", "memory.high") == str(40 * MIB)
    assert cgroup_file(pid, "memory", "memory.max") == str(80 * MIB)
    stop(runc, "uni")


@v2_only
@pytest.mark.parametrize("key, message", [
    ("bogus.max", "cannot set bogus.max: the cgroup v2 bogus controller is not available"),
    ("memory.bogus", "memory.bogus: No such file or directory"),
])
def test_a_unified_key_the_host_cannot_take_fails_create_and_leaves_nothing(
        runc, tmp_path, key, message):
    b = make_bundle(tmp_path / "b", ["true"])
    edit(b, lambda cfg: cfg["linux"]["resources"].update(unified={key: "1"}))
    runc.ids.append("badu")
    r = runc("run", "--bundle", str(b), "badu", check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert message in r.stderr, r.stderr
    assert not cgroup_dirs("badu") and not (runc.root / "badu").exists()


@v1_only
def test_unified_is_refused_on_v1_before_anything_is_made(runc, tmp_path):
    b = make_bundle(tmp_path / "b", ["true"])
    edit(b, lambda cfg: cfg["linux"]["resources"].update(unified={"memory.high": "1"}))
    runc.ids.append("u1")
    r = runc("create", "--bundle", str(b), "u1", check=False)
    assert (r.returncode, r.stderr.strip()) == (
        1, "linux.resources.unified needs cgroup v2; this host runs cgroup v1")
    assert not cgroup_dirs("u1") and not (runc.root / "u1").exists()
