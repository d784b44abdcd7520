"""The OCI runtime's operations over the shim: create (a held container), start, run, exec,
kill, delete, pause/resume, update; the cgroup, device nodes and hooks around a spawn.

Between create and start the container's init exists, held before its first step (see
"Holding" in csrc/pmd.h). `create` exits, so the hold is kept by a small holder process it
forks: the holder owns the release channel, waits on <root>/<id>/ctl.sock for `start` (or a
delete), releases the init and reports its setup result back, then exits, so that the init is
reparented to the caller's subreaper (containerd-shim, conmon) as runc's is.
"""
from __future__ import annotations

import errno
import os

from pyminidocker.errors import PmdError
from pyminidocker.oci import state as st
from pyminidocker.oci.state import ConfigError, RuntimeError_
from pyminidocker.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker import native as shim
    from pyminidocker.container.cgroups import Cgroup
    from pyminidocker.oci.config import Container, Hook
    from pyminidocker.oci.resources import CgroupFile

# The parent of the cgroups of configs without a cgroupsPath: ours, so removed with its last child
# (runc puts such a cgroup below its own and leaves nothing either; a cgroupsPath's parents are
# the caller's, and runc leaves those, as we do).
DEFAULT_PARENT = "pyminidocker-runc"
# Controllers linux.resources may write that the engine's Cgroup does not make a directory in.
_EXTRA_CONTROLLERS = ("blkio", "hugetlb", "net_cls", "net_prio")
# The nodes dev_setup makes in every container (csrc/mount.c): a config's copy of them is a no-op.
_STD_DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                "/dev/tty"}


def now_rfc3339() -> str:
    import time

    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


# ---- cgroups ----------------------------------------------------------------------------------

def cgroup_of(container_id: str, cgroups_path: str) -> Cgroup:
    """The Cgroup an OCI cgroupsPath names ("/a/b/c": parent a/b, name c); an empty one is
    <id> below pyminidocker-runc, as runc puts it below its own."""
    from pyminidocker.container.cgroups import Cgroup  # not at the top: see cleanup

    path = cgroups_path.strip("/")
    if ":" in path:
        raise ConfigError(f"cgroupsPath {cgroups_path!r} is in the systemd form "
                          "(slice:prefix:name): this runtime drives cgroupfs only")
    if not path:
        return Cgroup(container_id, DEFAULT_PARENT)
    parent, _, name = path.rpartition("/")
    return Cgroup(name, parent or "/")


def _extra_dirs(cg: Cgroup, files: list[CgroupFile]) -> dict[str, str]:
    """The container's directories in the v1 hierarchies files need that the engine's Cgroup
    does not make (none on v2: one directory holds every controller's files)."""
    out: dict[str, str] = {}
    if cg.version == "v2":
        return out
    wanted = {ctl for ctl, _, _, _ in files}
    for ctl in _EXTRA_CONTROLLERS:
        mount = cg.layout.controllers.get(ctl)
        if ctl in wanted:
            if mount is None:
                raise ConfigError(f"linux.resources: the cgroup v1 {ctl} controller is not "
                                  "mounted on this host")
            out[ctl] = os.path.join(mount, cg.parent, cg.id)
    return out


def _enable_v2(cg: Cgroup, files: list[CgroupFile]) -> None:
    """Enable for the container's cgroup the v2 controllers of files that its parent does not
    give it yet (the engine's Cgroup enables those of its own limits alone). Raises ConfigError
    naming the first file whose controller this host lacks."""
    from pyminidocker.container.cgroups import read_control

    need: dict[str, str] = {}
    for ctl, name, _, _ in files:
        # cgroup.* are the core's files, in every cgroup
        if ctl != "cgroup":
            need.setdefault(ctl, name)
    have = (read_control(os.path.join(cg.dirs[""], "cgroup.controllers")) or "").split()
    missing = [ctl for ctl in need if ctl not in have]
    if not missing:
        return
    root = cg.layout.root
    available = (read_control(os.path.join(root, "cgroup.controllers")) or "").split()
    for ctl in missing:
        if ctl not in available:
            raise ConfigError(f"linux.resources: cannot set {need[ctl]}: the cgroup v2 {ctl} "
                              f"controller is not available in {root}/cgroup.controllers")
    try:
        cg.enable_controllers(missing)
    except PmdError as e:
        raise RuntimeError_(f"linux.resources: {e}") from None


