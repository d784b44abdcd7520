"""cgroup v2 device rules on this machine's real kernel (root): the eBPF program that
pmd_cgroup_devices attaches, and what it lets a process do.

A device program is enforced for the processes of a cgroup of any cgroup2 mount, also the
controller-less one a hybrid host has at /sys/fs/cgroup/unified: so these tests run on v1
(hybrid) hosts too. Every cgroup lives under a parent of this test run
(<cgroup2 mount>/pmd-devtest-<pid>), removed at the end with a check that nothing of it is left;
each test removes the cgroups it made. The processes checked are plain host processes (the
shim's spawn, joined to the cgroup before exec, no namespaces) and, at the end, a whole
container run by the CLI with the engine's cgroups forced onto that cgroup2 mount.

Each probe prints "ok" or the error of one shell command: `: < DEV` opens for reading,
`: > DEV` for writing, `: <> DEV` for both; mknod creates a node in tmp_path (ext4 here, not
mounted nodev, so that only the device program can refuse to open it).
"""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
import uuid

import pytest

from pyminidocker import shim as n
from pyminidocker.container.cgroups import (
    DEFAULT_DEVICE_RULES,
    Cgroup,
    Layout,
    Limits,
    device_program,
)
from pyminidocker.errors import UsageError
from tests.integration import images as I


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return None


CGROUP2 = _cgroup2_mount()
PARENT = f"pmd-devtest-{os.getpid()}"
EPERM = os.strerror(errno.EPERM)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(CGROUP2 is None, reason="no cgroup2 filesystem is mounted"),
]


def _rmdir(path: str) -> None:
    """rmdir a cgroup, waiting out EBUSY while its last process finishes exiting."""
    deadline = time.monotonic() + 5
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.fixture(scope="module", autouse=True)
def parent():
    top = os.path.join(CGROUP2, PARENT)
    os.mkdir(top)
    try:
        yield top
    finally:
        left = sorted(os.listdir(top)) if os.path.isdir(top) else []
        cgroups = [e for e in left if os.path.isdir(os.path.join(top, e))]
        for c in cgroups:
            _rmdir(os.path.join(top, c))
        _rmdir(top)
        assert cgroups == [], "cgroups left behind"
        assert not os.path.exists(top)


@pytest.fixture
def cgroup(parent):
    """A new, empty cgroup under the run's parent; removed after the test."""
    path = os.path.join(parent, uuid.uuid4().hex[:12])
    os.mkdir(path)
    try:
        yield path
    finally:
        _rmdir(path)
    assert not os.path.exists(path)


def probe(procs_files: list[str], checks: dict[str, str]) -> dict[str, str]:
    """Run each shell command of checks in one /bin/sh that joined procs_files before exec (as
    a container's init does); {name: "ok" or its error message, errno text only when the
    message ends with one}."""
    script = "".join(
        f'out=$( {{ {cmd} ; }} 2>&1 ) && echo "{name}=ok" || echo "{name}=$out"\n'
        for name, cmd in checks.items())
    r, w = os.pipe()
    try:
        proc = n.spawn(n.SpawnSpec(["/bin/sh", "-c", script], env=["PATH=/usr/sbin:/usr/bin:"
                                   "/sbin:/bin"], cgroup_procs=procs_files, stdout=w, stderr=w))
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    assert proc.wait() == 0, out
    results = {}
    for line in out.splitlines():
        name, _, what = line.partition("=")
        results[name] = EPERM if what.endswith(EPERM) else what
    assert list(results) == list(checks), out
    return results


def a_block_device() -> str | None:
    """A block device node of the host's /dev (loop0, the disk, ...), if there is one."""
    for e in sorted(os.scandir("/dev"), key=lambda e: e.name):
        if stat.S_ISBLK(e.stat(follow_symlinks=False).st_mode):
            return e.path
    return None


def default_checks(tmp: str) -> dict[str, str]:
    checks = {
        "null rw": ": <> /dev/null",
        "zero r": ": < /dev/zero",
        "zero w": ": > /dev/zero",
        "kmsg r": ": < /dev/kmsg",             # c 1:11: not in the default list
        "mknod c": f"mknod {tmp}/null c 1 3",  # "c *:* m"
        "mknod'ed c rw": f": <> {tmp}/null",   # and c 1:3 rwm
        "mknod b": f"mknod {tmp}/loop b 7 0",  # "b *:* m": a node may be made...
        "mknod'ed b r": f": < {tmp}/loop",     # ...but no block device opened
        "mknod'ed b w": f": > {tmp}/loop",
    }
    host = a_block_device()
    if host is not None:
        checks["host b r"] = f": < {host}"
    return checks


DEFAULT_RESULTS = {"null rw": "ok", "zero r": "ok", "zero w": "ok", "kmsg r": EPERM,
                   "mknod c": "ok", "mknod'ed c rw": "ok", "mknod b": "ok",
                   "mknod'ed b r": EPERM, "mknod'ed b w": EPERM, "host b r": EPERM}


def clean(tmp) -> None:
    for name in ("null", "loop"):
        try:
            os.unlink(os.path.join(tmp, name))
        except FileNotFoundError:
            pass


