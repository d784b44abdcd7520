"""A container's mounts, as Docker decides them: -v, --mount, --volumes-from, the image's VOLUMEs
(and --tmpfs's options); at its start, each record as the shim's Mount (mount_of).

The flags are parsed into one plain list of mount records, kept in the container's host config
("mounts") and shown by inspect as its Mounts:

    {"Type": "volume", "Name": n, "Destination": d, "RW": b, "Mode": m, "NoCopy": b,
     "Anonymous": b}
    {"Type": "bind", "Source": p, "Destination": d, "RW": b, "Mode": m, "Propagation": "rprivate",
     "Create": b}                           (Create: -v makes a missing source, --mount refuses)
    {"Type": "tmpfs", "Destination": d, "Options": "size=...,mode=..."}

A volume's Name is None until create() makes the anonymous ones. Precedence is Docker's: the
container's own -v/--mount over --volumes-from over the image's VOLUMEs, per destination.
"""
from __future__ import annotations

import os

from pyminidocker import native as _native
from pyminidocker.container.spec import (
    MOUNT_OPTIONS,
    check_destination,
    resolved_destination,
    secure_join,
)
from pyminidocker.errors import NotFound, PmdError, StoreError, UsageError, suppress
from pyminidocker.native import MS_NODEV, MS_NOEXEC, MS_NOSUID
from pyminidocker.store import log_event
from pyminidocker.store.files import now_iso, valid_name

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from pyminidocker.store import Store