def write_resources(cg: Cgroup, files: list[CgroupFile], extra: dict[str, str]) -> None:
    """Write files (cgroup_files()) in the container's cgroup: each in its controller's
    directory on v1 (extra: those _extra_dirs made), all in the one directory on v2, whose
    controllers are enabled first. Raises ConfigError or RuntimeError_."""
    if cg.version == "v2" and files:
        _enable_v2(cg, files)
    for ctl, name, value, optional in files:
        if cg.version == "v2":
            d = cg.dirs[""]
        else:
            mount = cg.layout.controllers.get(ctl)
            if mount is None:
                raise ConfigError(f"linux.resources: the cgroup v1 {ctl} controller is not "
                                  "mounted on this host")
            d = extra.get(ctl) or os.path.join(mount, cg.parent, cg.id)
        path = os.path.join(d, name)
        try:
            # No O_CREAT: cgroupfs answers it for a missing file with EACCES, which misleads.
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            if optional and e.errno == errno.ENOENT:
                continue
            raise RuntimeError_(f"failed to write {value!r} to {path}: {e.strerror}") from None
        try:
            # The kernel parses each write whole, one entry at most (io.max's devices, say).
            for line in value.splitlines() or [""]:
                os.write(fd, line.encode())
        except OSError as e:
            raise RuntimeError_(f"failed to write {value!r} to {path}: {e.strerror}") from None
        finally:
            os.close(fd)


def make_cgroup(c: Container, container_id: str) -> tuple[Cgroup, list[str]]:
    """Create the container's cgroups with its limits; the v1 files its init joins."""
    from pyminidocker.container.cgroups import DEFAULT_DEVICE_RULES, Limits
    from pyminidocker.oci.resources import cgroup_files

    cg = cgroup_of(container_id, c.cgroups_path)
    # Before any mkdir: what this cgroup version cannot take leaves nothing behind.
    files = cgroup_files(c.resources, cg.version)
    # The config's rules, then the devices every container has, as runc appends them (a
    # config that denies all still gets /dev/null); DEFAULT_DEVICE_RULES starts with "deny a".
    rules = (*(c.resources.devices or DEFAULT_DEVICE_RULES[:1]), *DEFAULT_DEVICE_RULES[1:])
    # A device the config creates is one it may use (runc adds the same rules).
    rules = tuple(rules) + tuple(
        ("allow", f"{'c' if d.kind in ('c', 'u') else 'b'} {d.major}:{d.minor} rwm")
        for d in c.devices if d.kind != "p")
    for attempt in range(3):
        try:
            cg.create(Limits(devices=rules))
            break
        except PmdError as e:
            # Another runtime process removed the default parent, its last child gone, between
            # our mkdir of it and of ours: make it again.
            cause = e.__cause__
            if attempt == 2 or not isinstance(cause, OSError) or cause.errno != 2:
                raise
    extra: dict[str, str] = {}
    try:
        extra = _extra_dirs(cg, files)
        for d in extra.values():
            os.makedirs(d, exist_ok=True)
        write_resources(cg, files, extra)
    except BaseException:
        remove_cgroup(cg, list(extra.values()))
        raise
    return cg, [*cg.procs_files(), *(os.path.join(d, "tasks") for d in extra.values())]


def remove_cgroup(cg: Cgroup, extra: list[str]) -> None:
    """Remove the container's cgroups, and the default parent if it was the last one there."""
    cg.remove()
    dirs = list(extra)
    if cg.parent == DEFAULT_PARENT:
        dirs += [os.path.dirname(d) for d in (*cg.dirs.values(), *extra)]
    _rmdirs(dirs)  # a parent is EBUSY while another container is in it: that one removes it


def _rmdirs(dirs: list[str]) -> bool:
    """rmdir each directory; whether all are gone."""
    gone = True
    for d in dirs:
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            gone = False
    return gone


def wait_in_cgroup(pid: int, cg: Cgroup, timeout: float = 5.0) -> None:
    """Return once the held init has joined its cgroups (it does so first thing, itself:
    see the shim's child sequence), so that a created container is found there, as runc's
    is. Raises RuntimeError_ if it does not (one that died returns: releasing it reports
    why)."""
    import time

    own = f"/{cg.parent}/{cg.id}".replace("//", "/")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if any(line.rstrip("\n").endswith(own) for line in f):
                    return
        except OSError:
            pass
        if not st.pid_start(pid):  # gone or a zombie: its setup failed, the release says why
            return
        if time.monotonic() > deadline:
            raise RuntimeError_(f"the container's init did not join its cgroup {own}")
        time.sleep(0.0005)


def cgroup_mounts(c: Container, cg: Cgroup) -> list[shim.Mount]:
    """A config's "cgroup" mount: with a cgroup namespace the hierarchies themselves (the
    container sees its own cgroup as their root), without one its own directories bound
    (specconv.cgroup_mounts, as the engine's containers have them)."""
    from pyminidocker.container.specconv import cgroup_mounts as mounts

    if c.cgroup_mount is None:
        return []
    from pyminidocker import native as shim  # not at the top: `delete` and `kill` need no shim

    dest, flags = c.cgroup_mount
    return mounts(cg, dest, flags & shim.MS_RDONLY, bool(c.namespaces & shim.CLONE_NEWCGROUP))


