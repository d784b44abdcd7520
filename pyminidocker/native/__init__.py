"""The C shim's Python wrappers. This package is the only importer of the compiled modules, and
this module, its core, holds what a container start calls (spawn.c, mount.c, confine.c,
relay.c, devices.c): it is the one of them that a `run` imports, and the only importer of
pyminidocker._pmd. The rest of csrc/ has a module each, imported by the code that calls it,
over this module's ffi, lib and _raise: native.monitor (detached containers under
pmd-monitor: monitor.c, specio.c), native.extract (layer extraction: extract.c, whose
pyminidocker._pmd_extract it imports on its first use, as that loads libarchive and
libcrypto, and with them thirteen more libraries that a container start does without; see
csrc/build_ffi.py), native.netlink (a veth on a bridge: netlink.c) and native.seccomp
(confine.c's seccomp compiler, which a start needs only when the store's cache of its
programs misses).

The engine's modules import these; programs import pyminidocker.shim, the public face of their
names (docs/shim.md), which adds what needs the engine's policy: Docker's default seccomp
profile behind SECCOMP_DEFAULT.

What is public: the names in the __all__ of this module and of its submodules, with the
signatures, fields and exceptions their docstrings give. API_VERSION versions them apart from
the package (see docs/shim.md, "Stability").

Each wrapper checks its arguments, allocates with ffi.new, calls, and turns a -1 return into
an OSError built from struct pmd_error, so Python's own subclasses (FileNotFoundError,
PermissionError, ...) apply and the message names the operation and the path.
"""
from __future__ import annotations

import os
from errno import EINTR

try:
    import _signal  # the signal module without its enum wrappers (enum costs ms)
except ImportError:  # pragma: no cover - not CPython
    import signal as _signal

from pyminidocker.record import dataclass, field

TYPE_CHECKING = False  # typing is not imported at run time: this module is on the start path
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    # cffi ships no type information: its objects (structs, arrays, char *) are Any to mypy.
    CData = Any

try:
    from pyminidocker._pmd import ffi, lib
except ImportError as e:  # pragma: no cover - only when the C module was not built
    raise ImportError(
        "pyminidocker's C module is not built: run `make` (or `pip install .`)"
    ) from e

# (major, minor) of the public API, the __all__ of this module and of its submodules: minor
# grows when something is added, major when something public changes or goes (after a minor
# release that warns about it).
API_VERSION = (1, 4)  # 1.1: seccomp_compile, SECCOMP_PROG_MAX, SpawnSpec.seccomp as a program;
# 1.2: monitor_start(restart=RestartPolicy(...), health=HealthCheck(...)), RESTART_*;
# 1.3: CLONE_NEWUSER, SpawnSpec.hooks/hooks_stdin/uid_map/gid_map
# 1.4: SpawnSpec.create_hooks/create_hooks_stdin/hold_mounted (a second hold, before pivot_root)

__all__ = [
    "API_VERSION",
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "MS_BIND",
    "MS_NOATIME",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_RELATIME",
    "MS_REMOUNT",
    "MS_SHARED",
    "MS_SLAVE",
    "MS_STRICTATIME",
    "SECCOMP_DEFAULT",
    "SECCOMP_OFF",
    "TRACE_PHASES",
    "Mount",
    "Process",
    "SpawnSpec",
    "cgroup_devices",
    "overlay_mount",
    "relay",
    "spawn",
    "umount",
    "wait",
]


def _raise(err: CData) -> None:
    """Raise the OSError subclass matching err.err, with operation and path in the message."""
    op = ffi.string(err.op).decode(errors="replace")
    path = ffi.string(err.path).decode(errors="replace")
    code = err.err or 5  # EIO if C forgot to set it
    msg = f"{op}: {os.strerror(code)}"
    exc = OSError(code, msg, path or None)
    exc.op = op  # type: ignore[attr-defined]  # lets callers tell exec failures from setup ones
    raise exc


# ---- containers (spawn.c, mount.c, confine.c) ----------------------------------------------
# Kernel ABI constants (Python 3.11's os module has no CLONE_NEW*; these never change).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

SECCOMP_OFF = 0      # SpawnSpec.seccomp: no filter
SECCOMP_DEFAULT = 1  # SpawnSpec.seccomp: Docker's default profile for the spec's cap_bounding


