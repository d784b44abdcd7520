#!/usr/bin/env python3
"""The power-cut test, run by hand (root; a few minutes a round under TCG):

    sudo python3 bench/powercut.py [--rounds 5] [--work /var/cache/pyminidocker-ci/powercut]

A Debian 12 VM (qemu-system-x86_64 under TCG: KVM is not available on these machines; Debian's
cloud kernel; the fresh-install test's cached bookworm minbase root, with python3, iptables,
busybox and this tree built in, as an ext4 disk image made by mke2fs -d). Each round:
  boot 1  loops over run -d, run --rm, create, rm -f (default bridge network) in the guest;
          the host kills qemu with SIGKILL at a random moment once the loop runs: what the
          guest had not flushed (its page cache) is lost, as in a power cut;
  e2fsck  -fy of the disk image, on the host;
  boot 2  runs ps -a, images, run --rm, rm -f of every container and system check --full,
          and reports each one's exit status on the console.
A round is "bricked" when a command of boot 2 fails, and counts layers that fail checking.
The disk carries over from round to round, as a real machine's would.

Needs: qemu-system-x86 (apt-get install; not in APT_PACKAGES), debootstrap's cached root
(test_fresh_install.py makes it), apt access for the guest's packages. Prints one line per
round and a summary.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOOKWORM = Path("/var/cache/pyminidocker-ci/bookworm")
GUEST_PACKAGES = ["python3", "python3-cffi", "python3-requests", "python3-libarchive-c",
                  "python3-pyroute2", "python3-setuptools", "python3-dev", "gcc", "libc6-dev",
                  "libffi-dev", "libarchive-dev", "libssl-dev", "pkg-config", "iptables",
                  "iproute2", "busybox-static", "kmod", "e2fsprogs"]
KERNEL_PKG = "linux-image-6.1.0-57-cloud-amd64"
# modules the guest needs: the disk for the initramfs, the rest for containers' networking
INITRD_MODULES = ["virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                  "virtio_pci", "virtio_blk"]
GUEST_MODULES = ["overlay", "bridge", "veth", "br_netfilter", "nf_tables", "nft_compat",
                 "nft_chain_nat", "xt_comment", "xt_conntrack", "xt_MASQUERADE", "xt_addrtype",
                 "xt_nat", "xt_tcpudp", "nf_nat", "iptable_nat", "iptable_filter"]

GUEST_INIT = r"""#!/bin/sh
# PID 1 of the power-cut VM: the phase comes from the kernel's command line (pmd.phase=)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin PYTHONPATH=/opt/pyminidocker HOME=/root
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs run /run; mount -t tmpfs tmp /tmp; mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -o remount,rw /
for m in $(cat /opt/powercut/modules); do modprobe $m 2>/dev/null; done
ip link set lo up
P="python3 -m pyminidocker"
cd /opt/pyminidocker
phase=$(sed -n 's/.*pmd\.phase=\([a-z]*\).*/\1/p' /proc/cmdline)
say() { echo "PMD: $*" > /dev/console; }
if [ "$phase" = load ]; then
    say LOOP STARTED
    i=0
    while :; do
        i=$((i+1))
        $P run -d bb sleep 30 >/dev/null 2>&1
        $P run --rm bb true >/dev/null 2>&1
        $P create bb true >/dev/null 2>&1
        ids=$($P ps -aq 2>/dev/null | head -n 2)
        [ -n "$ids" ] && $P rm -f $ids >/dev/null 2>&1
        say "iteration $i"
    done
fi
if [ "$phase" = check ]; then
    for cmd in "ps -a" "images" "run --rm bb echo alive"; do
        out=$($P $cmd 2>&1); say "RC $? $cmd"; echo "$out" | sed 's/^/PMD:   /' > /dev/console
    done
    ids=$($P ps -aq 2>/dev/null)
    out=$($P rm -f $ids 2>&1); say "RC $? rm -f ($(echo $ids | wc -w) containers)"
    echo "$out" | tail -n 3 | sed 's/^/PMD:   /' > /dev/console
    out=$($P system check --full --repair 2>&1); say "RC $? system check --full --repair"
    echo "$out" | sed 's/^/PMD:   /' > /dev/console
    out=$($P system check --full 2>&1); say "RC $? system check --full"
    echo "$out" | sed 's/^/PMD:   /' > /dev/console
    say CHECK DONE
    sync