# ---- devices ----------------------------------------------------------------------------------

def device_mounts(c: Container, cdir: str) -> list[shim.Mount]:
    """Each linux.devices node, made in <cdir>/dev and bound over its path in the container
    (mknod in the container's /dev happens after the shim's last Python-visible step)."""
    import stat

    from pyminidocker import native as shim

    out = []
    staging = os.path.join(cdir, "dev")
    for i, d in enumerate(c.devices):
        if d.path in _STD_DEVICES and c.spec.dev_setup:
            continue
        os.makedirs(staging, mode=0o700, exist_ok=True)
        node = os.path.join(staging, str(i))
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.kind]
        try:
            os.mknod(node, kind | d.mode, os.makedev(d.major, d.minor))
            os.chown(node, d.uid, d.gid)
            os.chmod(node, d.mode)
        except OSError as e:
            raise RuntimeError_(f"mknod {d.path}: {e.strerror}") from None
        # The remount that applies nosuid/noexec also clears the staging directory's nodev.
        out.append(shim.Mount(d.path, node, None, shim.MS_BIND | shim.MS_NOSUID | shim.MS_NOEXEC,
                              mkdir=True))
    return out


# ---- namespaces -------------------------------------------------------------------------------

def join_paths(c: Container) -> None:
    """Enter the namespaces the config names by path, so that the init cloned next is in them
    (a pid namespace applies to children only, which is what is wanted)."""
    from pyminidocker.container.namespaces import setns  # create's alone: not at the top
    from pyminidocker.oci.config import NAMESPACES

    # Each path opened first, in the current mount namespace. The user namespace last, as
    # runc's nsexec: as the host's root we may enter any namespace, after it only those it
    # owns; and the namespaces cloned next are then its own (a single-threaded caller is
    # needed: the holder, or run before its relay thread).
    order = sorted(c.join_paths, key=lambda k: (k == "user", k == "mount"))
    fds = {k: os.open(c.join_paths[k], os.O_RDONLY | os.O_CLOEXEC) for k in order}
    try:
        for kind in order:
            setns(c.join_paths[kind], NAMESPACES[kind], fds[kind])
    finally:
        for fd in fds.values():
            os.close(fd)
    if "uts" in c.join_paths and c.spec.hostname:
        # The shim sets a hostname in a UTS namespace it creates; a joined one is ours now.
        import socket

        try:
            socket.sethostname(c.spec.hostname)
        except OSError as e:
            raise RuntimeError_(f"sethostname: {e.strerror}") from None
        c.spec.hostname = None


def configure_init(c: Container, pid: int) -> None:
    """What is done to the held init from outside: oomScoreAdj, sysctls, domain name."""
    from pyminidocker.container.namespaces import configure  # as setns above

    if c.oom_score_adj is not None:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(c.oom_score_adj))
    configure(pid, c.sysctl, c.domainname)


# ---- hooks ------------------------------------------------------------------------------------

def run_hooks(hooks: list[Hook], stage: str, state_obj: dict[str, Any],
              warn_only: bool = False) -> list[str]:
    """Run each hook with the state on its stdin; raises RuntimeError_ for the first that fails
    or times out (warn_only: returns the failures instead, as runc does for poststop)."""
    if not hooks:
        return []  # json and subprocess cost milliseconds of every start
    import json
    import subprocess

    data = json.dumps(state_obj).encode()
    failures = []
    for i, h in enumerate(hooks):
        env = dict(e.split("=", 1) for e in h.env if "=" in e)
        try:
            proc = subprocess.run(h.args, executable=h.path, input=data, env=env,
                                  capture_output=True, timeout=h.timeout, check=False)
            if proc.returncode != 0:
                msg = (f"error running {stage} hook #{i}: exit status {proc.returncode}, "
                       f"stdout: {proc.stdout.decode(errors='replace').strip()}, "
                       f"stderr: {proc.stderr.decode(errors='replace').strip()}")
            else:
                continue
        except subprocess.TimeoutExpired:
            msg = f"error running {stage} hook #{i}: timeout after {h.timeout}s"
        except OSError as e:
            msg = f"error running {stage} hook #{i}: {h.path}: {e.strerror}"
        if not warn_only:
            raise RuntimeError_(msg)
        failures.append(msg)
    return failures


# The hooks the shim runs in the container, and the status their state says (runc's): the
# createContainer hooks run while it is created, the startContainer hooks once it is.
_SHIM_HOOKS = (("createContainer", "create_hooks", "creating"),
               ("startContainer", "hooks", "created"))


