"""The C shim's spawn path, from Python, as root: namespaces, mounts, confinement, errors.

Each test runs a busybox rootfs built in tmp_path and checks from inside the container; an
autouse fixture asserts that no mount and no child process outlives the test.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import threading
import time

import pytest

from pyminidocker import native as n
from pyminidocker.container import spec as d
from pyminidocker.container.seccomp import Profile
from tests.integration.cgroupfs import cgroup_mount_root

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="needs /bin/busybox (static)"),
]

APPLETS = ["sh", "echo", "cat", "id", "hostname", "mount", "ls", "true", "false", "sleep",
           "touch", "grep", "wc", "env", "pwd", "umount", "tty", "unshare"]
DEFAULT_CAPS = 0x00000000A80425FB


# ---- fixtures ----------------------------------------------------------------------------------

def _mounts(under: str) -> list[str]:
    """Mount points below `under` (other processes on this machine may mount elsewhere)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted(p for p in points if p.startswith(under))


def _children() -> list[str]:
    kids = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                kids += f.read().split()
        except FileNotFoundError:
            pass
    return kids


@pytest.fixture(autouse=True)
def no_leaks(tmp_path_factory):
    base = str(tmp_path_factory.getbasetemp())
    before = _mounts(base)
    fds = sorted(os.listdir("/proc/self/fd"))
    yield
    assert _children() == [], "a child process was left behind"
    assert sorted(os.listdir("/proc/self/fd")) == fds, "an fd was left open"
    assert _mounts(base) == before, "a mount was left behind"


@pytest.fixture
def rootfs(tmp_path):
    """A minimal busybox rootfs: bin/ with applet links, etc/passwd and etc/group, tmp/."""
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir(mode=0o1777)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    for a in APPLETS:
        (root / "bin" / a).symlink_to("busybox")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                     "user:x:1000:1000:user:/home/user:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\nwheel:x:10:user\nusers:x:100:user\n"
                                    "user:x:1000:\n")
    return root


# Docker's default profile as a container with the default capabilities gets it.
DEFAULT_SECCOMP = Profile.default().compile(d.DEFAULT_CAP_MASK)


def container_spec(root, script: str, **kw) -> n.SpawnSpec:
    """Docker's default confinement on rootfs, running `sh -c script`."""
    base = {
        "argv": ["sh", "-c", script],
        "env": [d.DEFAULT_ENV_PATH, "HOME=/root"],
        "namespaces": d.DEFAULT_NAMESPACES,
        "rootfs": str(root),
        "mounts": d.default_mounts(),
        "dev_setup": True,
        "masked_paths": d.MASKED_PATHS,
        "readonly_paths": d.READONLY_PATHS,
        "hostname": "ctr0123456789",
        "cap_bounding": d.DEFAULT_CAP_MASK,
        "cap_effective": d.DEFAULT_CAP_MASK,
        "cap_permitted": d.DEFAULT_CAP_MASK,
        "cap_inheritable": d.DEFAULT_CAP_MASK,
        "seccomp": DEFAULT_SECCOMP,
    }
    base.update(kw)
    return n.SpawnSpec(**base)


