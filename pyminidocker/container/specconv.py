"""Spec policy: what a container gets from its record (image config + host config), as the
shim's spawn spec: its mounts, namespaces, capabilities, limits, seccomp program, user and
environment (runc's libcontainer/specconv plays this part there).

The decisions are container.spec's values and pure functions; this module
puts them together for one container, reading its root (users, volumes, devices) as needed.
"""
from __future__ import annotations

import os
import stat

from pyminidocker import native as _native
from pyminidocker.container import spec as policy
from pyminidocker.errors import PmdError, StartError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from pyminidocker.store import Store
    from pyminidocker.store.containers import ContainerRecord, HostConfig
    from pyminidocker.trace import Tracer

# Docker's --init: its docker-init (tini) goes to this path; ours is Debian's static tini,
# which runs in any image (no libc needed from it).
INIT_PATH = "/sbin/docker-init"
TINI = "/usr/bin/tini-static"

# Mount points of every container (targets of the standard mounts and of the files in
# etc_files), which an image's init layer holds where the image lacks them.
INIT_DIRS = ("proc", "sys", "dev")
INIT_FILES = ("hostname", "hosts", "resolv.conf")

# A container's /etc/hosts before its network adds its own name (and its peers' names).
_BASE_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
               "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
               "ff02::2\tip6-allrouters\n")


def container_spec(store: Store, trace: Tracer, warnings: list[str], rec: ContainerRecord,
                   d: str, stdio: tuple[int, int, int]) -> Any:
    """The spawn spec of the container rec (its directory d, its root mounted at d/rootfs):
    spawn_spec's, with its cgroup made with its limits (what the host cannot apply goes to
    warnings) and mounted, its seccomp program and its stdio."""
    with trace.phase("spec"):
        sp = spawn_spec(rec, os.path.join(d, "rootfs"), d,
                        lambda rootfs, m: _volume_mount(store, rootfs, m))
    with trace.phase("cgroup"):
        cg = cgroup_of(rec)
        cg.create(limits(rec.host))
        warnings += cg.warnings
    sp.mounts += cgroup_mounts(cg)
    sp.cgroup_procs = cg.procs_files()
    _share_namespaces(store, rec.host, sp)
    sp.seccomp = _seccomp_program(store.root, rec.host, sp.cap_bounding)
    sp.stdin, sp.stdout, sp.stderr = stdio
    return sp


def _volume_mount(store: Store, rootfs: str, m: dict[str, Any]) -> Any:
    from pyminidocker.container.mounts import mount_of  # -v, --mount and VOLUMEs only

    return mount_of(store, rootfs, m)