@dataclass(frozen=True)
class Mount:
    """One mount inside the container: a bind (flags has MS_BIND, fstype None) or a filesystem.

    Fields: target, source=None, fstype=None, flags=0 (MS_*), data=None, mkdir=False.
    target is absolute inside the container and resolved within the rootfs (symlinks cannot
    leave it); mkdir creates it (a file when a bind source is a file).
    """

    target: str
    source: str | None = None
    fstype: str | None = None
    flags: int = 0
    data: str | None = None
    mkdir: bool = False


@dataclass
class SpawnSpec:
    """What pmd_spawn executes (see csrc/pmd.h); Python decides every policy in it.

    argv (required), env ("K=V" list; None = empty environment), namespaces (CLONE_NEW* mask),
    rootfs, readonly_root, mounts (list of Mount), dev_setup, masked_paths, readonly_paths,
    hostname, cwd, uid/gid (-1 = unchanged), groups (None = unchanged), the five capability
    masks cap_bounding/effective/permitted/inheritable/ambient (all None = keep the inherited
    sets; any set = apply all five, None counting as 0), rlimits ({RLIMIT_*: (soft, hard)}),
    no_new_privs, seccomp (a program of seccomp_compile; SECCOMP_OFF or b"" = none;
    SECCOMP_DEFAULT = Docker's default profile for the capabilities in cap_bounding),
    seccomp_flags (SECCOMP_FILTER_FLAG_* for seccomp(2)), cgroup_procs (the cgroup.procs files,
    or on v1 the tasks files, to join), stdin/stdout/stderr (-1 = inherit), setsid, ctty,
    hold, join_pid (> 0: enter the `namespaces` of that running process instead of creating
    them, as docker exec does), console (a pty from the container's own /dev/pts as stdio
    and controlling tty; the master is Process.console_fd, which the caller then owns and
    closes), hooks ((path, argv, env, timeout seconds or 0) run in the container just before
    execve, the OCI startContainer hooks) reading hooks_stdin (an fd, from offset 0; -1 =
    /dev/null), create_hooks and create_hooks_stdin (likewise, the OCI createContainer
    hooks: run after the mounts and before pivot_root, their paths in the caller's
    filesystem), hold_mounted (with hold: the first release() returns once the child's mounts
    and create_hooks are done, the process still held before pivot_root; the second lets it
    go on), uid_map/gid_map (with CLONE_NEWUSER and hold: the child's id maps, as
    /proc/PID/uid_map takes them), share_pid/share_namespaces (CLONE_NEWPID, CLONE_NEWIPC:
    those namespaces of that running process instead of new ones, --pid/--ipc container:X),
    mounts_joined (the caller is in the mount namespace to set up: a joined one, without
    CLONE_NEWNS; without either, rootfs is entered by chroot and nothing is mounted),
    userns_joined (the caller is in the user namespace to use: the child becomes its root),
    root_propagation (MS_SHARED/SLAVE/PRIVATE/UNBINDABLE [| MS_REC] for the new root).
    """

    argv: list[str]
    env: list[str] | None = None
    namespaces: int = 0
    rootfs: str | os.PathLike[str] | None = None
    readonly_root: bool = False
    mounts: list[Mount] = field(default_factory=list)
    dev_setup: bool = False
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    hostname: str | None = None
    cwd: str | None = None
    uid: int = -1
    gid: int = -1
    groups: list[int] | None = None
    cap_bounding: int | None = None
    cap_effective: int | None = None
    cap_permitted: int | None = None
    cap_inheritable: int | None = None
    cap_ambient: int | None = None
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    no_new_privs: bool = False
    seccomp: bytes | int = SECCOMP_OFF
    seccomp_flags: int = 0
    cgroup_procs: list[str] = field(default_factory=list)
    stdin: int = -1
    stdout: int = -1
    stderr: int = -1
    setsid: bool = False
    ctty: bool = False
    hold: bool = False
    join_pid: int = 0
    console: bool = False
    hooks: list[tuple[str, list[str], list[str], int]] = field(default_factory=list)
    hooks_stdin: int = -1
    create_hooks: list[tuple[str, list[str], list[str], int]] = field(default_factory=list)
    create_hooks_stdin: int = -1
    hold_mounted: bool = False
    uid_map: str | None = None
    gid_map: str | None = None
    share_pid: int = 0
    share_namespaces: int = 0
    mounts_joined: bool = False
    userns_joined: bool = False
    root_propagation: int = 0