fi
echo o > /proc/sysrq-trigger
sleep 30
"""

INITRD_INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
for m in MODULES; do /bin/busybox insmod /m/$m.ko; done
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; /bin/busybox sleep 0.2; done
/bin/busybox mount -t ext4 -o ro /dev/vda /newroot || exec /bin/busybox sh
/bin/busybox umount /proc
exec /bin/busybox switch_root /newroot /opt/powercut/init.sh
"""


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def kernel(work: Path) -> tuple[Path, Path]:
    """vmlinuz and the unpacked modules tree of Debian's cloud kernel."""
    kroot = work / "kernel"
    if not (kroot / "boot").is_dir():
        tmp = Path(tempfile.mkdtemp(dir=work))
        sh("apt-get", "download", KERNEL_PKG, cwd=tmp)
        (deb,) = tmp.glob("*.deb")
        sh("dpkg-deb", "-x", str(deb), str(kroot))
        shutil.rmtree(tmp)
    (vmlinuz,) = (kroot / "boot").glob("vmlinuz-*")
    (mods,) = (kroot / "lib" / "modules").iterdir()
    return vmlinuz, mods


def module_file(mods: Path, name: str) -> Path:
    hits = [p for p in mods.rglob("*.ko*") if re.sub(r"\.ko(\.xz)?$", "", p.name)
            .replace("-", "_") == name]
    if not hits:
        raise SystemExit(f"no module {name} in {mods}")
    return hits[0]


def initrd(work: Path, mods: Path) -> Path:
    out = work / "initrd.cpio"
    d = Path(tempfile.mkdtemp(dir=work))
    (d / "bin").mkdir()
    (d / "m").mkdir()
    shutil.copy("/bin/busybox", d / "bin" / "busybox")
    for name in INITRD_MODULES:
        src = module_file(mods, name)
        dst = d / "m" / f"{name}.ko"
        if src.name.endswith(".xz"):
            dst.write_bytes(subprocess.run(["xz", "-dc", str(src)], check=True,
                                           capture_output=True).stdout)
        else:
            shutil.copy(src, dst)
    (d / "init").write_text(INITRD_INIT.replace("MODULES", " ".join(INITRD_MODULES)))
    (d / "init").chmod(0o755)
    out.write_bytes(newc(d))
    shutil.rmtree(d)
    return out


def newc(top: Path) -> bytes:
    """The tree below top as a cpio archive in the kernel's initramfs format (newc)."""
    def entry(name: str, mode: int, data: bytes, ino: int) -> bytes:
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        head = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        head += b"\0" * (-len(head) % 4)
        return head + data + b"\0" * (-len(data) % 4)

    out, ino = b"", 1
    for dirpath, _, files in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        if rel != ".":
            out += entry(rel, 0o040755, b"", ino)
            ino += 1
        for f in files:
            path = Path(dirpath) / f
            name = os.path.normpath(os.path.join(rel, f))
            out += entry(name, 0o100000 | (path.stat().st_mode & 0o7777), path.read_bytes(), ino)
            ino += 1
    return out + entry("TRAILER!!!", 0, b"", 0)


def guest_root(work: Path, mods: Path) -> Path:
    """The guest's root: the cached minbase plus packages (apt in a chroot), the kernel's
    modules, this tree (git HEAD) built with the guest's python3, and a busybox image `bb`."""
    root = work / "root"
    stamp = root / "opt" / "powercut" / "ready"
    if stamp.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    sh("cp", "-a", str(BOOKWORM), str(root))
    for sub in ("proc", "dev", "sys"):
        sh("mount", "--bind", f"/{sub}", str(root / sub))
    try:
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sh("chroot", str(root), "apt-get", "update", "-q", env=env, capture_output=True)
        sh("chroot", str(root), "apt-get", "install", "-y", "-q", "--no-install-recommends",
           *GUEST_PACKAGES, env=env, capture_output=True)
        dst = root / "opt" / "pyminidocker"
        dst.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)
        sh("chroot", str(root), "sh", "-c",
           "cd /opt/pyminidocker && python3 setup.py -q build_ext --inplace && "
           "python3 -m compileall -q pyminidocker", capture_output=True)
        kdst = root / "lib" / "modules" / mods.name
        if not kdst.exists():
            shutil.copytree(mods, kdst, symlinks=True)
        sh("chroot", str(root), "depmod", mods.name)
    finally:
        for sub in ("sys", "dev", "proc"):
            subprocess.run(["umount", "-l", str(root / sub)], check=False)
    pc = root / "opt" / "powercut"
    pc.mkdir(parents=True, exist_ok=True)
    (pc / "init.sh").write_text(GUEST_INIT)
    (pc / "init.sh").chmod(0o755)
    (pc / "modules").write_text(" ".join(GUEST_MODULES) + "\n")
    preload_image(root)
    stamp.write_text("")
    return root


