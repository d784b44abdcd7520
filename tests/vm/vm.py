"""A Debian 12 VM on pure cgroup v2, booted with qemu under TCG, to run commands in.

Why a VM: this host is cgroup v1 (hybrid), and a power cut (the guest's page cache lost) cannot be
simulated on a live host. The VM has no network device at all (`-nic none`): it reaches nothing
beyond its own loopback; files go in and out through its disk image.

Pieces, all under CACHE (made once, rebuilt when the Makefile's package lists change):
  base.img      raw ext4 root: Debian's bookworm minbase (a copy of the fresh-install test's
                cached debootstrap, made here first on a machine that has none), the Makefile's
                APT_PACKAGES, a kernel, tini, and the venv with
                PY_PACKAGES at /opt/pyminidocker/.venv
  vmlinuz, initrd.img   that kernel, booted directly by qemu

Per run (`prepare`), base.img is copied to a sparse file under /var/tmp, the repository's tracked
files are copied to /opt/pyminidocker in it and built there (`make build`, in a chroot on the host:
much faster than in TCG), and the command to run is written to /pmd-vm/cmd. `boot` starts qemu; the
guest's init (GUEST_INIT) mounts cgroup2 alone on /sys/fs/cgroup (cgroup_no_v1=all on the kernel
command line, so no v1 hierarchy can exist), runs the command under tini (so orphans are reaped),
prints its output and a `PMD-VM-RC=<n>` line on the serial console, syncs and powers off.

The disk uses cache=writeback: what the guest flushed is in the host's page cache and survives a
SIGKILL of qemu; what the guest did not flush is in the guest's page cache and is lost, as in a
power cut.

CLI:  python tests/vm/vm.py build            (make or check the cached base image)
      python tests/vm/vm.py run 'shell command'   (run in a fresh VM; exit code is the command's)
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `python tests/vm/vm.py` too

from tests.integration.test_fresh_install import debian_root

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("PMD_VM_CACHE", "/var/cache/pyminidocker-ci/vm"))
WORK = Path(os.environ.get("PMD_VM_WORK", "/var/tmp/pmd-vm"))
GUEST_REPO = "/opt/pyminidocker"
IMAGE_SIZE = "12G"
EXTRA_APT = ["linux-image-amd64", "tini", "make", "kmod", "procps", "e2fsprogs", "util-linux"]
BUILDER_VERSION = "1"  # bump when the way base.img is made changes

GUEST_INIT = r"""#!/bin/sh
# pid 1 of the VM (init=): set up a pure cgroup v2 system, run /pmd-vm/cmd, power off.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -o remount,rw /
hostname pmdvm
ip link set lo up
exec /usr/bin/tini -s -- /sbin/pmd-vm-run
"""

GUEST_RUN = r"""#!/bin/sh
# Runs the command under tini; its output goes to the serial console (the host's log).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
cd /opt/pyminidocker
echo "PMD-VM-UP $(cat /proc/uptime) cgroup=$(stat -fc %T /sys/fs/cgroup)" > /dev/ttyS0
# not through a pipe: a daemon the command leaves behind would keep it open
sh /pmd-vm/cmd > /dev/ttyS0 2>&1
rc=$(cat /pmd-vm/rc 2>/dev/null || echo 255)
echo "PMD-VM-RC=$rc" > /dev/ttyS0
sync
echo o > /proc/sysrq-trigger
sleep 60
"""


def log(msg: str) -> None:
    print(f"[vm {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(*args: str, **kw) -> subprocess.CompletedProcess:
    check = kw.pop("check", True)
    return subprocess.run(list(args), check=check, **kw)


def makefile_list(name: str) -> list[str]:
    """The words of a `NAME = ...` list (with backslash continuations) in the Makefile."""
    text = (REPO / "Makefile").read_text()
    m = re.search(rf"^{name}\s*=\s*((?:.*\\\n)*.*)$", text, re.M)
    assert m, f"{name} not found in the Makefile"
    return m.group(1).replace("\\\n", " ").split()


def guest_apt() -> list[str]:
    """The apt packages of base.img: the Makefile's, less the host's qemu (the guest boots no
    VM of its own), and what a bootable machine needs."""
    return [p for p in makefile_list("APT_PACKAGES") if p != "qemu-system-x86"] + EXTRA_APT


def base_key() -> str:
    words = [BUILDER_VERSION, *guest_apt(), "|",
             *makefile_list("PY_PACKAGES")]
    return hashlib.sha256(" ".join(words).encode()).hexdigest()[:16]


class Chroot:
    """A root directory with /proc, /sys and /dev mounted, for apt and make; unmounted on exit."""

    def __init__(self, root: Path):
        self.root = root
        self.mounts: list[Path] = []

    def __enter__(self) -> Chroot:
        for src, dst, fstype in (("proc", "proc", "proc"), ("sysfs", "sys", "sysfs"),
                                 ("/dev", "dev", None), ("devpts", "dev/pts", "devpts")):
            target = self.root / dst
            target.mkdir(parents=True, exist_ok=True)
            if fstype is None:
                sh("mount", "--bind", src, str(target))
            else:
                sh("mount", "-t", fstype, src, str(target))
            self.mounts.append(target)
        return self

    def __exit__(self, *exc) -> None:
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(target)], check=False)

    def run(self, script: str, env: dict[str, str] | None = None) -> None:
        full = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": "/root", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
        for k, v in os.environ.items():
            if k.startswith("PIP_"):
                full[k] = v
        full.update(env or {})
        sh("chroot", str(self.root), "/bin/sh", "-ec", script, env=full)


def build_base(force: bool = False) -> Path:
    """Make CACHE/base.img (with vmlinuz and initrd.img) unless it is there for this key."""
    key = base_key()
    img = CACHE / "base.img"
    stamp = CACHE / "key"
    if not force and img.exists() and stamp.exists() and stamp.read_text() == key:
        return img
    CACHE.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    # kept after a failure, so that a second try resumes after the slow apt stage
    build = WORK / f"build-{key}"
    root = build / "root"
    apt_done = build / "apt-done"
    ok = False
    try:
        if not apt_done.exists():
            sh("rm", "-rf", "--one-file-system", str(build))
            build.mkdir(parents=True)
            bookworm = debian_root("bookworm")
            log(f"copying {bookworm}")
            sh("cp", "-a", str(bookworm), str(root))
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        # services must not start in the chroot (docker.io, docker-registry)
        (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (root / "usr/sbin/policy-rc.d").chmod(0o755)
        (root / "etc/initramfs-tools/conf.d").mkdir(parents=True, exist_ok=True)
        (root / "etc/initramfs-tools/conf.d/pmd-vm").write_text("MODULES=most\n")
        apt = guest_apt()
        pip_conf = Path("/etc/pip.conf")
        with Chroot(root) as ch:
            if not apt_done.exists():
                log(f"apt-get install {len(apt)} packages")
                ch.run("apt-get update -q >/dev/null && apt-get install -y -q "
                       "--no-install-recommends " + " ".join(apt)
                       + " >/var/log/pmd-vm-apt.log 2>&1 "
                       "|| { tail -30 /var/log/pmd-vm-apt.log; exit 1; }")
                apt_done.touch()
            # the host's CA bundle and pip configuration reach the host's package index/proxy
            shutil.copy("/etc/ssl/certs/ca-certificates.crt",
                        root / "etc/ssl/certs/ca-certificates.crt")
            if pip_conf.exists():
                shutil.copy(pip_conf, root / "etc/pip.conf")
            (root / GUEST_REPO.lstrip("/")).mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / "Makefile", root / GUEST_REPO.lstrip("/") / "Makefile")
            log("make venv")
            ch.run(f"cd {GUEST_REPO} && make -s {GUEST_REPO}/.venv/bin/python "
                   "> /var/log/pmd-vm-pip.log 2>&1 || { tail -30 /var/log/pmd-vm-pip.log; exit 1; }")
        (root / "usr/sbin/policy-rc.d").unlink()
        (root / "etc/hostname").write_text("pmdvm\n")
        (root / "etc/hosts").write_text("127.0.0.1 localhost pmdvm\n::1 localhost\n")
        vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))[-1]
        initrd = sorted((root / "boot").glob("initrd.img-*"))[-1]
        shutil.copy(vmlinuz, CACHE / "vmlinuz")
        shutil.copy(initrd, CACHE / "initrd.img")
        log("mkfs.ext4 -d")
        tmp_img = CACHE / "base.img.tmp"
        tmp_img.unlink(missing_ok=True)
        sh("truncate", "-s", IMAGE_SIZE, str(tmp_img))
        sh("mkfs.ext4", "-q", "-F", "-L", "pmdroot", "-d", str(root), str(tmp_img))
        os.replace(tmp_img, img)
        stamp.write_text(key)
        log(f"base image ready: {img}")
        ok = True
        return img
    finally:
        if ok:
            sh("rm", "-rf", "--one-file-system", str(build), check=False)


class Mounted:
    """A disk image loop-mounted on a fresh directory under WORK; unmounted on exit."""

    def __init__(self, img: Path):
        self.img = img
        self.dir = Path(tempfile.mkdtemp(prefix="mnt-", dir=WORK))

    def __enter__(self) -> Path:
        sh("mount", "-o", "loop", str(self.img), str(self.dir))
        return self.dir

    def __exit__(self, *exc) -> None:
        sh("umount", str(self.dir), check=False)
        self.dir.rmdir()


def tracked_files() -> list[str]:
    out = sh("git", "-C", str(REPO), "ls-files", "-z", capture_output=True).stdout
    return [p for p in out.decode().split("\0") if p and (REPO / p).exists()]


def prepare(name: str, command: str) -> Path:
    """A per-run copy of the base image with this worktree's tracked files built in it and
    `command` as the thing to run. The caller deletes it (`discard`)."""
    base = build_base()
    WORK.mkdir(parents=True, exist_ok=True)
    img = WORK / f"{name}.img"
    sh("cp", "--sparse=always", str(base), str(img))
    with Mounted(img) as mnt:
        dest = mnt / GUEST_REPO.lstrip("/")
        for rel in tracked_files():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target, follow_symlinks=False)
        with Chroot(mnt) as ch:
            ch.run(f"cd {GUEST_REPO} && make -s build >/dev/null")
        set_command(mnt, command)
    return img


def set_command(mnt: Path, command: str) -> None:
    """Make the mounted image run command at its next boot (the guest's init scripts are
    written here, not in base.img, so that changing them needs no rebuild)."""
    for name, text in (("pmd-vm-init", GUEST_INIT), ("pmd-vm-run", GUEST_RUN)):
        path = mnt / "usr/sbin" / name
        path.write_text(text)
        path.chmod(0o755)
    (mnt / "pmd-vm").mkdir(exist_ok=True)
    (mnt / "pmd-vm/rc").unlink(missing_ok=True)
    (mnt / "pmd-vm/cmd").write_text(f"{command}\necho $? > /pmd-vm/rc\n")


def discard(img: Path) -> None:
    """Delete a per-run image and the serial logs of its boots (one a test failed in is kept
    by nothing else)."""
    img.unlink(missing_ok=True)
    for serial in img.parent.glob(f"{img.stem}.serial*"):
        serial.unlink(missing_ok=True)


def qemu_argv(img: Path, serial_log: Path, mem_mb: int = 3072, cpus: int = 2) -> list[str]:
    cmdline = ("root=/dev/vda rw console=ttyS0 panic=-1 quiet loglevel=3 "
               "init=/sbin/pmd-vm-init systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all")
    return ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-m", str(mem_mb), "-smp", str(cpus), "-nodefaults", "-display", "none",
            "-no-reboot", "-nic", "none", "-monitor", "none",
            "-serial", f"file:{serial_log}",
            "-kernel", str(CACHE / "vmlinuz"), "-initrd", str(CACHE / "initrd.img"),
            "-append", cmdline,
            "-drive", f"file={img},format=raw,if=virtio,cache=writeback,discard=unmap"]


# The guest kernel's watchdog line when its CPUs spin: seen once in 8 power-cut rounds, both
# vCPUs stuck (python and a modprobe the first `run -d` started) under multi-threaded TCG.
LOCKUP = "BUG: soft lockup"


class Boot:
    """One boot of the VM; `wait` for its end or `kill` it (the power cut)."""

    def __init__(self, img: Path, cpus: int = 2):
        self.log = img.with_suffix(f".serial{int(time.time() * 1000)}")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(qemu_argv(img, self.log, cpus=cpus), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, marker: str, timeout: float, count: int = 1, poll: float = 0.5) -> bool:
        """Whether the serial output shows marker count times within timeout; False at once
        if the guest's kernel says it locked up (LOCKUP)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if out.count(marker) >= count:
                return True
            if self.proc.poll() is not None or LOCKUP in out:
                return self.output().count(marker) >= count
            time.sleep(poll)
        return False

    def locked_up(self) -> bool:
        return LOCKUP in self.output()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float, stall: float = 300) -> tuple[int | None, str]:
        """(the command's exit code or None if it never reported one, the serial output). A
        guest whose kernel reported a lockup and then printed nothing for `stall` seconds is
        hung, not slow: it is killed then rather than at the timeout."""
        deadline = time.monotonic() + timeout
        size, quiet_since = -1, time.monotonic()
        while self.proc.poll() is None:
            now = time.monotonic()
            out = self.output()
            if len(out) != size:
                size, quiet_since = len(out), now
            if now >= deadline or (LOCKUP in out and now - quiet_since >= stall):
                self.kill()
                break
            time.sleep(2)
        text = self.output()
        self.log.unlink(missing_ok=True)
        m = re.search(r"PMD-VM-RC=(\d+)", text)
        return (int(m.group(1)) if m else None), text


def run(command: str, timeout: float = 1800, name: str = "run") -> tuple[int | None, str]:
    """Run command in a fresh VM: (its exit code or None, the serial output). A guest that
    hangs in a lockup (LOCKUP) is run once more from a fresh image on one vCPU, where no
    cross-CPU wait (module loading's stop_machine) can spin under TCG."""
    for cpus in (2, 1):
        img = prepare(f"{name}-{os.getpid()}", command)
        try:
            rc, out = Boot(img, cpus=cpus).wait(timeout)
        finally:
            discard(img)
        if rc is not None or LOCKUP not in out:
            break
        log(f"the guest locked up on {cpus} vCPUs: once more on 1")
    return rc, out


def main(argv: list[str]) -> int:
    if argv[:1] == ["build"]:
        build_base(force="--force" in argv)
        return 0
    if argv[:1] == ["run"] and len(argv) == 2:
        t0 = time.monotonic()
        rc, out = run(argv[1])
        sys.stdout.write(out)
        log(f"rc={rc} in {time.monotonic() - t0:.0f} s")
        return 255 if rc is None else rc
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