def spawn_spec(rec: ContainerRecord, rootfs: str, etc_dir: str,
               volume_mount: Callable[[str, dict[str, Any]], Any] | None = None) -> Any:
    """Docker's policy for the container rec as the shim's SpawnSpec: its process (command,
    environment, user resolved in rootfs, working directory made there if missing,
    capabilities, rlimits), namespaces and mounts (standard ones, /etc files from etc_dir,
    devices, --init, -v/--mount through volume_mount, --tmpfs), masked and read-only paths.
    What the container's cgroup and seccomp add comes after (container_spec); the OCI
    runtime's config.json reaches the same SpawnSpec (oci.config, with this module's tables).
    Raises UsageError."""
    host = rec.host
    user = policy.resolve_user(rootfs, rec.user)
    env = policy.merge_env(host.image_env, rec.env, rec.hostname, user.home, rec.tty)
    try:
        policy.make_workdir(rootfs, rec.cwd)
    except OSError as e:
        raise UsageError(f"cannot create working directory {rec.cwd}: {e.strerror}") from None
    ns, caps = _namespaces_and_caps(host)
    mounts = _standard_mounts(host.get("network") == "host", host.get("privileged"))
    _namespace_mounts(mounts, host)
    groups = list(user.groups) + policy.extra_groups(rootfs, host.get("group_add", []))
    for dev in host.get("devices", []):  # the host's node, bound (as in a userns)
        mounts.append(_native.Mount(target=dev["container"], source=dev["host"],
                                    flags=_native.MS_BIND, mkdir=True))
    argv = rec.argv
    if host.get("init"):  # Docker's --init: tini as PID 1, bound read-only
        mounts.append(_native.Mount(target=INIT_PATH, source=TINI, mkdir=True,
                                    flags=_native.MS_BIND | _native.MS_RDONLY))
        argv = [INIT_PATH, "--", *argv]
    for name in INIT_FILES:
        mounts.append(_native.Mount(target=f"/etc/{name}", source=os.path.join(etc_dir, name),
                                    flags=_native.MS_BIND, mkdir=True))
    if (host.get("mounts") or host.get("binds")) and volume_mount is not None:
        from pyminidocker.container.mounts import mounts_of  # only when needed: start path

        mounts += [volume_mount(rootfs, m) for m in mounts_of(host)]
    for t in host.get("tmpfs", []):
        from pyminidocker.container.mounts import parse_tmpfs, tmpfs_options  # --tmpfs only

        path, opts = parse_tmpfs(t)
        flags, data = tmpfs_options(opts)
        mounts.append(_native.Mount(
            target=policy.resolved_destination(rootfs, path, f"--tmpfs {t}"),
            source="tmpfs", fstype="tmpfs", mkdir=True, flags=flags, data=data))
    privileged = bool(host.privileged)
    return _native.SpawnSpec(
        argv=argv, env=env, namespaces=ns, rootfs=rootfs,
        readonly_root=bool(host.get("read_only")), mounts=mounts, dev_setup=True,
        masked_paths=[] if privileged else list(policy.MASKED_PATHS),
        readonly_paths=[] if privileged else list(policy.READONLY_PATHS),
        hostname=None if ns & _native.CLONE_NEWUTS == 0 else rec.hostname, cwd=rec.cwd,
        uid=user.uid, gid=user.gid, groups=groups, rlimits=_rlimits(host),
        cap_bounding=caps, cap_effective=caps, cap_permitted=caps, cap_inheritable=0,
        cap_ambient=0, no_new_privs=bool(host.no_new_privs), setsid=True, console=rec.tty)


def cgroup_mounts(cg: Any, dest: str = "/sys/fs/cgroup", ro: int = _native.MS_RDONLY,
                  own_namespace: bool = True) -> list[Any]:
    """The mounts of a container's cgroup at dest (the engine's containers, and the OCI
    runtime's "cgroup" mount): in its own cgroup namespace the hierarchies themselves (it
    sees its cgroup as their root; on v1 under a tmpfs), else its own directories bound
    (under a tmpfs). ro: MS_RDONLY or 0."""
    base = _native.MS_NOSUID | _native.MS_NODEV | _native.MS_NOEXEC
    hierarchies = cg.container_mounts() if own_namespace else []
    out = []
    if not own_namespace or (hierarchies and hierarchies[0][1] == "cgroup"):
        out.append(_native.Mount(dest, "tmpfs", "tmpfs", base, "mode=755", mkdir=True))
    for target, fstype, data in hierarchies:
        out.append(_native.Mount(dest + target.removeprefix("/sys/fs/cgroup"), "cgroup", fstype,
                                 base | ro, data or None, mkdir=True))
    if not own_namespace:
        by_mount: dict[str, str] = {}
        for ctl, mnt in cg.layout.controllers.items():
            by_mount.setdefault(mnt, ctl)
        for mnt in sorted(by_mount):
            src = os.path.join(mnt, cg.parent, cg.id)
            if os.path.isdir(src):
                out.append(_native.Mount(f"{dest}/{os.path.basename(mnt)}", src, None,
                                         _native.MS_BIND | base | ro, mkdir=True))
    return out


