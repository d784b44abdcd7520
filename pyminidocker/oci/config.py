"""The one place that reads an OCI runtime config (config.json) and turns it into what the shim
executes: a SpawnSpec, plus what the runtime does around the spawn (cgroup, hooks, sysctls,
devices, namespaces joined by path, oomScoreAdj, domainname).

Everything is checked before anything is created, so a refused config leaves nothing behind.
Errors are ConfigError, one line in runc's manner; the runtime exits 1 with it.
"""
from __future__ import annotations

import os
import stat

from pyminidocker import native as shim
from pyminidocker.container.spec import (
    CAPS,
    DEFAULT_ENV_PATH,
    MOUNT_OPTIONS,
    NAMESPACES,
    ULIMITS,
    make_workdir,
    own_bounding_set,
    secure_join,
    sysctl_namespace,
)
from pyminidocker.oci.state import ConfigError
from pyminidocker.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The spec versions this runtime was written against; a newer one is read (its unknown fields
# are ignored, as runc does), an older major one refused.
SUPPORTED_OCI_VERSION = "1.2.0"


# the OCI names of the rlimits Docker's --ulimit names
RLIMITS = {f"RLIMIT_{name.upper()}": number for name, number in ULIMITS.items()}

# Options runtimes accept and this one has no use for (containerd/podman pass them).
_IGNORED_OPTIONS = {"tmpcopyup", "copy-symlink", "idmap", "ridmap", "z", "Z", "U", "notmpcopyup",
                    "rro", "nocopyup"}





@dataclass
class Hook:
    path: str
    args: list[str]
    env: list[str]
    timeout: int | None


@dataclass
class Device:
    path: str
    kind: str  # "c", "b", "u" (unbuffered char) or "p" (fifo)
    major: int
    minor: int
    mode: int
    uid: int
    gid: int


@dataclass
class Resources:
    """linux.resources, checked, whichever cgroup version takes them (cgroup_files() names the
    files): the values as the spec gives them under its own keys, 0 meaning unset as runc reads
    them, plus the device rules in the v1 devices cgroup's syntax."""

    memory: dict[str, int] = field(default_factory=dict)  # limit, swap, reservation, ...
    disable_oom_killer: bool = False
    cpu: dict[str, int] = field(default_factory=dict)     # shares, period, quota, realtime*
    cpuset: dict[str, str] = field(default_factory=dict)  # cpus, mems
    pids: int | None = None
    blkio: dict[str, int] = field(default_factory=dict)   # weight, leafWeight
    # (blockIO key such as "throttleReadBpsDevice", "MAJ:MIN", rate or weight)
    blkio_devices: list[tuple[str, str, int]] = field(default_factory=list)
    hugepages: list[tuple[str, int]] = field(default_factory=list)  # (pageSize, limit)
    class_id: int | None = None
    priorities: list[tuple[str, int]] = field(default_factory=list)  # (interface, priority)
    unified: dict[str, str] = field(default_factory=dict)
    devices: tuple[tuple[str, str], ...] | None = None


@dataclass
class Container:
    """What a config.json asks for, checked: the spawn spec and what surrounds the spawn."""

    spec: shim.SpawnSpec
    oci_version: str
    bundle: str
    rootfs: str
    namespaces: int                      # created by the container (CLONE_NEW* mask)
    join_paths: dict[str, str]           # namespace type -> path of one to join
    terminal: bool
    console_size: tuple[int, int] | None  # (height, width)
    hooks: dict[str, list[Hook]]
    cgroups_path: str
    resources: Resources
    sysctl: dict[str, str]
    devices: list[Device]
    oom_score_adj: int | None
    domainname: str | None
    annotations: dict[str, str]
    cgroup_mount: tuple[str, int] | None  # (destination, flags) of a "cgroup" mount
    warnings: list[str] = field(default_factory=list)
    has_process: bool = True


# ---- reading -----------------------------------------------------------------------------


def load(bundle: str) -> tuple[dict[str, Any], str]:
    """The parsed config.json of bundle and the bundle's absolute path. Raises ConfigError."""
    from pyminidocker import record

    bundle = os.path.abspath(bundle or ".")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"JSON specification file {path} not found") from None
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None
    try:
        doc = record.loads(data)
    except ValueError as e:
        raise ConfigError(f"config.json: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError("config.json: not a JSON object")
    return doc, bundle


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str, default: Any = None
         ) -> Any:
    value = obj.get(key, default) if isinstance(obj, dict) else default
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConfigError(f"config.json: {where}{key}: expected {name}, got "
                          f"{type(value).__name__}")
    if isinstance(value, str) and "\0" in value:
        _no_nul(where + key)
    return value


def _no_nul(field: str) -> None:
    # no path, argument or variable the kernel takes can hold one: refuse it here, not as
    # a ValueError from os deep in the create path
    raise ConfigError(f"config.json: {field}: contains a NUL byte")