def shim_hooks(c: Container, spec: shim.SpawnSpec) -> None:
    """The config's hooks that run in the container, handed to the shim."""
    for stage, attr, _ in _SHIM_HOOKS:
        setattr(spec, attr, [(h.path, h.args, h.env, h.timeout or 0)
                             for h in c.hooks.get(stage, [])])


def hooks_stdin(spec: shim.SpawnSpec) -> None:
    """Where the shim's hooks read the state (see write_hooks_state), made before the spawn
    for the child to inherit: a memfd for each stage that has hooks."""
    for stage, attr, _ in _SHIM_HOOKS:
        if getattr(spec, attr):
            setattr(spec, attr + "_stdin", os.memfd_create(stage, os.MFD_CLOEXEC))


def write_hooks_state(spec: shim.SpawnSpec, rec: dict[str, Any]) -> None:
    """The state for the shim's hooks, once the init's pid is known (before the release that
    reaches them); the fds are ours to close, the init keeps its own copies."""
    for _, attr, status in _SHIM_HOOKS:
        fd = getattr(spec, attr + "_stdin")
        if fd < 0:
            continue
        import json

        os.write(fd, json.dumps(st.oci_state(rec, status)).encode())
        os.close(fd)
        setattr(spec, attr + "_stdin", -1)


# ---- the container record ---------------------------------------------------------------------

@dataclass
class Prepared:
    """A container ready to spawn: its spec, cgroup and the state record to write."""

    container: Container
    spec: shim.SpawnSpec
    cgroup: Cgroup
    extra_cgroups: list[str]
    record: dict[str, Any]


def prepare(c: Container, doc: dict[str, Any], root: str, container_id: str) -> Prepared:
    """Make the state directory (refusing an id in use), the cgroup and device nodes; the
    spawn spec with them. On error everything made is removed again."""
    from pyminidocker.oci.config import NAMESPACES

    cdir = st.container_dir(root, container_id)
    os.makedirs(root, mode=0o711, exist_ok=True)
    try:
        os.mkdir(cdir, 0o711)
    except FileExistsError:
        raise RuntimeError_(f"container with id exists: {container_id}") from None
    cg = None
    extra: list[str] = []
    try:
        cg, procs = make_cgroup(c, container_id)
        extra = [p.removesuffix("/tasks") for p in procs if not p.startswith(
            tuple(cg.dirs.values()))]
        spec = c.spec
        spec.mounts = [*spec.mounts, *cgroup_mounts(c, cg), *device_mounts(c, cdir)]
        spec.cgroup_procs = procs
        shim_hooks(c, spec)
        mask = c.namespaces
        for kind in c.join_paths:
            mask |= NAMESPACES[kind]
        freezer = cg.dirs.get("freezer")
        rec = {
            "id": container_id, "bundle": c.bundle, "rootfs": c.rootfs,
            "created": now_rfc3339(), "annotations": c.annotations, "pid": 0,
            "pid_start": "", "ns_mask": mask, "freezer": freezer,
            "cgroup": [cg.id, cg.parent or "/"], "extra_cgroups": extra,
            "cgroup_dirs": [*cg.dirs.values(), *extra], "config": doc,
        }
        return Prepared(c, spec, cg, extra, rec)
    except BaseException:
        if cg is not None:
            remove_cgroup(cg, extra)
        st.remove(root, container_id)
        raise


def cleanup(root: str, rec: dict[str, Any]) -> None:
    """Remove what a container leaves on the host: its cgroups and state directory."""
    cg_id, parent = rec.get("cgroup") or ("", "")
    dirs = rec.get("cgroup_dirs")
    # A stopped container's cgroups are empty: one rmdir each, from the record, without the
    # cgroup module (milliseconds of imports and of reading the host's layout on each delete).
    if dirs and _rmdirs(dirs):
        if parent == DEFAULT_PARENT:
            _rmdirs([os.path.dirname(d) for d in dirs])
    elif cg_id:
        from pyminidocker.container.cgroups import Cgroup

        try:
            remove_cgroup(Cgroup(cg_id, parent), rec.get("extra_cgroups") or [])
        except PmdError:
            pass  # a cgroup that will not go is no reason to keep the container's record
    st.remove(root, rec["id"])


def hooks_of(rec: dict[str, Any]) -> dict[str, list[Hook]]:
    doc = rec.get("config", {}).get("hooks")
    if not doc:
        return {}  # the config reader is milliseconds of every delete
    from pyminidocker.oci.config import _hooks

    return _hooks(doc)


def wait_gone(rec: dict[str, Any], timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while st.alive(rec):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
