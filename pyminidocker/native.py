"""The C shim's Python wrappers, and the only importer of the compiled modules:
pyminidocker._pmd, and pyminidocker._pmd_extract for layer extraction alone, imported on its
first use (it loads libarchive and libcrypto, and with them thirteen more libraries that a
container start does without; see csrc/build_ffi.py). The engine's modules import this one;
programs import pyminidocker.shim, the public face of these names (docs/shim.md), which adds
what needs the engine's policy: Docker's default seccomp profile behind SECCOMP_DEFAULT.

What is public: the names in __all__, with the signatures, fields and exceptions their
docstrings give. API_VERSION versions them apart from the package (see docs/shim.md, "Stability").

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

# (major, minor) of the public API in __all__: minor grows when something is added, major when
# something public changes or goes (after a minor release that warns about it).
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
    "COMPRESS_GZIP",
    "COMPRESS_NONE",
    "COMPRESS_ZSTD",
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
    "RESTART_ALWAYS",
    "RESTART_NO",
    "RESTART_ON_FAILURE",
    "RESTART_UNLESS_STOPPED",
    "SECCOMP_DEFAULT",
    "SECCOMP_OFF",
    "SECCOMP_PROG_MAX",
    "TRACE_PHASES",
    "ExtractResult",
    "HealthCheck",
    "MonitorInfo",
    "Mount",
    "Process",
    "RestartPolicy",
    "SpawnSpec",
    "cgroup_devices",
    "layer_extract",
    "monitor_start",
    "net_attach",
    "net_detach",
    "overlay_mount",
    "relay",
    "seccomp_compile",
    "spawn",
    "spec_write",
    "umount",
    "wait",
]

COMPRESS_NONE = lib.PMD_COMPRESS_NONE
COMPRESS_GZIP = lib.PMD_COMPRESS_GZIP
COMPRESS_ZSTD = lib.PMD_COMPRESS_ZSTD


def _raise(err: CData) -> None:
    """Raise the OSError subclass matching err.err, with operation and path in the message."""
    op = ffi.string(err.op).decode(errors="replace")
    path = ffi.string(err.path).decode(errors="replace")
    code = err.err or 5  # EIO if C forgot to set it
    msg = f"{op}: {os.strerror(code)}"
    exc = OSError(code, msg, path or None)
    exc.op = op  # type: ignore[attr-defined]  # lets callers tell exec failures from setup ones
    raise exc


@dataclass(frozen=True)
class ExtractResult:
    """compressed_digest, diff_id, compressed_size, uncompressed_size, entries (see pmd.h)."""

    compressed_digest: str
    diff_id: str
    compressed_size: int
    uncompressed_size: int
    entries: int


def layer_extract(fd: int, dest: str | os.PathLike[str], compression: int) -> ExtractResult:
    """Extract the layer tar read from fd into the empty directory dest (see pmd.h).

    Raises OSError (EPERM/EXDEV for hostile entries, EINVAL for a corrupt stream, ENOSPC, ...).
    Releases the GIL while extracting, so several layers extract in parallel threads.
    """
    from pyminidocker._pmd_extract import lib as extract_lib

    res = ffi.new("struct pmd_extract_result *")
    err = ffi.new("struct pmd_error *")
    if extract_lib.pmd_layer_extract(fd, os.fsencode(dest), compression, res, err) != 0:
        _raise(err)
    return ExtractResult(
        ffi.string(res.compressed_digest).decode(),
        ffi.string(res.diff_id).decode(),
        res.compressed_size,
        res.uncompressed_size,
        res.entries,
    )


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

SECCOMP_PROG_MAX = lib.PMD_SECCOMP_PROG_MAX
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


def seccomp_compile(rules: Iterable[tuple[int, int, int, Sequence[tuple[int, int, int, int]]]],
                    default_action: int, bad_arch_action: int, arches: Sequence[int],
                    enosys_above: bool) -> bytes:
    """The BPF program for seccomp rules (see pmd_seccomp_compile in pmd.h), as the bytes of a
    struct sock_filter array: each rule is (audit arch, syscall number, action, conditions),
    a condition (argument index, PMD_SCMP_CMP_* op, value, value_two).

    Raises OSError: EINVAL (bad arch, op, index), E2BIG (the program would exceed
    SECCOMP_PROG_MAX instructions)."""
    rules = list(rules)
    f = ffi.new("struct pmd_seccomp_filter *")
    rs = ffi.new("struct pmd_seccomp_rule[]", max(len(rules), 1))
    for i, (arch, nr, action, args) in enumerate(rules):
        r = rs[i]
        r.arch, r.nr, r.action, r.n_args = arch, nr, action, len(args)
        if len(args) > lib.PMD_SECCOMP_ARGS_MAX:
            raise OSError(22, f"seccomp rule: {len(args)} argument conditions")
        for j, (index, op, value, value_two) in enumerate(args):
            r.args[j].index, r.args[j].op = index, op
            r.args[j].value, r.args[j].value_two = value, value_two
    ar = ffi.new("unsigned int[]", list(arches) or [0])
    f.default_action, f.bad_arch_action = default_action, bad_arch_action
    f.arches, f.n_arches = ar, len(arches)
    f.rules, f.n_rules = rs, len(rules)
    f.enosys_above = int(enosys_above)
    out = ffi.new("struct pmd_seccomp_prog *")
    err = ffi.new("struct pmd_error *")
    if lib.pmd_seccomp_compile(f, out, err) != 0:
        _raise(err)
    return bytes(ffi.buffer(out.insns, out.len * ffi.sizeof("struct pmd_bpf_insn")))


MONITOR_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pmd-monitor")


@dataclass
class MonitorInfo:
    """A detached container: pid (its init, in our pid namespace) and monitor_pid; a held one
    (spec.hold) also has the channel that release() and abort() use."""

    pid: int
    monitor_pid: int
    status_fd: int = -1

    def release(self) -> None:
        """Let a held container run; raises its setup error as spawn() would."""
        info = ffi.new("struct pmd_monitor_info *")
        info.pid, info.monitor_pid, info.status_fd = self.pid, self.monitor_pid, self.status_fd
        self.status_fd = -1
        err = ffi.new("struct pmd_error *")
        if lib.pmd_monitor_release(info, err) != 0:
            _raise(err)

    def abort(self) -> None:
        """End a held container unrun: the monitor sees the channel close."""
        if self.status_fd >= 0:
            os.close(self.status_fd)
            self.status_fd = -1


def _c_monitor_spec(keep: list[CData], log_path: str | os.PathLike[str] | None,
                    exit_path: str | os.PathLike[str] | None,
                    cleanup_mounts: Iterable[str | os.PathLike[str]] | None,
                    cleanup_dirs: Iterable[str | os.PathLike[str]] | None,
                    exit_argv: Sequence[str | os.PathLike[str]] | None,
                    exit_env: Sequence[str] | None) -> CData:
    m = ffi.new("struct pmd_monitor_spec *")
    keep.append(m)
    m.log_path = _cstr(keep, log_path)
    m.exit_path = _cstr(keep, exit_path)
    m.cleanup_mounts = _cstrv(keep, None if cleanup_mounts is None else list(cleanup_mounts))
    m.cleanup_dirs = _cstrv(keep, None if cleanup_dirs is None else list(cleanup_dirs))
    m.exit_argv = _cstrv(keep, None if not exit_argv else list(exit_argv))
    m.exit_envp = _cstrv(keep, None if exit_env is None else list(exit_env))
    return m


@dataclass(frozen=True)
class RestartPolicy:
    """A monitored container's restart policy (see pmd_monitor_spec in csrc/pmd.h): policy one
    of RESTART_NO/ALWAYS/ON_FAILURE/UNLESS_STOPPED, max_count (on-failure: at most this many
    restarts, 0 = no limit), restart_path (the monitor's record of the restarts), stop_path
    (once it exists, no more restarts)."""

    policy: int
    max_count: int
    restart_path: str
    stop_path: str


@dataclass(frozen=True)
class HealthCheck:
    """A monitored container's healthcheck (see pmd_monitor_spec in csrc/pmd.h): the monitor
    runs argv (argv[0] a path; environment env) every interval_ms, kills it after timeout_ms,
    counts retries failures in a row as unhealthy (not within start_ms of the start), and
    writes {"Status", "FailingStreak", "Log"} to path after each run."""

    argv: list[str]
    env: list[str]
    path: str
    interval_ms: int
    timeout_ms: int
    start_ms: int
    retries: int


RESTART_NO = lib.PMD_RESTART_NO
RESTART_ALWAYS = lib.PMD_RESTART_ALWAYS
RESTART_ON_FAILURE = lib.PMD_RESTART_ON_FAILURE
RESTART_UNLESS_STOPPED = lib.PMD_RESTART_UNLESS_STOPPED


def monitor_start(spec: SpawnSpec, log_path: str | os.PathLike[str],
                  exit_path: str | os.PathLike[str],
                  cleanup_mounts: Iterable[str | os.PathLike[str]] = (),
                  cleanup_dirs: Iterable[str | os.PathLike[str]] = (),
                  exit_argv: Sequence[str | os.PathLike[str]] | None = None,
                  exit_env: Sequence[str] | None = None,
                  monitor_path: str | os.PathLike[str] | None = None,
                  restart: RestartPolicy | None = None,
                  health: HealthCheck | None = None,
                  log_max_size: int = 0, log_max_file: int = 0,
                  stdin_path: str | os.PathLike[str] | None = None) -> MonitorInfo:
    """Start spec as a detached container watched by pmd-monitor (see pmd_monitor_start).

    The monitor logs the container's stdout/stderr to log_path (Docker's json-file format),
    and when it exits unmounts cleanup_mounts, removes cleanup_dirs, writes exit_path
    ({"exit_code", "finished_at", "oom_killed"}) and finally execs exit_argv (argv[0] a path;
    environment exit_env, "K=V" strings) if given; with restart, it first restarts the container
    as the policy says (RestartPolicy); with health, it runs the healthcheck while the container
    runs (HealthCheck); with log_max_size, it rotates log_path past that many bytes, keeping
    log_max_file files (Docker's json-file max-size/max-file); with stdin_path (a fifo), the
    container's stdin comes from it and never ends (run -d -i: what `attach` writes there;
    with spec.console, the monitor passes it to the console). spec's stdio must be -1 (the
    monitor provides pipes, or with spec.console the container's own pty). With spec.hold it
    returns once the container exists: call release() (or abort()) on the result.

    Raises OSError as spawn() does (FileNotFoundError with op "exec" for a command not found,
    ...), or for the monitor itself (ENOENT, op "spawn monitor", if it was not built). On error
    no process is left; mounts and cgroups are the caller's.
    """
    if (spec.stdin, spec.stdout, spec.stderr) != (-1, -1, -1):
        raise ValueError("a monitored container gets its stdio from the monitor")
    keep: list[CData] = []
    s = _c_spec(spec, keep)
    m = _c_monitor_spec(keep, log_path, exit_path, cleanup_mounts, cleanup_dirs, exit_argv,
                        exit_env)
    if restart is not None and restart.policy != RESTART_NO:
        m.restart_policy = restart.policy
        m.restart_max = restart.max_count
        m.restart_path = _cstr(keep, restart.restart_path)
        m.stop_path = _cstr(keep, restart.stop_path)
    m.log_max_size = log_max_size
    m.log_max_file = log_max_file
    m.stdin_path = _cstr(keep, stdin_path)
    if health is not None:
        m.health_argv = _cstrv(keep, list(health.argv))
        m.health_envp = _cstrv(keep, list(health.env))
        m.health_path = _cstr(keep, health.path)
        m.health_interval_ms = health.interval_ms
        m.health_timeout_ms = health.timeout_ms
        m.health_start_ms = health.start_ms
        m.health_retries = health.retries
    info = ffi.new("struct pmd_monitor_info *")
    err = ffi.new("struct pmd_error *")
    if lib.pmd_monitor_start(os.fsencode(monitor_path or MONITOR_PATH), s, m, info, err) != 0:
        _raise(err)
    return MonitorInfo(info.pid, info.monitor_pid, info.status_fd)


def spec_write(fd: int, spec: SpawnSpec, log_path: str | os.PathLike[str] | None = None,
               exit_path: str | os.PathLike[str] | None = None,
               cleanup_mounts: Iterable[str | os.PathLike[str]] | None = None,
               cleanup_dirs: Iterable[str | os.PathLike[str]] | None = None,
               exit_argv: Sequence[str | os.PathLike[str]] | None = None,
               exit_env: Sequence[str] | None = None) -> None:
    """Write the serialized spec that pmd_monitor_start hands to pmd-monitor to fd (for tests
    and tools: `pmd-monitor --check FD` validates it). Raises OSError."""
    keep: list[CData] = []
    s = _c_spec(spec, keep)
    m = _c_monitor_spec(keep, log_path, exit_path, cleanup_mounts, cleanup_dirs, exit_argv,
                        exit_env)
    err = ffi.new("struct pmd_error *")
    if lib.pmd_spec_write(fd, s, m, err) != 0:
        _raise(err)


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


# ---- network (netlink.c) -------------------------------------------------------------------

def _ifarg(name: str, value: object) -> bytes:
    """A C string argument: str (or bytes), no NUL inside (C would see a shorter string)."""
    if not isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    b = value.encode() if isinstance(value, str) else value
    if b"\0" in b:
        raise ValueError(f"{name} contains a NUL byte")
    return b


def net_attach(pid: int, bridge: str, host_ifname: str, address: str, prefix_len: int,
               gateway: str | None = None, container_ifname: str = "eth0", mtu: int = 0,
               mac: str | None = None) -> None:
    """Give the container whose init is pid a veth on bridge (see pmd_net_attach in pmd.h).

    The host end host_ifname becomes a port of bridge, up; its peer is created in pid's netns
    as container_ifname, up, with address/prefix_len; lo comes up; with gateway, a default
    route via it. mtu 0 is the bridge's, mac None a random one.

    Raises OSError: EINVAL (a bad name, address, prefix, gateway, mtu or mac; op says which),
    FileNotFoundError (ENOENT, op "open netns") if pid is gone, ENODEV (op "find bridge") if
    bridge does not exist, FileExistsError (EEXIST) if host_ifname does, or the kernel's errno
    with its message. On error no veth is left behind.
    """
    keep: list[CData] = []
    a = ffi.new("struct pmd_net_attach *")
    for name, value in (("bridge", bridge), ("host_ifname", host_ifname),
                        ("container_ifname", container_ifname), ("address", address)):
        c = ffi.new("char[]", _ifarg(name, value))
        keep.append(c)
        setattr(a, name, c)
    if gateway is not None:
        keep.append(ffi.new("char[]", _ifarg("gateway", gateway)))
        a.gateway = keep[-1]
    if mac is not None:
        keep.append(ffi.new("char[]", _ifarg("mac", mac)))
        a.mac = keep[-1]
    a.netns_pid = pid
    a.prefix_len = prefix_len
    a.mtu = mtu
    err = ffi.new("struct pmd_error *")
    if lib.pmd_net_attach(a, err) != 0:
        _raise(err)


def net_detach(host_ifname: str) -> None:
    """Delete the veth host_ifname and so its peer (see pmd_net_detach); one that is already
    gone is fine. Raises OSError: EINVAL if host_ifname names a link that is not a veth."""
    err = ffi.new("struct pmd_error *")
    if lib.pmd_net_detach(_ifarg("host_ifname", host_ifname), err) != 0:
        _raise(err)
