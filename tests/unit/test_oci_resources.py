"""linux.resources as the files of a cgroup v1 or v2 (oci/resources.py: parse, then
cgroup_files), without root: runc's conversions for v2 (libcontainer/cgroups/fs2 and its
utils.go), what v2 has no file for, and what each version refuses."""
from __future__ import annotations

import re

import pytest

from pyminidocker.oci import resources
from pyminidocker.oci.state import ConfigError


def files(res: dict, version: str) -> list[tuple[str, str, str]]:
    return [f[:3] for f in resources.cgroup_files(resources.parse(res), version)]


def test_a_full_set_of_limits_on_v1_and_on_v2():
    res = {"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
           "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "cpus": "0",
                   "mems": "0"},
           "pids": {"limit": 42},
           "blockIO": {"weight": 500,
                       "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                       "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
           "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]}
    assert files(res, "v1") == [
        ("memory", "memory.limit_in_bytes", str(64 << 20)),
        ("memory", "memory.soft_limit_in_bytes", str(32 << 20)),
        ("memory", "memory.memsw.limit_in_bytes", str(96 << 20)),
        ("cpu", "cpu.shares", "1024"),
        ("cpu", "cpu.cfs_period_us", "200000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpuset", "cpuset.cpus", "0"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "42"),
        ("blkio", "blkio.weight", "500"),
        ("blkio", "blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio", "blkio.throttle.write_iops_device", "8:0 100"),
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", str(4 << 20)),
    ]
    # runc's fs2 order: pids, memory, io, cpu, cpuset, hugetlb
    assert files(res, "v2") == [
        ("pids", "pids.max", "42"),
        ("memory", "memory.swap.max", str(32 << 20)),  # swap alone: memory+swap - memory
        ("memory", "memory.max", str(64 << 20)),
        ("memory", "memory.low", str(32 << 20)),
        ("io", "io.weight", str(1 + (500 - 10) * 9999 // 990)),
        ("io", "io.max", "8:0 rbps=1048576"),
        ("io", "io.max", "8:0 wiops=100"),
        ("cpu", "cpu.weight", "39"),  # 1 + (1024 - 2) * 9999 / 262142
        ("cpu", "cpu.max", "50000 200000"),
        ("cpuset", "cpuset.cpus", "0"),
        ("cpuset", "cpuset.mems", "0"),
        ("hugetlb", "hugetlb.2MB.max", str(4 << 20)),
        ("hugetlb", "hugetlb.2MB.rsvd.max", str(4 << 20)),
    ]


@pytest.mark.parametrize("shares, weight", [
    (2, "1"), (1024, "39"), (262144, "10000"), (512, "20"), (100000, "3815"),
    (1, "1"), (10 ** 6, "10000"),  # v1 clamps shares, v2 the weight alike
])
def test_cpu_shares_become_a_weight_as_runc_converts_them(shares, weight):
    assert files({"cpu": {"shares": shares}}, "v2") == [("cpu", "cpu.weight", weight)]


@pytest.mark.parametrize("cpu, line", [
    ({"quota": 20000}, "20000 100000"),     # the kernel's default period when unset
    ({"period": 50000}, "max 50000"),       # no quota: no limit, the period still set
    ({"quota": -1, "period": 50000}, "max 50000"),
    ({"quota": -1}, "max 100000"),
])
def test_cpu_quota_and_period_make_one_cpu_max_line(cpu, line):
    assert files({"cpu": cpu}, "v2") == [("cpu", "cpu.max", line)]


@pytest.mark.parametrize("memory, written", [
    ({"limit": 100, "swap": 300}, [("memory.swap.max", "200", False),
                                   ("memory.max", "100", False)]),
    ({"limit": 100, "swap": 100}, [("memory.swap.max", "0", True),   # no swap at all
                                   ("memory.max", "100", False)]),
    ({"limit": 100, "swap": -1}, [("memory.swap.max", "max", True),
                                  ("memory.max", "100", False)]),
    ({"limit": 100}, [("memory.max", "100", False)]),  # swap unset: left as it is
    ({"limit": -1}, [("memory.swap.max", "max", True),  # both unlimited, as v1's memsw
                     ("memory.max", "max", False)]),
    ({"limit": -1, "swap": 300}, [("memory.swap.max", "300", False),
                                  ("memory.max", "max", False)]),
    ({"reservation": 50}, [("memory.low", "50", False)]),
    ({"limit": 0, "swap": 0}, []),  # zeros are unset (what dockerd sends)
])
def test_memory_and_swap_become_max_and_swap_alone(memory, written):
    got = resources.cgroup_files(resources.parse({"memory": memory}), "v2")
    assert [(name, value, optional) for _, name, value, optional in got] == written


@pytest.mark.parametrize("memory, message", [
    ({"swap": 300}, "unable to set swap limit without memory limit"),
    ({"limit": 300, "swap": 100}, "memory+swap limit (swap) should be >= memory limit"),
    ({"limit": -2, "swap": 100}, "invalid memory value: -2"),
])
def test_a_swap_limit_v2_cannot_express_is_refused(memory, message):
    r = resources.parse({"memory": memory})
    with pytest.raises(ConfigError, match=re.escape(message)):
        resources.cgroup_files(r, "v2")
    resources.cgroup_files(r, "v1")  # v1 takes memory+swap as it is: the kernel checks it


@pytest.mark.parametrize("limit, v1, v2", [(42, "42", "42"), (-1, "max", "max"),
                                           (-5, "max", "max")])
def test_pids_limit_below_zero_is_max_and_zero_unset(limit, v1, v2):
    assert files({"pids": {"limit": limit}}, "v1") == [("pids", "pids.max", v1)]
    assert files({"pids": {"limit": limit}}, "v2") == [("pids", "pids.max", v2)]
    assert files({"pids": {"limit": 0}}, "v2") == []


def test_what_v2_has_no_file_for_is_ignored_as_runc_does():
    res = {"memory": {"kernel": 1 << 30, "kernelTCP": 1 << 20, "swappiness": 10,
                      "disableOOMKiller": True},
           "cpu": {"realtimeRuntime": 950000, "realtimePeriod": 1000000},
           "blockIO": {"leafWeight": 300,
                       "weightDevice": [{"major": 8, "minor": 0, "weight": 300}]},
           "network": {"classID": 0x100001, "priorities": [{"name": "eth0", "priority": 5}]}}
    assert files(res, "v2") == []
    assert [name for _, name, _ in files(res, "v1")] == [
        "memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes", "memory.swappiness",
        "memory.oom_control", "cpu.rt_period_us", "cpu.rt_runtime_us", "blkio.leaf_weight",
        "blkio.weight_device", "net_cls.classid", "net_prio.ifpriomap"]


def test_unified_keys_are_written_last_on_v2_and_refused_on_v1():
    res = {"unified": {"memory.high": "50000000", "io.max": "8:0 rbps=1\n8:16 wbps=2",
                       "cgroup.max.depth": "3"},
           "memory": {"limit": 1 << 26}, "pids": {"limit": 9}}
    got = files(res, "v2")
    assert got[-3:] == [("memory", "memory.high", "50000000"),
                        ("io", "io.max", "8:0 rbps=1\n8:16 wbps=2"),
                        ("cgroup", "cgroup.max.depth", "3")]
    with pytest.raises(ConfigError, match="unified needs cgroup v2; this host runs "
                                              "cgroup v1"):
        resources.cgroup_files(resources.parse(res), "v1")


@pytest.mark.parametrize("key", ["../memory.max", "memory.max/x", "memory", ".max", "memory.",
                                 "..", "memory/../../x.y", "a..b", ""])
def test_a_unified_key_must_be_a_plain_file_name(key):
    with pytest.raises(ConfigError, match="is not a cgroup file name"):
        resources.parse({"unified": {key: "1"}})


def test_a_unified_value_must_be_a_string():
    with pytest.raises(ConfigError, match=r"unified\.memory\.max: expected a string"):
        resources.parse({"unified": {"memory.max": 1}})
    with pytest.raises(ConfigError, match="contains a NUL byte"):
        resources.parse({"unified": {"memory.max": "1\0"}})
