"""cgroups without root: detection, size and CPU arithmetic, and the exact files written into fake
v1 and v2 trees in tmp_path.

A fake tree is a plain directory, so two things the kernel does are done by hand here: cgroupfs
fills a new cgroup with its control files (tests pre-create those that change behaviour, such as
memory.swap.max), and rmdir of a cgroup takes its files with it (the kernfs_rmdir fixture).
A v2 cgroup's device program cannot be attached to a plain directory: the device_programs
fixture records it instead (tests/integration/test_cgroups_v2_devices.py attaches it for real).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pyminidocker.container import cgroups
from pyminidocker.container.cgroups import (
    DEFAULT_DEVICE_RULES,
    Cgroup,
    Layout,
    Limits,
    cpu_quota,
    detect,
    device_program,
    parse_bytes,
    parse_mountinfo,
    shares_to_weight,
)
from pyminidocker.container.check import cleanup_stale
from pyminidocker.container.observe import cgroup_usage
from pyminidocker.errors import PmdError, UsageError

MiB = 1024 * 1024
CID = "c0ffee" + "0" * 58


# --- import ------------------------------------------------------------------------------------

# Modules that take milliseconds to import (or pull in others that do), none of which the module
# may bring along: it is imported on every container start.
HEAVY = {"collections", "contextlib", "dataclasses", "enum", "functools", "json", "pathlib", "re",
         "shutil", "signal", "threading", "typing"}


def test_import_is_lean():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {root!r}); import pyminidocker.container.cgroups; "
            "print(*sorted(sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert "pyminidocker.container.cgroups" in out
    assert sorted(HEAVY.intersection(out)) == []


# --- sizes, CPUs, Limits -----------------------------------------------------------------------


@pytest.mark.parametrize("text,value", [
    ("1024", 1024),
    ("0", 0),
    ("100k", 100 * 1024),
    ("100K", 100 * 1024),
    ("512m", 512 * MiB),
    ("512M", 512 * MiB),
    ("1g", 1024 * MiB),
    ("1G", 1024 * MiB),
    ("2t", 2 * 1024**4),
    ("1024b", 1024),
    ("1024B", 1024),
    ("512mb", 512 * MiB),
    ("512MiB", 512 * MiB),
    ("1.5g", 1536 * MiB),
    ("0.5m", 512 * 1024),
    (" 64m ", 64 * MiB),
    ("64 m", 64 * MiB),
])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", [
    "", " ", "m", "b", "kb", "12x", "12mm", "m12", "-1", "-5m", "+5m", "1e3", "inf", "nan",
    "1.2.3", "1.", ".5g", "1_000", "1024ib", "0x10", "١٢m", "5 mb extra",
])
def test_parse_bytes_refuses_junk(text):
    with pytest.raises(UsageError, match="invalid size"):
        parse_bytes(text)


def test_parse_bytes_unlimited_only_when_asked():
    assert parse_bytes("-1", allow_unlimited=True) == -1
    with pytest.raises(UsageError):
        parse_bytes("-1")


def test_usage_error_is_a_value_error_with_docker_exit_code():
    with pytest.raises(ValueError) as info:
        parse_bytes("lots")
    assert info.value.exit_code == 125


@pytest.mark.parametrize("cpus,quota", [
    (1.5, 150_000),
    (0.5, 50_000),
    (1, 100_000),
    (2, 200_000),
    (0.01, 1_000),
    (0.29, 29_000),       # float arithmetic alone gives 28999
    (0.123456, 12_345),   # truncated like Docker's nano-CPU integer arithmetic
    (1.000001, 100_000),
])
def test_cpu_quota(cpus, quota):
    assert cpu_quota(cpus) == quota


def test_cpu_quota_other_period():
    assert cpu_quota(0.5, period=50_000) == 25_000


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (262_144, 10_000)])
def test_shares_to_weight(shares, weight):
    assert shares_to_weight(shares) == weight


def test_parse_cpus():
    from pyminidocker.container.spec import parse_cpus

    assert parse_cpus("1.5", ncpu=2) == 1.5
    for bad in ("3", "0.001", "-1", "nan", "0"):
        with pytest.raises(UsageError, match=r"^Range of CPUs is from 0.01 to 2.00, as there are "
                                             r"only 2 CPUs available$"):
            parse_cpus(bad, ncpu=2)
    with pytest.raises(UsageError, match="invalid argument"):
        parse_cpus("lots", ncpu=2)


def test_limits_minimum_memory_is_dockers():
    with pytest.raises(UsageError) as info:
        Limits(memory=6 * MiB - 1)
    assert str(info.value) == "Minimum memory limit allowed is 6MB"
    assert Limits(memory=6 * MiB).memory == 6 * MiB


def test_limits_normalise_unlimited():
    lim = Limits(memory=0, memory_swap=0, cpus=0, cpu_shares=0, pids=-1)
    assert (lim.memory, lim.memory_swap, lim.cpus, lim.cpu_shares, lim.pids) == (
        None, None, None, None, None)
    assert Limits(pids=0).pids is None
    assert Limits(pids=20).pids == 20


def test_limits_swap_rules():
    assert Limits(memory=64 * MiB).swap_total() == 128 * MiB        # Docker's default: 2x
    assert Limits(memory=64 * MiB, memory_swap=-1).swap_total() == -1
    assert Limits(memory=64 * MiB, memory_swap=64 * MiB).swap_total() == 64 * MiB
    assert Limits().swap_total() is None
    with pytest.raises(UsageError, match="always set the Memory limit"):
        Limits(memory_swap=128 * MiB)
    with pytest.raises(UsageError, match="memoryswap limit should be larger"):
        Limits(memory=64 * MiB, memory_swap=32 * MiB)


@pytest.mark.parametrize("kwargs", [
    {"memory": -1}, {"cpus": 0.001}, {"cpus": -1.0}, {"cpu_shares": 1},
    {"cpu_shares": 262_145}, {"devices": (("permit", "a"),)},
])
def test_limits_refuse(kwargs):
    with pytest.raises(UsageError):
        Limits(**kwargs)


# --- detection ---------------------------------------------------------------------------------

PURE_V2 = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
29 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
"""