def limits(host: Mapping[str, Any], devices: bool = True) -> Any:
    """The cgroup limits of a host config (without device rules: those of the cgroup are
    left as they are). Raises UsageError (Docker's words)."""
    from pyminidocker.container.cgroups import (
        DEFAULT_DEVICE_RULES,
        PRIVILEGED_DEVICE_RULES,
        Limits,
    )

    rules = PRIVILEGED_DEVICE_RULES if host.get("privileged") else DEFAULT_DEVICE_RULES
    extra_rules = [("allow", r) for r in host.get("device_cgroup_rules", [])]
    for dev in host.get("devices", []):
        extra_rules += [("allow", rule) for rule in _device_rules(dev)]
    return Limits(memory=host.get("memory"), cpus=host.get("cpus"),
                  pids=host.get("pids_limit"),
                  devices=(*rules, *extra_rules) if devices else (),
                  memory_swap=host.get("memory_swap"), cpu_shares=host.get("cpu_shares"),
                  memory_reservation=host.get("memory_reservation"),
                  cpu_period=host.get("cpu_period"), cpu_quota=host.get("cpu_quota"),
                  cpuset_cpus=host.get("cpuset_cpus"), cpuset_mems=host.get("cpuset_mems"),
                  oom_kill_disable=bool(host.get("oom_kill_disable")),
                  memory_swappiness=host.get("memory_swappiness"),
                  cpu_rt_period=host.get("cpu_rt_period"),
                  cpu_rt_runtime=host.get("cpu_rt_runtime"),
                  blkio_throttle=tuple((k, dev, v) for k, dev, v, _ in
                                       host.get("blkio_throttle", [])))


# the host config's namespace modes (--network, --pid, --ipc, --uts, --cgroupns) by the OCI
# name of their namespace
_HOST_MODES = {"network": "network", "pid_mode": "pid", "ipc_mode": "ipc", "uts_mode": "uts",
               "cgroupns": "cgroup"}


def _namespaces_and_caps(host: HostConfig) -> tuple[int, int]:
    """The namespaces a container (and what is exec'd in it) has, and its capability mask."""
    ns = policy.DEFAULT_NAMESPACES | _native.CLONE_NEWCGROUP
    for key, kind in _HOST_MODES.items():
        if host.get(key) == "host":  # --network host, --pid host...: the host's namespace
            ns &= ~policy.NAMESPACES[kind]
    caps = policy.capabilities(host.get("privileged", False), host.get("cap_add", []),
                               host.get("cap_drop", []))
    return ns, caps


def _share_namespaces(store: Store, host: HostConfig, sp: Any) -> None:
    """--pid/--ipc container:X: the spawn enters X's namespaces instead of new ones (what is
    exec'd later joins the container's own, which are then X's). X must be running (Docker's
    words otherwise). Raises StartError."""
    for key, flag, what in (("pid_mode", _native.CLONE_NEWPID, "PID"),
                            ("ipc_mode", _native.CLONE_NEWIPC, "IPC")):
        mode = host.get(key) or ""
        if not mode.startswith("container:"):
            continue
        from pyminidocker.proc import alive

        try:
            other = store.containers.lookup(mode[10:])
        except PmdError:
            other = None
        if other is None or other.state.status != "running" or \
                not alive(other.state.pid, other.state.pid_start):
            raise StartError(f"cannot join {what} of a non running container: {mode[10:22]}",
                             exit_code=125)
        sp.share_pid = other.state.pid
        sp.share_namespaces |= flag
        sp.namespaces &= ~flag


def cgroup_of(rec: ContainerRecord) -> Any:
    from pyminidocker.container.cgroups import Cgroup

    # Cgroup's own default parent unless --cgroup-parent names one (one place says what the
    # default is)
    parent = rec.host.get("cgroup_parent")
    blkio = bool(rec.host.get("blkio_throttle"))  # its blkio directory, made and removed
    return Cgroup(rec.id, parent, blkio=blkio) if parent else Cgroup(rec.id, blkio=blkio)