_MODES = {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate"}
_TRUE = {"", "1", "true", "True", "TRUE", "t"}
_FALSE = {"0", "false", "False", "FALSE", "f"}


def parse_volume(spec: str) -> dict[str, Any]:
    """-v SOURCE:DEST[:MODE] (SOURCE an absolute host path: a bind; a name: a named volume) or
    -v DEST (an anonymous volume). Raises UsageError in Docker's words."""
    parts = spec.split(":")
    if len(parts) > 3 or not all(parts):
        raise UsageError(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        src, dst, mode = "", parts[0], ""
    else:
        src, dst, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
    kind = "bind" if src.startswith("/") else "volume"
    if not dst.startswith("/"):
        raise UsageError(f"invalid volume specification: '{spec}': invalid mount config for "
                         f"type \"{kind}\": invalid mount path: '{dst}' mount path must be "
                         "absolute")
    opts = set(mode.split(",")) - {""}
    if not opts <= _MODES or {"ro", "rw"} <= opts:
        raise UsageError(f"invalid mode: {mode}")
    ro = "ro" in opts
    dst = check_destination(dst)
    if kind == "bind":
        if "nocopy" in opts:
            raise UsageError(f"invalid mode: {mode}")
        return {"Type": "bind", "Source": os.path.normpath(src), "Destination": dst,
                "RW": not ro, "Mode": mode, "Propagation": "rprivate", "Create": True}
    if src and (len(src) < 2 or not valid_name(src)):
        raise UsageError(f'create {src}: "{src}" includes invalid characters for a local volume '
                         'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended '
                         "to pass a host directory, use absolute path")
    return {"Type": "volume", "Name": src or None, "Destination": dst, "RW": not ro,
            "Mode": mode, "NoCopy": "nocopy" in opts, "Anonymous": not src}


def _flag(value: str, key: str, spec: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f'invalid argument "{spec}" for "--mount" flag: invalid value for {key}: '
                     f"{value}")


def _mount_error(spec: str, why: str) -> UsageError:
    return UsageError(f'invalid argument "{spec}" for "--mount" flag: {why}')


_ALIASES = {"src": "source", "destination": "target", "dst": "target", "ro": "readonly"}


def _mount_fields(spec: str) -> tuple[dict[str, Any], set[str]]:
    """--mount's CSV fields, each checked on its own: (values by canonical key, keys given)."""
    f: dict[str, Any] = {"type": "volume", "source": "", "target": "", "readonly": False,
                         "volume-nocopy": False, "tmpfs-size": "", "tmpfs-mode": "",
                         "bind-propagation": "", "volume-opt": {}, "volume-label": {}}
    seen: set[str] = set()
    for field in spec.split(","):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            raise _mount_error(spec, f"invalid field '{field}' must be a key=value pair")
        seen.add(key)
        name = _ALIASES.get(key, key)
        if key == "type":
            if value not in ("volume", "bind", "tmpfs"):
                raise _mount_error(spec, f"invalid value for 'type': {value}" if value != "npipe"
                                   else "mount type npipe is for Windows")
            f[name] = value
        elif name in ("readonly", "volume-nocopy"):
            f[name] = _flag(value, key, spec)
        elif name in ("volume-opt", "volume-label"):
            k, _, v = value.partition("=")
            f[name][k] = v
        elif key == "volume-driver":
            if value != "local":
                raise _mount_error(spec, f"volume driver {value} is not available (only local)")
        elif key == "consistency":
            if value not in ("default", "consistent", "cached", "delegated"):
                raise _mount_error(spec, f"invalid value for consistency: {value}")
        elif name in ("source", "target", "tmpfs-size", "tmpfs-mode", "bind-propagation"):
            f[name] = value
        else:
            raise _mount_error(spec, f"unexpected key '{key}' in '{field}'")
    return f, seen


def parse_mount(spec: str) -> dict[str, Any]:
    """--mount type=volume|bind|tmpfs,source=,target=,readonly,... (Docker's CSV syntax).
    Raises UsageError."""
    f, seen = _mount_fields(spec)
    kind, dst = f["type"], f["target"]
    if not dst:
        raise UsageError(f"invalid mount config for type \"{kind}\": field Target must not be "
                         "empty")
    if not dst.startswith("/"):
        raise UsageError(f"invalid mount config for type \"{kind}\": invalid mount path: "
                         f"'{dst}' mount path must be absolute")
    dst = check_destination(dst)
    if kind != "volume" and seen & {"volume-opt", "volume-label", "volume-nocopy",
                                    "volume-driver"}:
        raise _mount_error(spec, f"cannot mix 'volume-*' options with mount type '{kind}'")
    if kind != "tmpfs" and seen & {"tmpfs-size", "tmpfs-mode"}:
        raise _mount_error(spec, f"cannot mix 'tmpfs-*' options with mount type '{kind}'")
    if kind != "bind" and f["bind-propagation"]:
        raise _mount_error(spec, f"cannot mix 'bind-*' options with mount type '{kind}'")
    if kind == "tmpfs":
        return _tmpfs_mount(spec, f, dst)
    if kind == "bind":
        return _bind_mount(spec, f, dst)
    return _volume_mount(f, dst)


def _tmpfs_mount(spec: str, f: dict[str, Any], dst: str) -> dict[str, Any]:
    if f["source"]:
        raise UsageError('invalid mount config for type "tmpfs": field Source must not be '
                         "specified")
    data = []
    size, mode, ro = f["tmpfs-size"], f["tmpfs-mode"], f["readonly"]
    if size:
        from pyminidocker.container.cgroups import parse_bytes

        data.append(f"size={parse_bytes(size)}")
    if mode:
        if not all(c in "01234567" for c in mode):
            raise _mount_error(spec, f"invalid value for tmpfs-mode: {mode}")
        data.append(f"mode={mode}")
    if ro:
        data.append("ro")
    opts = ",".join(data)
    tmpfs_options(opts)
    return {"Type": "tmpfs", "Destination": dst, "Options": opts, "RW": not ro}


def _bind_mount(spec: str, f: dict[str, Any], dst: str) -> dict[str, Any]:
    src, propagation = f["source"], f["bind-propagation"]
    if not src:
        raise UsageError('invalid mount config for type "bind": field Source must not be '
                         "empty")
    if not src.startswith("/"):
        raise UsageError(f'invalid mount config for type "bind": invalid mount path: '
                         f"'{src}' mount path must be absolute")
    if propagation not in ("", "private", "rprivate"):
        raise _mount_error(spec, f"bind-propagation {propagation} is not supported (private, "
                           "rprivate)")
    if not os.path.exists(src):
        raise UsageError(f'invalid mount config for type "bind": bind source path does '
                         f"not exist: {src}")
    return {"Type": "bind", "Source": os.path.normpath(src), "Destination": dst,
            "RW": not f["readonly"], "Mode": "", "Propagation": "rprivate", "Create": False}


def _volume_mount(f: dict[str, Any], dst: str) -> dict[str, Any]:
    src = f["source"]
    if src and (len(src) < 2 or not valid_name(src)):
        raise UsageError(f'create {src}: "{src}" includes invalid characters for a local volume '
                         'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended '
                         "to pass a host directory, use absolute path")
    from pyminidocker.store.volumes import check_options

    check_options(f["volume-opt"])
    m: dict[str, Any] = {"Type": "volume", "Name": src or None, "Destination": dst,
                         "RW": not f["readonly"], "Mode": "", "NoCopy": f["volume-nocopy"],
                         "Anonymous": not src}
    if f["volume-opt"]:
        m["VolumeOptions"] = f["volume-opt"]
    if f["volume-label"]:
        m["VolumeLabels"] = f["volume-label"]
    return m


def parse_tmpfs(spec: str) -> tuple[str, str]:
    """--tmpfs /path[:options] → (path, options), the options checked (tmpfs_options). Raises
    UsageError."""
    path, _, opts = spec.partition(":")
    if not path.startswith("/"):
        raise UsageError(f"invalid tmpfs specification: '{spec}': the path must be absolute")
    tmpfs_options(opts)
    return check_destination(path), opts


# --tmpfs options as Docker takes them: flags, and the tmpfs data keys with their value's shape
_TMPFS_FLAGS = {k: MOUNT_OPTIONS[k] for k in ("exec", "noexec", "suid", "nosuid", "dev",
                                               "nodev", "ro", "rw")}
_TMPFS_KEYS = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"}
_SIZE_SUFFIXES = ("k", "m", "g", "t", "%")


def tmpfs_options(opts: str) -> tuple[int, str]:
    """Docker's tmpfs options (noexec,nosuid,nodev by default; exec, suid, dev, ro, rw;
    size, mode, uid, gid, nr_inodes, nr_blocks) → (mount flags, tmpfs data). Raises
    UsageError for an option tmpfs does not take or a malformed value."""
    flags, data = MS_NOEXEC | MS_NOSUID | MS_NODEV, []
    for opt in filter(None, opts.split(",")):
        key, eq, value = opt.partition("=")
        if not eq and key in _TMPFS_FLAGS:
            add, clear = _TMPFS_FLAGS[key]
            flags = (flags | add) & ~clear
            continue
        ok = False
        if eq and key in _TMPFS_KEYS and value:
            if key == "mode":
                ok = all(c in "01234567" for c in value)
            elif key == "size":
                num = value.lower().removesuffix("b")
                ok = num.removesuffix(num[-1:] if num.endswith(_SIZE_SUFFIXES) else "").isdigit()
            else:
                ok = value.isdigit()
        if not ok:
            raise UsageError(f"invalid tmpfs option: {opt!r}")
        data.append(opt)
    return flags, ",".join(data) or "mode=1777"


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """--volumes-from CONTAINER[:ro|rw] → (container, "ro"|"rw"|""). Raises UsageError."""
    ref, _, mode = spec.partition(":")
    if not ref or mode not in ("", "ro", "rw"):
        raise UsageError(f"invalid mode: {mode}" if ref else
                         f"invalid volumes-from specification: '{spec}'")
    return ref, mode


def inherited(mounts: list[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Another container's volume and bind mounts for --volumes-from, ro/rw as mode says."""
    out = []
    for m in mounts:
        if m["Type"] not in ("volume", "bind"):
            continue
        m = dict(m, Anonymous=False)  # the volume belongs to its first container: rm -v of
        if mode:                      # this one does not remove it
            m["RW"] = mode == "rw"
        out.append(m)
    return out


def plan(own: list[dict[str, Any]], tmpfs: list[str], from_others: list[dict[str, Any]],
         image_volumes: list[str]) -> list[dict[str, Any]]:
    """The container's mounts, by precedence, parents before children. Raises UsageError for
    two of its own mounts on one destination (Docker: Duplicate mount point)."""
    taken: dict[str, dict[str, Any]] = {}
    for path in [parse_tmpfs(t)[0] for t in tmpfs] + [m["Destination"] for m in own]:
        if path in taken:
            raise UsageError(f"Duplicate mount point: {path}")
        taken[path] = {}
    for m in own:
        taken[m["Destination"]] = m
    for m in from_others:
        taken.setdefault(m["Destination"], m)
    for path in image_volumes:
        path = check_destination(path)
        taken.setdefault(path, {"Type": "volume", "Name": None, "Destination": path,
                                "RW": True, "Mode": "", "NoCopy": False, "Anonymous": True})
    out = [m for m in taken.values() if m]
    out.sort(key=lambda m: m["Destination"].rstrip("/").count("/"))
    return out


def seed(src: str, dst: str) -> None:
    """Docker's copy of an image's content into a new volume: when the volume is empty and the
    image has a directory at the mount point, its tree is copied with owners, modes and times
    (symlinks as links, never followed: they belong to the container's root, not the host's).
    src must already be resolved inside the root (spec.secure_join). Raises OSError."""
    try:
        if os.listdir(dst) or not os.path.isdir(src) or os.path.islink(src):
            return
    except FileNotFoundError:
        return
    _copy_meta(src, dst)
    for top, dirs, files, _ in os.fwalk(src):
        rel = os.path.relpath(top, src)
        target_dir = dst if rel == "." else os.path.join(dst, rel)
        for name in dirs + files:
            s = os.path.join(top, name)
            t = os.path.join(target_dir, name)
            st = os.lstat(s)
            kind = st.st_mode & 0o170000
            if kind == 0o120000:  # symlink: copied as is (fwalk lists it in dirs or files)
                os.symlink(os.readlink(s), t)
            elif kind == 0o040000:
                os.mkdir(t, 0o700)
            elif kind == 0o100000:
                _copy_file(s, t)
            else:  # devices, fifos, sockets: made anew
                os.mknod(t, st.st_mode, st.st_rdev)
            _copy_meta(s, t, st)
    # a directory's times change as entries are made in it: set them again, deepest first
    for top, _, _, _ in os.fwalk(src, topdown=False):
        rel = os.path.relpath(top, src)
        t = dst if rel == "." else os.path.join(dst, rel)
        st = os.lstat(top)
        os.utime(t, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_file(s: str, t: str) -> None:
    fi = os.open(s, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fo = os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while os.sendfile(fo, fi, None, 1 << 20):
                pass
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def _copy_meta(s: str, t: str, st: os.stat_result | None = None) -> None:
    st = st or os.lstat(s)
    os.chown(t, st.st_uid, st.st_gid, follow_symlinks=False)
    if not os.path.islink(t):
        os.chmod(t, st.st_mode & 0o7777)
    os.utime(t, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def mount_of(store: Store, rootfs: str, m: dict[str, Any]) -> Any:
    """The shim's Mount for one mount record; a volume's directory seeded from the image
    on its first use (seed). Raises UsageError, NotFound (a volume gone)."""
    given = m.get("Name") or m.get("Source") or ""  # the mount as the user wrote it
    dst = resolved_destination(
        rootfs, m["Destination"],
        f"-v {given}:{m['Destination']}" if m["Type"] != "tmpfs" else "")
    ro = _native.MS_RDONLY if not m.get("RW", True) else 0
    if m["Type"] == "tmpfs":
        flags, data = tmpfs_options(m.get("Options", ""))
        return _native.Mount(target=dst, source="tmpfs", fstype="tmpfs", mkdir=True,
                             flags=flags | ro, data=data)
    if m["Type"] == "bind":
        src = m["Source"]
        if not os.path.exists(src):
            if not m.get("Create", True):
                raise UsageError(f"bind source path does not exist: {src}")
            os.makedirs(src, exist_ok=True)  # Docker creates a missing -v bind source
        return _native.Mount(target=dst, source=src, mkdir=True,
                             flags=_native.MS_BIND | _native.MS_REC | ro)
    vol = store.volumes.get(m["Name"])
    opts = vol.options
    if opts:  # the local driver's mount(8)-like options: the device itself is mounted
        o = [x for x in opts.get("o", "").split(",") if x]
        if "bind" in o:
            return _native.Mount(target=dst, source=opts["device"], mkdir=True,
                                 flags=_native.MS_BIND | _native.MS_REC | ro)
        return _native.Mount(target=dst, source=opts["device"], fstype=opts.get("type"),
                             mkdir=True, flags=ro, data=",".join(o) or None)
    src = store.volumes.data_path(vol.name)
    if not m.get("NoCopy"):
        try:
            seed(secure_join(rootfs, dst), src)
        except OSError as e:
            raise StoreError(f"cannot copy the image's {dst} into volume {vol.name}: "
                             f"{e.strerror}") from None
    return _native.Mount(target=dst, source=src, mkdir=True,
                         flags=_native.MS_BIND | _native.MS_REC | ro)


def mounts_of(host: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A container's mount records; a record made before volumes has its -v binds only."""
    if "mounts" in host:
        return list(host["mounts"])
    return [parse_volume(v) for v in host.get("binds", [])]


def inspect_mounts(records: list[dict[str, Any]], volume_path: Any) -> list[dict[str, Any]]:
    """Docker's inspect Mounts of a container's mount records; volume_path(name) is where a
    volume's data lives."""
    out = []
    for m in records:
        rw = bool(m.get("RW", True))
        if m["Type"] == "volume":
            out.append({"Type": "volume", "Name": m["Name"], "Source": volume_path(m["Name"]),
                        "Destination": m["Destination"], "Driver": "local",
                        "Mode": m.get("Mode", ""), "RW": rw, "Propagation": ""})
        elif m["Type"] == "bind":
            out.append({"Type": "bind", "Source": m["Source"], "Destination": m["Destination"],
                        "Mode": m.get("Mode", ""), "RW": rw, "Propagation": "rprivate"})
        else:
            out.append({"Type": "tmpfs", "Source": "", "Destination": m["Destination"],
                        "Mode": "", "RW": rw, "Propagation": ""})
    return out


def make_volumes(store: Store, planned: list[dict[str, Any]]) -> list[str]:
    """Create the volumes the mounts name that do not exist yet, and the anonymous ones
    (naming them in their mount records). Returns the names made. Caller holds the store
    lock."""
    vols = store.volumes
    made: list[str] = []
    try:
        for m in planned:
            if m["Type"] != "volume":
                continue
            if m["Name"] is not None:
                try:
                    vols.get(m["Name"])
                    continue
                except NotFound:
                    pass
            vol = vols.create(m["Name"], now_iso(), labels=m.get("VolumeLabels"),
                              options=m.get("VolumeOptions"))
            m["Name"] = vol.name
            made.append(vol.name)
    except BaseException:
        drop_volumes(store, made)
        raise
    return made

def drop_volumes(store: Store, names: list[str]) -> None:
    """Remove volumes no container uses any more. Caller holds the store lock."""
    if not names:
        return
    users = store.volumes.users()
    for name in names:
        with suppress(PmdError, OSError):
            dead = store.volumes.remove(name, users, force=True)
            if dead:
                store.discard(dead)
                log_event(store.root, "volume", "destroy", name, {"driver": "local"})