def _strings(obj: Any, key: str, where: str) -> list[str]:
    items = _get(obj, key, list, where, [])
    if not all(isinstance(s, str) for s in items):
        raise ConfigError(f"config.json: {where}{key}: expected a list of strings")
    if any("\0" in s for s in items):
        _no_nul(where + key)
    return items


def _version_ok(version: str) -> None:
    major = version.split(".", 1)[0]
    if major != "1":
        raise ConfigError(f"unsupported spec version {version!r}: this runtime runs 1.x "
                          f"(up to {SUPPORTED_OCI_VERSION} and later minor versions)")


def parse(doc: dict[str, Any], bundle: str) -> Container:
    """Check doc (a config.json) and turn it into a Container. Raises ConfigError naming the
    first field it refuses. Reads the root filesystem (symlinks of mount destinations), writes
    nothing."""
    version = _get(doc, "ociVersion", str, "")
    if not version:
        raise ConfigError("config.json: ociVersion is required")
    _version_ok(version)
    root = _get(doc, "root", dict, "")
    if not root or not _get(root, "path", str, "root."):
        raise ConfigError("config.json: root.path is required")
    rootfs = _root_path(bundle, root["path"])
    linux = _get(doc, "linux", dict, "", {})
    proc = _get(doc, "process", dict, "")
    if proc is None:
        # Allowed at create; `start` then refuses (the runtime spec's rule). The held init is
        # given a command it never runs.
        proc = {"args": ["/"]}
    warnings: list[str] = []

    namespaces, join_paths = _namespaces(linux)
    spec = process_spec(proc, rootfs, warnings)
    spec.namespaces = namespaces
    spec.rootfs = rootfs
    spec.readonly_root = bool(_get(root, "readonly", bool, "root.", False))
    spec.setsid = True
    terminal = bool(_get(proc, "terminal", bool, "process.", False))
    size = _get(proc, "consoleSize", dict, "process.")
    console_size = (int(_get(size, "height", int, "process.consoleSize.", 0)),
                    int(_get(size, "width", int, "process.consoleSize.", 0))) if size else None

    hostname = _get(doc, "hostname", str, "")
    if hostname and not (namespaces & shim.CLONE_NEWUTS or "uts" in join_paths):
        raise ConfigError("unable to set hostname without a private UTS namespace")
    spec.hostname = hostname or None
    domainname = _get(doc, "domainname", str, "") or None
    if domainname and not namespaces & shim.CLONE_NEWUTS:
        raise ConfigError("unable to set domainname without a private UTS namespace")

    spec.uid_map, spec.gid_map = _id_maps(linux, namespaces)
    spec.userns_joined = "user" in join_paths
    mounts, cgroup_mount = _mounts(doc, bundle, rootfs, namespaces)
    devices = _devices(linux)
    spec.mounts = mounts
    spec.dev_setup = any(m.target == "/dev" and m.fstype == "tmpfs" for m in mounts)
    spec.masked_paths = _strings(linux, "maskedPaths", "linux.")
    spec.readonly_paths = _strings(linux, "readonlyPaths", "linux.")
    for p in spec.masked_paths + spec.readonly_paths:
        if not p.startswith("/"):
            raise ConfigError(f"config.json: masked or read-only path {p!r} is not absolute")
    if not _mount_namespace(spec, linux, "mount" in join_paths, warnings):
        mounts, cgroup_mount, devices = [], None, []
    sysctl = _sysctl(linux, namespaces, join_paths)
    seccomp = _get(linux, "seccomp", dict, "linux.")
    if seccomp is not None:
        _seccomp(seccomp, spec)
    if _get(linux, "intelRdt", dict, "linux."):
        warnings.append("linux.intelRdt ignored: this host has no resctrl")
    personality = _get(linux, "personality", dict, "linux.")
    if personality and _get(personality, "domain", str, "linux.personality.") not in (
            None, "LINUX"):
        raise ConfigError("config.json: linux.personality: only the LINUX domain is supported")
    cgroups_path = _get(linux, "cgroupsPath", str, "linux.", "")
    resources = _resources(_get(linux, "resources", dict, "linux.", {}))
    annotations = _get(doc, "annotations", dict, "", {})
    hooks = _hooks(_get(doc, "hooks", dict, "", {}))
    oom = _get(proc, "oomScoreAdj", int, "process.")
    if oom is not None and not -1000 <= oom <= 1000:
        raise ConfigError(f"config.json: process.oomScoreAdj {oom} is not in [-1000, 1000]")
    if "process" in doc:
        _check_command(spec, rootfs, mounts)
    c = Container(spec, version, bundle, rootfs, namespaces, join_paths, terminal,
                     console_size, hooks, cgroups_path, resources, sysctl, devices, oom,
                     domainname, {str(k): str(v) for k, v in annotations.items()},
                     cgroup_mount, warnings)
    c.has_process = "process" in doc
    return c