def _cstr(keep: list[CData], s: str | bytes | os.PathLike[str] | None) -> CData:
    if s is None:
        return ffi.NULL
    c = ffi.new("char[]", os.fsencode(s))
    keep.append(c)
    return c


def _cstrv(keep: list[CData],
           items: Iterable[str | bytes | os.PathLike[str]] | None) -> CData:
    """A NULL-terminated char *[] (NULL for None), kept alive by keep."""
    if items is None:
        return ffi.NULL
    arr = ffi.new("char *[]", [_cstr(keep, s) for s in items] + [ffi.NULL])
    keep.append(arr)
    return arr


TRACE_PHASES = ("clone", "start", "process", "mounts", "pivot", "confine")


class Process:
    """A spawned container process: pid in our namespace; release() once if it was held."""

    __slots__ = ("_held", "_proc", "pid")

    def __init__(self, pid: int, proc: CData = None, held: bool = False) -> None:
        self.pid = pid
        self._proc = proc
        self._held = held

    @property
    def held(self) -> bool:
        return self._held

    @property
    def console_fd(self) -> int | None:
        """The pty master when spawned with console=True (after release, if held); the caller
        owns it."""
        fd = self._proc.console_fd if self._proc is not None else -1
        return fd if fd >= 0 else None

    def release(self) -> None:
        """Let a held child go on, to execve or to its second hold (hold_mounted: then it is
        held again); raises the child's setup error as OSError (child reaped)."""
        if not self._held:
            raise ValueError("process is not held")
        self._held = False
        err = ffi.new("struct pmd_error *")
        if lib.pmd_spawn_release(self._proc, err) != 0:
            _raise(err)
        self._held = self._proc.release_fd >= 0

    def abort(self) -> None:
        """Kill a held child before it runs anything, and reap it."""
        if self._held:
            self._held = False
            os.close(self._proc.release_fd)
            os.close(self._proc.error_fd)
            os.waitpid(self.pid, 0)

    def wait(self) -> int:
        """Reap the process; return its exit code, or -signal if it was killed."""
        return wait(self.pid)

    def trace(self) -> dict[str, float]:
        """Milliseconds spent in each phase up to execve (see PMD_TRACE_* in pmd.h): "start" is
        clone to child running, "process" cgroups/stdio/hostname, "mounts" the rootfs and its
        mounts, "pivot" pivot_root and the masked/read-only paths, "confine" rlimits, seccomp,
        ids, capabilities. Phases not reached are left out."""
        if self._proc is None:
            return {}
        t = list(self._proc.trace_ns)
        out: dict[str, float] = {}
        for i in range(1, len(TRACE_PHASES)):
            if t[i] and t[i - 1]:
                out[TRACE_PHASES[i]] = (t[i] - t[i - 1]) / 1e6
        return out


def spawn(spec: SpawnSpec) -> Process:
    """Clone a process in new namespaces and exec spec.argv in it (see pmd_spawn in pmd.h).

    Raises OSError from the parent or from the child's setup: FileNotFoundError with argv[0] for
    a command not found (errno ENOENT, op "exec"), PermissionError (EACCES) for one that cannot be
    executed, or the errno, operation and path of the mount/confinement step that failed. On error
    nothing is left behind. The GIL is released while C waits for the child's exec.
    """
    keep: list[CData] = []
    s = _c_spec(spec, keep)
    proc = ffi.new("struct pmd_proc *")
    err = ffi.new("struct pmd_error *")
    if lib.pmd_spawn(s, proc, err) != 0:
        _raise(err)
    return Process(proc.pid, proc, bool(spec.hold))


