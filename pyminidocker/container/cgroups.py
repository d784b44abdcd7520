"""One cgroup per container: cgroup v1 and v2 behind one interface.

This runs on the container start path, so it imports only builtin-cheap modules, spawns no
processes, and keeps the number of syscalls small: a typical start costs one mkdir per hierarchy
and one open per limit file (v1 adds two reads of the new cpuset, v2 one read of the new cgroup's
cgroup.controllers). The parent directories are made, and v2's controllers enabled in them, only
for the first container after boot.

Layout (the "cgroupfs" scheme Docker uses, not the systemd one):
    v2:  /sys/fs/cgroup/<parent>/<id>
    v1:  /sys/fs/cgroup/<controller>/<parent>/<id> for each controller we use

Which version: if /sys/fs/cgroup itself is a cgroup2 mount, the host is unified (v2). Otherwise the
v1 controller mounts are used; a "hybrid" host (v1 controllers plus an empty cgroup2 mount at
/sys/fs/cgroup/unified, as systemd sets up) counts as v1, because controllers cannot be attached to
v2 while v1 holds them, so the unified mount can only ever track processes. See cgroups(7).

Limits are written before any process joins the cgroup: a process that joined first would run
unconfined until the write (a pids limit written late lets a fork bomb get ahead of it), and on
v1 the memory it charged before that stays counted outside the limit (move_charge_at_immigrate
is off by default). The container's init joins the cgroup
itself, from C, between clone and execve (see procs_files()).
"""
from __future__ import annotations

import _thread
import errno
import os
import time

from pyminidocker.errors import PmdError, UsageError
from pyminidocker.record import dataclass

CGROUP_ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "pyminidocker"

# Docker's --memory floor (daemon/daemon_unix.go: linuxMinMemory); below this a container cannot
# even start its runtime.
MIN_MEMORY = 6 * 1024 * 1024
# The kernel's default CFS period (100 ms), which Docker uses for --cpus.
CPU_PERIOD = 100_000
# The kernel refuses a CFS quota below 1 ms (sched/core.c: min_cfs_quota_period).
MIN_CPU_QUOTA = 1_000
# cpu.shares bounds of the kernel (MIN_SHARES/MAX_SHARES in kernel/sched/sched.h).
MIN_SHARES, MAX_SHARES = 2, 262_144

# v1 controllers a container gets a directory in. blkio, net_cls, perf_event, ... are left out:
# we set no limits there and every extra directory costs a mkdir, a join and an rmdir.
V1_CONTROLLERS = ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "pids")
_KNOWN_V1 = frozenset(V1_CONTROLLERS) | {
    "blkio", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc",
}
# v2 controllers enabled for containers, in the order written to cgroup.subtree_control.
V2_CONTROLLERS = ("memory", "pids", "cpu")

# signal.SIGKILL, which is 9 on every Linux architecture; importing signal would pull in enum.
SIGKILL = 9

# Docker's default device rules, in the v1 devices cgroup's syntax (a whitelist: deny everything,
# then allow the few devices a container's /dev holds). "m" alone lets mknod create any node,
# which is harmless because opening it still needs "rw" here. v1 writes them to devices.allow and
# devices.deny; v2 turns them into an eBPF program (device_program()).
# --privileged: every device, as Docker gives a privileged container.
PRIVILEGED_DEVICE_RULES: tuple[tuple[str, str], ...] = (("allow", "a"),)
DEFAULT_DEVICE_RULES: tuple[tuple[str, str], ...] = (
    ("deny", "a"),
    ("allow", "c *:* m"),
    ("allow", "b *:* m"),
    ("allow", "c 1:3 rwm"),    # /dev/null
    ("allow", "c 1:5 rwm"),    # /dev/zero
    ("allow", "c 1:7 rwm"),    # /dev/full
    ("allow", "c 1:8 rwm"),    # /dev/random
    ("allow", "c 1:9 rwm"),    # /dev/urandom
    ("allow", "c 5:0 rwm"),    # /dev/tty
    ("allow", "c 5:1 rwm"),    # /dev/console
    ("allow", "c 5:2 rwm"),    # /dev/ptmx
    ("allow", "c 136:* rwm"),  # /dev/pts/*
)

NO_SWAP_LIMIT = ("Your kernel does not support swap limit capabilities or the cgroup is not "
                 "mounted. Memory limited without swap.")

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_bytes(text: str, allow_unlimited: bool = False) -> int:
    """Parse a Docker size string: "1024", "100k", "512m", "1g", "1.5g", "512MB", "2GiB".

    Suffixes are binary multiples (k = 1024), case-insensitive, optionally followed by "b" or
    "ib", as Docker's RAMInBytes. With allow_unlimited, "-1" is accepted and returned (the value
    --memory-swap uses for "unlimited swap").

    Raises UsageError for anything else.
    """
    s = text.strip().lower()
    if allow_unlimited and s == "-1":
        return -1
    body = s
    if body.endswith("b"):
        body = body[:-1].removesuffix("i")
    unit = body[-1:] if body[-1:] in _UNITS else ""
    number = body[: len(body) - len(unit)].rstrip()
    whole, dot, frac = number.partition(".")
    # Only plain decimals: float() alone would also take "1e3", "inf", "-1" and "1_000".
    plain_frac = not dot or (frac.isascii() and frac.isdigit())
    if not (whole.isascii() and whole.isdigit()) or not plain_frac:
        raise UsageError(f"invalid size: {text!r}", hint="use a number with an optional "
                         "b, k, m or g suffix, e.g. 512m")
    if not unit and s.endswith("ib"):  # "1024ib" is not a size
        raise UsageError(f"invalid size: {text!r}")
    if dot:
        return int(float(number) * _UNITS[unit])
    return int(whole) * _UNITS[unit]