def _rlimits(host: Mapping[str, Any]) -> dict[int, tuple[int, int]]:
    """--ulimit NAME=SOFT:HARD as the shim's rlimits (-1: unlimited, RLIM_INFINITY)."""
    inf = (1 << 64) - 1
    return {policy.ULIMITS[name]: (inf if soft < 0 else soft, inf if hard < 0 else hard)
            for name, (soft, hard) in (host.get("ulimits") or {}).items()}


def _device_rules(dev: dict[str, str]) -> list[str]:
    """The cgroup rules --device needs: "c MAJOR:MINOR perms" of the node (each node of a
    directory). Raises UsageError for a path that is no device."""
    paths = [dev["host"]]
    if os.path.isdir(dev["host"]):
        paths = [os.path.join(top, f) for top, _, files in os.walk(dev["host"]) for f in files]
    rules = []
    for p in paths:
        st = os.stat(p)
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
            rules.append(f"{kind} {os.major(st.st_rdev)}:{os.minor(st.st_rdev)} "
                         f"{dev['perms']}")
    if not rules:
        raise UsageError(f"{dev['host']} is not a device")
    return rules


def _namespace_mounts(mounts: list[Any], host: Mapping[str, Any]) -> None:
    """--shm-size; --ipc host (the host's /dev/shm) and none (no /dev/shm), as Docker."""
    for i, m in enumerate(mounts):
        if m.target != "/dev/shm":
            continue
        if host.get("ipc_mode") == "host":
            mounts[i] = _native.Mount("/dev/shm", "/dev/shm", None,
                                      _native.MS_BIND | _native.MS_REC, mkdir=True)
        elif host.get("ipc_mode") == "none":
            del mounts[i]
        elif host.get("shm_size"):
            mounts[i] = _native.Mount(m.target, m.source, m.fstype, m.flags,
                                      f"mode=1777,size={host['shm_size']}", mkdir=True)
        return


def security_options(root: str, options: list[str], caps: int
                     ) -> tuple[bool, str | None, list[str]]:
    """--security-opt: (no_new_privs, the seccomp profile: its JSON text, "unconfined" or None
    for Docker's default, the options as inspect shows them). Raises UsageError."""
    nnp = False
    profile: str | None = None
    security_opt: list[str] = []
    for so in options:
        if so in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
            nnp = True
        elif so.startswith(("seccomp=", "seccomp:")):
            profile = seccomp_option(root, so[len("seccomp="):], caps)
            so = f"seccomp={profile}"  # as Docker: the profile itself, not its file
        elif so.startswith(("apparmor=", "apparmor:", "label=", "label:")):
            pass  # accepted as Docker accepts them; not applied (the CLI says so)
        elif so not in ("no-new-privileges:false", "no-new-privileges=false"):
            raise UsageError(f"invalid --security-opt: {so!r}")
        security_opt.append(so)
    return nnp, profile, security_opt


def healthcheck(image: dict[str, Any] | None, flags: dict[str, Any]) -> dict[str, Any] | None:
    """The container's healthcheck: the image's HEALTHCHECK with each --health-* flag over
    it; None when there is none or it is disabled (--no-healthcheck, HEALTHCHECK NONE)."""
    if flags.get("Test") == ["NONE"]:
        flags = {"Test": ["NONE"]}
    health = {**(image or {}), **{k: v for k, v in flags.items() if v}}
    return health if health.get("Test") and health["Test"][0] != "NONE" else None