def preload_image(root: Path) -> None:
    """bb (busybox) in the guest's store, pulled on the host from the tests' local registry."""
    sys.path.insert(0, str(REPO / "bench"))
    from common import busybox_image, push_image, start_registry

    work = Path(tempfile.mkdtemp(prefix="pmd-powercut-"))
    reg = start_registry(work / "registry")
    try:
        ref = f"{reg.host}/powercut/busybox:latest"
        push_image(busybox_image(), work, ref)
        store = root / "var" / "lib" / "docker-mini"
        pmd = [sys.executable, "-m", "pyminidocker", "--root", str(store)]
        sh(*pmd, "pull", "-q", ref, cwd=REPO, capture_output=True)
        sh(*pmd, "tag", ref, "bb", cwd=REPO, capture_output=True)
        # a /24 of its own: nothing of the host's routes exists in the guest anyway
        (store / "config.json").write_text('{"default-subnet": "10.88.0.0/24"}\n')
    finally:
        reg.close()
        shutil.rmtree(work, ignore_errors=True)


def disk(work: Path, root: Path) -> Path:
    img = work / "disk.img"
    if not img.exists():
        sh("mke2fs", "-q", "-t", "ext4", "-d", str(root), str(img), "3G")
    return img


def boot(work: Path, vmlinuz: Path, rd: Path, img: Path, phase: str, log: Path,
         kill_after: float | None, timeout: float) -> tuple[str, bool]:
    """Boot the VM; with kill_after, SIGKILL qemu that many seconds after the load loop
    started. Returns (console output, killed)."""
    cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "2",
           "-nographic", "-no-reboot", "-kernel", str(vmlinuz), "-initrd", str(rd),
           "-append", f"console=ttyS0 panic=-1 rw pmd.phase={phase}",
           "-drive", f"file={img},format=raw,if=virtio,cache=writeback",
           "-nic", "none"]
    with open(log, "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    start, started, killed = time.monotonic(), None, False
    while p.poll() is None:
        time.sleep(0.5)
        text = log.read_text(errors="replace")
        if kill_after is not None and started is None and "PMD: LOOP STARTED" in text:
            started = time.monotonic()
        if started is not None and kill_after is not None and \
                time.monotonic() - started > kill_after:
            p.kill()  # the power cut
            killed = True
        if time.monotonic() - start > timeout:
            p.kill()
    p.wait()
    return log.read_text(errors="replace"), killed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", default="/var/cache/pyminidocker-ci/powercut")
    ap.add_argument("--fresh", action="store_true", help="make the guest's disk again")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.fresh:
        for p in ("root", "disk.img"):
            subprocess.run(["rm", "-rf", str(work / p)], check=True)
    vmlinuz, mods = kernel(work)
    rd = initrd(work, mods)
    img = disk(work, guest_root(work, mods))
    results = []
    for n in range(1, a.rounds + 1):
        cut = random.uniform(3, 40)
        out1, killed = boot(work, vmlinuz, rd, img, "load", work / f"round{n}-load.log", cut,
                            600)
        its = len(re.findall(r"PMD: iteration", out1))
        fsck = subprocess.run(["e2fsck", "-fy", str(img)], capture_output=True, text=True,
                              check=False)
        out2, _ = boot(work, vmlinuz, rd, img, "check", work / f"round{n}-check.log", None, 900)
        rcs = dict((cmd, int(rc)) for rc, cmd in re.findall(r"PMD: RC (\d+) (.*?)\r?$", out2,
                                                               re.M))
        done = "PMD: CHECK DONE" in out2
        bricked = not done or any(rc != 0 for cmd, rc in rcs.items()
                                  if not cmd.startswith("system check"))
        layer_bad = len(re.findall(r"PMD:   problem: layer ", out2))
        results.append((bricked, layer_bad))
        print(f"round {n}: killed={killed} after {cut:.1f} s ({its} iterations); "
              f"e2fsck rc {fsck.returncode}; boot 2: "
              + ", ".join(f"{cmd}={rc}" for cmd, rc in rcs.items())
              + f"; {'BRICKED' if bricked else 'ok'}; layers failing: {layer_bad}", flush=True)
    print(f"{len(results)} rounds: {sum(b for b, _ in results)} bricked stores, "
          f"{sum(x for _, x in results)} layers failing verification")
    return 0 if not any(b or x for b, x in results) else 1


if __name__ == "__main__":
    sys.exit(main())