def cpu_quota(cpus: float, period: int = CPU_PERIOD) -> int:
    """The CFS quota in microseconds per period for --cpus: 1.5 -> 150000 (period 100000).

    As Docker, --cpus is first made an integer count of nano-CPUs and the quota truncated from
    that, so 0.29 gives 29000 and not float's 28999.
    """
    nano = round(cpus * 1e9)
    return nano * period // 1_000_000_000


def shares_to_weight(shares: int) -> int:
    """Map v1 cpu.shares [2, 262144] linearly onto v2 cpu.weight [1, 10000] (1024 -> 39)."""
    return 1 + (shares - MIN_SHARES) * 9_999 // (MAX_SHARES - MIN_SHARES)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one container; None (or 0) means unlimited / the kernel default.

    memory       bytes; at least 6 MiB.
    memory_swap  memory + swap in bytes, as Docker's --memory-swap; -1 = unlimited swap; None =
                 Docker's default of as much swap as memory (total 2x memory), applied only when
                 memory is set and the host accounts swap.
    cpus         CPUs as a float: 1.5 -> quota 150000 per period 100000.
    cpu_shares   relative weight, v1 cpu.shares (v2: converted to cpu.weight).
    pids         maximum number of tasks; None, 0 or -1 = unlimited.
    memory_reservation  soft limit in bytes (v1 memory.soft_limit_in_bytes, v2 memory.low).
    cpu_period, cpu_quota  CFS period and quota in microseconds (--cpu-period/--cpu-quota;
                 not with cpus).
    cpuset_cpus, cpuset_mems  "0-1,3" lists of the CPUs / memory nodes allowed.
    oom_kill_disable  v1 memory.oom_control (v2 has no such switch: a warning).
    cpu_rt_period, cpu_rt_runtime  v1 cpu.rt_period_us / cpu.rt_runtime_us in microseconds
                 (real-time scheduling; our parent cgroup has no real-time time, so as with
                 Docker's default daemon a runtime above 0 is refused by the kernel).
    blkio_throttle  (kind, "MAJOR:MINOR", value): kind read_bps, write_bps, read_iops or
                 write_iops of that block device (v1 blkio.throttle.<kind>_device, v2 io.max;
                 the Cgroup must be made with blkio=True).
    devices      device rules in the v1 devices cgroup's syntax, in order: ("deny" | "allow",
                 "c 1:3 rwm"), "a" for every device. v1 writes them to the devices controller,
                 v2 attaches the equivalent eBPF program (see device_program()); () leaves the
                 cgroup's device access as it is (its parent's).

    Raises UsageError for values Docker refuses, with Docker's wording.
    """

    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids: int | None = None
    devices: tuple[tuple[str, str], ...] = DEFAULT_DEVICE_RULES
    memory_reservation: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    oom_kill_disable: bool = False
    memory_swappiness: int | None = None
    blkio_throttle: tuple[tuple[str, str, int], ...] = ()
    cpu_rt_period: int | None = None
    cpu_rt_runtime: int | None = None

    def __post_init__(self) -> None:
        # Normalise Docker's several spellings of "unlimited" to None (frozen: use object's setter).
        for name in ("memory", "memory_swap", "cpus", "cpu_shares", "memory_reservation",
                     "cpu_period", "cpu_quota"):
            if getattr(self, name) == 0:
                object.__setattr__(self, name, None)
        if self.pids is not None and self.pids <= 0:
            object.__setattr__(self, "pids", None)

        if self.memory is not None:
            if self.memory < 0:
                raise UsageError(f"invalid memory limit: {self.memory}")
            if self.memory < MIN_MEMORY:
                raise UsageError("Minimum memory limit allowed is 6MB")
        if self.memory_swap is not None:
            if self.memory is None:
                raise UsageError("You should always set the Memory limit when using Memoryswap "
                                 "limit, see usage")
            if self.memory_swap != -1 and self.memory_swap < self.memory:
                raise UsageError("Minimum memoryswap limit should be larger than memory limit, "
                                 "see usage")
        if self.cpus is not None and (self.cpus < 0 or cpu_quota(self.cpus) < MIN_CPU_QUOTA):
            raise UsageError(f"invalid --cpus {self.cpus}: the minimum is 0.01")
        if self.cpu_shares is not None and not MIN_SHARES <= self.cpu_shares <= MAX_SHARES:
            raise UsageError(f"invalid cpu shares {self.cpu_shares}: must be between "
                             f"{MIN_SHARES} and {MAX_SHARES}")
        if self.memory_reservation is not None:
            if self.memory_reservation < MIN_MEMORY:
                raise UsageError("Minimum memory reservation allowed is 6MB")
            if self.memory is not None and self.memory < self.memory_reservation:
                raise UsageError("Minimum memory limit can not be less than memory reservation "
                                 "limit, see usage")
        if self.cpus is not None and (self.cpu_period or self.cpu_quota):
            raise UsageError("Conflicting options: Nano CPUs and CPU "
                             f"{'Period' if self.cpu_period else 'Quota'} cannot both be set")
        if self.cpu_period is not None and not 1000 <= self.cpu_period <= 1_000_000:
            raise UsageError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                             "than 1s (i.e. 1000000)")
        if self.cpu_quota is not None and 0 < self.cpu_quota < MIN_CPU_QUOTA:
            raise UsageError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        for name, what in (("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
            value = getattr(self, name)
            if value is not None:
                check_cpuset(value, what)
        if self.cpu_rt_period and self.cpu_rt_runtime and \
                self.cpu_rt_runtime > self.cpu_rt_period:
            raise UsageError("cpu-rt-runtime cannot be higher than cpu-rt-period")
        for verb, rule in self.devices:
            if verb not in ("allow", "deny"):
                raise UsageError(f"invalid device rule: {verb} {rule}")

    def swap_total(self) -> int | None:
        """memory + swap in bytes to apply (-1 = unlimited), or None to leave the default."""
        if self.memory is None:
            return None
        if self.memory_swap is None:
            return 2 * self.memory
        return self.memory_swap


# Limits.blkio_throttle's kinds as the keys of v2's io.max
_IO_MAX_KEYS = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops",
                "write_iops": "wiops"}


def _io_max(throttle: tuple[tuple[str, str, int], ...]) -> dict[str, str]:
    """"MAJOR:MINOR" -> "rbps=N wiops=M" (the io.max line of each device)."""
    out: dict[str, str] = {}
    for kind, device, value in throttle:
        out[device] = f"{out.get(device, '')} {_IO_MAX_KEYS[kind]}={value}".strip()
    return out


def check_cpuset(value: str, what: str) -> set[int]:
    """A cpuset list ("0-2,4") checked against what the host has (Docker's words). Raises
    UsageError."""
    try:
        wanted = _cpuset_list(value)
    except ValueError:
        raise UsageError(f"Invalid value {value} for cpuset {what}") from None
    root = read_control("/sys/fs/cgroup/cpuset/cpuset." + what) or \
        read_control(f"/sys/fs/cgroup/cpuset.{what}.effective") or ""
    try:
        have = _cpuset_list(root.strip()) if root.strip() else wanted
    except ValueError:
        have = wanted
    if not wanted <= have:
        label = "CPUs" if what == "cpus" else "memory nodes"
        raise UsageError(f"Requested {label} are not available - requested {value}, "
                         f"available: {root.strip()}")
    return wanted


def _cpuset_list(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(text)
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise ValueError(text)
        out.update(range(a, b + 1))
    return out


# --- device rules on v2 ------------------------------------------------------------------------


def _device_number(text: str) -> int:
    if text == "*":
        return -1
    if not (text.isascii() and text.isdigit()) or int(text) > 0x7FFFFFFF:
        raise ValueError(text)
    return int(text)


def _parse_device_rule(verb: str, rule: str) -> tuple[str, int, int, str] | None:
    """("c", 1, 3, "rwm") for "c 1:3 rwm" ("*" is -1); None for "a", which the kernel takes as
    every device whatever follows it ("a *:* rwm"). Raises UsageError for anything else."""
    if rule == "a" or rule.startswith("a "):
        return None
    fields = rule.split()
    if len(fields) == 3 and fields[0] in ("b", "c"):
        kind, numbers, access = fields
        major, sep, minor = numbers.partition(":")
        if sep and access and not access.strip("rwm"):
            try:
                return kind, _device_number(major), _device_number(minor), access
            except ValueError:
                pass
    raise UsageError(f"invalid device rule: {verb} {rule}")


def device_program(rules: tuple[tuple[str, str], ...]) -> list[tuple[bool, str, int, int, str]]:
    """The rules of the cgroup v2 device program (for _native.cgroup_devices: in order, the
    first match decides, no match is refused) that give the access the v1 devices controller
    gives after these rules are written to a new cgroup under an allow-all parent.

    v1 keeps a default and a list of exceptions to it (cgroup-v1/devices.rst): "a" sets the
    default and empties the list; any other rule against the default adds its access to the
    exception of that type, major and minor (one per device, merged), a rule agreeing with the
    default takes its access away from that exception. With a deny default an access needs one
    exception holding all of its bits; with an allow default an exception holding any of them
    refuses it. So the program is the exceptions (all of one verdict, so their order does not
    matter), followed by an allow-all rule when the default is allow.

    Raises UsageError for a rule v1 would refuse ("x 1:3 rwm", "c 1 rwm", "c 1:3 rwx").
    """
    default_allow = True  # a cgroup without rules: its parent's, allow-all
    exceptions: dict[tuple[str, int, int], str] = {}
    for verb, rule in rules:
        parsed = _parse_device_rule(verb, rule)
        if parsed is None:
            default_allow = verb == "allow"
            exceptions.clear()
            continue
        kind, major, minor, access = parsed
        key = (kind, major, minor)
        have = exceptions.get(key, "")
        if (verb == "allow") != default_allow:
            exceptions[key] = "".join(c for c in "rwm" if c in have or c in access)
        elif have:
            left = "".join(c for c in have if c not in access)
            if left:
                exceptions[key] = left
            else:
                del exceptions[key]
    program = [(not default_allow, kind, major, minor, access)
               for (kind, major, minor), access in exceptions.items()]
    if default_allow:
        program.append((True, "a", -1, -1, "rwm"))
    return program


def _attach_device_program(path: str, program: list[tuple[bool, str, int, int, str]]) -> None:
    """Attach the device program to the v2 cgroup at path (the C shim, loaded here rather than at
    import, so that the file logic works without it). Raises PmdError."""
    from pyminidocker import native as _native

    try:
        _native.cgroup_devices(path, program)
    except OSError as e:
        raise PmdError(f"cannot set device rules: {e.filename}: {e.strerror}",
                       hint="cgroup v2 device rules need bpf(2) (root, CONFIG_CGROUP_BPF)") from e


# --- detection ---------------------------------------------------------------------------------


class Layout:
    """Where the cgroup filesystems are: version "v1" or "v2", and for v1 each controller's
    mount point (co-mounted controllers such as cpu,cpuacct share one).

    A plain class rather than a dataclass: each @dataclass costs about a millisecond at import,
    on the start path.
    """

    __slots__ = ("controllers", "root", "version")

    def __init__(self, version: str, root: str, controllers: dict[str, str]):
        self.version = version
        self.root = root
        self.controllers = controllers

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and (self.version, self.root, self.controllers) == (
            other.version, other.root, other.controllers)

    __hash__ = None  # type: ignore[assignment]  # mutable dict inside

    def __repr__(self) -> str:
        return f"Layout({self.version!r}, {self.root!r}, {self.controllers!r})"


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo (see proc(5)).
    if "\\" not in field:
        return field
    return bytes(field, "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")


def parse_mountinfo(text: str, root: str = CGROUP_ROOT) -> Layout:
    """Decide the cgroup layout from /proc/self/mountinfo text (see proc(5) for the format).

    "v2" if root itself is a cgroup2 mount; "v1" if controllers are mounted as cgroup (v1)
    filesystems, whatever else is mounted (a hybrid host's cgroup2 at root/unified is ignored).
    Named hierarchies (name=systemd) carry no controller and are ignored.

    Raises PmdError if neither is found.
    """
    root = root.rstrip("/") or "/"
    controllers: dict[str, str] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        mount_point, fstype, options = _unescape(fields[4]), rfields[0], rfields[2]
        if fstype == "cgroup2" and mount_point == root:
            return Layout("v2", root, {})
        if fstype == "cgroup":
            for opt in options.split(","):
                # The first mount of a hierarchy wins; later ones are usually bind mounts.
                if opt in _KNOWN_V1 and opt not in controllers:
                    controllers[opt] = mount_point
    if controllers:
        return Layout("v1", root, controllers)
    raise PmdError("no cgroup filesystem is mounted",
                   hint=f"mount cgroup2 (or the v1 controllers) on {root}")


def _layout_of_tree(root: str) -> Layout:
    """The layout of a directory tree shaped like /sys/fs/cgroup (a test's fake tree): v2 if
    root/cgroup.controllers exists (only cgroup2 has that file), else v1 with one directory per
    controller, named like the mount points ("cpu,cpuacct" is two controllers)."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return Layout("v2", root, {})
    controllers: dict[str, str] = {}
    try:
        names = sorted(os.listdir(root))
    except OSError as e:
        raise PmdError(f"cannot read cgroup root: {root}: {e.strerror}") from e
    for name in names:
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            for ctl in name.split(","):
                if ctl in _KNOWN_V1:
                    controllers.setdefault(ctl, path)
    if controllers:
        return Layout("v1", root, controllers)
    raise PmdError(f"no cgroup hierarchy found under {root}")


_host_layout: Layout | None = None


def detect(root: str | os.PathLike[str] | None = None) -> Layout:
    """The cgroup layout of this host (from /proc/self/mountinfo, cached for the process), or of
    the tree at root when given. Raises PmdError if there is none."""
    global _host_layout
    if root is not None:
        return _layout_of_tree(os.fspath(root))
    if _host_layout is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as e:
            raise PmdError(f"cannot read /proc/self/mountinfo: {e.strerror}") from e
        _host_layout = parse_mountinfo(text)
    return _host_layout


# --- file helpers ------------------------------------------------------------------------------


def _write(path: str, value: str, what: str) -> None:
    """Write value to a cgroup control file in one write(2); the kernel parses each write whole.
    Raises PmdError saying what could not be done."""
    _write_each(path, [(value, what)])


def _write_each(path: str, items: list[tuple[str, str]]) -> None:
    """Write each (value, what) of items to one control file, one write(2) apiece through one
    open file (devices.allow, say, takes one rule per write).

    O_CREAT is harmless on cgroupfs (the file exists or the open fails) and lets the same code
    fill a test's fake tree. Raises PmdError saying what the refused value was for.
    """
    done = 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            for value, _ in items:
                os.write(fd, value.encode())
                done += 1
        finally:
            os.close(fd)
    except OSError as e:
        what = items[min(done, len(items) - 1)][1]
        reason = e.strerror
        if e.errno in (errno.EACCES, errno.EPERM) and not os.path.exists(path):
            # cgroupfs answers O_CREAT of a missing file with EACCES, which would mislead.
            reason = "No such file or directory (is the controller enabled?)"
        raise PmdError(f"cannot {what}: {path}: {reason}") from e


def read_control(path: str) -> str | None:
    """The content of a control file, or None if it does not exist: missing, or its cgroup
    removed between our open and read (the kernel then says ENODEV).

    Plain os calls: open() costs twice as much here, and its first use of the ascii codec
    an import.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENODEV):
            return None
        raise PmdError(f"cannot read {path}: {e.strerror}") from e
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    except OSError as e:
        if e.errno == errno.ENODEV:
            return None
        raise PmdError(f"cannot read {path}: {e.strerror}") from e
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", "replace")


def keyed(text: str | None) -> dict[str, int]:
    """Parse "key value" lines (memory.events, memory.oom_control, cpu.stat, pids.events)."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _mkdir(path: str) -> bool:
    """mkdir that tolerates an existing directory; True if it was created now."""
    try:
        os.mkdir(path, 0o755)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        raise PmdError(f"cannot create cgroup: {path}: {e.strerror}") from e


def _check_name(value: str, what: str, allow_slash: bool = False) -> None:
    parts = value.split("/") if allow_slash else [value]
    if not value or any(p in ("", ".", "..") for p in parts) or (not allow_slash and "/" in value):
        raise UsageError(f"invalid cgroup {what}: {value!r}")


# --- the cgroup of one container ---------------------------------------------------------------


class Cgroup:
    """The cgroup (v2) or cgroups (one per v1 controller) of one container.

    root overrides the mount root (/sys/fs/cgroup) and makes detection look at that tree instead
    of /proc/self/mountinfo: the unit tests point it at a fake tree. layout, if given, wins.
    blkio: on v1, a directory in the blkio hierarchy too (for Limits.blkio_throttle); the
    same value each time the container's Cgroup is made, so that remove() finds it.
    """

    def __init__(self, container_id: str, parent: str = DEFAULT_PARENT,
                 root: str | os.PathLike[str] | None = None, layout: Layout | None = None,
                 blkio: bool = False):
        _check_name(container_id, "name")
        if parent.strip("/"):  # "" or "/": at the hierarchy's root, as an OCI cgroupsPath may be
            _check_name(parent.strip("/"), "parent", allow_slash=True)
        self.id = container_id
        self.parent = parent.strip("/")
        self.layout = layout or detect(root)
        self.version = self.layout.version
        # The hierarchies we use, keyed by controller ("" on v2); self.dirs holds the container's
        # directory in each. Controllers mounted together (cpu,cpuacct) share one directory,
        # listed once under the first name.
        self._mounts: dict[str, str] = {}
        self._reused = False
        # What create() could not apply but Docker would run without (for the CLI to print).
        self.warnings: list[str] = []
        if self.version == "v2":
            self._mounts[""] = self.layout.root
        else:
            for ctl in (*V1_CONTROLLERS, *(("blkio",) if blkio else ())):
                mnt = self.layout.controllers.get(ctl)
                # Co-mounted controllers have the same mount point in mountinfo: one directory.
                if mnt is not None and mnt not in self._mounts.values():
                    self._mounts[ctl] = mnt
        self.dirs: dict[str, str] = {
            ctl: os.path.join(mnt, self.parent, self.id) for ctl, mnt in self._mounts.items()
        }

    def __repr__(self) -> str:
        return f"Cgroup({self.id!r}, parent={self.parent!r}, version={self.version!r})"

    def controller_dir(self, ctl: str) -> str | None:
        """The directory holding ctl's files (v1: via a co-mounted controller if need be)."""
        if self.version == "v2":
            return self.dirs[""]
        mnt = self.layout.controllers.get(ctl)
        if mnt is None:
            return None
        return os.path.join(mnt, self.parent, self.id)

    def _need(self, ctl: str, why: str) -> str:
        path = self.controller_dir(ctl)
        if path is None:
            raise PmdError(f"cannot {why}: the cgroup v1 {ctl} controller is not mounted")
        return path

    # create ------------------------------------------------------------------------------------

    def create(self, limits: Limits | None = None) -> None:
        """Create the container's cgroup(s) and write the limits, before any process joins.

        Directories that already exist are reused (and their limits rewritten). Raises PmdError
        naming the file the kernel refused, or saying which controller a limit needs that this
        host lacks; a cgroup this call created is removed again before raising. What Docker
        would only warn about (no swap accounting) goes to self.warnings.
        """
        limits = limits or Limits()
        self._reused = False
        self.warnings.clear()
        try:
            if self.version == "v2":
                self._create_v2(limits)
            else:
                self._create_v1(limits)
        except BaseException:
            # A half-made cgroup (say, the kernel refused a limit) must not outlive the attempt;
            # but one that was there before may hold processes, and is not ours to remove here.
            if not self._reused:
                try:
                    self.remove()
                except PmdError:
                    pass
            raise

    def _mkdir_own(self, mount: str, parents_made: bool = False) -> bool:
        """mkdir the container's directory under mount (reusing one that exists); False if a
        parent directory is missing, unless parents_made, when that is an error.

        Only the first container after boot (or after a cleanup) misses its parents; making
        them first would cost every start a failing mkdir per level and hierarchy.
        """
        path = os.path.join(mount, self.parent, self.id)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            self._reused = True
        except OSError as e:
            if e.errno == errno.ENOENT and not parents_made:
                return False
            raise PmdError(f"cannot create cgroup: {path}: {e.strerror}") from e
        return True

    def _parent_levels(self, mount: str) -> list[str]:
        """The directories of our parent under mount, outermost first."""
        levels, level = [], mount
        for part in self.parent.split("/"):
            level = os.path.join(level, part)
            levels.append(level)
        return levels

    def _create_v2(self, limits: Limits) -> None:
        root = self.layout.root
        path = self.dirs[""]
        # Before any mkdir: a malformed rule leaves nothing behind.
        devices = device_program(limits.devices) if limits.devices else None
        made = self._mkdir_own(root)
        # A new cgroup's cgroup.controllers lists the controllers its parent enables for it:
        # with all of ours there (every container but the first), nothing is left to check or
        # enable.
        if not made or not set(V2_CONTROLLERS + (("io",) if limits.blkio_throttle else ())
                               ).issubset(
                (read_control(os.path.join(path, "cgroup.controllers")) or "").split()):
            self._enable_v2(limits)
            if not made:
                self._mkdir_own(root, parents_made=True)

        if limits.memory is not None:
            _write(os.path.join(path, "memory.max"), str(limits.memory), "set memory limit")
            total = limits.swap_total()
            swap_max = os.path.join(path, "memory.swap.max")
            # v2 limits swap alone (v1 limits memory + swap); the file exists only when the
            # kernel accounts swap, and Docker then runs without a swap limit.
            if total is not None and os.path.exists(swap_max):
                value = "max" if total == -1 else str(total - limits.memory)
                _write(swap_max, value, "set swap limit")
            elif total != -1:
                self.warnings.append(NO_SWAP_LIMIT)
        if limits.cpus is not None:
            _write(os.path.join(path, "cpu.max"), f"{cpu_quota(limits.cpus)} {CPU_PERIOD}",
                   "set cpu quota")
        elif limits.cpu_period or limits.cpu_quota:
            _write(os.path.join(path, "cpu.max"), f"{limits.cpu_quota or 'max'} "
                   f"{limits.cpu_period or CPU_PERIOD}", "set cpu quota")
        if limits.memory_reservation is not None:
            _write(os.path.join(path, "memory.low"), str(limits.memory_reservation),
                   "set memory reservation")
        if limits.oom_kill_disable:
            self.warnings.append("Your kernel does not support OomKillDisable. OomKillDisable "
                                 "discarded.")
        if limits.cpu_rt_period or limits.cpu_rt_runtime:  # v2 has no real-time groups
            self.warnings.append("Your kernel does not support cgroup cpu real-time period "
                                 "and runtime. Discarded.")
        for name in ("cpus", "mems"):
            value = getattr(limits, f"cpuset_{name}")
            if value:
                _write(os.path.join(path, f"cpuset.{name}"), value, f"set cpuset.{name}")
        if limits.cpu_shares is not None:
            _write(os.path.join(path, "cpu.weight"), str(shares_to_weight(limits.cpu_shares)),
                   "set cpu weight")
        if limits.pids is not None:
            _write(os.path.join(path, "pids.max"), str(limits.pids), "set pids limit")
        for device, keys in _io_max(limits.blkio_throttle).items():
            _write(os.path.join(path, "io.max"), f"{device} {keys}",
                   f"set the block I/O limits of device {device}")
        if devices is not None:
            # v2 has no devices controller: an eBPF program attached to the cgroup decides each
            # access instead (replacing the program of a reused cgroup).
            _attach_device_program(path, devices)

    def _enable_v2(self, limits: Limits) -> None:
        """Make our parent directories and enable our controllers from the root down to them;
        first check that the root has every controller a limit needs."""
        root = self.layout.root
        available = set((read_control(os.path.join(root, "cgroup.controllers")) or "").split())
        for ctl, needed in (("memory", limits.memory is not None),
                            ("pids", limits.pids is not None),
                            ("cpu", limits.cpus is not None or limits.cpu_shares is not None),
                            ("io", bool(limits.blkio_throttle))):
            if needed and ctl not in available:
                raise PmdError(f"cannot apply the {ctl} limit: the cgroup v2 {ctl} controller is "
                               f"not available in {root}")
        # io only for a container that limits it: enabled, it costs every container's I/O
        self.enable_controllers([c for c in (*V2_CONTROLLERS,
                                             *(("io",) if limits.blkio_throttle else ()))
                                 if c in available])

    def enable_controllers(self, wanted: list[str]) -> None:
        """Make our parent directories (v2) and enable the controllers wanted (which the root
        has) from the root down to them. Raises PmdError."""
        root = self.layout.root
        # A controller's files appear in a cgroup only if every ancestor lists it in
        # cgroup.subtree_control, so enable it at each level from the root down to our parent.
        # (The "no internal processes" rule allows this: the root is exempt and our parent
        # directories never hold processes themselves.)
        for level in (root, *self._parent_levels(root)):
            _mkdir(level)
            control = os.path.join(level, "cgroup.subtree_control")
            current = {w.lstrip("+") for w in (read_control(control) or "").split()}
            missing = [c for c in wanted if c not in current]
            if missing:
                _write(control, " ".join("+" + c for c in missing), "enable cgroup controllers")

    def _create_v1(self, limits: Limits) -> None:
        # Check first that every controller a limit needs is mounted: fail before any mkdir.
        mem = self._need("memory", "set memory limit") if limits.memory is not None else None
        cpu = (self._need("cpu", "set cpu limit")
               if limits.cpus is not None or limits.cpu_shares is not None
               or limits.cpu_period or limits.cpu_quota
               or limits.cpu_rt_period is not None or limits.cpu_rt_runtime is not None
               else None)
        if limits.memory_reservation is not None or limits.oom_kill_disable or \
                limits.memory_swappiness not in (None, -1):
            mem = self._need("memory", "set memory limit")
        if limits.cpuset_cpus or limits.cpuset_mems:
            self._need("cpuset", "set cpuset")
        pids = self._need("pids", "set pids limit") if limits.pids is not None else None
        dev = self._need("devices", "set device rules") if limits.devices else None
        if limits.blkio_throttle and "blkio" not in self.dirs:
            raise PmdError("cannot set block I/O limits: the cgroup v1 blkio controller is not "
                           "mounted" if "blkio" not in self.layout.controllers else
                           "cannot set block I/O limits: Cgroup made without blkio=True")

        for ctl, mount in self._mounts.items():
            if not self._mkdir_own(mount):
                for level in self._parent_levels(mount):
                    if _mkdir(level) and ctl == "cpuset":
                        self._fill_cpuset(level, mount)
                        # The kernel then copies cpus and mems into each container's cpuset.
                        _write(os.path.join(level, "cgroup.clone_children"), "1",
                               "set cgroup.clone_children")
                self._mkdir_own(mount, parents_made=True)
            if ctl == "cpuset":
                self._fill_cpuset(self.dirs[ctl], mount)

        if mem is not None and limits.memory_reservation is not None:
            _write(os.path.join(mem, "memory.soft_limit_in_bytes"),
                   str(limits.memory_reservation), "set memory reservation")
        if mem is not None and limits.memory_swappiness not in (None, -1):
            _write(os.path.join(mem, "memory.swappiness"), str(limits.memory_swappiness),
                   "set memory swappiness")
        if mem is not None and limits.oom_kill_disable:
            _write(os.path.join(mem, "memory.oom_control"), "1", "disable the OOM killer")
        for name in ("cpus", "mems"):
            value = getattr(limits, f"cpuset_{name}")
            if value:
                _write(os.path.join(self.dirs["cpuset"], f"cpuset.{name}"), value,
                       f"set cpuset.{name}")
        if mem is not None and limits.memory is not None:
            # memory + swap can never be below memory, and a new cgroup starts with both
            # unlimited: so the memory limit goes first, then memsw.
            _write(os.path.join(mem, "memory.limit_in_bytes"), str(limits.memory),
                   "set memory limit")
            total = limits.swap_total()
            mount = self.layout.controllers["memory"]
            # memory.memsw.* exist only with swap accounting (CONFIG_MEMCG_SWAP, not
            # swapaccount=0); without it Docker warns and applies no swap limit.
            if not os.path.exists(os.path.join(mount, "memory.memsw.limit_in_bytes")):
                if total != -1:
                    self.warnings.append(NO_SWAP_LIMIT)
            elif total is not None:
                _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), str(total),
                       "set memory+swap limit")
        if cpu is not None:
            self._set_cpu_v1(cpu, limits)
        if pids is not None:
            _write(os.path.join(pids, "pids.max"), str(limits.pids), "set pids limit")
        for kind, device, value in limits.blkio_throttle:
            _write(os.path.join(self.dirs["blkio"], f"blkio.throttle.{kind}_device"),
                   f"{device} {value}", f"set the {kind} limit of block device {device}")
        if dev is not None:
            _set_devices_v1(dev, limits)

    def _set_cpu_v1(self, cpu: str, limits: Limits) -> None:
        """The cpu controller's files, in the order the kernel accepts them."""
        if limits.cpus is not None:
            # The quota is a share of the period in effect, so the period is set first;
            # a new cgroup has the kernel's default, which is Docker's.
            if self._reused:
                _write(os.path.join(cpu, "cpu.cfs_period_us"), str(CPU_PERIOD),
                       "set cpu period")
            _write(os.path.join(cpu, "cpu.cfs_quota_us"), str(cpu_quota(limits.cpus)),
                   "set cpu quota")
        if limits.cpu_shares is not None:
            _write(os.path.join(cpu, "cpu.shares"), str(limits.cpu_shares), "set cpu shares")
        if limits.cpu_period or (self._reused and limits.cpu_quota):
            _write(os.path.join(cpu, "cpu.cfs_period_us"),
                   str(limits.cpu_period or CPU_PERIOD), "set cpu period")
        if limits.cpu_quota:
            _write(os.path.join(cpu, "cpu.cfs_quota_us"), str(limits.cpu_quota),
                   "set cpu quota")
        # the period first: the kernel checks the runtime against it
        for name in ("period", "runtime"):
            value = getattr(limits, f"cpu_rt_{name}")
            if value is not None:
                _write(os.path.join(cpu, f"cpu.rt_{name}_us"), str(value),
                       f"set cpu real-time {name}")

    @staticmethod
    def _fill_cpuset(path: str, mount: str) -> None:
        """Give a v1 cpuset cgroup that has none its nearest ancestor's cpus and mems.

        A new cpuset cgroup starts with empty cpuset.cpus and cpuset.mems, and the kernel refuses
        to attach a task to a cpuset without CPUs or memory nodes (ENOSPC), so the values must be
        copied down. cgroup.clone_children on our parent makes the kernel do that for each
        container; the read check covers a parent another engine process has only just made.
        """
        def value(path: str, name: str) -> str:
            mine = os.path.join(path, name)
            text = (read_control(mine) or "").strip()
            if not text:
                if path == mount:
                    raise PmdError(f"cannot set up cpuset: {mine} is empty")
                text = value(os.path.dirname(path), name)
                _write(mine, text, "copy cpuset")
            return text

        for name in ("cpuset.cpus", "cpuset.mems"):
            value(path, name)

    # membership --------------------------------------------------------------------------------

    def container_mounts(self) -> list[tuple[str, str, str]]:
        """(target, fstype, options) of the cgroup filesystems to mount read-only inside the
        container, after it has joined this cgroup and entered its own cgroup namespace, so it
        sees its own limits at the usual places (/sys/fs/cgroup/memory/memory.limit_in_bytes on
        v1, /sys/fs/cgroup/memory.max on v2) and nothing of the host's tree."""
        if self.version == "v2":
            return [("/sys/fs/cgroup", "cgroup2", "")]
        by_mount: dict[str, list[str]] = {}
        for ctl, mnt in self.layout.controllers.items():
            by_mount.setdefault(mnt, []).append(ctl)
        return [(f"/sys/fs/cgroup/{os.path.basename(mnt)}", "cgroup", ",".join(sorted(ctls)))
                for mnt, ctls in sorted(by_mount.items())]

    def procs_files(self) -> list[str]:
        """The files the container's init writes "0" to (all of them) before execve, so that it
        and everything it forks is limited from its first instruction.

        On v1 these are the tasks files: "0" there moves the writing thread alone, which is the
        whole process while the init is single-threaded, and since Linux 5.5 such a move skips
        the global cgroup_threadgroup_rwsem that a cgroup.procs write takes (an RCU grace period,
        ~10 ms, after a quiet spell: see prime_migration()). v2 moves single threads only inside
        threaded subtrees, so there it is cgroup.procs.
        """
        name = "cgroup.procs" if self.version == "v2" else "tasks"
        return [os.path.join(d, name) for d in self.dirs.values()]

    def add(self, pid: int) -> None:
        """Move process pid (with all its threads) into the cgroup(s). Raises PmdError."""
        for d in self.dirs.values():
            _write(os.path.join(d, "cgroup.procs"), str(pid), f"add process {pid} to cgroup")

    def pids(self) -> list[int]:
        """The pids of the processes in the cgroup, in every hierarchy (v1), sorted."""
        found: set[int] = set()
        for d in self.dirs.values():
            # Walk so processes in nested cgroups (a container may make its own) count too.
            for sub, _dirs, _files in os.walk(d):
                text = read_control(os.path.join(sub, "cgroup.procs"))
                found.update(int(x) for x in (text or "").split() if x.isdigit())
        return sorted(found)

    def kill(self, sig: int = SIGKILL) -> int:
        """Send sig to every process in the cgroup; returns how many were signalled.

        For SIGKILL, v2's cgroup.kill (Linux 5.14) kills the whole subtree atomically; on v1 the
        freezer stops the members first, so none can fork a child that the kill would miss.
        """
        if sig == SIGKILL and self.version == "v2":
            kill_file = os.path.join(self.dirs[""], "cgroup.kill")
            if os.path.exists(kill_file):
                n = len(self.pids())
                _write(kill_file, "1", "kill cgroup")
                return n
        frozen = sig == SIGKILL and self._freeze(True)
        try:
            n = 0
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                    n += 1
                except ProcessLookupError:
                    pass
            return n
        finally:
            if frozen:
                # A frozen task receives the SIGKILL only when it is thawed.
                self._freeze(False)

    def _freeze(self, on: bool) -> bool:
        """Freeze (or thaw) the v1 freezer cgroup; False if there is none to use."""
        d = self.dirs.get("freezer")
        if d is None or not os.path.isdir(d):
            return False
        state = os.path.join(d, "freezer.state")
        try:
            _write(state, "FROZEN" if on else "THAWED", "freeze cgroup" if on else "thaw cgroup")
        except PmdError:
            if os.path.isdir(d):
                raise
            return False  # removed meanwhile: nothing left to freeze or thaw
        if on:
            # FREEZING until every task has stopped; a bounded wait, killing anyway after it.
            # None: the cgroup went meanwhile (its last task exited and it was removed).
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                now = read_control(state)
                if now is None or now.strip() == "FROZEN":
                    break
                time.sleep(0.001)
        return True

    # status ------------------------------------------------------------------------------------

    def oom_killed(self) -> bool:
        """True if the kernel's OOM killer killed a process of this cgroup (under its limit)."""
        if self.version == "v2":
            events = keyed(read_control(os.path.join(self.dirs[""], "memory.events")))
        else:
            mem = self.controller_dir("memory")
            events = keyed(read_control(os.path.join(mem, "memory.oom_control"))) if mem else {}
        return events.get("oom_kill", 0) > 0

    # removal -----------------------------------------------------------------------------------

    def remove(self, timeout: float = 2.0) -> None:
        """Kill what still runs in the cgroup and remove its directories; idempotent.

        rmdir fails with EBUSY while a member is still exiting (it leaves the cgroup only at the
        end of exit), so it is retried for up to timeout seconds. Raises PmdError after that.
        """
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            busy = None
            for d in self.dirs.values():
                busy = self.rmdir_tree(d) or busy
            if busy is None:
                return
            if time.monotonic() >= deadline:
                raise PmdError(f"cannot remove cgroup: {busy}: {os.strerror(errno.EBUSY)}",
                               hint="a process in it does not exit")
            # Killing again each round catches children forked after the previous round; an
            # empty cgroup is only waiting for its last task's exit to finish, which is quick,
            # and freezing it for nothing would cost more than the wait.
            if self.pids():
                self.kill(SIGKILL)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    @staticmethod
    def rmdir_tree(top: str) -> str | None:
        """rmdir top and any cgroups nested in it, deepest first; the first busy path or None."""
        try:
            os.rmdir(top)  # the usual case, one syscall: no nested cgroup, no process left
            return None
        except FileNotFoundError:
            return None
        except OSError:
            pass  # EBUSY: nested cgroups, or tasks still exiting (ENOTEMPTY off cgroupfs)
        for sub, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(sub)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno == errno.EBUSY:
                    return sub
                raise PmdError(f"cannot remove cgroup: {sub}: {e.strerror}") from e
        return None


_primed = False


def prime_migration() -> None:
    """Start paying, in a background thread, for the container's move into its cgroup, where
    that move is expensive.

    Moving a whole process between cgroups (a write to cgroup.procs) takes the kernel's
    cgroup_threadgroup_rwsem for writing; after a quiet spell that first waits for an RCU grace
    period (4 to 20 ms here), and for about one more grace period afterwards further moves are
    cheap. Rewriting our own (unchanged) membership while the engine prepares the container moves
    that wait off the critical path: the child's own move, a few milliseconds later, is then
    fast. Harmless if it is too early or too late, though the cgroup mkdirs meanwhile wait for it
    (they need cgroup_mutex, which the priming write holds through the grace period).

    Only v2 needs this, and v1 before Linux 5.5: there the container joins by moving its single
    thread (see procs_files()), which skips that lock.
    """
    global _primed
    if _primed:
        return
    _primed = True
    try:
        layout = detect()
        if layout.version == "v1" and _kernel_version() >= (5, 5):
            return
        procs = _own_procs_file(layout)
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC) if procs else -1
    except (OSError, PmdError):
        return
    if fd < 0:
        return

    def rewrite() -> None:
        try:
            os.write(fd, b"0")  # "0": the writing process, i.e. all of the engine
        except OSError:
            pass
        finally:
            os.close(fd)

    # A bare thread: threading costs milliseconds to import, and Thread.start() would wait for
    # the new thread to get the GIL. Like a daemon thread it does not hold up the exit. It only
    # writes: anything else there would wait for the GIL, and so delay the write.
    _thread.start_new_thread(rewrite, ())