# ---- the C shim ---------------------------------------------------------------------------


def test_without_a_program_everything_opens(cgroup, tmp_path):
    # The control: the same probes in a cgroup with no program open the block devices, so the
    # refusals below are the program's (not the v1 devices cgroup's, or nodev's).
    checks = default_checks(str(tmp_path))
    expected = dict.fromkeys(checks, "ok")
    assert probe([f"{cgroup}/cgroup.procs"], checks) == expected


def test_dockers_default_rules(cgroup, tmp_path):
    n.cgroup_devices(cgroup, device_program(DEFAULT_DEVICE_RULES))
    checks = default_checks(str(tmp_path))
    assert probe([f"{cgroup}/cgroup.procs"], checks) == {k: DEFAULT_RESULTS[k] for k in checks}
    # the program is the cgroup's: this process, outside it, still opens what it refuses
    os.close(os.open(os.path.join(tmp_path, "loop"), os.O_RDONLY))


def test_a_second_call_replaces_the_program(cgroup):
    checks = {"full": ": < /dev/full", "zero": ": < /dev/zero"}
    n.cgroup_devices(cgroup, [(True, "c", 1, 7, "rw")])
    assert probe([f"{cgroup}/cgroup.procs"], checks) == {"full": "ok", "zero": EPERM}
    # were the first program still attached, zero would need both to allow it
    n.cgroup_devices(cgroup, [(True, "c", 1, 5, "rw")])
    assert probe([f"{cgroup}/cgroup.procs"], checks) == {"full": EPERM, "zero": "ok"}


def test_first_match_decides_and_access_is_per_bit(cgroup, tmp_path):
    checks = {"null r": ": < /dev/null", "null rw": ": <> /dev/null", "zero r": ": < /dev/zero",
              "zero w": ": > /dev/zero", "full w": ": > /dev/full",
              "mknod c": f"mknod {tmp_path}/null c 1 3", "ptmx r": ": < /dev/ptmx",
              "ptmx rw": ": <> /dev/ptmx"}
    # an allow rule matches only if it holds every bit asked for (ptmx: r, not rw); a deny
    # rule refuses any bit it holds, before the allow rule below it that would allow it (zero
    # w); an access no rule matches is refused (mknod)
    n.cgroup_devices(cgroup, [(True, "c", 5, 2, "r"), (False, "c", 1, 5, "w"),
                              (True, "c", 1, -1, "rw")])
    assert probe([f"{cgroup}/cgroup.procs"], checks) == {
        "null r": "ok", "null rw": "ok", "zero r": "ok", "zero w": EPERM, "full w": "ok",
        "mknod c": EPERM, "ptmx r": "ok", "ptmx rw": EPERM}
    # an allow default (v1's blacklist mode): the deny rule, then allow-all
    n.cgroup_devices(cgroup, device_program((("deny", "c 1:5 w"),)))
    assert probe([f"{cgroup}/cgroup.procs"], checks) == {
        **dict.fromkeys(checks, "ok"), "zero w": EPERM}
    # no rule at all: no device
    clean(tmp_path)
    n.cgroup_devices(cgroup, [])
    assert probe([f"{cgroup}/cgroup.procs"], checks) == dict.fromkeys(checks, EPERM)


def test_invalid_rules_are_refused_before_anything_is_attached(cgroup, tmp_path):
    from pyminidocker._pmd import ffi, lib

    def c_call(allow=1, type="c", major=1, minor=3, access=7, n_rules=1, path=cgroup):
        rules = ffi.new("struct pmd_device_rule[]", 1)
        r = rules[0]
        r.allow, r.type, r.major, r.minor, r.access = allow, ord(type), major, minor, access
        err = ffi.new("struct pmd_error *")
        rc = lib.pmd_cgroup_devices(path.encode(), rules, n_rules, err)
        return rc, err.err, ffi.string(err.op).decode(), ffi.string(err.path).decode()

    # in C, whatever the caller: each field is checked, the rule named
    assert c_call(type="x") == (-1, errno.EINVAL, "device rule",
                                "rule 0: type 120 is not 'a', 'b' or 'c'")
    assert c_call(major=-2)[1:3] == (errno.EINVAL, "device rule")
    assert c_call(access=0)[1:3] == (errno.EINVAL, "device rule")
    assert c_call(access=8)[1:3] == (errno.EINVAL, "device rule")
    assert c_call(allow=2)[1:3] == (errno.EINVAL, "device rule")
    assert c_call(n_rules=-1)[1:3] == (errno.EINVAL, "device rules")
    assert c_call(n_rules=lib.PMD_DEVICE_RULES_MAX + 1)[1:3] == (errno.E2BIG, "device rules")
    # nothing was attached: the cgroup still opens everything
    assert probe([f"{cgroup}/cgroup.procs"], {"loop": f"mknod {tmp_path}/b b 7 0 && "
                                              f": < {tmp_path}/b"}) == {"loop": "ok"}
    # a directory that is not a cgroup2 one, or none at all
    assert c_call(path=str(tmp_path)) == (-1, errno.ENOTDIR, "open cgroup",
                                          f"{tmp_path}: not a cgroup2 directory")
    with pytest.raises(FileNotFoundError) as info:
        n.cgroup_devices(f"{cgroup}/nope", [])
    assert info.value.filename == f"{cgroup}/nope" and "open cgroup" in str(info.value)
    # and in Python, before C
    for bad in [(True, "x", 1, 3, "rwm"), (True, "c", 1, 3, "rwx"), (True, "c", 1, 3, ""),
                (True, "c", -2, 3, "r"), (True, "c", 1, 1 << 31, "r")]:
        with pytest.raises(ValueError, match="device rule 0"):
            n.cgroup_devices(cgroup, [bad])
    with pytest.raises(OSError) as info:
        n.cgroup_devices(cgroup, [(True, "c", 1, 3, "r")] * (lib.PMD_DEVICE_RULES_MAX + 1))
    assert info.value.errno == errno.E2BIG