def seccomp_option(root: str, value: str, caps: int) -> str:
    """--security-opt seccomp=VALUE: "unconfined", or the text of the profile file VALUE,
    checked by compiling it (the program is then cached for the start). Raises UsageError
    with Docker's wording for a file that cannot be read or a profile that is wrong."""
    if value == "unconfined":
        return value
    try:
        with open(value, "rb") as f:
            text = f.read().decode()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror.lower() if isinstance(e, OSError) and e.strerror else str(e)
        raise UsageError(f"opening seccomp profile ({value}) failed: open {value}: {reason}") \
            from None
    try:
        seccomp_cached(os.path.join(root, "seccomp"), text, caps)
    except (ValueError, OSError) as e:
        raise UsageError(f"Decoding seccomp profile failed: {e}") from None
    return text


def _seccomp_program(root: str, host: HostConfig, caps: int) -> bytes:
    """The seccomp program of a container and what is exec'd in it: none when privileged or
    unconfined, else its profile's (Docker's default unless --security-opt seccomp=FILE)
    for its capabilities, from the store's cache (seccomp_cached)."""
    profile = host.seccomp
    if host.privileged or profile == "unconfined":
        return b""
    try:
        return seccomp_cached(os.path.join(root, "seccomp"), profile, caps)
    except (ValueError, OSError) as e:
        raise StartError(f"seccomp profile: {e}", exit_code=125) from None


def _standard_mounts(host_network: bool, privileged: bool | None) -> list[Any]:
    """Docker's standard mounts; /sys read-write when privileged, and bound from the host
    with the host's network (sysfs shows the network namespace of whoever mounts it). Not
    recursively: a fresh sysfs (Docker's) has nothing mounted below it either, and on a pure
    cgroup v2 host the host's cgroup2 at /sys/fs/cgroup would refuse the container's own
    cgroup2 mount there (EBUSY: the same superblock at the same place)."""
    n = _native
    mounts = policy.default_mounts()
    sys_flags = n.MS_NOSUID | n.MS_NOEXEC | n.MS_NODEV | (0 if privileged else n.MS_RDONLY)
    for i, m in enumerate(mounts):
        if m.target == "/sys":
            mounts[i] = n.Mount("/sys", "/sys", None, n.MS_BIND | sys_flags,
                                mkdir=True) if host_network else \
                n.Mount("/sys", "sysfs", "sysfs", sys_flags, mkdir=True)
    return mounts


def base_hosts(rec: ContainerRecord) -> str:
    """/etc/hosts before the container's network adds its names: --add-host lines follow. On
    the host's network it starts from the host's own file, as Docker copies it."""
    hosts = _BASE_HOSTS
    if rec.host.get("network") == "host":
        try:
            with open("/etc/hosts") as f:
                hosts = f.read()
        except OSError:
            pass
    for h in rec.host.get("extra_hosts", []):
        name, _, ip = h.partition(":")
        hosts += f"{rec.host['host_gateway'] if ip == 'host-gateway' else ip}\t{name}\n"
    return hosts


def etc_files(rec: ContainerRecord) -> dict[str, bytes]:
    """The files the engine manages for the container, bound over its /etc/<name>; --dns*
    replace the host's resolver settings."""
    return {"hostname": f"{rec.hostname}\n".encode(), "hosts": base_hosts(rec).encode(),
            "resolv.conf": resolv_conf(rec.host.get("network") == "host", rec.host)}


def resolv_conf(host_network: bool, host: Mapping[str, Any] | None = None) -> bytes:
    """The host's resolv.conf; in a private network namespace loopback nameservers cannot be
    reached, so they are dropped (Docker falls back to public resolvers; we reach no address
    outside the host, so we leave none rather than invent one). --dns* then apply."""
    try:
        with open("/etc/resolv.conf") as f:
            text = f.read()
    except OSError:
        text = ""
    if not host_network:
        lines = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and (
                    parts[1].startswith("127.") or parts[1] == "::1"):
                continue
            lines.append(line)
        text = "\n".join(lines) + "\n" if lines else ""
    host = host or {}
    if host.get("dns") or host.get("dns_search") or host.get("dns_options"):
        text = _custom_resolv(text, host)
    return text.encode()