# This machine: v1 controllers each on its own mount, a named systemd hierarchy, and an empty
# cgroup2 at /sys/fs/cgroup/unified.
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# An older distribution: co-mounted controllers, optional fields, no cgroup2 at all, plus a bind
# mount of the memory hierarchy elsewhere that must not win over the first one.
PURE_V1 = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw shared:14 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev shared:15 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid shared:16 - cgroup cgroup rw,pids
33 25 0:30 / /sys/fs/cgroup/devices rw,nosuid shared:17 - cgroup cgroup rw,devices
34 25 0:31 / /sys/fs/cgroup/cpuset rw,nosuid shared:18 - cgroup cgroup rw,cpuset,clone_children
90 28 0:28 / /mnt/mem\\040copy rw shared:15 - cgroup cgroup rw,memory
"""


def test_detect_pure_v2():
    assert parse_mountinfo(PURE_V2) == Layout("v2", "/sys/fs/cgroup", {})


def test_detect_hybrid_uses_v1_controllers_and_ignores_unified():
    layout = parse_mountinfo(HYBRID)
    assert layout.version == "v1"
    assert layout.controllers == {
        c: f"/sys/fs/cgroup/{c}"
        for c in ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
    }


def test_detect_pure_v1_with_comounted_controllers():
    layout = parse_mountinfo(PURE_V1)
    assert layout.version == "v1"
    assert layout.controllers["cpu"] == layout.controllers["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.controllers["net_prio"] == "/sys/fs/cgroup/net_cls,net_prio"
    assert layout.controllers["memory"] == "/sys/fs/cgroup/memory"
    assert "name=systemd" not in layout.controllers and "freezer" not in layout.controllers


def test_detect_unescapes_mount_points():
    text = "90 28 0:28 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n"
    assert parse_mountinfo(text, root="/mnt/my cgroups").version == "v2"


def test_detect_nothing_mounted():
    with pytest.raises(PmdError, match="no cgroup filesystem"):
        parse_mountinfo("28 1 254:1 / / rw - ext4 /dev/vda1 rw\n")


def test_detect_this_host():
    # Whatever the host has, it parses; the result is cached for the process.
    assert detect() is detect()
    assert detect().version in ("v1", "v2")


# --- v2 device rules ---------------------------------------------------------------------------


def test_device_program_of_dockers_defaults():
    # deny-all default, so the exceptions are allow rules and no rule matches the rest
    assert device_program(DEFAULT_DEVICE_RULES) == [
        (True, "c", -1, -1, "m"), (True, "b", -1, -1, "m"),
        (True, "c", 1, 3, "rwm"), (True, "c", 1, 5, "rwm"), (True, "c", 1, 7, "rwm"),
        (True, "c", 1, 8, "rwm"), (True, "c", 1, 9, "rwm"), (True, "c", 5, 0, "rwm"),
        (True, "c", 5, 1, "rwm"), (True, "c", 5, 2, "rwm"), (True, "c", 136, -1, "rwm"),
    ]


@pytest.mark.parametrize("rules,program", [
    # no rule, or "allow a": the parent's allow-all
    ((), [(True, "a", -1, -1, "rwm")]),
    ((("deny", "a"), ("allow", "c 1:3 rw"), ("allow", "a *:* rwm")), [(True, "a", -1, -1, "rwm")]),
    # "deny a" empties the list before it
    ((("allow", "c 1:3 rwm"), ("deny", "a")), []),
    # exceptions for one device merge their access; a rule agreeing with the default removes
    # access from the exception, and the exception itself once it has none
    ((("deny", "a"), ("allow", "c 1:3 r"), ("allow", "c 1:3 w")), [(True, "c", 1, 3, "rw")]),
    ((("deny", "a"), ("allow", "c 1:3 rwm"), ("deny", "c 1:3 w")), [(True, "c", 1, 3, "rm")]),
    ((("deny", "a"), ("allow", "b 8:* rw"), ("deny", "b 8:* rw")), []),
    # a deny of another device (or a wildcard) does not punch into an exception: v1 compares
    # exceptions by type, major and minor
    ((("deny", "a"), ("allow", "c 1:* rwm"), ("deny", "c 1:3 rwm")), [(True, "c", 1, -1, "rwm")]),
    # allow default: the exceptions refuse, the rest is allowed
    ((("deny", "b 8:0 rw"), ("deny", "c 10:200 m")),
     [(False, "b", 8, 0, "rw"), (False, "c", 10, 200, "m"), (True, "a", -1, -1, "rwm")]),
])
def test_device_program_follows_v1(rules, program):
    assert device_program(rules) == program


@pytest.mark.parametrize("rule", ["x 1:3 rwm", "c 1 rwm", "c 1:3", "c 1:3 rwx", "c a:3 rwm",
                                  "c 1:-3 rwm", "c 4294967296:0 r", "b  8:0 r w", "", "all"])
def test_device_program_refuses_what_v1_refuses(rule):
    with pytest.raises(UsageError, match="invalid device rule"):
        device_program((("allow", rule),))


# --- fake trees --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def device_programs(monkeypatch):
    """Record (path, program) of each v2 device program instead of attaching it."""
    log: list[tuple[str, list]] = []
    monkeypatch.setattr(cgroups, "_attach_device_program",
                        lambda path, program: log.append((path, program)))
    return log


@pytest.fixture
def writes(monkeypatch):
    """Record every control-file write (path, value) in order, still performing it: the order
    matters to the kernel and the count is the cost on the start path."""
    log: list[tuple[str, str]] = []
    real = cgroups._write_each

    def spy(path, items):
        log.extend((path, value) for value, _ in items)
        real(path, items)

    monkeypatch.setattr(cgroups, "_write_each", spy)
    return log


@pytest.fixture
def kernfs_rmdir(monkeypatch, tmp_path):
    """rmdir as cgroupfs does it: a cgroup's control files go with the directory (only the files
    directly in it; a nested cgroup still makes it fail)."""
    real = os.rmdir

    def rmdir(path, *args, **kwargs):
        p = Path(path)
        if tmp_path in p.parents and p.is_dir():
            for f in p.iterdir():
                if f.is_file():
                    f.unlink()
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", rmdir)


def fake_v2(tmp_path: Path, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc",
            subtree: str = "") -> Path:
    (tmp_path / "cgroup.controllers").write_text(controllers + "\n")
    (tmp_path / "cgroup.subtree_control").write_text(subtree)
    (tmp_path / "cgroup.procs").write_text("1\n")
    return tmp_path


def rel(root: Path, log):
    return [(os.path.relpath(p, root), v) for p, v in log]


def test_v2_create_writes_exactly_these_files(tmp_path, writes):
    root = fake_v2(tmp_path)
    cg = Cgroup(CID, root=root)
    assert cg.version == "v2"
    cg.create(Limits(memory=64 * MiB, cpus=1.5, pids=100))
    d = root / "pyminidocker" / CID
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (root / "pyminidocker" / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (d / "memory.max").read_text() == str(64 * MiB)
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert (d / "pids.max").read_text() == "100"
    # no swap accounting in this fake (memory.swap.max absent), so no swap limit, as Docker
    assert not (d / "memory.swap.max").exists()
    assert cg.warnings == [cgroups.NO_SWAP_LIMIT]
    assert rel(root, writes) == [
        ("cgroup.subtree_control", "+memory +pids +cpu"),
        ("pyminidocker/cgroup.subtree_control", "+memory +pids +cpu"),
        (f"pyminidocker/{CID}/memory.max", "67108864"),
        (f"pyminidocker/{CID}/cpu.max", "150000 100000"),
        (f"pyminidocker/{CID}/pids.max", "100"),
    ]
    assert cg.procs_files() == [str(d / "cgroup.procs")]


def test_v2_create_attaches_the_device_program(tmp_path, writes, device_programs):
    root = fake_v2(tmp_path)
    cg = Cgroup(CID, root=root)
    cg.create()
    assert device_programs == [(cg.dirs[""], device_program(DEFAULT_DEVICE_RULES))]
    device_programs.clear()
    cg.create(Limits(devices=(("allow", "a"),)))  # reused: replaced (pmd_cgroup_devices)
    assert device_programs == [(cg.dirs[""], [(True, "a", -1, -1, "rwm")])]
    device_programs.clear()
    cg.create(Limits(devices=()))  # no rules: the parent's access, no program
    assert device_programs == []
    assert not any(p.startswith("devices.") for p, _ in rel(root, writes))


def test_v2_malformed_device_rule_creates_nothing(tmp_path, device_programs):
    root = fake_v2(tmp_path)
    with pytest.raises(UsageError, match="invalid device rule: allow c 1:3 rwx"):
        Cgroup(CID, root=root).create(Limits(devices=(("deny", "a"), ("allow", "c 1:3 rwx"))))
    assert not (root / "pyminidocker").exists()
    assert device_programs == []


def test_v2_second_container_writes_only_its_limits(tmp_path, writes):
    # The kernel lists enabled controllers without "+"; nothing to enable means no write.
    root = fake_v2(tmp_path, subtree="cpu memory pids\n")
    (root / "pyminidocker").mkdir()
    (root / "pyminidocker" / "cgroup.subtree_control").write_text("cpu memory pids\n")
    Cgroup(CID, root=root).create(Limits(pids=5))
    assert rel(root, writes) == [(f"pyminidocker/{CID}/pids.max", "5")]
    assert (root / "cgroup.subtree_control").read_text() == "cpu memory pids\n"


def test_v2_enables_only_missing_and_available_controllers(tmp_path, writes):
    root = fake_v2(tmp_path, controllers="cpu io memory pids", subtree="memory\n")
    Cgroup(CID, root=root).create(Limits())
    assert rel(root, writes) == [
        ("cgroup.subtree_control", "+pids +cpu"),
        ("pyminidocker/cgroup.subtree_control", "+memory +pids +cpu"),
    ]
    assert (root / "pyminidocker" / CID).is_dir()


@pytest.mark.parametrize("swap,expected", [
    (None, str(64 * MiB)),   # Docker's default: as much swap as memory
    (-1, "max"),
    (64 * MiB, "0"),         # --memory-swap equal to --memory: no swap
    (100 * MiB, str(36 * MiB)),
])
def test_v2_swap_limit_is_swap_only(tmp_path, swap, expected):
    root = fake_v2(tmp_path)
    d = root / "pyminidocker" / CID
    d.mkdir(parents=True)
    (d / "memory.swap.max").write_text("max\n")  # the kernel accounts swap
    cg = Cgroup(CID, root=root)
    cg.create(Limits(memory=64 * MiB, memory_swap=swap))
    assert (d / "memory.swap.max").read_text() == expected
    assert cg.warnings == []


def test_v2_cpu_shares_become_weight(tmp_path):
    root = fake_v2(tmp_path)
    Cgroup(CID, root=root).create(Limits(cpu_shares=512))
    assert (root / "pyminidocker" / CID / "cpu.weight").read_text() == str(shares_to_weight(512))


@pytest.fixture
def kernfs_mkdir(monkeypatch, tmp_path):
    """mkdir as cgroup2 does it: a new cgroup's cgroup.controllers lists what its parent enables
    in cgroup.subtree_control."""
    real = os.mkdir

    def mkdir(path, *args, **kwargs):
        real(path, *args, **kwargs)
        parent = Path(path).parent
        if tmp_path in Path(path).parents and (parent / "cgroup.subtree_control").exists():
            enabled = (parent / "cgroup.subtree_control").read_text().replace("+", "").split()
            (Path(path) / "cgroup.controllers").write_text(" ".join(enabled) + "\n")

    monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.fixture
def reads(monkeypatch):
    """Record the path of every control-file read, in order."""
    log: list[str] = []
    real = cgroups.read_control

    def spy(path):
        log.append(path)
        return real(path)

    monkeypatch.setattr(cgroups, "read_control", spy)
    return log


def test_v2_later_containers_check_only_their_own_cgroup(tmp_path, kernfs_mkdir, writes, reads):
    root = fake_v2(tmp_path)
    Cgroup("first", root=root).create(Limits(pids=5))
    assert rel(root, writes)[:2] == [
        ("cgroup.subtree_control", "+memory +pids +cpu"),
        ("pyminidocker/cgroup.subtree_control", "+memory +pids +cpu"),
    ]
    writes.clear()
    reads.clear()
    Cgroup(CID, root=root).create(Limits(pids=5))
    # one mkdir and one read show the parents ready; then the limit
    assert [os.path.relpath(p, root) for p in reads] == [f"pyminidocker/{CID}/cgroup.controllers"]
    assert rel(root, writes) == [(f"pyminidocker/{CID}/pids.max", "5")]


def test_v2_controller_missing_below_is_enabled_again(tmp_path, kernfs_mkdir, writes):
    root = fake_v2(tmp_path)
    Cgroup("first", root=root).create()
    (root / "pyminidocker" / "cgroup.subtree_control").write_text("memory pids\n")
    writes.clear()
    Cgroup(CID, root=root).create()
    assert rel(root, writes) == [("pyminidocker/cgroup.subtree_control", "+cpu")]


def test_v2_nested_parent(tmp_path, writes):
    root = fake_v2(tmp_path)
    cg = Cgroup(CID, parent="engine/pyminidocker", root=root)
    cg.create(Limits(pids=7))
    assert (root / "engine" / "pyminidocker" / CID / "pids.max").read_text() == "7"
    assert [p for p, _ in rel(root, writes)][:3] == [
        "cgroup.subtree_control", "engine/cgroup.subtree_control",
        "engine/pyminidocker/cgroup.subtree_control",
    ]


def test_v2_missing_controller_is_an_error_and_leaves_nothing(tmp_path, kernfs_rmdir):
    root = fake_v2(tmp_path, controllers="cpu io")
    with pytest.raises(PmdError, match="memory controller is not available"):
        Cgroup(CID, root=root).create(Limits(memory=64 * MiB))
    assert not (root / "pyminidocker").exists()
    # with the parent there, the new cgroup is removed again
    (root / "pyminidocker").mkdir()
    with pytest.raises(PmdError, match="memory controller is not available"):
        Cgroup(CID, root=root).create(Limits(memory=64 * MiB))
    assert not (root / "pyminidocker" / CID).exists()


def test_v2_write_error_names_the_file(tmp_path, kernfs_rmdir):
    root = fake_v2(tmp_path)
    d = root / "pyminidocker" / CID
    (d / "memory.max").mkdir(parents=True)  # open(O_WRONLY) of a directory fails: EISDIR
    with pytest.raises(PmdError) as info:
        Cgroup(CID, root=root).create(Limits(memory=64 * MiB))
    assert str(info.value) == f"cannot set memory limit: {d}/memory.max: Is a directory"
    assert isinstance(info.value.__cause__, IsADirectoryError)


def test_v2_add_pids_and_oom(tmp_path):
    root = fake_v2(tmp_path)
    cg = Cgroup(CID, root=root)
    cg.create()
    d = root / "pyminidocker" / CID
    cg.add(4242)
    assert (d / "cgroup.procs").read_text() == "4242"
    (d / "cgroup.procs").write_text("12\n34\n")
    (d / "nested").mkdir()
    (d / "nested" / "cgroup.procs").write_text("56\n")
    assert cg.pids() == [12, 34, 56]

    assert not cg.oom_killed()  # no memory.events yet
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n")
    assert not cg.oom_killed()
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert cg.oom_killed()


def test_v2_stats(tmp_path):
    root = fake_v2(tmp_path)
    cg = Cgroup(CID, root=root)
    cg.create(Limits(memory=64 * MiB))
    d = root / "pyminidocker" / CID
    (d / "memory.current").write_text("1048576\n")
    (d / "pids.current").write_text("3\n")
    (d / "cpu.stat").write_text("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n")
    assert cgroup_usage(cg) == {"memory_usage": MiB, "memory_limit": 64 * MiB, "pids": 3,
                          "cpu_usage_ns": 2_500_000}


def test_kill_signals_every_member(tmp_path):
    # Real processes, listed in a fake cgroup.procs: kill() must reach each of them.
    root = fake_v2(tmp_path)
    cg = Cgroup(CID, root=root)
    cg.create()
    kids = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    try:
        (root / "pyminidocker" / CID / "cgroup.procs").write_text(
            "".join(f"{k.pid}\n" for k in kids))
        assert cg.kill(signal.SIGTERM) == 2
        assert [k.wait(timeout=10) for k in kids] == [-signal.SIGTERM, -signal.SIGTERM]
    finally:
        for k in kids:
            k.kill()
            k.wait()


def test_v2_sigkill_uses_cgroup_kill(tmp_path):
    root = fake_v2(tmp_path)
    cg = Cgroup(CID, root=root)
    cg.create()
    d = root / "pyminidocker" / CID
    (d / "cgroup.kill").write_text("")
    (d / "cgroup.procs").write_text("")
    cg.kill()
    assert (d / "cgroup.kill").read_text() == "1"


def test_remove_is_idempotent(tmp_path, kernfs_rmdir):
    root = fake_v2(tmp_path)
    cg = Cgroup(CID, root=root)
    cg.create(Limits(memory=64 * MiB))
    (root / "pyminidocker" / CID / "sub").mkdir()  # a cgroup the container made itself
    cg.remove()
    assert not (root / "pyminidocker" / CID).exists()
    assert (root / "pyminidocker").is_dir()  # the parent is shared
    cg.remove()
    Cgroup("never-created", root=root).remove()


def test_cleanup_stale(tmp_path, kernfs_rmdir):
    root = fake_v2(tmp_path)
    for cid in ("a", "b", "c"):
        Cgroup(cid, root=root).create()
    assert cleanup_stale({"b", "zz"}, root=root) == ["a", "c"]
    assert sorted(p.name for p in (root / "pyminidocker").iterdir() if p.is_dir()) == ["b"]
    # with no live container left, the parent can go too
    assert cleanup_stale(set(), root=root, remove_parent=True) == ["b"]
    assert not (root / "pyminidocker").exists()
    assert cleanup_stale(set(), root=root) == []


@pytest.mark.parametrize("cid,parent", [
    ("", "pyminidocker"), ("..", "pyminidocker"), ("a/b", "pyminidocker"),
    ("x", "../etc"), ("x", "a//b"),
])
def test_names_are_checked(tmp_path, cid, parent):
    with pytest.raises(UsageError):
        Cgroup(cid, parent=parent, root=fake_v2(tmp_path))


def test_an_empty_parent_is_the_hierarchys_root(tmp_path):
    # an OCI cgroupsPath such as "/x" puts the container at the root of the hierarchy
    cg = Cgroup("x", parent="", root=fake_v2(tmp_path))
    assert cg.parent == ""


# --- v1 ----------------------------------------------------------------------------------------

V1_DIRS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd")


def fake_v1(tmp_path: Path, dirs=V1_DIRS, memsw: bool = True) -> Path:
    for name in dirs:
        (tmp_path / name).mkdir()
        (tmp_path / name / "cgroup.procs").write_text("1\n")
    cpuset = next((tmp_path / n for n in dirs if "cpuset" in n.split(",")), None)
    if cpuset is not None:
        (cpuset / "cpuset.cpus").write_text("0-3\n")
        (cpuset / "cpuset.mems").write_text("0\n")
    if memsw:
        (tmp_path / "memory" / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "unified").mkdir()
    return tmp_path


def test_v1_tree_detection(tmp_path):
    root = fake_v1(tmp_path, dirs=("cpu,cpuacct", "memory", "pids", "devices"))
    layout = detect(root)
    assert layout.version == "v1"
    assert layout.controllers == {
        "cpu": str(root / "cpu,cpuacct"), "cpuacct": str(root / "cpu,cpuacct"),
        "memory": str(root / "memory"), "pids": str(root / "pids"),
        "devices": str(root / "devices"),
    }


def test_v1_create_writes_exactly_these_files(tmp_path, writes):
    root = fake_v1(tmp_path)
    cg = Cgroup(CID, root=root)
    assert cg.version == "v1"
    cg.create(Limits(memory=64 * MiB, cpus=0.5, pids=20))

    def d(ctl):
        return root / ctl / "pyminidocker" / CID

    assert (d("memory") / "memory.limit_in_bytes").read_text() == str(64 * MiB)
    assert (d("memory") / "memory.memsw.limit_in_bytes").read_text() == str(128 * MiB)
    assert (d("cpu") / "cpu.cfs_quota_us").read_text() == "50000"
    assert (d("pids") / "pids.max").read_text() == "20"
    # cpuset values copied down both levels; clone_children set once on our parent
    for level in (root / "cpuset" / "pyminidocker", d("cpuset")):
        assert (level / "cpuset.cpus").read_text() == "0-3"
        assert (level / "cpuset.mems").read_text() == "0"
    assert (root / "cpuset" / "pyminidocker" / "cgroup.clone_children").read_text() == "1"
    for ctl in ("cpuacct", "freezer"):
        assert d(ctl).is_dir()
    for ctl in ("blkio", "systemd", "unified"):
        assert not (root / ctl / "pyminidocker").exists()

    p = f"pyminidocker/{CID}"
    assert rel(root, writes) == [
        ("cpuset/pyminidocker/cpuset.cpus", "0-3"),
        ("cpuset/pyminidocker/cpuset.mems", "0"),
        ("cpuset/pyminidocker/cgroup.clone_children", "1"),
        (f"cpuset/{p}/cpuset.cpus", "0-3"),
        (f"cpuset/{p}/cpuset.mems", "0"),
        # memory before memory+swap: memsw may never be below the memory limit
        (f"memory/{p}/memory.limit_in_bytes", "67108864"),
        (f"memory/{p}/memory.memsw.limit_in_bytes", "134217728"),
        # a new cgroup has the kernel's default period, which is Docker's
        (f"cpu/{p}/cpu.cfs_quota_us", "50000"),
        (f"pids/{p}/pids.max", "20"),
        (f"devices/{p}/devices.deny", "a"),
        (f"devices/{p}/devices.allow", "c *:* m"),
        (f"devices/{p}/devices.allow", "b *:* m"),
        *[(f"devices/{p}/devices.allow", f"c {n} rwm")
          for n in ("1:3", "1:5", "1:7", "1:8", "1:9", "5:0", "5:1", "5:2", "136:*")],
    ]
    # the init joins by moving its one thread: no global lock (see procs_files)
    assert sorted(cg.procs_files()) == sorted(
        str(d(c) / "tasks")
        for c in ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "pids"))


def test_v1_default_device_rules_are_dockers():
    assert DEFAULT_DEVICE_RULES[0] == ("deny", "a")
    allowed = {rule for verb, rule in DEFAULT_DEVICE_RULES if verb == "allow"}
    assert allowed == {"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                       "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"}


def test_v1_second_container_reuses_parent(tmp_path, writes):
    root = fake_v1(tmp_path)
    Cgroup("first", root=root).create(Limits(devices=()))
    writes.clear()
    # On the real kernel clone_children fills the new cpuset; emulate that for "second".
    second = root / "cpuset" / "pyminidocker" / "second"
    second.mkdir()
    (second / "cpuset.cpus").write_text("0-3\n")
    (second / "cpuset.mems").write_text("0\n")
    Cgroup("second", root=root).create(Limits(devices=()))
    assert writes == []


def test_v1_reused_cgroup_gets_the_period_before_the_quota(tmp_path, writes):
    root = fake_v1(tmp_path)
    (root / "cpu" / "pyminidocker" / CID).mkdir(parents=True)
    Cgroup(CID, root=root).create(Limits(cpus=1.5, devices=()))
    assert [w for w in rel(root, writes) if w[0].startswith("cpu/")] == [
        (f"cpu/pyminidocker/{CID}/cpu.cfs_period_us", "100000"),
        (f"cpu/pyminidocker/{CID}/cpu.cfs_quota_us", "150000"),
    ]


def test_v1_without_swap_accounting(tmp_path):
    root = fake_v1(tmp_path, memsw=False)
    cg = Cgroup(CID, root=root)
    cg.create(Limits(memory=64 * MiB))
    d = root / "memory" / "pyminidocker" / CID
    assert (d / "memory.limit_in_bytes").read_text() == str(64 * MiB)
    assert not (d / "memory.memsw.limit_in_bytes").exists()
    assert cg.warnings == [cgroups.NO_SWAP_LIMIT]
    # unlimited swap asked for: nothing to warn about
    cg.create(Limits(memory=64 * MiB, memory_swap=-1))
    assert cg.warnings == []


def test_v1_comounted_cpu_cpuacct(tmp_path):
    root = fake_v1(tmp_path, dirs=("cpu,cpuacct", "cpuset", "memory", "devices", "pids"))
    cg = Cgroup(CID, root=root)
    cg.create(Limits(cpus=1.5, cpu_shares=512))
    d = root / "cpu,cpuacct" / "pyminidocker" / CID
    assert (d / "cpu.cfs_quota_us").read_text() == "150000"
    assert (d / "cpu.shares").read_text() == "512"
    # one directory, joined once
    assert [p for p in cg.procs_files() if "cpu," in p] == [str(d / "tasks")]
    (d / "cpuacct.usage").write_text("123456\n")
    assert cgroup_usage(cg)["cpu_usage_ns"] == 123456


def test_v1_missing_controller_fails_before_any_mkdir(tmp_path):
    root = fake_v1(tmp_path, dirs=("cpu", "cpuset", "memory", "devices"))
    with pytest.raises(PmdError, match="v1 pids controller is not mounted"):
        Cgroup(CID, root=root).create(Limits(pids=10))
    assert not any((root / c / "pyminidocker").exists() for c in ("cpu", "cpuset", "memory"))


def test_v1_empty_parent_cpuset_is_an_error(tmp_path, kernfs_rmdir):
    root = fake_v1(tmp_path)
    (root / "cpuset" / "cpuset.cpus").write_text("\n")
    with pytest.raises(PmdError, match="cpuset.cpus is empty"):
        Cgroup(CID, root=root).create()


def test_v1_oom_and_stats(tmp_path):
    root = fake_v1(tmp_path)
    cg = Cgroup(CID, root=root)
    cg.create(Limits(memory=64 * MiB))
    d = root / "memory" / "pyminidocker" / CID
    (d / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not cg.oom_killed()
    (d / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cg.oom_killed()
    (d / "memory.usage_in_bytes").write_text("4096\n")
    (root / "pids" / "pyminidocker" / CID / "pids.current").write_text("1\n")
    assert cgroup_usage(cg) == {"memory_usage": 4096, "memory_limit": 64 * MiB, "pids": 1,
                          "cpu_usage_ns": None}


def test_v1_remove_and_cleanup(tmp_path, kernfs_rmdir):
    root = fake_v1(tmp_path)
    for cid in ("live", "dead"):
        Cgroup(cid, root=root).create(Limits(memory=64 * MiB))
    assert cleanup_stale({"live"}, root=root) == ["dead"]
    assert not list(root.glob("*/pyminidocker/dead"))
    assert len(list(root.glob("*/pyminidocker/live"))) == 7
    Cgroup("live", root=root).remove()
    assert not list(root.glob("*/pyminidocker/*/"))
    shutil.rmtree(root / "memory")  # a hierarchy gone altogether is fine too
    Cgroup("live", root=root, layout=detect(root)).remove()


def test_failed_create_keeps_a_cgroup_it_did_not_make(tmp_path, kernfs_rmdir):
    # The container's cgroup was there already (and may hold its processes): a refused limit
    # must not remove it; a cgroup made by the failing call itself is removed.
    root = fake_v2(tmp_path)
    d = root / "pyminidocker" / CID
    (d / "pids.max").mkdir(parents=True)  # makes the pids.max write fail (EISDIR)
    with pytest.raises(PmdError, match="cannot set pids limit"):
        Cgroup(CID, root=root).create(Limits(pids=5))
    assert d.is_dir()
    other = root / "pyminidocker" / "other"
    with pytest.raises(PmdError, match="not available"):
        Cgroup("other", root=fake_v2(tmp_path, controllers="memory")).create(Limits(pids=5))
    assert not other.exists()


def test_v1_fills_an_existing_empty_parent_cpuset(tmp_path):
    # Another engine process created our parent a moment ago and has not copied the cpuset yet.
    root = fake_v1(tmp_path)
    (root / "cpuset" / "pyminidocker").mkdir()
    Cgroup(CID, root=root).create(Limits(devices=()))
    for level in (root / "cpuset" / "pyminidocker", root / "cpuset" / "pyminidocker" / CID):
        assert (level / "cpuset.cpus").read_text() == "0-3"
        assert (level / "cpuset.mems").read_text() == "0"


# --- priming the migration lock ----------------------------------------------------------------


@pytest.fixture
def prime(monkeypatch, tmp_path):
    """prime_migration() as if for the first time, on a host whose layout, /proc/self/cgroup and
    kernel release the test sets; returns the files the priming thread was started for."""
    started: list[str] = []
    monkeypatch.setattr(cgroups, "_primed", False)

    def start(func, args):
        func(*args)
        started.append("ran")

    monkeypatch.setattr(cgroups._thread, "start_new_thread", start)

    def run(layout: Layout, own: str, release: str) -> None:
        monkeypatch.setattr(cgroups, "detect", lambda: layout)
        real_read = cgroups.read_control
        monkeypatch.setattr(cgroups, "read_control",
                            lambda p: own if p == "/proc/self/cgroup" else real_read(p))
        monkeypatch.setattr(os, "uname", lambda: os.uname_result(
            ("Linux", "host", release, "#1", "x86_64")))
        cgroups.prime_migration()

    run.started = started  # type: ignore[attr-defined]
    return run


OWN_V1 = "10:hugetlb:/\n9:name=systemd:/\n8:pids:/engine\n4:memory:/a/b\n0::/\n"


def test_prime_rewrites_own_membership_on_v2(tmp_path, prime):
    root = fake_v2(tmp_path)
    (root / "engine").mkdir()
    (root / "engine" / "cgroup.procs").write_text("")
    prime(Layout("v2", str(root), {}), "0::/engine\n", "6.18.4")
    assert prime.started == ["ran"]
    assert (root / "engine" / "cgroup.procs").read_text() == "0"
    cgroups.prime_migration()  # once per process
    assert prime.started == ["ran"]


def test_prime_on_old_v1_kernels_only(tmp_path, prime):
    root = fake_v1(tmp_path)
    (root / "pids" / "engine").mkdir()
    (root / "pids" / "engine" / "cgroup.procs").write_text("")
    layout = detect(root)
    prime(layout, OWN_V1, "5.10.0-28-amd64")
    assert prime.started == []  # the init's single-thread join takes no global lock
    cgroups._primed = False
    prime(layout, OWN_V1, "4.18.0-513.el8.x86_64")
    assert prime.started == ["ran"]
    assert (root / "pids" / "engine" / "cgroup.procs").read_text() == "0"


def test_prime_without_a_known_hierarchy_does_nothing(tmp_path, prime):
    prime(Layout("v1", str(tmp_path), {"memory": str(tmp_path / "nowhere")}), "0::/\n", "4.4")
    assert prime.started == []


def test_kernel_version(monkeypatch):
    for release, version in (("6.18.44-fc-v669", (6, 18)), ("5.4.0-150-generic", (5, 4)),
                             ("4.18.0-513.el8.x86_64", (4, 18)), ("6.1", (6, 1)),
                             ("6", (6, 0)), ("weird", (0, 0))):
        monkeypatch.setattr(os, "uname", lambda r=release: os.uname_result(
            ("Linux", "host", r, "#1", "x86_64")))
        assert cgroups._kernel_version() == version


# --- block I/O throttling (--device-read-bps ...) ------------------------------------------------

THROTTLE = (("read_bps", "253:0", 1048576), ("write_iops", "253:0", 50),
            ("write_bps", "7:1", 4096))


def test_v1_blkio_throttle_gets_its_own_directory_joined_and_removed(tmp_path, writes,
                                                                      kernfs_rmdir):
    root = fake_v1(tmp_path)
    plain = Cgroup(CID, root=root)
    assert "blkio" not in plain.dirs  # a container without the flags: no blkio directory
    with pytest.raises(PmdError, match="blkio=True"):
        plain.create(Limits(blkio_throttle=THROTTLE))
    cg = Cgroup(CID, root=root, blkio=True)
    cg.create(Limits(devices=(), blkio_throttle=THROTTLE))
    d = root / "blkio" / "pyminidocker" / CID
    assert [(p, v) for p, v in rel(root, writes) if p.startswith("blkio/")] == [
        (f"blkio/pyminidocker/{CID}/blkio.throttle.read_bps_device", "253:0 1048576"),
        (f"blkio/pyminidocker/{CID}/blkio.throttle.write_iops_device", "253:0 50"),
        (f"blkio/pyminidocker/{CID}/blkio.throttle.write_bps_device", "7:1 4096"),
    ]
    assert str(d / "tasks") in cg.procs_files()
    Cgroup(CID, root=root, blkio=True).remove()
    assert not d.exists()


def test_v2_blkio_throttle_is_io_max_with_io_enabled(tmp_path, writes):
    root = fake_v2(tmp_path)
    Cgroup(CID, root=root).create(Limits(devices=(), blkio_throttle=THROTTLE))
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids +cpu +io"
    assert [(p, v) for p, v in rel(root, writes) if p.endswith("io.max")] == [
        (f"pyminidocker/{CID}/io.max", "253:0 rbps=1048576 wiops=50"),
        (f"pyminidocker/{CID}/io.max", "7:1 wbps=4096"),
    ]
    (tmp_path / "noio").mkdir()
    root2 = fake_v2(tmp_path / "noio", controllers="cpu memory pids")
    with pytest.raises(PmdError, match="io controller is not available"):
        Cgroup(CID, root=root2).create(Limits(devices=(), blkio_throttle=THROTTLE))


def test_v1_cpu_real_time_period_before_runtime(tmp_path, writes):
    root = fake_v1(tmp_path)
    Cgroup(CID, root=root).create(Limits(devices=(), cpu_rt_period=500000, cpu_rt_runtime=0))
    assert [(p, v) for p, v in rel(root, writes) if ".rt_" in p] == [
        (f"cpu/pyminidocker/{CID}/cpu.rt_period_us", "500000"),
        (f"cpu/pyminidocker/{CID}/cpu.rt_runtime_us", "0"),
    ]
    with pytest.raises(UsageError, match="cpu-rt-runtime cannot be higher than cpu-rt-period"):
        Limits(cpu_rt_period=1000, cpu_rt_runtime=2000)


def test_a_control_file_of_a_cgroup_removed_meanwhile_reads_as_missing(tmp_path, monkeypatch):
    """The kernel answers ENODEV for a control file whose cgroup went between our open and read
    (rm -f of a paused container, racing its cgroup's removal): a race a real cgroup cannot be
    made to lose on demand, so the read fails by injection."""
    import errno

    f = tmp_path / "freezer.state"
    f.write_text("FROZEN\n")
    assert cgroups.read_control(str(f)) == "FROZEN\n"

    def gone(*_args):
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(cgroups.os, "read", gone)
    assert cgroups.read_control(str(f)) is None
    monkeypatch.setattr(cgroups.os, "open", gone)
    assert cgroups.read_control(str(f)) is None
    assert cgroups.read_control(str(tmp_path / "missing")) is None
