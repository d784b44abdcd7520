"""Policy for a container's process: what Docker decides, decided here, handed to C as data.

Docker's default confinement as data (its values follow moby's oci/defaults.go and oci/caps
for a non-privileged container: capabilities, masked and read-only paths, the standard mounts,
namespaces, the seccomp profile's file), then pure functions over it (no root, no kernel calls
beyond reading files in the container's root): the command from Entrypoint/Cmd, the
environment, the user, rlimits and option parsing (--tmpfs's aside: container.mounts parses it,
with -v and --mount). The C shim only executes what they decide.
"""
from __future__ import annotations

import errno
import os
import stat

from pyminidocker import native as n
from pyminidocker.errors import UsageError
from pyminidocker.native import (
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
)
from pyminidocker.record import dataclass

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

CAPABILITIES = CAPS
DEFAULT_PATH = DEFAULT_ENV_PATH.removeprefix("PATH=")


def normalize_cap(name: str) -> str:
    """"net_admin", "CAP_NET_ADMIN" → "NET_ADMIN"; "ALL" stays. Raises UsageError."""
    n = name.strip().upper().removeprefix("CAP_")
    if n != "ALL" and n not in CAPABILITIES:
        raise UsageError(f"invalid capability: {name}")
    return n


def own_bounding_set() -> int:
    """The capabilities this process may pass on (a host may withhold some, e.g. SYS_RESOURCE)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return cap_mask(tuple(CAPABILITIES))


def capabilities(privileged: bool, cap_add: list[str], cap_drop: list[str]) -> int:
    """The capability mask a container gets, as Docker computes it from --cap-add/--cap-drop.
    --privileged and ALL mean every capability the engine itself holds."""
    if privileged:
        return cap_mask(tuple(CAPABILITIES)) & own_bounding_set()
    adds = [normalize_cap(c) for c in cap_add]
    drops = [normalize_cap(c) for c in cap_drop]
    caps = set(DEFAULT_CAPS)
    if "ALL" in drops:
        caps = set()
    caps -= set(drops)
    caps |= {c for c in adds if c != "ALL"}
    mask = cap_mask(tuple(caps))
    if "ALL" in adds:
        mask |= cap_mask(tuple(CAPABILITIES)) & own_bounding_set()
    return mask


def command(entrypoint: list[str] | None, cmd: list[str] | None) -> list[str]:
    """Entrypoint + Cmd as Docker combines them. Raises UsageError if empty."""
    argv = list(entrypoint or []) + list(cmd or [])
    if not argv:
        raise UsageError("no command specified", exit_code=125)
    return argv


def check_env(items: list[str]) -> None:
    """Each NAME=VALUE (or NAME) has a name. Raises UsageError (Docker's words)."""
    for item in items:
        if not item.partition("=")[0]:
            raise UsageError(f"invalid environment variable: {item}")


def merge_env(image_env: list[str], user_env: list[str], hostname: str, home: str,
              tty: bool) -> list[str]:
    """Image Env, then -e/--env-file (later wins), then PATH/HOSTNAME/HOME/TERM defaults."""
    env: dict[str, str] = {}
    check_env([*image_env, *user_env])
    for item in list(image_env) + list(user_env):
        k, sep, v = item.partition("=")
        if not sep:
            # `-e NAME` passes the caller's value through, or drops it if unset (Docker's rule)
            if k in os.environ:
                env[k] = os.environ[k]
            continue
        env[k] = v
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", hostname)
    env.setdefault("HOME", home or "/")
    if tty:
        env.setdefault("TERM", "xterm")
    return [f"{k}={v}" for k, v in env.items()]


def parse_env_file(path: str) -> list[str]:
    """Docker's --env-file: KEY=VALUE lines, # comments, blank lines, bare KEY passes through."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"open {path}: {e.strerror}") from None
    out = []
    for line in text.splitlines():
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out


def make_workdir(rootfs: str, cwd: str) -> None:
    """Create a missing working directory inside the root, wherever the root's links point
    (Docker and runc both make it). Raises OSError."""
    path = secure_join(rootfs, cwd)
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o755, exist_ok=True)


def secure_join(root: str | os.PathLike[str], path: str) -> str:
    """root/path with every symlink resolved as if root were "/", so the result stays inside
    root whatever links the (untrusted) image contains. The result may not exist."""
    root = os.fspath(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 40:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _read_db(rootfs: str, path: str) -> list[list[str]]:
    """The entries of /etc/passwd or /etc/group in the (untrusted) root; each ends with its
    line number, for errors that name it."""
    try:
        with open(secure_join(rootfs, path), encoding="utf-8", errors="replace") as f:
            return [[*line.rstrip("\n").split(":"), str(n)] for n, line in enumerate(f, 1)
                    if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def _number(entry: list[str], i: int, path: str, what: str) -> int:
    if not entry[i].isdigit():
        raise UsageError(f"invalid {what} {entry[i]!r} in {path} line {entry[-1]}")
    return int(entry[i])


def resolve_user(rootfs: str, spec: str) -> User:
    """Docker's -u: "", name, uid, name:group, uid:gid, resolved against the container's
    /etc/passwd and /etc/group. Raises UsageError (exit 125) for an unknown name, or for a
    malformed line of the entry it picks."""
    user, _, group = (spec or "").partition(":")
    passwd = _read_db(rootfs, "/etc/passwd")
    groups_db = _read_db(rootfs, "/etc/group")
    uid, gid, home, name = 0, 0, "/", "root"
    if user:
        entry = next((e for e in passwd if len(e) >= 7 and e[0] == user), None)
        if entry is None and user.isdigit():
            entry = next((e for e in passwd if len(e) >= 7 and e[2] == user), None)
        if entry is not None:
            name, home = entry[0], entry[5] or "/"
            uid = _number(entry, 2, "/etc/passwd", "uid")
            gid = _number(entry, 3, "/etc/passwd", "gid")
        elif user.isdigit():
            uid, gid, name = int(user), 0, ""
        else:
            # Docker's run exits 125 for it (only exec's failures are 126/127)
            raise UsageError(f"unable to find user {user}: no matching entries in passwd file")
    else:
        entry = next((e for e in passwd if len(e) >= 7 and e[2] == "0"), None)
        if entry is not None:
            home = entry[5] or "/"
    if group:
        g = next((e for e in groups_db if len(e) >= 4 and e[0] == group), None)
        if g is not None:
            gid = _number(g, 2, "/etc/group", "gid")
        elif group.isdigit():
            gid = int(group)
        else:
            raise UsageError(f"unable to find group {group}: no matching entries in group file")
    extra = tuple(sorted({int(e[2]) for e in groups_db
                          if len(e) >= 5 and name and name in e[3].split(",")
                          and e[2].isdigit() and int(e[2]) != gid}))
    return User(uid, gid, extra, home)


def parse_volume(spec: str) -> tuple[str, str, bool]:
    """-v host:container[:ro|rw] → (host, container, readonly). Raises UsageError."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise UsageError(f"invalid volume specification: '{spec}'")
    host, ctr = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if not os.path.isabs(host):
        raise UsageError(f"invalid volume specification: '{spec}': the host path must be "
                         "absolute (named volumes are not supported)")
    if not ctr.startswith("/"):
        raise UsageError(f"invalid volume specification: '{spec}': the container path must "
                         "be absolute")
    opts = set(mode.split(","))
    if not opts <= {"ro", "rw", "z", "Z", "private", "rprivate"}:
        raise UsageError(f"invalid mode: {mode}")
    return os.path.normpath(host), check_destination(ctr), "ro" in opts


def workdir(path: str | None) -> str:
    """-w or the image's WorkingDir, normalised as Docker does ("/a/../.." is "/"). Raises
    UsageError for a relative path."""
    if not path:
        return "/"
    if not path.startswith("/"):
        raise UsageError(f"the working directory '{path}' is invalid, it needs to be an "
                         "absolute path")
    return "/" + os.path.normpath(path).lstrip("/")


def check_destination(path: str) -> str:
    """A mount destination, normalised; refused inside /proc, as Docker refuses it: a writable
    mount over /proc/sys or /proc/sysrq-trigger would reach the host's kernel. Call it again
    with the path resolved inside the root (secure_join), where an image's symlinks may have
    pointed it elsewhere. Raises UsageError."""
    path = "/" + os.path.normpath(path).lstrip("/")
    if path == "/proc" or path.startswith("/proc/"):
        raise UsageError(f"{path} cannot be mounted because it is inside /proc")
    return path


def resolved_destination(rootfs: str, path: str, mount: str = "") -> str:
    """check_destination of path after the root's symlinks are followed (as the mount will
    follow them); returns the path as given. A path that resolves to the root itself (an
    image's `/evilmnt -> /`) is refused: the mount would cover the whole container. mount is
    the option as given (e.g. "-v /src:/evilmnt"), for the message. Raises UsageError."""
    inside = os.path.relpath(secure_join(rootfs, path), rootfs)
    if inside == "." and check_destination(path) != "/":
        raise UsageError(f"mount {mount or path} refused: {check_destination(path)} resolves to "
                         "/ through a symlink of the image, and a mount cannot cover the "
                         "container's root")
    check_destination("/" if inside == "." else "/" + inside)
    return path


# mount(8) options as flags: (set, clear), for the OCI runtime's mounts and --tmpfs. The
# propagation ones are applied by a second mount(2) call in C (child_mount_one, csrc/mount.c).
MOUNT_OPTIONS = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "sync": (16, 0), "async": (0, 16), "dirsync": (128, 0), "remount": (MS_REMOUNT, 0),
    "mand": (64, 0), "nomand": (0, 64),
    "atime": (0, MS_NOATIME), "noatime": (MS_NOATIME, 0),
    "diratime": (0, 2048), "nodiratime": (2048, 0),
    "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0), "nostrictatime": (0, MS_STRICTATIME),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0),
    "private": (MS_PRIVATE, 0), "rprivate": (MS_PRIVATE | MS_REC, 0),
    "shared": (MS_SHARED, 0), "rshared": (MS_SHARED | MS_REC, 0),
    "slave": (MS_SLAVE, 0), "rslave": (MS_SLAVE | MS_REC, 0),
    "unbindable": (1 << 17, 0), "runbindable": ((1 << 17) | MS_REC, 0),
}


