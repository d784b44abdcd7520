"""Docker's default confinement for a container, as data for _native.SpawnSpec.

Policy lives here, in Python; the C shim only executes what the spec says. Values follow
Docker/moby's defaults (oci/defaults.go, oci/caps) for a non-privileged container.
"""
from __future__ import annotations

import os

from pyminidocker import shim as n

# Bit numbers from linux/capability.h.
CAPS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4, "KILL": 5,
    "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10,
    "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19, "SYS_PACCT": 20,
    "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
    "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30,
    "SETFCAP": 31, "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

DEFAULT_CAPS = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)


def cap_mask(names) -> int:
    """The bit mask of capability names (with or without the CAP_ prefix)."""
    mask = 0
    for name in names:
        mask |= 1 << CAPS[name.upper().removeprefix("CAP_")]
    return mask


DEFAULT_CAP_MASK = cap_mask(DEFAULT_CAPS)  # 0x00000000a80425fb

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]

READONLY_PATHS = [
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
]

_NOSUID_NODEV_NOEXEC = n.MS_NOSUID | n.MS_NODEV | n.MS_NOEXEC


def default_mounts() -> list[n.Mount]:
    """/proc, /sys (read-only), /dev (small tmpfs; fill it with SpawnSpec.dev_setup), /dev/pts
    (new instance), /dev/shm (64 MiB), /dev/mqueue."""
    return [
        n.Mount("/proc", "proc", "proc", _NOSUID_NODEV_NOEXEC, mkdir=True),
        n.Mount("/sys", "sysfs", "sysfs", _NOSUID_NODEV_NOEXEC | n.MS_RDONLY, mkdir=True),
        n.Mount("/dev", "tmpfs", "tmpfs", n.MS_NOSUID | n.MS_STRICTATIME, "mode=755,size=65536k",
                mkdir=True),
        n.Mount("/dev/pts", "devpts", "devpts", n.MS_NOSUID | n.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5", mkdir=True),
        n.Mount("/dev/shm", "shm", "tmpfs", _NOSUID_NODEV_NOEXEC, "mode=1777,size=67108864",
                mkdir=True),
        n.Mount("/dev/mqueue", "mqueue", "mqueue", _NOSUID_NODEV_NOEXEC, mkdir=True),
    ]


# The namespaces by their OCI names (linux.namespaces[].type); time ones (CLONE_NEWTIME) the
# OCI runtime refuses
NAMESPACES = {
    "pid": n.CLONE_NEWPID, "network": n.CLONE_NEWNET, "mount": n.CLONE_NEWNS,
    "ipc": n.CLONE_NEWIPC, "uts": n.CLONE_NEWUTS, "cgroup": n.CLONE_NEWCGROUP,
    "user": n.CLONE_NEWUSER, "time": 0x00000080,
}
DEFAULT_NAMESPACES = (n.CLONE_NEWNS | n.CLONE_NEWUTS | n.CLONE_NEWIPC | n.CLONE_NEWPID
                      | n.CLONE_NEWNET)

DEFAULT_ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's default seccomp profile (its JSON, as moby ships it) and the syscall numbers of this
# build (csrc/gen_syscalls.py), read by container.seccomp
SECCOMP_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")
SYSCALL_TABLE = os.path.join(os.path.dirname(SECCOMP_PROFILE), "syscalls.json")
SECCOMP_PROG_BYTES_MAX = 8 * 4096  # PMD_SECCOMP_PROG_MAX instructions of 8 bytes (sock_filter)