# ---- cgroups.Cgroup on a v2 layout --------------------------------------------------------


def v2_cgroup(cid: str | None = None) -> Cgroup:
    assert CGROUP2 is not None
    return Cgroup(cid or uuid.uuid4().hex, parent=PARENT, layout=Layout("v2", CGROUP2, {}))


def test_cgroup_create_attaches_dockers_rules(tmp_path):
    cg = v2_cgroup()
    assert cg.dirs[""] == os.path.join(CGROUP2, PARENT, cg.id)
    try:
        cg.create()
        checks = default_checks(str(tmp_path))
        assert probe(cg.procs_files(), checks) == {k: DEFAULT_RESULTS[k] for k in checks}
        # reused with other rules (say, a privileged container's): the program is replaced
        clean(tmp_path)
        cg.create(Limits(devices=(("allow", "a"),)))
        assert probe(cg.procs_files(), checks) == dict.fromkeys(checks, "ok")
    finally:
        cg.remove()
    assert not os.path.exists(cg.dirs[""])


def test_cgroup_malformed_rule_leaves_nothing():
    cg = v2_cgroup()
    with pytest.raises(UsageError, match="invalid device rule: allow c 1:3 rwx"):
        cg.create(Limits(devices=(("deny", "a"), ("allow", "c 1:3 rwx"))))
    assert not os.path.exists(cg.dirs[""])


# ---- a container, run by the CLI with its cgroups on the cgroup2 mount ----------------------

# `python -c BOOT CGROUP2 PARENT program|no-program --root ROOT ARGS...`: the CLI as
# `python -m pyminidocker` runs it, but with the cgroup layout forced to v2 on that mount and
# the containers' cgroups under this run's parent; no-program attaches no device program.
BOOT = """\
import sys
from pyminidocker.container import cgroups
cgroups._host_layout = cgroups.Layout("v2", sys.argv.pop(1), {})
cgroups.Cgroup.__init__.__defaults__ = (sys.argv.pop(1),
                                        *cgroups.Cgroup.__init__.__defaults__[1:])
if sys.argv.pop(1) == "no-program":
    cgroups._attach_device_program = lambda path, program: None
from pyminidocker.cli.main import command
command()
"""

IN_CONTAINER = (
    'echo x > /dev/null && echo "null=ok"; '
    'mknod /tmp/sda b 8 0 && echo "mknod=ok"; '
    'head -c1 /tmp/sda > /dev/null; echo "sda=$?"; '
    'mknod /tmp/loop b 7 0 && head -c1 /tmp/loop > /dev/null; echo "loop=$?"'
)


@pytest.fixture
def bb(pmd, publish):
    pushed = publish(I.busybox_image(), "devbpf-busybox", "v1")
    pmd("pull", "-q", pushed.ref)
    pmd("tag", pushed.ref, "bb")
    return pmd


def run_v2(pmd, program: bool, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", BOOT, str(CGROUP2), PARENT,
            "program" if program else "no-program", "--root", str(pmd.root), *args]
    res = subprocess.run(argv, capture_output=True, text=True, env=pmd.env(), timeout=120,
                         stdin=subprocess.DEVNULL, check=False)
    pmd.calls.append((pmd.root, args, res.returncode))
    return res


def test_container_on_cgroup_v2_cannot_open_block_devices(bb):
    res = run_v2(bb, True, "run", "--rm", "--network", "none", "bb", "sh", "-c", IN_CONTAINER)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines == ["null=ok", "mknod=ok", "sda=1", "loop=1"], res.stderr
    assert res.stderr.count(EPERM) == 2, res.stderr  # head: /tmp/sda, /tmp/loop
    # The control, the same container without the program: loop0 opens (an unbound loop device
    # reads empty), and sda only fails if this host has no such disk (ENXIO, not EPERM).
    res = run_v2(bb, False, "run", "--rm", "--network", "none", "bb", "sh", "-c", IN_CONTAINER)
    assert res.stdout.splitlines()[-1] == "loop=0", res.stdout + res.stderr
    assert EPERM not in res.stderr
    assert bb("ps", "-a", "-q").stdout == ""
    assert [e for e in os.listdir(os.path.join(CGROUP2, PARENT))
            if os.path.isdir(os.path.join(CGROUP2, PARENT, e))] == []