def _mount_namespace(spec: shim.SpawnSpec, linux: dict[str, Any], joined: bool,
                     warnings: list[str]) -> bool:
    """The filesystem's setup in the container's mount namespace: a new one, one joined by path
    (set up in place, as runc does), or none. Without one the root is entered by chroot and
    nothing is mounted, as the caller's namespace is not ours to change: False then, the
    config's mounts, devices and paths dropped with a warning."""
    propagation = _get(linux, "rootfsPropagation", str, "linux.")
    if propagation and propagation not in _PROPAGATION:
        raise ConfigError(f"config.json: linux.rootfsPropagation: unknown value "
                          f"{propagation!r}")
    spec.mounts_joined = joined
    if spec.namespaces & shim.CLONE_NEWNS or joined:
        # private is what the shim leaves anyway (runc skips it too)
        spec.root_propagation = MOUNT_OPTIONS[propagation][0] if propagation and \
            "private" not in propagation else 0
        return True
    dropped = [what for what, given in (
        ("mounts", spec.mounts), ("linux.devices", _get(linux, "devices", list, "linux.")),
        ("linux.maskedPaths", spec.masked_paths), ("linux.readonlyPaths", spec.readonly_paths),
        ("root.readonly", spec.readonly_root), ("linux.rootfsPropagation", propagation)) if given]
    if dropped:
        warnings.append(f"no mount namespace in linux.namespaces: {', '.join(dropped)} not "
                        "applied (they would change the caller's mount namespace)")
    spec.mounts, spec.dev_setup, spec.readonly_root = [], False, False
    spec.masked_paths, spec.readonly_paths = [], []
    return False


_PROPAGATION = ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable",
                "runbindable")


def _root_path(bundle: str, path: str) -> str:
    """root.path: absolute, or relative to the bundle (the spec's rule) but never leaving it
    through "..", and an existing directory."""
    if not os.path.isabs(path):
        norm = os.path.normpath(path)
        if norm == ".." or norm.startswith("../"):
            raise ConfigError(f"config.json: root.path {path!r}: a relative root must stay "
                              "inside the bundle")
        path = os.path.join(bundle, norm)
    if not os.path.isdir(path):
        raise ConfigError(f"rootfs ({path}) does not exist")
    return os.path.realpath(path)


def _namespaces(linux: dict[str, Any]) -> tuple[int, dict[str, str]]:
    mask, paths, seen = 0, {}, set()
    for i, ns in enumerate(_get(linux, "namespaces", list, "linux.", [])):
        kind = _get(ns, "type", str, f"linux.namespaces[{i}].")
        if kind not in NAMESPACES:
            raise ConfigError(f"namespace type {kind!r} is not supported (linux.namespaces"
                              f"[{i}]): one of {', '.join(NAMESPACES)}")
        if kind in seen:
            raise ConfigError(f"malformed spec file: duplicated ns {kind!r}")
        seen.add(kind)
        path = _get(ns, "path", str, f"linux.namespaces[{i}].")
        if kind == "time":
            raise ConfigError("namespace type 'time' is not supported by pyminidocker-runc")
        if path:
            if not os.path.isabs(path):
                raise ConfigError(f"namespace path {path!r} is not absolute")
            if not os.path.exists(path):
                raise ConfigError(f"namespace {kind}: path {path} does not exist")
            paths[kind] = path
        else:
            mask |= NAMESPACES[kind]
    return mask, paths


def _id_maps(linux: dict[str, Any], namespaces: int) -> tuple[str | None, str | None]:
    """linux.uidMappings and gidMappings as /proc/PID/uid_map and gid_map take them; both are
    required with a new user namespace and refused without one (runc's rules)."""
    maps: list[str | None] = []
    for key in ("uidMappings", "gidMappings"):
        lines = []
        for i, m in enumerate(_get(linux, key, list, "linux.", [])):
            where = f"linux.{key}[{i}]."
            ids = [_get(m, f, int, where) for f in ("containerID", "hostID", "size")]
            if any(v is None or v < 0 for v in ids) or ids[2] == 0:
                raise ConfigError(f"config.json: {where[:-1]}: containerID, hostID and a "
                                  "positive size are required")
            lines.append(f"{ids[0]} {ids[1]} {ids[2]}\n")
        maps.append("".join(lines) or None)
    if namespaces & shim.CLONE_NEWUSER:
        for key, value in zip(("uid", "gid"), maps):
            if value is None:
                raise ConfigError(f"user namespaces enabled, but no {key} mappings found")
    elif maps[0] or maps[1]:
        raise ConfigError("config.json: linux.uidMappings/gidMappings need a user namespace "
                          "(linux.namespaces: user)")
    return maps[0], maps[1]