def _c_spec(spec: SpawnSpec, keep: list[CData]) -> CData:
    """The struct pmd_spawn_spec for spec; keep holds the memory its pointers refer to."""
    if not spec.argv:
        raise ValueError("argv must not be empty")
    s = ffi.new("struct pmd_spawn_spec *")
    s.namespaces = spec.namespaces
    s.rootfs = _cstr(keep, spec.rootfs)
    s.readonly_root = spec.readonly_root
    _c_mounts(s, spec, keep)
    s.dev_setup = spec.dev_setup
    s.masked_paths = _cstrv(keep, spec.masked_paths or None)
    s.readonly_paths = _cstrv(keep, spec.readonly_paths or None)
    s.hostname = _cstr(keep, spec.hostname)
    s.argv = _cstrv(keep, spec.argv)
    s.envp = _cstrv(keep, spec.env)
    s.cwd = _cstr(keep, spec.cwd)
    s.uid = spec.uid
    s.gid = spec.gid
    if spec.groups is None:
        s.n_groups = -1
    else:
        gs = ffi.new("unsigned int[]", list(spec.groups) or [0])
        keep.append(gs)
        s.groups = gs
        s.n_groups = len(spec.groups)
    caps = (spec.cap_bounding, spec.cap_effective, spec.cap_permitted, spec.cap_inheritable,
            spec.cap_ambient)
    if any(c is not None for c in caps):
        s.set_caps = 1
        (s.cap_bounding, s.cap_effective, s.cap_permitted, s.cap_inheritable,
         s.cap_ambient) = (c or 0 for c in caps)
    _c_rlimits(s, spec, keep)
    s.no_new_privs = spec.no_new_privs
    _c_seccomp(s, spec, keep)
    s.cgroup_procs = _cstrv(keep, spec.cgroup_procs or None)
    s.stdin_fd, s.stdout_fd, s.stderr_fd = spec.stdin, spec.stdout, spec.stderr
    s.setsid = spec.setsid
    s.ctty = spec.ctty
    s.hold = spec.hold
    s.join_pid = spec.join_pid
    s.share_pid = spec.share_pid
    s.share_namespaces = spec.share_namespaces
    s.mounts_joined = spec.mounts_joined
    s.userns_joined = spec.userns_joined
    s.root_propagation = spec.root_propagation
    s.console = spec.console
    if spec.hooks:
        s.hooks, s.n_hooks = _c_hooks(spec.hooks, keep), len(spec.hooks)
    s.hooks_stdin_fd = spec.hooks_stdin
    if spec.create_hooks:
        s.create_hooks = _c_hooks(spec.create_hooks, keep)
        s.n_create_hooks = len(spec.create_hooks)
    s.create_hooks_stdin_fd = spec.create_hooks_stdin
    s.hold_mounted = spec.hold_mounted
    s.uid_map = _cstr(keep, spec.uid_map)
    s.gid_map = _cstr(keep, spec.gid_map)
    return s


def _c_mounts(s: CData, spec: SpawnSpec, keep: list[CData]) -> None:
    """s.mounts: the mounts made in the container's root, in order."""
    if not spec.mounts:
        return
    ms = ffi.new("struct pmd_mount[]", len(spec.mounts))
    keep.append(ms)
    for i, m in enumerate(spec.mounts):
        ms[i].source = _cstr(keep, m.source)
        ms[i].target = _cstr(keep, m.target)
        ms[i].fstype = _cstr(keep, m.fstype)
        ms[i].mount_flags = m.flags
        ms[i].data = _cstr(keep, m.data)
        ms[i].flags = lib.PMD_MOUNT_MKDIR if m.mkdir else 0
    s.mounts = ms
    s.n_mounts = len(spec.mounts)


def _c_rlimits(s: CData, spec: SpawnSpec, keep: list[CData]) -> None:
    """s.rlimits: the resource limits the shim sets before the exec."""
    if not spec.rlimits:
        return
    rl = ffi.new("struct pmd_rlimit[]", len(spec.rlimits))
    keep.append(rl)
    for i, (res, (soft, hard)) in enumerate(spec.rlimits.items()):
        rl[i].resource = res
        rl[i].soft = soft & 0xFFFFFFFFFFFFFFFF  # RLIM_INFINITY (-1) -> all ones
        rl[i].hard = hard & 0xFFFFFFFFFFFFFFFF
    s.rlimits = rl
    s.n_rlimits = len(spec.rlimits)


def _no_default_profile(cap_bounding: int | None) -> bytes:
    raise ValueError("seccomp: SECCOMP_DEFAULT is Docker's default profile, which "
                     "pyminidocker.shim provides: import the shim through that module")


