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
from pyminidocker.oci.fields import get, strings
from pyminidocker.oci.resources import Resources
from pyminidocker.oci.resources import parse as parse_resources
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


def _version_ok(version: str) -> None:
    major = version.split(".", 1)[0]
    if major != "1":
        raise ConfigError(f"unsupported spec version {version!r}: this runtime runs 1.x "
                          f"(up to {SUPPORTED_OCI_VERSION} and later minor versions)")


def parse(doc: dict[str, Any], bundle: str) -> Container:
    """Check doc (a config.json) and turn it into a Container. Raises ConfigError naming the
    first field it refuses. Reads the root filesystem (symlinks of mount destinations), writes
    nothing."""
    version = get(doc, "ociVersion", str, "")
    if not version:
        raise ConfigError("config.json: ociVersion is required")
    _version_ok(version)
    root = get(doc, "root", dict, "")
    if not root or not get(root, "path", str, "root."):
        raise ConfigError("config.json: root.path is required")
    rootfs = _root_path(bundle, root["path"])
    linux = get(doc, "linux", dict, "", {})
    proc = get(doc, "process", dict, "")
    if proc is None:
        # Allowed at create; `start` then refuses (the runtime spec's rule). The held init is
        # given a command it never runs.
        proc = {"args": ["/"]}
    warnings: list[str] = []

    namespaces, join_paths = _namespaces(linux)
    spec = process_spec(proc, rootfs, warnings)
    spec.namespaces = namespaces
    spec.rootfs = rootfs
    spec.readonly_root = bool(get(root, "readonly", bool, "root.", False))
    spec.setsid = True
    terminal = bool(get(proc, "terminal", bool, "process.", False))
    size = get(proc, "consoleSize", dict, "process.")
    console_size = (int(get(size, "height", int, "process.consoleSize.", 0)),
                    int(get(size, "width", int, "process.consoleSize.", 0))) if size else None

    hostname = get(doc, "hostname", str, "")
    if hostname and not (namespaces & shim.CLONE_NEWUTS or "uts" in join_paths):
        raise ConfigError("unable to set hostname without a private UTS namespace")
    spec.hostname = hostname or None
    domainname = get(doc, "domainname", str, "") or None
    if domainname and not namespaces & shim.CLONE_NEWUTS:
        raise ConfigError("unable to set domainname without a private UTS namespace")

    spec.uid_map, spec.gid_map = _id_maps(linux, namespaces)
    spec.userns_joined = "user" in join_paths
    mounts, cgroup_mount = _mounts(doc, bundle, rootfs, namespaces)
    devices = _devices(linux)
    spec.mounts = mounts
    spec.dev_setup = any(m.target == "/dev" and m.fstype == "tmpfs" for m in mounts)
    spec.masked_paths = strings(linux, "maskedPaths", "linux.")
    spec.readonly_paths = strings(linux, "readonlyPaths", "linux.")
    for p in spec.masked_paths + spec.readonly_paths:
        if not p.startswith("/"):
            raise ConfigError(f"config.json: masked or read-only path {p!r} is not absolute")
    if not _mount_namespace(spec, linux, "mount" in join_paths, warnings):
        mounts, cgroup_mount, devices = [], None, []
    sysctl = _sysctl(linux, namespaces, join_paths)
    seccomp = get(linux, "seccomp", dict, "linux.")
    if seccomp is not None:
        _seccomp(seccomp, spec)
    if get(linux, "intelRdt", dict, "linux."):
        warnings.append("linux.intelRdt ignored: this host has no resctrl")
    personality = get(linux, "personality", dict, "linux.")
    if personality and get(personality, "domain", str, "linux.personality.") not in (
            None, "LINUX"):
        raise ConfigError("config.json: linux.personality: only the LINUX domain is supported")
    cgroups_path = get(linux, "cgroupsPath", str, "linux.", "")
    resources = parse_resources(get(linux, "resources", dict, "linux.", {}))
    annotations = get(doc, "annotations", dict, "", {})
    hooks = _hooks(get(doc, "hooks", dict, "", {}))
    oom = get(proc, "oomScoreAdj", int, "process.")
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
    propagation = get(linux, "rootfsPropagation", str, "linux.")
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
        ("mounts", spec.mounts), ("linux.devices", get(linux, "devices", list, "linux.")),
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
    for i, ns in enumerate(get(linux, "namespaces", list, "linux.", [])):
        kind = get(ns, "type", str, f"linux.namespaces[{i}].")
        if kind not in NAMESPACES:
            raise ConfigError(f"namespace type {kind!r} is not supported (linux.namespaces"
                              f"[{i}]): one of {', '.join(NAMESPACES)}")
        if kind in seen:
            raise ConfigError(f"malformed spec file: duplicated ns {kind!r}")
        seen.add(kind)
        path = get(ns, "path", str, f"linux.namespaces[{i}].")
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
        for i, m in enumerate(get(linux, key, list, "linux.", [])):
            where = f"linux.{key}[{i}]."
            ids = [get(m, f, int, where) for f in ("containerID", "hostID", "size")]
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
    args = strings(proc, "args", "process.")
    if not args:
        raise ConfigError("args must not be empty")
    env = strings(proc, "env", "process.")
    if not any(e.startswith("PATH=") for e in env):
        # runc searches args[0] in the container's PATH, which without one is the default.
        env = [*env, DEFAULT_ENV_PATH]
    cwd = get(proc, "cwd", str, "process.", "/") or "/"
    if not cwd.startswith("/"):
        raise ConfigError(f"cwd {cwd!r} is not an absolute path")
    user = get(proc, "user", dict, "process.", {})
    uid = get(user, "uid", int, "process.user.", 0)
    gid = get(user, "gid", int, "process.user.", 0)
    groups = get(user, "additionalGids", list, "process.user.", [])
    if not all(isinstance(g, int) and g >= 0 for g in groups) or uid < 0 or gid < 0:
        raise ConfigError("config.json: process.user: ids must be non-negative integers")
    spec = shim.SpawnSpec(argv=list(args), env=env, cwd=cwd, uid=uid, gid=gid,
                          groups=list(groups))
    if rootfs is not None and cwd != "/":
        try:  # runc creates a missing cwd, inside the root whatever its links say
            make_workdir(rootfs, cwd)
        except OSError as e:
            raise ConfigError(f"cannot create cwd {cwd}: {e.strerror}") from None
    caps = get(proc, "capabilities", dict, "process.")
    if caps is not None:
        own = own_bounding_set()
        sets = {}
        for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            mask = _cap_mask(strings(caps, key, "process.capabilities."),
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
    for i, rl in enumerate(get(proc, "rlimits", list, "process.", [])):
        kind = get(rl, "type", str, f"process.rlimits[{i}].")
        if kind not in RLIMITS:
            raise ConfigError(f"config.json: process.rlimits[{i}]: unknown rlimit type "
                              f"{kind!r}")
        soft = get(rl, "soft", int, f"process.rlimits[{i}].", 0)
        hard = get(rl, "hard", int, f"process.rlimits[{i}].", 0)
        spec.rlimits[RLIMITS[kind]] = (soft, hard)
    spec.no_new_privs = bool(get(proc, "noNewPrivileges", bool, "process.", False))
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
    for i, m in enumerate(get(doc, "mounts", list, "", [])):
        where = f"mounts[{i}]"
        dest = get(m, "destination", str, f"{where}.")
        if not dest:
            raise ConfigError(f"config.json: {where}: destination is required")
        if not dest.startswith("/"):
            # runc 1.1 warned and made it absolute; the spec says it must be absolute.
            raise ConfigError(f"config.json: {where}: destination {dest!r} is not absolute")
        dest = "/" + os.path.normpath(dest).lstrip("/")
        check_destination(rootfs, dest)
        kind = get(m, "type", str, f"{where}.", "") or ""
        source = get(m, "source", str, f"{where}.", "") or ""
        flags, _, data = _mount_options(strings(m, "options", f"{where}."), where)
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
    for i, d in enumerate(get(linux, "devices", list, "linux.", [])):
        where = f"linux.devices[{i}]."
        path = get(d, "path", str, where, "")
        norm = "/" + os.path.normpath(path).lstrip("/") if path else ""
        if not path.startswith("/") or not norm.startswith("/dev/"):
            raise ConfigError(f"config.json: {where}path: device path {path!r} is not in /dev")
        kind = get(d, "type", str, where, "")
        if kind not in ("c", "b", "u", "p"):
            raise ConfigError(f"config.json: {where}type: {kind!r} is not c, b, u or p")
        major = get(d, "major", int, where, 0)
        minor = get(d, "minor", int, where, 0)
        mode = get(d, "fileMode", int, where, 0o666)
        out.append(Device(norm, kind, major, minor, mode & 0o7777,
                          get(d, "uid", int, where, 0), get(d, "gid", int, where, 0)))
    return out


def _sysctl(linux: dict[str, Any], namespaces: int, join: dict[str, str]) -> dict[str, str]:
    values = get(linux, "sysctl", dict, "linux.", {})
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
        for i, h in enumerate(get(doc, stage, list, "hooks.", [])):
            where = f"hooks.{stage}[{i}]."
            path = get(h, "path", str, where, "")
            if not os.path.isabs(path):
                raise ConfigError(f"config.json: {where}path {path!r} is not absolute")
            timeout = get(h, "timeout", int, where)
            if timeout is not None and timeout <= 0:
                raise ConfigError(f"config.json: {where}timeout must be positive")
            items.append(Hook(path, strings(h, "args", where) or [path],
                              strings(h, "env", where), timeout))
        out[stage] = items
    return out