def _own_procs_file(layout: Layout) -> str | None:
    """The cgroup.procs file of this process's own cgroup in one hierarchy of layout."""
    for line in (read_control("/proc/self/cgroup") or "").splitlines():
        _, ctls, path = line.split(":", 2)
        if layout.version == "v2":
            mount = layout.root if ctls == "" else None
        else:
            mount = next((layout.controllers[c] for c in ctls.split(",")
                          if c in layout.controllers), None)
        if mount:
            return os.path.join(mount, path.lstrip("/"), "cgroup.procs")
    return None


def _kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel: "6.18.44-fc" -> (6, 18)."""
    major, _, rest = os.uname().release.partition(".")
    minor = ""
    for c in rest:
        if not c.isdigit():
            break
        minor += c
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return 0, 0


def _set_devices_v1(dev: str, limits: Limits) -> None:
    """The container's device rules into devices.allow/deny."""
    # A new cgroup inherits its parent's rules, and a child can only narrow them, which
    # is why the rules are set per container and the parent stays allow-all. One open
    # per run of rules for the same file; the kernel takes one rule per write.
    runs: list[tuple[str, list[tuple[str, str]]]] = []
    for verb, rule in limits.devices:
        if not runs or runs[-1][0] != verb:
            runs.append((verb, []))
        runs[-1][1].append((rule, f"set device rule {verb} {rule}"))
    for verb, items in runs:
        _write_each(os.path.join(dev, f"devices.{verb}"), items)