# SECCOMP_DEFAULT's program for a bounding set (None: Docker's default set). The profile is
# policy, above this module, so pyminidocker.shim installs it; the engine passes compiled
# programs and never needs it.
default_seccomp: Callable[[int | None], bytes] = _no_default_profile


def _c_seccomp(s: CData, spec: SpawnSpec, keep: list[CData]) -> None:
    """s.seccomp_*: the compiled filter, none for SECCOMP_OFF."""
    program = spec.seccomp
    if program == SECCOMP_DEFAULT:
        program = default_seccomp(spec.cap_bounding)
    if isinstance(program, int):
        if program != SECCOMP_OFF:
            raise ValueError(f"seccomp: {program} is not SECCOMP_OFF, SECCOMP_DEFAULT or a program")
    elif program:
        prog = ffi.from_buffer("struct pmd_bpf_insn[]", program)
        keep.append(prog)
        s.seccomp_prog = prog
        s.seccomp_len = len(program) // ffi.sizeof("struct pmd_bpf_insn")
        s.seccomp_flags = spec.seccomp_flags


def _c_hooks(hooks: list[tuple[str, list[str], list[str], int]], keep: list[CData]) -> CData:
    """A struct pmd_hook[] of one stage's OCI hooks, each with its argv, environment and
    timeout."""
    hs = ffi.new("struct pmd_hook[]", len(hooks))
    keep.append(hs)
    for i, (path, argv, env, timeout) in enumerate(hooks):
        hs[i].path = _cstr(keep, path)
        hs[i].argv = _cstrv(keep, argv or [path])
        hs[i].envp = _cstrv(keep, env)
        hs[i].timeout = timeout
    return hs