def _custom_resolv(text: str, host: Mapping[str, Any]) -> str:
    """The host's resolv.conf with --dns, --dns-search and --dns-option each replacing its
    kind of lines (Docker's rule); the given nameservers are kept even on loopback."""
    keep = {"nameserver": not host.get("dns"), "search": not host.get("dns_search"),
            "domain": not host.get("dns_search"), "options": not host.get("dns_options")}
    lines = [ln for ln in text.splitlines() if keep.get((ln.split() or [""])[0], True)]
    lines += [f"nameserver {d}" for d in host.get("dns", [])]
    if host.get("dns_search"):
        lines.append("search " + " ".join(s for s in host["dns_search"] if s != "."))
    if host.get("dns_options"):
        lines.append("options " + " ".join(host["dns_options"]))
    return "\n".join(ln for ln in lines if ln.strip() != "search") + "\n"


def exec_spec(root: str, rec: ContainerRecord, rootfs: str, argv: list[str], env: list[str],
              user: str | None, workdir: str | None, tty: bool) -> Any:
    """The spawn spec of a process exec'd in the running container rec: its namespaces and
    cgroup, the confinement of its init; user, workdir and env as `exec` gives them."""
    host = rec.host
    u = policy.resolve_user(rootfs, rec.user if user is None else user)
    full_env = policy.merge_env(host.image_env, [*rec.env, *env], rec.hostname, u.home, tty)
    ns, caps = _namespaces_and_caps(host)
    return _native.SpawnSpec(
        argv=argv, env=full_env, namespaces=ns, join_pid=rec.state.pid,
        cwd=policy.workdir(workdir) if workdir else rec.cwd, uid=u.uid, gid=u.gid,
        groups=list(u.groups),
        cap_bounding=caps, cap_effective=caps, cap_permitted=caps, cap_inheritable=0,
        cap_ambient=0, no_new_privs=bool(host.no_new_privs),
        seccomp=_seccomp_program(root, host, caps),
        cgroup_procs=cgroup_of(rec).procs_files(), setsid=True, console=tty,
    )


def log_of(host: Mapping[str, Any]) -> dict[str, Any]:
    """--log-driver/--log-opt: {"driver", "max_size", "max_file"} (json-file by default)."""
    return host.get("log") or {"driver": "json-file"}


def _stamp(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_mtime_ns:x}{st.st_size:x}"


def seccomp_cached(cache_dir: str, profile_json: str | None, caps: int) -> bytes:
    """The compiled program for a container: profile_json None is the default profile, else
    the text of a Docker-format profile (kept in the container's record). Cached in
    cache_dir, keyed by the profile (the default's file and the syscall tables by mtime and
    size, a given profile by its SHA-256), the capability set and the kernel release (for
    minKernel); compiled (container.seccomp) on a miss. Raises ProfileError (a ValueError)
    for a profile that does not compile here."""
    release = os.uname().release
    if profile_json is None:
        key = f"default-{_stamp(policy.SECCOMP_PROFILE)}"
    else:
        import hashlib

        key = hashlib.sha256(profile_json.encode()).hexdigest()[:32]
    path = os.path.join(cache_dir, f"{key}-{_stamp(policy.SYSCALL_TABLE)}-{caps:x}-{release}.bpf")
    try:
        with open(path, "rb") as f:
            cached = f.read()
        # An empty or cut file (a machine crash after the rename of a write never synced)
        # would be no filter at all, or one the kernel refuses: compiled again instead.
        if cached and len(cached) % 8 == 0 and len(cached) <= policy.SECCOMP_PROG_BYTES_MAX:
            return cached
    except FileNotFoundError:
        pass
    from pyminidocker.container.seccomp import Profile

    p = Profile.default() if profile_json is None else Profile.from_docker_json(profile_json)
    prog = p.compile(caps)
    from pyminidocker.record import atomic_write

    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    atomic_write(path, prog, mode=0o600, durable=False)  # a cache: lost, it is made again
    return prog