def parse_cpus(value: str, ncpu: int | None = None) -> float:
    """--cpus ("1.5"). Raises UsageError: not a number, or outside check_cpus's range."""
    try:
        cpus = float(value)
    except ValueError:
        raise UsageError(f'invalid argument "{value}" for "--cpus" flag') from None
    return check_cpus(cpus, ncpu)


def check_cpus(cpus: float, ncpu: int | None = None) -> float:
    """A CPU count the host can give (ncpu, by default this host's): Docker's range, from
    0.01 to the number of CPUs. Raises UsageError in dockerd's words."""
    n = ncpu or os.cpu_count() or 1
    if not 0.01 <= cpus <= n:  # also refuses nan
        raise UsageError(f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs "
                         "available")
    return cpus


def parse_int(value: str, flag: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f'invalid argument "{value}" for "{flag}" flag') from None


def exec_exit_code(e: OSError) -> int:
    """Docker's codes when the command cannot start: 127 not found, 126 not runnable, 125 for
    any other failure of the setup."""
    if getattr(e, "op", None) != "exec":
        return 125
    if e.errno == errno.ENOENT:
        return 127
    if e.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.EPERM):
        return 126
    return 125


# RLIMIT_* numbers (asm-generic/resource.h) by Docker's --ulimit names
ULIMITS = {"cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
           "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12,
           "nice": 13, "rtprio": 14, "rttime": 15}
SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
           "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
           "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
           "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27,
           "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31}


def parse_signal(text: str) -> int:
    """SIGTERM, TERM or 15 → 15. Raises UsageError (Docker: Invalid signal)."""
    name = text.upper().removeprefix("SIG")
    if text.isdigit() and 0 < int(text) < 65:
        return int(text)
    if name in SIGNALS:
        return SIGNALS[name]
    off = name[6:] or "0"
    if name[:6] in ("RTMIN", "RTMIN+") and off.isdigit() and int(off) <= 30:
        return 34 + int(off)
    if name[:6] in ("RTMAX", "RTMAX-") and off.isdigit() and int(off) <= 30:
        return 64 - int(off)
    raise UsageError(f"Invalid signal: {text}")


def extra_groups(rootfs: str, specs: list[str]) -> list[int]:
    """--group-add: names from the container's /etc/group, or numbers. Raises UsageError."""
    if not specs:
        return []
    db = _read_db(rootfs, "/etc/group")
    out = []
    for g in specs:
        entry = next((e for e in db if len(e) >= 4 and e[0] == g), None)
        if entry is not None:
            out.append(_number(entry, 2, "/etc/group", "gid"))
        elif g.isdigit():
            out.append(int(g))
        else:
            raise UsageError(f"Unable to find group {g}: no matching entries in group file")
    return out


# Sysctls that a namespace makes the container's own (runc's list; Docker's client allows these
# but the uts ones, which have their own flags): the others are the host's.
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def sysctl_namespace(key: str) -> str | None:
    """The namespace ("ipc", "network", "uts") whose own copy of the sysctl key a container
    writes; None for a sysctl of the whole host, and for a key that is not a dotted name (a
    "/" or an empty part, "net.ipv4/../x": each "." becomes a "/" of its file, so it names
    none, and failed only at the start)."""
    if "/" in key or "\0" in key or any(p in ("", "..") for p in key.split(".")):
        return None
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def parse_restart(spec: str) -> dict[str, object]:
    """--restart no|always|unless-stopped|on-failure[:N] → {"name", "max"}, Docker's errors."""
    name, colon, count = spec.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped"):
        raise UsageError(f"invalid restart policy '{name}'" if name else
                         "invalid restart policy format")
    if colon and name != "on-failure":
        raise UsageError(f"maximum retry count cannot be used with restart policy '{name}'")
    if colon and not (count.isdigit() or (count.startswith("-") and count[1:].isdigit())):
        raise UsageError("invalid restart policy format")
    if colon and int(count) < 0:
        raise UsageError("invalid restart policy: maximum retry count cannot be negative")
    return {"name": name, "max": int(count) if colon else 0}