def _cap_mask(names: list[str], where: str, warnings: list[str]) -> int:
    mask = 0
    for name in names:
        bit = CAPS.get(name.upper().removeprefix("CAP_")) if name.startswith("CAP_") else None
        if bit is None:
            # The runtime spec: a value that maps to no kernel interface MUST be an error
            # (runc 1.1 warns and ignores it).
            raise ConfigError(f"config.json: {where}: unknown capability {name!r}")
        mask |= 1 << bit
    return mask


def process_spec(proc: dict[str, Any], rootfs: str | None, warnings: list[str]
                 ) -> shim.SpawnSpec:
    """The process part of a SpawnSpec from an OCI process object (also `exec --process`).
    Raises ConfigError."""
    args = _strings(proc, "args", "process.")
    if not args:
        raise ConfigError("args must not be empty")
    env = _strings(proc, "env", "process.")
    if not any(e.startswith("PATH=") for e in env):
        # runc searches args[0] in the container's PATH, which without one is the default.
        env = [*env, DEFAULT_ENV_PATH]
    cwd = _get(proc, "cwd", str, "process.", "/") or "/"
    if not cwd.startswith("/"):
        raise ConfigError(f"cwd {cwd!r} is not an absolute path")
    user = _get(proc, "user", dict, "process.", {})
    uid = _get(user, "uid", int, "process.user.", 0)
    gid = _get(user, "gid", int, "process.user.", 0)
    groups = _get(user, "additionalGids", list, "process.user.", [])
    if not all(isinstance(g, int) and g >= 0 for g in groups) or uid < 0 or gid < 0:
        raise ConfigError("config.json: process.user: ids must be non-negative integers")
    spec = shim.SpawnSpec(argv=list(args), env=env, cwd=cwd, uid=uid, gid=gid,
                          groups=list(groups))
    if rootfs is not None and cwd != "/":
        try:  # runc creates a missing cwd, inside the root whatever its links say
            make_workdir(rootfs, cwd)
        except OSError as e:
            raise ConfigError(f"cannot create cwd {cwd}: {e.strerror}") from None
    caps = _get(proc, "capabilities", dict, "process.")
    if caps is not None:
        own = own_bounding_set()
        sets = {}
        for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            mask = _cap_mask(_strings(caps, key, "process.capabilities."),
                             f"process.capabilities.{key}", warnings)
            if mask & ~own:
                # A capability the runtime itself lacks (this host withholds some) cannot be
                # given: runc's capset would fail with EPERM; leave it out and say so.
                warnings.append(f"process.capabilities.{key}: capabilities this runtime lacks "
                                f"are left out (0x{mask & ~own:x})")
            sets[key] = mask & own
        # The kernel raises an ambient capability only if it is permitted and inheritable;
        # runc warns and goes on for the others (its own `spec` asks for such ones).
        sets["ambient"] &= sets["inheritable"] & sets["permitted"]
        spec.cap_bounding, spec.cap_effective, spec.cap_permitted = (
            sets["bounding"], sets["effective"], sets["permitted"])
        spec.cap_inheritable, spec.cap_ambient = sets["inheritable"], sets["ambient"]
    for i, rl in enumerate(_get(proc, "rlimits", list, "process.", [])):
        kind = _get(rl, "type", str, f"process.rlimits[{i}].")
        if kind not in RLIMITS:
            raise ConfigError(f"config.json: process.rlimits[{i}]: unknown rlimit type "
                              f"{kind!r}")
        soft = _get(rl, "soft", int, f"process.rlimits[{i}].", 0)
        hard = _get(rl, "hard", int, f"process.rlimits[{i}].", 0)
        spec.rlimits[RLIMITS[kind]] = (soft, hard)
    spec.no_new_privs = bool(_get(proc, "noNewPrivileges", bool, "process.", False))
    return spec


def _check_command(spec: shim.SpawnSpec, rootfs: str, mounts: list[shim.Mount]) -> None:
    """Refuse at create a command the root does not have, as runc 1.1 does (its init looks it
    up before it waits for start); the shim itself would only find out at start. A command
    that a mount may provide is left to the shim."""
    argv0 = spec.argv[0]
    path = next((e[5:] for e in spec.env or [] if e.startswith("PATH=")), "")
    candidates = [argv0] if "/" in argv0 else [f"{d or '.'}/{argv0}" for d in path.split(":")]
    for cand in candidates:
        full = "/" + os.path.normpath(os.path.join(spec.cwd or "/", cand)).lstrip("/")
        if any(full == m.target or full.startswith(m.target.rstrip("/") + "/") for m in mounts):
            return
        host = secure_join(rootfs, full)
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return
    if "/" in argv0:
        raise ConfigError(f'exec: "{argv0}": stat {argv0}: no such file or directory')
    raise ConfigError(f'exec: "{argv0}": executable file not found in $PATH')