def run(spec: n.SpawnSpec, stdin: bytes | None = None) -> tuple[int, str]:
    """Spawn with stdout+stderr on a pipe, read to EOF, reap; (exit code, output)."""
    r, w = os.pipe()
    spec.stdout = spec.stderr = w
    in_r = in_w = -1
    if stdin is not None:
        in_r, in_w = os.pipe()
        spec.stdin = in_r
    try:
        proc = n.spawn(spec)
    finally:
        os.close(w)
        if in_r >= 0:
            os.close(in_r)
    if in_w >= 0:
        os.write(in_w, stdin)
        os.close(in_w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    return proc.wait(), out


def status_field(out: str, name: str) -> str:
    for line in out.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in output:\n{out}")


# ---- the container as Docker users know it ---------------------------------------------------

def test_default_confinement(rootfs):
    rc, out = run(container_spec(rootfs, "echo pid=$$; hostname; cat /proc/self/status",
                                 no_new_privs=True))
    assert rc == 0, out
    assert "pid=1\n" in out
    assert "ctr0123456789\n" in out
    for f in ("CapBnd", "CapEff", "CapPrm", "CapInh"):
        assert int(status_field(out, f), 16) == DEFAULT_CAPS, f
    assert int(status_field(out, "CapAmb"), 16) == 0
    assert status_field(out, "NoNewPrivs") == "1"
    assert status_field(out, "Seccomp") == "2"
    assert d.DEFAULT_CAP_MASK == DEFAULT_CAPS


def test_seccomp_without_no_new_privs(rootfs):
    """Installed while the child still has CAP_SYS_ADMIN, so no_new_privs is not required."""
    rc, out = run(container_spec(rootfs, "cat /proc/self/status"))
    assert rc == 0, out
    assert status_field(out, "NoNewPrivs") == "0"
    assert status_field(out, "Seccomp") == "2"


def test_escapes_fail(rootfs):
    script = """
        mount -t tmpfs x /mnt 2>&1; echo mount=$?
        umount /proc 2>&1; echo umount=$?
        echo c > /proc/sysrq-trigger; echo sysrq=$?
        echo x > /sys/kernel/x 2>&1; echo sys=$?
        echo ctr > /proc/sys/kernel/hostname; echo procsys=$?
        echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c)
        echo keys=$(cat /proc/keys | wc -c)
        echo hostpids=$(ls /proc | grep -c '^[0-9]'); echo init=$(cat /proc/1/comm)
    """
    (rootfs / "mnt").mkdir()
    rc, out = run(container_spec(rootfs, script))
    assert rc == 0, out
    assert "mount=0" not in out and "mount=" in out
    assert "umount=0" not in out
    assert "sysrq=0" not in out
    assert "sys=0" not in out and "Read-only file system" in out
    assert "procsys=0" not in out
    assert "kcore=0" in out          # masked by /dev/null (or absent from this kernel)
    assert "keys=0" in out           # masked: /proc/keys exists here and lists keys on the host
    # only our own processes: sh, the $(...) subshell, ls, grep
    assert int(out.split("hostpids=")[1].split()[0]) <= 4 and "init=sh" in out


def test_seccomp_denies_namespaces_and_more(rootfs):
    script = """
        unshare -n true 2>&1; echo unshare=$?
        unshare -m true 2>&1; echo unshare_m=$?
    """
    rc, out = run(container_spec(rootfs, script, cap_bounding=None, cap_effective=None,
                                 cap_permitted=None, cap_inheritable=None))  # keep all caps
    assert rc == 0, out
    assert "unshare=1" in out and "unshare_m=1" in out
    assert "Operation not permitted" in out


@pytest.fixture(scope="module")
def seccomp_probe(tmp_path_factory):
    """tests/integration/data/seccomp_probe.c, built static so that it runs in the rootfs."""
    src = os.path.join(os.path.dirname(__file__), "data", "seccomp_probe.c")
    out = str(tmp_path_factory.mktemp("probe") / "probe")
    import subprocess
    try:
        subprocess.run(["gcc", "-static", "-O2", "-o", out, src], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot build a static probe: {e}")
    return out


def test_seccomp_filter_precision(rootfs, seccomp_probe):
    """Namespace flags on clone refused but plain clone allowed, clone3 ENOSYS (so libc falls
    back to clone), personality limited to Docker's values, keyctl/bpf refused."""
    shutil.copy2(seccomp_probe, rootfs / "bin/probe")
    all_caps = d.DEFAULT_CAP_MASK | 1 << d.CAPS["SYS_ADMIN"]  # so that only seccomp refuses
    rc, out = run(container_spec(rootfs, "", argv=["/bin/probe"], cap_bounding=all_caps,
                                 cap_effective=all_caps, cap_permitted=all_caps))
    assert rc == 0, out
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert got["clone_newns"] == "Operation not permitted"
    assert got["clone_plain"] == "ok"
    assert got["clone3"] == "Function not implemented"
    assert got["personality_query"] == "ok"
    assert got["personality_norandom"] == "Operation not permitted"
    assert got["keyctl"] == "Operation not permitted"
    assert got["bpf"] == "Operation not permitted"
    # without the filter, the same probe gets past seccomp (and fails later, or succeeds)
    rc, out = run(container_spec(rootfs, "", argv=["/bin/probe"], seccomp=b"",
                                 cap_bounding=all_caps, cap_effective=all_caps,
                                 cap_permitted=all_caps))
    assert "clone_newns=ok" in out and "clone3=Function not implemented" not in out


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x32 and i386 are x86_64's")
def test_seccomp_filters_foreign_abis(rootfs, seccomp_probe):
    """The x32 and i386 entry points are filtered with their own numbers: getpid goes through,
    mount is refused as through the x86_64 entry (int 0x80 is no way around the filter)."""
    shutil.copy2(seccomp_probe, rootfs / "bin/probe")
    rc, out = run(container_spec(rootfs, "", argv=["/bin/probe", "i386"]))
    assert rc == 0, out
    got = dict(line.split("=", 1) for line in out.splitlines())
    assert int(got["i386_getpid"]) == 1, out
    assert got["i386_mount"] == str(-errno.EPERM), out
    assert got["i386_unshare"] == str(-errno.EPERM), out
    rc, out = run(container_spec(rootfs, "", argv=["/bin/probe", "x32"]))
    got = dict(line.split("=", 1) for line in out.splitlines())
    # x32 may be compiled out of the kernel (ENOSYS then), but the filter answers first
    assert got["x32_getpid"] in ("1", str(-errno.ENOSYS)), out
    assert got["x32_mount"] == str(-errno.EPERM), out
    # without the filter, the same i386 mount gets to the kernel (EFAULT: its arguments are 0)
    rc, out = run(container_spec(rootfs, "", argv=["/bin/probe", "i386"], seccomp=b""))
    assert "i386_mount=-1\n" not in out and "i386_mount=" in out, out


def test_mount_denied_by_seccomp_not_caps(rootfs):
    """The filter made for the default capabilities refuses mount with EPERM even to a process
    that has CAP_SYS_ADMIN: seccomp decides, not the capabilities."""
    (rootfs / "mnt").mkdir()
    with open("/proc/self/status") as f:
        all_caps = int(status_field(f.read(), "CapBnd"), 16)  # all we have (no SYS_RESOURCE here)
    _, out = run(container_spec(rootfs, "mount -t tmpfs x /mnt; echo rc=$?",
                                 cap_bounding=all_caps, cap_effective=all_caps,
                                 cap_permitted=all_caps, cap_inheritable=0))
    assert "rc=0" not in out and "permission denied" in out.lower(), out
    _, out = run(container_spec(rootfs, "mount -t tmpfs x /mnt && echo mounted",
                                 seccomp=b"", cap_bounding=all_caps,
                                 cap_effective=all_caps, cap_permitted=all_caps))
    assert "mounted" in out, out


def test_dev_has_only_standard_devices(rootfs):
    rc, out = run(container_spec(rootfs, "ls /dev; ls -l /dev/null /dev/ptmx; "
                                         "echo hi > /dev/null && echo null-ok"))
    assert rc == 0, out
    names = out.split("\n")[:16]
    # /dev/core only where the kernel has /proc/kcore to point it at
    core = ["core"] if os.path.exists("/proc/kcore") else []
    assert sorted(names[:names.index("zero") + 1]) == sorted([
        *core, "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr",
        "stdin", "stdout", "tty", "urandom", "zero"])
    assert "crw-rw-rw-" in out and "null-ok" in out
    assert "-> pts/ptmx" in out


def test_mounts_inside(rootfs):
    rc, out = run(container_spec(rootfs, "cat /proc/self/mounts"))
    assert rc == 0, out
    lines = {ln.split()[1]: ln.split() for ln in out.splitlines()}
    assert lines["/proc"][2] == "proc"
    assert lines["/sys"][2] == "sysfs" and lines["/sys"][3].startswith("ro,")
    assert lines["/dev"][2] == "tmpfs" and "mode=755" in lines["/dev"][3]
    assert lines["/dev/pts"][2] == "devpts" and "ptmxmode=666" in lines["/dev/pts"][3]
    assert lines["/dev/shm"][2] == "tmpfs" and "size=65536k" in lines["/dev/shm"][3]
    assert lines["/dev/mqueue"][2] == "mqueue"
    assert lines["/proc/sys"][3].startswith("ro,")
    # the host's filesystem is not reachable
    assert not any(p.startswith(("/work", "/tmp/")) for p in lines)


def test_identity_cwd_env_rlimits(rootfs):
    (rootfs / "home/user").mkdir(parents=True)
    import resource
    spec = container_spec(
        rootfs, "id; pwd; echo FOO=$FOO; ulimit -n; ulimit -Hn; cat /proc/self/status",
        uid=1000, gid=1000, groups=[10, 100], cwd="/home/user",
        env=[d.DEFAULT_ENV_PATH, "FOO=bar baz"],
        rlimits={resource.RLIMIT_NOFILE: (1024, 1024)})
    rc, out = run(spec)
    assert rc == 0, out
    assert "uid=1000(user) gid=1000(user) groups=10(wheel),100(users)" in out
    assert "/home/user\n" in out
    assert "FOO=bar baz\n" in out
    assert "1024\n1024\n" in out
    # a non-root user keeps the bounding set but gets no effective capabilities after exec
    assert int(status_field(out, "CapBnd"), 16) == DEFAULT_CAPS
    assert int(status_field(out, "CapEff"), 16) == 0


def test_ambient_caps_for_non_root(rootfs):
    nbs = 1 << d.CAPS["NET_BIND_SERVICE"]
    rc, out = run(container_spec(rootfs, "cat /proc/self/status", uid=1000, gid=1000,
                                 cap_inheritable=nbs, cap_ambient=nbs, cap_effective=nbs))
    assert rc == 0, out
    assert int(status_field(out, "CapAmb"), 16) == nbs
    assert int(status_field(out, "CapEff"), 16) == nbs


def test_signals_and_fds_are_clean(rootfs):
    """CPython ignores SIGPIPE and SIGXFSZ and has handlers: none of that reaches the container;
    an fd the caller left inheritable does not either."""
    def dispositions():
        with open("/proc/self/status") as f:
            status = f.read()
        return {k: status_field(status, k) for k in ("SigBlk", "SigIgn", "SigCgt")}

    ours = dispositions()
    leak_r, leak_w = os.pipe()
    os.set_inheritable(leak_w, True)
    try:
        rc, out = run(container_spec(rootfs, "cat /proc/self/status; ls /proc/self/fd"))
    finally:
        os.close(leak_r)
        os.close(leak_w)
    assert dispositions() == ours  # the child's resets did not touch ours (no CLONE_SIGHAND)
    assert rc == 0, out
    for f in ("SigBlk", "SigIgn", "SigCgt"):
        assert int(status_field(out, f), 16) == 0, f
    fds = out.split("\n")[-5:]
    assert str(leak_w) not in fds and fds[:3] == ["0", "1", "2"], out


def test_setsid_controlling_tty(rootfs):
    """setsid + ctty: the container's init leads a session whose controlling tty is its stdin
    (a host pty here, so the container's own devpts cannot name it: check tty_nr instead)."""
    master, slave = os.openpty()
    rdev = os.fstat(slave).st_rdev
    major, minor = os.major(rdev), os.minor(rdev)
    want_tty_nr = (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)  # proc(5)
    try:
        spec = container_spec(rootfs, "echo stat=$(cut -d' ' -f5-7 /proc/self/stat)",
                              stdin=slave, setsid=True, ctty=True)
        rc, out = run(spec)
    finally:
        os.close(master)
        os.close(slave)
    assert rc == 0, out
    # the $(...) subshell: pgrp 1, session 1, tty_nr = the pty's device number
    pgrp, sid, tty_nr = out.split("stat=")[1].split()
    assert (pgrp, sid) == ("1", "1")
    assert int(tty_nr) == want_tty_nr


def _read_pty(fd: int) -> str:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError as e:  # EIO: every peer fd is closed
            assert e.errno == errno.EIO
            break
        if not chunk:
            break
        out += chunk
    return out.decode().replace("\r\n", "\n")


def test_console(rootfs):
    """A pty of the container's own devpts: /dev/pts/0 inside, controlling tty, /dev/console."""
    proc = n.spawn(container_spec(
        rootfs, "tty; ls /dev/pts; ls -l /dev/console | cut -c1; read line; echo got=$line; "
                "echo sid=$(cut -d' ' -f6 /proc/self/stat)", console=True, uid=1000, gid=1000))
    fd = proc.console_fd
    assert fd is not None
    try:
        os.write(fd, b"typed\n")
        out = _read_pty(fd)
    finally:
        os.close(fd)
    assert proc.wait() == 0, out
    lines = [ln for ln in out.splitlines() if ln != "typed"]  # the terminal's echo
    assert lines[0] == "/dev/pts/0"
    assert lines[1].split() == ["0", "ptmx"]  # ls on a tty: columns
    assert lines[2] == "c"                    # the pty's peer bound on /dev/console
    assert "got=typed" in lines and "sid=1" in lines


def test_console_held_and_exec(rootfs):
    """A held container gets its console at release; an exec into it gets its own pty."""
    ctr = n.spawn(container_spec(rootfs, "echo up; exec sleep 30", hold=True, console=True))
    assert ctr.console_fd is None
    ctr.release()
    cfd = ctr.console_fd
    assert cfd is not None
    try:
        assert os.read(cfd, 4) == b"up\r\n"
        ex = n.spawn(n.SpawnSpec(["tty"], namespaces=d.DEFAULT_NAMESPACES, join_pid=ctr.pid,
                                 env=[d.DEFAULT_ENV_PATH], console=True))
        fd = ex.console_fd
        assert fd is not None
        try:
            out = _read_pty(fd)
        finally:
            os.close(fd)
        assert ex.wait() == 0 and out == "/dev/pts/1\n"  # the container's devpts: 0 is init's
    finally:
        os.kill(ctr.pid, 9)
        ctr.wait()
        os.close(cfd)


def test_spawn_from_many_threads(rootfs):
    """The child of a multi-threaded CPython must not need any lock another thread may hold:
    spawn from four threads at once while a fifth allocates without pause."""
    import threading
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn():
        while not stop.is_set():
            [bytearray(4096) for _ in range(100)]

    def spawner():
        try:
            for _ in range(15):
                rc, out = run(container_spec(rootfs, "echo ok"))
                assert (rc, out) == (0, "ok\n")
        except BaseException as e:
            errors.append(e)

    churner = threading.Thread(target=churn)
    churner.start()
    threads = [threading.Thread(target=spawner) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stop.set()
    churner.join()
    assert not any(t.is_alive() for t in threads), "a spawn hung"
    assert errors == []


def test_stdin(rootfs):
    rc, out = run(container_spec(rootfs, "cat"), stdin=b"from the host\n")
    assert (rc, out) == (0, "from the host\n")


def test_readonly_root_and_bind_mounts(rootfs, tmp_path):
    rw = tmp_path / "rw"
    rw.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "data").write_text("hello\n")
    hostsfile = tmp_path / "hosts"
    hostsfile.write_text("127.0.0.1 localhost\n")
    mounts = d.default_mounts() + [
        n.Mount("/data/rw", str(rw), None, n.MS_BIND | n.MS_REC, mkdir=True),
        n.Mount("/data/ro", str(ro), None, n.MS_BIND | n.MS_REC | n.MS_RDONLY, mkdir=True),
        n.Mount("/etc/hosts", str(hostsfile), None, n.MS_BIND, mkdir=True),
        n.Mount("/tmp", "tmpfs", "tmpfs", n.MS_NOSUID | n.MS_NODEV, "mode=1777"),
    ]
    script = """
        touch /newfile 2>&1; echo root=$?
        echo x > /data/rw/out; echo rw=$?
        cat /data/ro/data; echo y > /data/ro/data 2>&1; echo ro=$?
        cat /etc/hosts
        touch /tmp/ok; echo tmp=$?
    """
    rc, out = run(container_spec(rootfs, script, readonly_root=True, mounts=mounts))
    assert rc == 0, out
    assert "root=1" in out and "Read-only file system" in out
    assert "rw=0" in out and (rw / "out").read_text() == "x\n"
    assert "hello\n" in out and "ro=1" in out and (ro / "data").read_text() == "hello\n"
    assert "127.0.0.1 localhost" in out
    assert "tmp=0" in out
    assert not (rootfs / "newfile").exists()
    # mkdir made the targets inside the rootfs, not on the host
    assert (rootfs / "data/rw").is_dir() and (rootfs / "etc/hosts").is_file()


def test_symlinked_target_stays_in_rootfs(rootfs, tmp_path):
    """A hostile image whose mount target is an absolute symlink: it resolves inside the rootfs."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (rootfs / "evil").symlink_to(str(outside))
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("m")
    mounts = d.default_mounts() + [n.Mount("/evil", str(src), None, n.MS_BIND, mkdir=True)]
    # dangling inside the rootfs: refused, nothing mounted or created outside
    with pytest.raises(FileNotFoundError) as ei:
        n.spawn(container_spec(rootfs, "true", mounts=mounts))
    assert "evil" in str(ei.value)
    assert list(outside.iterdir()) == []
    # the same path inside the rootfs: that is where the mount lands
    inside = rootfs / str(outside).lstrip("/")
    inside.mkdir(parents=True)
    rc, out = run(container_spec(rootfs, f"cat /evil/marker {outside}/marker", mounts=mounts))
    assert (rc, out) == (0, "mm")
    assert list(outside.iterdir()) == []


def test_cgroup_join(rootfs):
    base = "/sys/fs/cgroup/pids"
    if not os.path.isdir(base):
        pytest.skip("no cgroup v1 pids hierarchy")
    cg = os.path.join(base, f"pmd-test-{os.getpid()}")
    os.mkdir(cg)
    try:
        with open(os.path.join(cg, "pids.max"), "w") as f:
            f.write("5")
        rc, out = run(container_spec(rootfs, "cat /proc/self/cgroup",
                                     cgroup_procs=[os.path.join(cg, "cgroup.procs")],
                                     namespaces=d.DEFAULT_NAMESPACES))
        assert rc == 0, out
        assert f"pids:{cgroup_mount_root('pids')}pmd-test-{os.getpid()}" in out
        # with a cgroup namespace, made after joining: the container's cgroup is its root
        rc, out = run(container_spec(rootfs, "cat /proc/self/cgroup",
                                     cgroup_procs=[os.path.join(cg, "cgroup.procs")],
                                     namespaces=d.DEFAULT_NAMESPACES | n.CLONE_NEWCGROUP))
        assert rc == 0, out
        assert any(ln.endswith(":pids:/") for ln in out.splitlines()), out
        with open(os.path.join(cg, "cgroup.procs")) as f:
            assert f.read() == ""  # the children were reaped
    finally:
        os.rmdir(cg)


def test_host_process_without_rootfs(tmp_path):
    """No namespaces, no rootfs: a plain fork+exec with stdio redirection."""
    rc, out = run(n.SpawnSpec(["echo", "plain"], env=["PATH=/usr/bin:/bin"]))
    assert (rc, out) == (0, "plain\n")


# ---- holding -----------------------------------------------------------------------------------

def test_held_child_waits_for_release(rootfs, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    mounts = d.default_mounts() + [n.Mount("/share", str(share), None, n.MS_BIND, mkdir=True)]
    proc = n.spawn(container_spec(rootfs, "touch /share/ran", mounts=mounts, hold=True))
    assert proc.held and proc.pid > 0
    time.sleep(0.2)
    assert not (share / "ran").exists()
    with open(f"/proc/{proc.pid}/status") as f:
        assert "State:\tS" in f.read()
    proc.release()
    assert proc.wait() == 0
    assert (share / "ran").exists()


def test_held_child_abort(rootfs, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    mounts = d.default_mounts() + [n.Mount("/share", str(share), None, n.MS_BIND, mkdir=True)]
    proc = n.spawn(container_spec(rootfs, "touch /share/ran", mounts=mounts, hold=True))
    proc.abort()
    assert not (share / "ran").exists()


def test_abort_one_of_two_held_children(rootfs):
    """A second held child must not keep the first one's release pipe open: aborting the first
    ends it at once, though the second still waits (it holds nothing of the first's)."""
    first = n.spawn(container_spec(rootfs, "true", hold=True))
    second = n.spawn(container_spec(rootfs, "true", hold=True))
    try:
        deadline = time.monotonic() + 5
        while "State:\tS" not in open(f"/proc/{second.pid}/status").read():
            assert time.monotonic() < deadline, "the second child never waited"
            time.sleep(0.01)
        inherited = [os.readlink(f"/proc/{second.pid}/fd/{fd}")
                     for fd in os.listdir(f"/proc/{second.pid}/fd")]
        assert len(inherited) <= 5, inherited  # stdio, its own two pipe ends
        started = time.monotonic()
        done = threading.Event()
        threading.Thread(target=lambda: (first.abort(), done.set()), daemon=True).start()
        assert done.wait(5), "aborting the first held child hung"
        assert time.monotonic() - started < 2
    finally:
        second.release()
    assert second.wait() == 0


def test_held_child_error_reported_at_release(rootfs):
    proc = n.spawn(container_spec(rootfs, "x", argv=["/nonexistent"], hold=True))
    with pytest.raises(FileNotFoundError) as ei:
        proc.release()
    assert "/nonexistent" in str(ei.value)


def _held_twice(rootfs, share, hook_script: str, **kw) -> tuple[n.Process, int]:
    """A child held twice, whose createContainer hook (a host path: it runs before pivot_root)
    records its stdin and sees the container's bind of share; the state fd for the caller to
    close."""
    state = os.memfd_create("state", os.MFD_CLOEXEC)
    os.write(state, b"the state")
    mounts = d.default_mounts() + [n.Mount("/share", str(share), None, n.MS_BIND, mkdir=True)]
    hook = ("/bin/busybox", ["sh", "-c", hook_script], [], 5)
    proc = n.spawn(container_spec(rootfs, "touch /share/ran", mounts=mounts, hold=True,
                                  hold_mounted=True, create_hooks=[hook],
                                  create_hooks_stdin=state, **kw))
    return proc, state


def test_held_twice_runs_create_hooks_after_the_mounts_then_waits(rootfs, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    proc, state = _held_twice(rootfs, share, f"cat > {rootfs}/share/hook; "
                              f"readlink /proc/self/ns/mnt >> {rootfs}/share/hook")
    os.close(state)
    assert proc.held and not (share / "hook").exists()
    proc.release()  # to the second hold: the mounts made, the hook run
    assert proc.held
    mnt = os.readlink(f"/proc/{proc.pid}/ns/mnt")
    assert (share / "hook").read_text() == f"the state{mnt}\n"
    time.sleep(0.1)
    assert not (share / "ran").exists()
    proc.release()
    assert not proc.held and proc.wait() == 0
    assert (share / "ran").exists()


def test_held_twice_abort_and_a_failing_create_hook(rootfs, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    proc, state = _held_twice(rootfs, share, "true")
    os.close(state)
    proc.release()
    proc.abort()  # at the second hold: it never runs, its mounts go with its namespace
    assert not proc.held and not (share / "ran").exists()
    proc, state = _held_twice(rootfs, share, "echo out; echo err >&2; exit 4")
    os.close(state)
    with pytest.raises(OSError) as ei:
        proc.release()
    assert (ei.value.errno, ei.value.op) == (errno.EIO, "createContainer hook 0: exit status 4")
    assert ei.value.filename == "stdout: out, stderr: err"
    assert not (share / "ran").exists()


# ---- joining a running container (exec) ---------------------------------------------------------

def test_exec_into_running_container(rootfs, tmp_path):
    (rootfs / "marker").write_text("inside")
    r, w = os.pipe()
    ctr = n.spawn(container_spec(rootfs, "echo up; exec sleep 30", stdout=w, stderr=w))
    os.close(w)
    try:
        assert os.read(r, 3) == b"up\n"
        spec = container_spec(
            rootfs, "hostname; echo pid=$$; cat /proc/1/comm /marker; echo; "
                    "cat /proc/self/status; ls /proc | grep -c '^[0-9]'",
            join_pid=ctr.pid, rootfs=None, mounts=[], dev_setup=False, masked_paths=[],
            readonly_paths=[], hostname=None, no_new_privs=True)
        rc, out = run(spec)
        assert rc == 0, out
        lines = out.splitlines()
        assert lines[0] == "ctr0123456789"
        assert lines[1] != "pid=1" and int(lines[1][4:]) < 10   # in the container's pid ns
        assert lines[2] == "sleep" and lines[3] == "inside"
        assert int(status_field(out, "CapEff"), 16) == DEFAULT_CAPS
        assert status_field(out, "Seccomp") == "2" and status_field(out, "NoNewPrivs") == "1"
        # not found inside the container: ENOENT, and the intermediate and the child are reaped
        # (the child's error may overtake the intermediate's report of its pid: repeat)
        for _ in range(20):
            with pytest.raises(FileNotFoundError) as ei:
                n.spawn(n.SpawnSpec(["nosuch"], namespaces=d.DEFAULT_NAMESPACES,
                                    join_pid=ctr.pid, env=[d.DEFAULT_ENV_PATH]))
            assert "nosuch" in str(ei.value)
        assert _children() == [str(ctr.pid)]
    finally:
        os.kill(ctr.pid, 9)
        assert ctr.wait() == -9
        os.close(r)


def test_exec_into_missing_process():
    with pytest.raises(FileNotFoundError) as ei:
        n.spawn(n.SpawnSpec(["true"], namespaces=n.CLONE_NEWNS, join_pid=999999999))
    assert "/proc/999999999/ns/mnt" in str(ei.value)
    with pytest.raises(OSError) as ei:
        n.spawn(n.SpawnSpec(["true"], namespaces=n.CLONE_NEWNS, join_pid=1, hostname="x"))
    assert ei.value.errno == errno.EINVAL


def test_a_new_container_sharing_the_pid_and_ipc_namespaces_of_a_running_one(rootfs):
    r, w = os.pipe()
    ctr = n.spawn(container_spec(rootfs, "echo up; exec sleep 30", stdout=w, stderr=w))
    os.close(w)
    share = n.CLONE_NEWPID | n.CLONE_NEWIPC
    try:
        assert os.read(r, 3) == b"up\n"
        rc, out = run(container_spec(
            rootfs, "cat /proc/1/comm; echo $$; for n in pid ipc uts; do "
                    "readlink /proc/self/ns/$n; done", namespaces=d.DEFAULT_NAMESPACES & ~share,
            share_pid=ctr.pid, share_namespaces=share))
        assert rc == 0, out
        comm, pid, pidns, ipcns, utsns = out.split()
        # in the first one's pid namespace (its init is pid 1 there), and its ipc namespace,
        # but with a uts namespace of its own
        assert comm == "sleep" and 1 < int(pid) < 10
        assert pidns == os.readlink(f"/proc/{ctr.pid}/ns/pid")
        assert ipcns == os.readlink(f"/proc/{ctr.pid}/ns/ipc")
        assert utsns != os.readlink(f"/proc/{ctr.pid}/ns/uts")
        # the caller is back in its own pid namespace for its next children
        assert os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")
        with pytest.raises(OSError) as ei:  # a shared namespace that is also to be made
            n.spawn(container_spec(rootfs, "true", share_pid=ctr.pid, share_namespaces=share))
        assert ei.value.errno == errno.EINVAL
    finally:
        os.kill(ctr.pid, 9)
        assert ctr.wait() == -9
        os.close(r)
    with pytest.raises(FileNotFoundError) as ei:
        n.spawn(container_spec(rootfs, "true", namespaces=d.DEFAULT_NAMESPACES & ~share,
                               share_pid=999999999, share_namespaces=share))
    assert "/proc/999999999/ns/ipc" in str(ei.value)


# ---- errors from the child and the parent ------------------------------------------------------

def test_command_not_found(rootfs):
    with pytest.raises(OSError) as ei:
        n.spawn(container_spec(rootfs, "", argv=["nosuchcmd", "arg"]))
    assert ei.value.errno == errno.ENOENT
    assert "nosuchcmd" in str(ei.value) and "exec" in str(ei.value)
    with pytest.raises(FileNotFoundError):
        n.spawn(container_spec(rootfs, "", argv=["/bin/nosuchcmd"]))


def test_permission_denied(rootfs):
    script = rootfs / "bin/noexec"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    for argv0 in ("noexec", "/bin/noexec", "/bin"):
        with pytest.raises(PermissionError) as ei:
            n.spawn(container_spec(rootfs, "", argv=[argv0]))
        assert ei.value.errno == errno.EACCES and argv0 in str(ei.value)


def test_bad_rootfs(tmp_path):
    missing = tmp_path / "missing-rootfs"
    with pytest.raises(FileNotFoundError) as ei:
        n.spawn(n.SpawnSpec(["true"], namespaces=n.CLONE_NEWNS, rootfs=str(missing)))
    assert ei.value.errno == errno.ENOENT and str(missing) in str(ei.value)


def test_bad_mount_source(rootfs, tmp_path):
    missing = tmp_path / "missing-src"
    mounts = d.default_mounts() + [n.Mount("/x", str(missing), None, n.MS_BIND, mkdir=True)]
    with pytest.raises(FileNotFoundError) as ei:
        n.spawn(container_spec(rootfs, "true", mounts=mounts))
    assert str(missing) in str(ei.value)


def test_bad_mount_fstype(rootfs):
    mounts = d.default_mounts() + [n.Mount("/x", "x", "nosuchfs", 0, mkdir=True)]
    with pytest.raises(OSError) as ei:
        n.spawn(container_spec(rootfs, "true", mounts=mounts))
    assert ei.value.errno == errno.ENODEV and "nosuchfs" in str(ei.value)


def test_mask_without_dev_null(rootfs):
    """A masked path is never silently left unmasked: without /dev/null, spawn fails."""
    with pytest.raises(FileNotFoundError) as ei:
        n.spawn(container_spec(rootfs, "true", dev_setup=False))
    assert "/dev/null" in str(ei.value) and "mask" in str(ei.value)


def test_bad_cwd(rootfs):
    with pytest.raises(FileNotFoundError) as ei:
        n.spawn(container_spec(rootfs, "true", cwd="/no/such/dir"))
    assert "/no/such/dir" in str(ei.value) and "chdir" in str(ei.value)


def test_rlimit_above_hard_limit(rootfs):
    import resource
    # above fs.nr_open, which no one may pass (root may raise its own hard limit up to it:
    # hard + 1 passed in the VM, whose hard limit is lower, and its container was left)
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    with pytest.raises(PermissionError) as ei:
        n.spawn(container_spec(rootfs, "true",
                               rlimits={resource.RLIMIT_NOFILE: (nr_open + 1, nr_open + 1)}))
    assert "setrlimit" in str(ei.value) and "nofile" in str(ei.value)


def test_bad_cgroup(rootfs):
    with pytest.raises(FileNotFoundError) as ei:
        n.spawn(container_spec(rootfs, "true", cgroup_procs=["/sys/fs/cgroup/pids/nope/x"]))
    assert "/sys/fs/cgroup/pids/nope/x" in str(ei.value)


def test_spec_validation(rootfs):
    with pytest.raises(OSError) as ei:  # mounts without a mount namespace
        n.spawn(n.SpawnSpec(["true"], rootfs=str(rootfs), masked_paths=["/proc/kcore"]))
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        n.spawn(n.SpawnSpec([]))
    with pytest.raises(OSError) as ei:  # a second hold without the first
        n.spawn(n.SpawnSpec(["true"], hold_mounted=True))
    assert ei.value.errno == errno.EINVAL


# ---- overlay ---------------------------------------------------------------------------------

def _layers(tmp_path, count=2, name="l"):
    lowers = []
    for i in range(count):
        p = tmp_path / f"{name}{i}"
        p.mkdir()
        (p / f"f{i}").write_text(str(i))
        (p / "shared").write_text(f"from {i}")
        lowers.append(p)
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for p in (upper, work, merged):
        p.mkdir()
    return lowers, upper, work, merged


def test_overlay_mount_and_unmount(tmp_path):
    lowers, upper, work, merged = _layers(tmp_path)
    n.overlay_mount(lowers, merged, upper, work)
    try:
        assert sorted(os.listdir(merged)) == ["f0", "f1", "shared"]
        assert (merged / "shared").read_text() == "from 0"  # top layer first
        (merged / "new").write_text("n")
        assert (upper / "new").read_text() == "n"
        with open("/proc/self/mountinfo") as f:
            line = next(ln for ln in f if f" {merged} " in ln)
        assert " - overlay overlay " in line and f"upperdir={upper}" in line
    finally:
        n.umount(merged)
    assert os.listdir(merged) == []


def test_overlay_readonly(tmp_path):
    lowers, _, _, merged = _layers(tmp_path)
    n.overlay_mount(lowers, merged, readonly=True)
    try:
        with pytest.raises(OSError) as ei:
            (merged / "new").write_text("n")
        assert ei.value.errno == errno.EROFS
    finally:
        n.umount(merged, n.MNT_DETACH)


@pytest.mark.skipif(tuple(map(int, os.uname().release.split(".")[:2])) < (6, 8),
                    reason='fsconfig("lowerdir+") came with Linux 6.8')
def test_overlay_many_long_lowerdirs(tmp_path):
    """More than a page of options: mounted through fsconfig("lowerdir+")."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    lowers, upper, work, merged = _layers(deep, count=40)
    assert len(":".join(map(str, lowers))) > 4096
    n.overlay_mount(lowers, merged, upper, work)
    try:
        assert "f39" in os.listdir(merged) and (merged / "shared").read_text() == "from 0"
    finally:
        n.umount(merged)


def test_overlay_missing_lowerdir(tmp_path):
    lowers, upper, work, merged = _layers(tmp_path)
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as ei:
        n.overlay_mount([lowers[0], missing], merged, upper, work)
    assert ei.value.errno == errno.ENOENT and str(missing) in str(ei.value)


def test_overlay_bad_path_chars(tmp_path):
    _, upper, work, merged = _layers(tmp_path)
    bad = tmp_path / "a,b"
    bad.mkdir()
    with pytest.raises(OSError) as ei:
        n.overlay_mount([bad], merged, upper, work)
    assert ei.value.errno == errno.EINVAL


def test_overlay_colon_in_lowerdir(tmp_path):
    lowers, upper, work, merged = _layers(tmp_path)
    bad = tmp_path / "a:b"
    bad.mkdir()
    with pytest.raises(OSError) as ei:
        n.overlay_mount([lowers[0], bad], merged, upper, work)
    assert ei.value.errno == errno.EINVAL and str(bad) in str(ei.value)


def test_release_not_held():
    proc = n.ffi.new("struct pmd_proc *", {"pid": -1, "release_fd": -1, "error_fd": -1})
    err = n.ffi.new("struct pmd_error *")
    assert n.lib.pmd_spawn_release(proc, err) == -1 and err.err == errno.EINVAL
    with pytest.raises(ValueError):
        n.Process(1).release()


def test_umount_not_mounted(tmp_path):
    with pytest.raises(OSError) as ei:
        n.umount(tmp_path)
    assert ei.value.errno == errno.EINVAL and str(tmp_path) in str(ei.value)


# ---- the output relay (pmd_relay_run) ----------------------------------------------------------

def _relayed(script: str, tmp_path, out_fd: int = -1, log: bool = True
             ) -> tuple[int, bytes, bytes, list]:
    """Run `sh -c script` on the host with its stdout and stderr on pipes that n.relay copies
    to the files out and err (stdout to out_fd if given) and logs (unless not log); (exit
    code, out, err, log records)."""
    import json

    files = [os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
             for name in ("out", "err")]
    log_fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND) if log else -1
    pipes = [os.pipe(), os.pipe()]
    try:
        proc = n.spawn(n.SpawnSpec(["sh", "-c", script], env=["PATH=/usr/bin:/bin"],
                                   stdout=pipes[0][1], stderr=pipes[1][1]))
    finally:
        for _, w in pipes:
            os.close(w)
    try:
        code = n.relay(proc.pid, [r for r, _ in pipes],
                       [out_fd if out_fd >= 0 else files[0], files[1]], log_fd)
    finally:
        for fd in (*files, log_fd):
            if fd >= 0:
                os.close(fd)
    records = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()] \
        if log else []
    return code, (tmp_path / "out").read_bytes(), (tmp_path / "err").read_bytes(), records


def test_relay_copies_logs_and_reaps(tmp_path):
    import re

    code, out, err, recs = _relayed("echo out; echo err >&2; printf 'no newline'; exit 3",
                                    tmp_path)
    assert (code, out, err) == (3, b"out\nno newline", b"err\n")
    assert [(r["log"], r["stream"]) for r in recs] == [
        ("out\n", "stdout"), ("err\n", "stderr"), ("no newline", "stdout")]
    assert all(set(r) == {"log", "stream", "time"} and
               re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", r["time"]) for r in recs)
    code, out, _, recs = _relayed("kill -9 $$", tmp_path, log=False)
    assert (code, out, recs) == (-9, b"", [])


def test_relay_keeps_order_and_everything(tmp_path):
    """A megabyte and more: all of it, in order, on the destination and in the log."""
    code, out, err, recs = _relayed("seq 1 200000; echo done >&2", tmp_path)
    want = "".join(f"{i}\n" for i in range(1, 200001))
    assert code == 0 and out.decode() == want and err == b"done\n"
    assert "".join(r["log"] for r in recs if r["stream"] == "stdout") == want
    assert len(recs) == 200001


def test_relay_lets_signal_handlers_run_and_goes_on(tmp_path):
    """A signal interrupts the C loop (EINTR): our handler runs (here: it forwards SIGTERM to
    the child, as `run` does), then the relay resumes where it was, losing nothing."""
    import signal
    import threading

    seen = []
    r, w = os.pipe()
    pipes = [os.pipe(), os.pipe()]
    proc = n.spawn(n.SpawnSpec(["sh", "-c", "trap 'echo got-term; exit 9' TERM; echo ready; "
                                "while :; do sleep 0.05; done"], env=["PATH=/usr/bin:/bin"],
                               stdout=pipes[0][1], stderr=pipes[1][1]))
    for _, wfd in pipes:
        os.close(wfd)

    def forward(signum, _frame):
        seen.append(signum)
        os.kill(proc.pid, signal.SIGTERM)

    old = signal.signal(signal.SIGUSR1, forward)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        code = n.relay(proc.pid, [rfd for rfd, _ in pipes], [w, -1])
    finally:
        timer.join()
        signal.signal(signal.SIGUSR1, old)
        os.close(w)
    with os.fdopen(r, "rb") as f:
        assert f.read() == b"ready\ngot-term\n"
    assert code == 9 and seen == [signal.SIGUSR1]


def test_relay_sees_a_signal_that_comes_between_its_system_calls(tmp_path):
    """Copying a flood, the relay is mostly in its own code (reading, logging, writing): a
    signal delivered then interrupts no system call. CPython's handler writes to the wakeup
    fd that relay() sets, and the C loop returns on it, so our handler runs within a chunk."""
    import signal
    import threading
    import time

    pipes = [os.pipe(), os.pipe()]
    proc = n.spawn(n.SpawnSpec(["sh", "-c", "while :; do echo 0123456789abcdef; done"],
                               env=["PATH=/usr/bin:/bin"], stdout=pipes[0][1],
                               stderr=pipes[1][1]))
    for _, wfd in pipes:
        os.close(wfd)
    sent, handled = [], []

    def handler(_signum, _frame):
        handled.append(time.monotonic())
        os.kill(proc.pid, signal.SIGKILL)

    def send():
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(0.3, send)
    backstop = threading.Timer(10, os.kill, (proc.pid, signal.SIGKILL))  # should it be missed
    timer.start()
    backstop.start()
    null = os.open(os.devnull, os.O_WRONLY)
    log = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        code = n.relay(proc.pid, [rfd for rfd, _ in pipes], [null, null], log)
    finally:
        backstop.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, old)
        os.close(null)
        os.close(log)
    assert code == -signal.SIGKILL
    assert handled and handled[0] - sent[0] < 2, "the signal waited for the backstop"


def test_relay_ends_a_stream_whose_destination_went_away(tmp_path):
    """EPIPE on the destination: the relay closes that stream, so the writer gets EPIPE (or
    SIGPIPE) itself, as it would writing there directly, instead of running on unread."""
    r, w = os.pipe()
    os.close(r)
    try:
        code, _, err, recs = _relayed("yes; echo yes-ended >&2", tmp_path, out_fd=w)
    finally:
        os.close(w)
    assert code == 0 and err == b"yes-ended\n"
    assert recs[0]["log"] == "y\n" and recs[-1]["log"] == "yes-ended\n"


def test_relay_errors_are_oserrors(tmp_path):
    proc = n.spawn(n.SpawnSpec(["true"], env=["PATH=/usr/bin:/bin"]))
    with pytest.raises(OSError) as ei:
        n.relay(proc.pid, [4000], [1])  # an fd that is not open
    assert ei.value.errno == errno.EBADF and "relay" in str(ei.value)
    with pytest.raises(ValueError):
        n.relay(proc.pid, [], [1, 2, 3])  # stdout and stderr, not more
    assert n.relay(proc.pid, [], []) == 0  # nothing to copy: waits and reaps
    with pytest.raises(ProcessLookupError):
        n.relay(proc.pid, [], [])  # reaped: no such process any more
    r = n.ffi.new("struct pmd_relay *", {"pid": proc.pid, "pidfd": -1, "src": [-1, -1]})
    err = n.ffi.new("struct pmd_error *")
    assert n.lib.pmd_relay_run(r, err) == -1 and err.err == errno.EBADF


# ---- the README example: a process in new namespaces on a rootfs, in a few lines -------------

def test_readme_example(rootfs):
    from pyminidocker.shim import CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, SpawnSpec, spawn
    proc = spawn(SpawnSpec(["/bin/true"], rootfs=str(rootfs), hostname="demo",
                           namespaces=CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS))
    assert proc.wait() == 0


def test_trace(rootfs):
    proc = n.spawn(container_spec(rootfs, "true"))
    assert proc.wait() == 0
    phases = proc.trace()
    assert list(phases) == ["start", "process", "mounts", "pivot", "confine"]
    assert all(0 <= v < 1000 for v in phases.values())
    held = n.spawn(container_spec(rootfs, "true", hold=True))
    assert held.trace() == {}  # only the clone time so far
    held.release()
    assert held.wait() == 0 and list(held.trace()) == list(phases)


def test_child_killed_during_setup(rootfs):
    proc = n.spawn(container_spec(rootfs, "true", hold=True))
    os.kill(proc.pid, 9)
    with pytest.raises(ChildProcessError) as ei:
        proc.release()
    assert "died during setup" in str(ei.value)


def test_fifty_held_containers_at_once(rootfs):
    procs = [n.spawn(container_spec(rootfs, "exit 7", hold=True)) for _ in range(50)]
    assert len({p.pid for p in procs}) == 50
    for p in procs:
        p.release()
    assert [p.wait() for p in procs] == [7] * 50


def test_many_spawns_leave_nothing(rootfs):
    for _ in range(30):
        rc, _ = run(container_spec(rootfs, "true"))
        assert rc == 0
    assert stat.S_ISDIR(os.stat(rootfs).st_mode)