def wait(pid: int) -> int:
    """waitpid(pid), retried on EINTR; the exit code, or -signal for a killed process."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# ffi.new zeroes what it allocates: for the relay's buffers, tens of microseconds of page faults
# on every attached start, for pages most containers never write to.
_new_uncleared = ffi.new_allocator(should_clear_after_alloc=False)


def relay(pid: int, src: Sequence[int], dst: Sequence[int], log_fd: int = -1) -> int:
    """Copy the output of the child pid from src to dst and log it to log_fd (Docker's
    json-file format; -1: no log) until pid has exited and its output is drained; reap it and
    return its exit code, or -signal (see pmd_relay_run in pmd.h).

    src: the read ends of its stdout and stderr pipes, or a pty's master alone (logged as
    stdout); relay() owns them and closes them. dst: where each goes (-1: only logged); a
    destination that fails (EPIPE) ends its stream, so the process's next write to it fails.
    Signal handlers run while it copies: the C loop returns to us on a signal (it watches
    the signal wakeup fd, which this sets for the call when it runs in the main thread) and is
    called again.

    Raises OSError (EBADF for an fd that is not open, ProcessLookupError for no such pid,
    ECHILD if pid is not our child).
    """
    if len(src) > 2 or len(dst) > 2:
        raise ValueError("a relay copies two streams at most: stdout and stderr")
    pidfd = wake_r = wake_w = -1
    old_wake = None
    r = _new_uncleared("struct pmd_relay *")  # 105 KiB that C sets up as it needs them
    r.priv[0] = r.status = 0
    r.src = [*src, -1, -1][:2]  # before the try: its finally closes what is left of them
    try:
        r.pid = pid
        pidfd = r.pidfd = os.pidfd_open(pid)
        r.dst = [*dst, -1, -1][:2]
        r.log_fd = log_fd
        # A signal's C handler writes to the wakeup fd, which the relay watches: one that
        # arrives while it is not in a system call is not missed (see pmd.h). Only the main
        # thread may set it; elsewhere, signals are seen when they interrupt a wait.
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            old_wake = _signal.set_wakeup_fd(wake_w)
            r.wake_fd = wake_r
        except ValueError:
            r.wake_fd = -1
        err = ffi.new("struct pmd_error *")
        while lib.pmd_relay_run(r, err) != 0:
            if err.err != EINTR:  # interrupted: signal handlers run here, then on it goes
                _raise(err)
    finally:
        if old_wake is not None:
            _signal.set_wakeup_fd(old_wake)
        for fd in (pidfd, wake_r, wake_w, *r.src):  # what is left open
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass  # a src fd that was not open (EBADF): the error being raised says so
    return os.waitstatus_to_exitcode(r.status)


def overlay_mount(lowerdirs: Sequence[str | os.PathLike[str]], target: str | os.PathLike[str],
                  upper: str | os.PathLike[str] | None = None,
                  work: str | os.PathLike[str] | None = None, readonly: bool = False,
                  volatile: bool = False) -> None:
    """Mount an overlay on target; lowerdirs top layer first (see pmd_overlay_mount; volatile:
    an upper layer used once, never synced).

    Raises OSError: ENOENT/ENOTDIR naming a missing lowerdir, EINVAL for a path containing
    ',' ':' or '\\', E2BIG for a lowerdir list too long for this kernel.
    """
    if not lowerdirs:
        raise ValueError("at least one lowerdir is needed")
    paths = [os.fsencode(p) for p in lowerdirs]
    if any(b":" in p for p in paths):  # the separator: C would split the path in two
        raise OSError(22, "overlay path: ':' is not allowed", os.fsdecode(next(
            p for p in paths if b":" in p)))
    lowers = b":".join(paths)
    err = ffi.new("struct pmd_error *")
    if lib.pmd_overlay_mount(lowers, os.fsencode(upper) if upper is not None else ffi.NULL,
                             os.fsencode(work) if work is not None else ffi.NULL,
                             os.fsencode(target),
                             (lib.PMD_OVERLAY_RDONLY if readonly else 0) |
                             (lib.PMD_OVERLAY_VOLATILE if volatile else 0), err) != 0:
        _raise(err)


def umount(target: str | os.PathLike[str], flags: int = 0) -> None:
    """umount2(target, flags); raises OSError (EINVAL if target is not a mount point)."""
    err = ffi.new("struct pmd_error *")
    if lib.pmd_umount(os.fsencode(target), flags, err) != 0:
        _raise(err)


# ---- cgroup v2 device rules (devices.c) ----------------------------------------------------

_DEV_ACCESS = {"m": lib.PMD_DEV_MKNOD, "r": lib.PMD_DEV_READ, "w": lib.PMD_DEV_WRITE}


def cgroup_devices(cgroup_dir: str | os.PathLike[str],
                   rules: Sequence[tuple[bool, str, int, int, str]]) -> None:
    """Attach a device program made of rules to the cgroup v2 directory cgroup_dir, replacing
    the one a previous call attached (see pmd_cgroup_devices in pmd.h).

    Each rule is (allow, type, major, minor, access): type "a" (any), "b" or "c"; major and
    minor -1 for any; access a non-empty string of "r", "w", "m". The first rule that matches
    an access decides it; an access no rule matches is refused (EPERM), so [] refuses every
    device.

    Raises ValueError for a malformed rule, OSError from the kernel: PermissionError (EPERM)
    without the capabilities, FileNotFoundError for a missing cgroup_dir, the verifier's reason
    in the message if it refused the program.
    """
    n = len(rules)
    c = ffi.new("struct pmd_device_rule[]", n or 1)
    for i, (allow, kind, major, minor, access) in enumerate(rules):
        if kind not in ("a", "b", "c"):
            raise ValueError(f"device rule {i}: type {kind!r} is not 'a', 'b' or 'c'")
        bits = 0
        for ch in access:
            if ch not in _DEV_ACCESS:
                raise ValueError(f"device rule {i}: access {access!r} is not made of r, w, m")
            bits |= _DEV_ACCESS[ch]
        if not bits:
            raise ValueError(f"device rule {i}: empty access")
        for name, num in (("major", major), ("minor", minor)):
            if not isinstance(num, int) or not -1 <= num <= 0x7FFFFFFF:
                raise ValueError(f"device rule {i}: {name} {num!r} is not -1 or a device number")
        c[i].allow = 1 if allow else 0
        c[i].type = ord(kind)
        c[i].major = major
        c[i].minor = minor
        c[i].access = bits
    err = ffi.new("struct pmd_error *")
    if lib.pmd_cgroup_devices(os.fsencode(cgroup_dir), c, n, err) != 0:
        _raise(err)