def _mount_options(options: list[str], where: str) -> tuple[int, int, list[str]]:
    """(flags set, flags cleared, data options) of a mount's options."""
    flags = clear = 0
    data = []
    for opt in options:
        if opt in MOUNT_OPTIONS:
            add, drop = MOUNT_OPTIONS[opt]
            flags = (flags | add) & ~drop
            clear |= drop
        elif opt in _IGNORED_OPTIONS:
            continue
        elif not opt:
            raise ConfigError(f"config.json: {where}: empty mount option")
        else:
            data.append(opt)
    return flags, clear, data


def check_destination(rootfs: str, dest: str) -> None:
    """Refuse a mount destination whose path inside the root goes through a relative symlink
    that climbs out of it (the CVE-2021-30465 class: enough ".." to reach the host). An
    absolute link is the container's own path, resolved inside the root as the kernel will
    after pivot_root (and as the C side resolves every target: never outside), so images with
    /var/run -> /run keep working; a config whose mount needs a link out is hostile or broken
    and is refused rather than silently redirected."""
    real_root = os.path.realpath(rootfs)
    parts = [p for p in dest.split("/") if p not in ("", ".")]
    path = real_root
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            path = os.path.dirname(path) if path != real_root else path
            continue
        candidate = os.path.join(path, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            return  # the rest is created inside the root
        if not stat.S_ISLNK(st.st_mode):
            path = candidate
            continue
        links += 1
        if links > 40:
            raise ConfigError(f"mount destination {dest}: too many levels of symbolic links")
        target = os.readlink(candidate)
        if target.startswith("/"):
            path = real_root
        else:
            climbed = os.path.normpath(os.path.join(path, target))
            if climbed != real_root and not climbed.startswith(real_root + "/"):
                raise ConfigError(f"mount destination {dest}: {candidate} is a symlink to "
                                  f"{target}, outside the container's root")
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts


def _mounts(doc: dict[str, Any], bundle: str, rootfs: str, namespaces: int
            ) -> tuple[list[shim.Mount], tuple[str, int] | None]:
    out: list[shim.Mount] = []
    cgroup_mount = None
    for i, m in enumerate(_get(doc, "mounts", list, "", [])):
        where = f"mounts[{i}]"
        dest = _get(m, "destination", str, f"{where}.")
        if not dest:
            raise ConfigError(f"config.json: {where}: destination is required")
        if not dest.startswith("/"):
            # runc 1.1 warned and made it absolute; the spec says it must be absolute.
            raise ConfigError(f"config.json: {where}: destination {dest!r} is not absolute")
        dest = "/" + os.path.normpath(dest).lstrip("/")
        check_destination(rootfs, dest)
        kind = _get(m, "type", str, f"{where}.", "") or ""
        source = _get(m, "source", str, f"{where}.", "") or ""
        flags, _, data = _mount_options(_strings(m, "options", f"{where}."), where)
        if kind == "bind" or flags & shim.MS_BIND:
            if not source:
                raise ConfigError(f"config.json: {where}: a bind mount needs a source")
            if not os.path.isabs(source):
                source = os.path.join(bundle, source)
            if not os.path.exists(source):
                raise ConfigError(f"mount {dest}: source {source} does not exist")
            out.append(shim.Mount(dest, source, None, flags | shim.MS_BIND, None, mkdir=True))
        elif kind == "cgroup":
            cgroup_mount = (dest, flags)
        elif kind in ("proc", "sysfs", "tmpfs", "mqueue", "devpts", "cgroup2", "shm",
                      "overlay", "ramfs", "securityfs", "debugfs", "tracefs", "hugetlbfs"):
            out.append(shim.Mount(dest, source or kind, kind, flags, ",".join(data) or None,
                                  mkdir=True))
        elif not kind:
            raise ConfigError(f"config.json: {where}: a mount needs a type (or a bind option)")
        else:
            raise ConfigError(f"config.json: {where}: unsupported mount type {kind!r}")
    return out, cgroup_mount


def _devices(linux: dict[str, Any]) -> list[Device]:
    out = []
    for i, d in enumerate(_get(linux, "devices", list, "linux.", [])):
        where = f"linux.devices[{i}]."
        path = _get(d, "path", str, where, "")
        norm = "/" + os.path.normpath(path).lstrip("/") if path else ""
        if not path.startswith("/") or not norm.startswith("/dev/"):
            raise ConfigError(f"config.json: {where}path: device path {path!r} is not in /dev")
        kind = _get(d, "type", str, where, "")
        if kind not in ("c", "b", "u", "p"):
            raise ConfigError(f"config.json: {where}type: {kind!r} is not c, b, u or p")
        major = _get(d, "major", int, where, 0)
        minor = _get(d, "minor", int, where, 0)
        mode = _get(d, "fileMode", int, where, 0o666)
        out.append(Device(norm, kind, major, minor, mode & 0o7777,
                          _get(d, "uid", int, where, 0), _get(d, "gid", int, where, 0)))
    return out


def _sysctl(linux: dict[str, Any], namespaces: int, join: dict[str, str]) -> dict[str, str]:
    values = _get(linux, "sysctl", dict, "linux.", {})
    for key, value in values.items():
        if not isinstance(value, str):
            raise ConfigError(f"config.json: linux.sysctl.{key}: expected a string")
        kind = sysctl_namespace(key)
        if kind is None:
            raise ConfigError(f"sysctl {key!r} is not in a separate kernel namespace")
        need = (kind, NAMESPACES[kind])
        if not namespaces & need[1] and need[0] not in join:
            raise ConfigError(f"sysctl {key!r} is not allowed in the host's {need[0]} "
                              "namespace")
    return dict(values)


def _seccomp(profile: dict[str, Any], spec: shim.SpawnSpec) -> None:
    """linux.seccomp compiled to the BPF program the shim loads (the full profile: default
    action, architectures, syscalls with argument conditions and errnoRet, flags), for the
    process's bounding set. Raises ConfigError naming what the profile gets wrong."""
    from pyminidocker.container.seccomp import Profile, ProfileError

    try:
        p = Profile.from_oci(profile)
        caps = spec.cap_bounding if spec.cap_bounding is not None else own_bounding_set()
        spec.seccomp = p.compile(caps)
    except (ProfileError, OSError) as e:
        raise ConfigError(f"linux.seccomp: {e}") from None
    spec.seccomp_flags = p.flags


def _hooks(doc: dict[str, Any]) -> dict[str, list[Hook]]:
    out: dict[str, list[Hook]] = {}
    for stage in ("prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"):
        items = []
        for i, h in enumerate(_get(doc, stage, list, "hooks.", [])):
            where = f"hooks.{stage}[{i}]."
            path = _get(h, "path", str, where, "")
            if not os.path.isabs(path):
                raise ConfigError(f"config.json: {where}path {path!r} is not absolute")
            timeout = _get(h, "timeout", int, where)
            if timeout is not None and timeout <= 0:
                raise ConfigError(f"config.json: {where}timeout must be positive")
            items.append(Hook(path, _strings(h, "args", where) or [path],
                              _strings(h, "env", where), timeout))
        out[stage] = items
    return out


# ---- linux.resources -> cgroup files -------------------------------------------------------

def _resources(res: dict[str, Any]) -> Resources:
    """linux.resources checked, so that a bad value fails before the cgroup is made."""
    out = Resources()
    mem = _get(res, "memory", dict, "linux.resources.", {})
    for key in ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness"):
        value = _get(mem, key, int, "linux.resources.memory.")
        # 0 is "not set" for every limit (runc writes none of them; dockerd sends zeros)
        if value is not None and (value != 0 or key == "swappiness"):
            out.memory[key] = value
    out.disable_oom_killer = bool(_get(mem, "disableOOMKiller", bool, "linux.resources.memory."))
    cpu = _get(res, "cpu", dict, "linux.resources.", {})
    for key in ("shares", "period", "quota", "realtimeRuntime", "realtimePeriod"):
        value = _get(cpu, key, int, "linux.resources.cpu.")
        if value:
            out.cpu[key] = value
    for key in ("cpus", "mems"):
        text = _get(cpu, key, str, "linux.resources.cpu.")
        if text:
            out.cpuset[key] = text
    pids = _get(res, "pids", dict, "linux.resources.", {})
    out.pids = _get(pids, "limit", int, "linux.resources.pids.") or None
    blkio = _get(res, "blockIO", dict, "linux.resources.", {})
    for key in ("weight", "leafWeight"):
        value = _get(blkio, key, int, "linux.resources.blockIO.")
        if value:
            out.blkio[key] = value
    for key in _BLKIO_DEVICE_FILES:
        for d in _get(blkio, key, list, "linux.resources.blockIO.", []):
            dev = f"{_get(d, 'major', int, '')}:{_get(d, 'minor', int, '')}"
            value = d.get("rate", d.get("weight"))
            if isinstance(value, int):
                out.blkio_devices.append((key, dev, value))
    for i, h in enumerate(_get(res, "hugepageLimits", list, "linux.resources.", [])):
        size = _get(h, "pageSize", str, f"linux.resources.hugepageLimits[{i}].")
        # part of a file name in the cgroup: "2MB", "1GB", nothing that names another file
        if not (size and size[:-2].isdigit() and size[-2:] in ("KB", "MB", "GB")):
            raise ConfigError(f"config.json: linux.resources.hugepageLimits[{i}].pageSize "
                              f"{size!r} is not a page size such as 2MB")
        out.hugepages.append(
            (size, _get(h, "limit", int, f"linux.resources.hugepageLimits[{i}].", 0)))
    network = _get(res, "network", dict, "linux.resources.", {})
    out.class_id = _get(network, "classID", int, "linux.resources.network.")
    for i, p in enumerate(_get(network, "priorities", list, "linux.resources.network.", [])):
        where = f"linux.resources.network.priorities[{i}]."
        name, prio = _get(p, "name", str, where, ""), _get(p, "priority", int, where, 0)
        if not name or len(name) > 15 or any(c.isspace() or c == "/" for c in name):
            raise ConfigError(f"config.json: {where}name {name!r} is not an interface name")
        out.priorities.append((name, prio))
    for key, value in _get(res, "unified", dict, "linux.resources.", {}).items():
        ctl, dot, name = key.partition(".")
        # a file of the container's own cgroup directory, never one elsewhere
        if not (ctl and dot and name) or "/" in key or "\0" in key or ".." in key:
            raise ConfigError(f"config.json: linux.resources.unified: {key!r} is not a cgroup "
                              "file name such as memory.high")
        if not isinstance(value, str):
            raise ConfigError(f"config.json: linux.resources.unified.{key}: expected a string")
        if "\0" in value:
            _no_nul(f"linux.resources.unified.{key}")
        out.unified[key] = value
    rules = []
    for i, d in enumerate(_get(res, "devices", list, "linux.resources.", [])):
        where = f"linux.resources.devices[{i}]."
        kind = _get(d, "type", str, where, "a") or "a"
        if kind not in ("a", "b", "c"):
            raise ConfigError(f"config.json: {where}type {kind!r} is not a, b or c")
        major = _get(d, "major", int, where)
        minor = _get(d, "minor", int, where)
        access = _get(d, "access", str, where, "rwm") or "rwm"
        if access.strip("rwm"):
            raise ConfigError(f"config.json: {where}access {access!r} is not made of r, w, m")
        allow = _get(d, "allow", bool, where, False)
        rule = "a" if kind == "a" and major is None and minor is None else \
            f"{kind} {'*' if major is None else major}:{'*' if minor is None else minor} {access}"
        rules.append(("allow" if allow else "deny", rule))
    if rules:
        out.devices = tuple(rules)
    return out


# One file of a cgroup that linux.resources writes: (controller, file name, value, optional).
# An optional file is skipped where the kernel lacks it (v2's memory.swap.max without swap
# accounting, when the value asks for nothing: runc's rule).
CgroupFile = tuple[str, str, str, bool]

# blockIO's device lists: their v1 file, and their io.max key on v2 (None: v2 has no such limit)
_BLKIO_DEVICE_FILES = {
    "weightDevice": ("blkio.weight_device", None),
    "throttleReadBpsDevice": ("blkio.throttle.read_bps_device", "rbps"),
    "throttleWriteBpsDevice": ("blkio.throttle.write_bps_device", "wbps"),
    "throttleReadIOPSDevice": ("blkio.throttle.read_iops_device", "riops"),
    "throttleWriteIOPSDevice": ("blkio.throttle.write_iops_device", "wiops"),
}
# v1's memory files, in the order written (the limit before memory+swap, which may not be below
# it)
_MEMORY_V1 = (("limit", "memory.limit_in_bytes"), ("reservation", "memory.soft_limit_in_bytes"),
              ("swap", "memory.memsw.limit_in_bytes"), ("kernel", "memory.kmem.limit_in_bytes"),
              ("kernelTCP", "memory.kmem.tcp.limit_in_bytes"), ("swappiness", "memory.swappiness"))
# v1's cpu files, in the order written: each period before what the kernel checks against it
_CPU_V1 = (("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"),
           ("quota", "cpu.cfs_quota_us"), ("realtimePeriod", "cpu.rt_period_us"),
           ("realtimeRuntime", "cpu.rt_runtime_us"))


def cgroup_files(r: Resources, version: str) -> list[CgroupFile]:
    """The files r writes in a cgroup of version "v1" or "v2", in order. Raises ConfigError
    for what that version cannot take (unified on v1; on v2 a swap limit it cannot turn into
    swap alone)."""
    return _v2_files(r) if version == "v2" else _v1_files(r)


def _v1_files(r: Resources) -> list[CgroupFile]:
    if r.unified:
        raise ConfigError("linux.resources.unified needs cgroup v2; this host runs cgroup v1")
    out: list[CgroupFile] = [("memory", name, str(r.memory[key]), False)
                             for key, name in _MEMORY_V1 if key in r.memory]
    if r.disable_oom_killer:
        out.append(("memory", "memory.oom_control", "1", False))
    out += [("cpu", name, str(r.cpu[key]), False) for key, name in _CPU_V1 if key in r.cpu]
    out += [("cpuset", f"cpuset.{key}", value, False) for key, value in r.cpuset.items()]
    if r.pids:
        out.append(("pids", "pids.max", _max(r.pids), False))
    out += [("blkio", "blkio.leaf_weight" if key == "leafWeight" else "blkio.weight", str(value),
             False) for key, value in r.blkio.items()]
    out += [("blkio", _BLKIO_DEVICE_FILES[key][0], f"{dev} {value}", False)
            for key, dev, value in r.blkio_devices]
    out += [("hugetlb", f"hugetlb.{size}.limit_in_bytes", str(limit), False)
            for size, limit in r.hugepages]
    if r.class_id is not None:
        out.append(("net_cls", "net_cls.classid", str(r.class_id), False))
    out += [("net_prio", "net_prio.ifpriomap", f"{name} {prio}", False)
            for name, prio in r.priorities]
    return out


def _v2_files(r: Resources) -> list[CgroupFile]:
    """As runc's fs2 (opencontainers/cgroups): the v1 values converted where v2 has an
    equivalent, in its order, the unified keys last so that they override. What v2 does not
    have is ignored as there: kernel memory limits, swappiness, disableOOMKiller, real-time
    periods, net_cls and net_prio, the blkio leaf and per-device weights (the last taken by
    runc only where the BFQ scheduler's io.bfq.weight exists)."""
    from pyminidocker.container.cgroups import CPU_PERIOD, shares_to_weight

    out: list[CgroupFile] = []
    if r.pids:
        out.append(("pids", "pids.max", _max(r.pids), False))
    limit, swap = r.memory.get("limit"), r.memory.get("swap")
    swap_only = _swap_v2(swap, limit)
    if swap_only is not None:
        # unlimited or no swap: nothing to ask of a kernel that does not account swap
        out.append(("memory", "memory.swap.max", _max(swap_only), swap_only in (-1, 0)))
    if limit:
        out.append(("memory", "memory.max", _max(limit), False))
    if r.memory.get("reservation"):
        out.append(("memory", "memory.low", _max(r.memory["reservation"]), False))
    if r.blkio.get("weight"):
        out.append(("io", "io.weight", str(1 + (r.blkio["weight"] - 10) * 9999 // 990), False))
    out += [("io", "io.max", f"{dev} {_BLKIO_DEVICE_FILES[key][1]}={value}", False)
            for key, dev, value in r.blkio_devices if _BLKIO_DEVICE_FILES[key][1]]
    if "shares" in r.cpu:
        # v1 clamps shares to [2, 262144] silently; so does this, to cpu.weight's [1, 10000]
        weight = min(max(shares_to_weight(r.cpu["shares"]), 1), 10_000)
        out.append(("cpu", "cpu.weight", str(weight), False))
    if "quota" in r.cpu or "period" in r.cpu:
        quota = r.cpu.get("quota", -1)
        out.append(("cpu", "cpu.max", f"{quota if quota > 0 else 'max'} "
                    f"{r.cpu.get('period') or CPU_PERIOD}", False))
    out += [("cpuset", f"cpuset.{key}", value, False) for key, value in r.cpuset.items()]
    for size, value in r.hugepages:
        # the reservation limit too, where the kernel has it (5.7), as runc does
        out += [("hugetlb", f"hugetlb.{size}.max", str(value), False),
                ("hugetlb", f"hugetlb.{size}.rsvd.max", str(value), True)]
    out += [(key.partition(".")[0], key, value, False) for key, value in r.unified.items()]
    return out


def _max(value: int) -> str:
    # v2's word for no limit, which v1's pids.max takes too
    return "max" if value < 0 else str(value)


def _swap_v2(swap: int | None, limit: int | None) -> int | None:
    """memory.swap.max from the spec's swap, which is memory + swap (v1's memsw): swap alone,
    -1 for no limit, None to leave it (runc's ConvertMemorySwapToCgroupV2Value). Raises
    ConfigError where there is no such value."""
    if swap is None:
        # unlimited memory without a word on swap: unlimited swap too, as v1's memsw would be
        return -1 if limit == -1 else None
    if swap == -1 or limit == -1:
        return swap
    if limit is None:
        raise ConfigError("linux.resources.memory.swap: unable to set swap limit without "
                          "memory limit (cgroup v2 limits swap alone)")
    if limit < 0:
        raise ConfigError(f"linux.resources.memory.limit: invalid memory value: {limit}")
    if swap < limit:
        raise ConfigError("linux.resources.memory: memory+swap limit (swap) should be >= "
                          "memory limit")
    return swap - limit
