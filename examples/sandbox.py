#!/usr/bin/env python3
"""Run a command in a sandbox made from a root filesystem directory, with pyminidocker.shim.

    sudo python3 sandbox.py ROOTFS [COMMAND [ARG...]]      (default command: /bin/sh)

The directory is never written to: the sandbox sees it through an overlay whose upper layer is
thrown away. New mount, pid, uts, ipc and network namespaces (no network but lo), Docker's
default capabilities, no_new_privs and the default seccomp filter. Exits with the command's code.
A copyable example of the public shim API (docs/shim.md); needs root.
"""
import os
import shutil
import sys
import tempfile

from pyminidocker import shim

NOSUID_NODEV_NOEXEC = shim.MS_NOSUID | shim.MS_NODEV | shim.MS_NOEXEC
DOCKER_CAPS = 0xA80425FB  # chown dac_override fowner fsetid kill setgid setuid setpcap
#                           net_bind_service net_raw sys_chroot mknod audit_write setfcap


def sandbox(rootfs: str, argv: list[str]) -> int:
    scratch = tempfile.mkdtemp(prefix="sandbox-")
    upper, work, merged = (os.path.join(scratch, d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.mkdir(d)
    shim.overlay_mount([rootfs], merged, upper, work, volatile=True)
    try:
        proc = shim.spawn(shim.SpawnSpec(
            argv, env=["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root"],
            namespaces=shim.CLONE_NEWNS | shim.CLONE_NEWPID | shim.CLONE_NEWUTS
            | shim.CLONE_NEWIPC | shim.CLONE_NEWNET,
            rootfs=merged, hostname="sandbox", cwd="/", dev_setup=True,
            mounts=[shim.Mount("/proc", "proc", "proc", NOSUID_NODEV_NOEXEC, mkdir=True),
                    shim.Mount("/dev", "tmpfs", "tmpfs", shim.MS_NOSUID, "mode=755",
                               mkdir=True),
                    shim.Mount("/tmp", "tmpfs", "tmpfs", shim.MS_NOSUID | shim.MS_NODEV,
                               "mode=1777", mkdir=True)],
            cap_bounding=DOCKER_CAPS, cap_effective=DOCKER_CAPS, cap_permitted=DOCKER_CAPS,
            cap_inheritable=0, no_new_privs=True, seccomp=shim.SECCOMP_DEFAULT))
        return proc.wait()
    finally:
        shim.umount(merged, shim.MNT_DETACH)
        shutil.rmtree(scratch)


if __name__ == "__main__":
    if len(sys.argv) < 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: sandbox.py ROOTFS [COMMAND [ARG...]]")
    try:
        code = sandbox(sys.argv[1], sys.argv[2:] or ["/bin/sh"])
    except OSError as e:  # the shim names the operation and the path that failed
        sys.exit(f"sandbox: {e}")
    sys.exit(code if code >= 0 else 128 - code)
