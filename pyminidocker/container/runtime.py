"""Container lifecycle: create, start (attached or detached), stop, kill, rm, wait, exec.

Builds the spawn spec from the image config, the user's options and Docker's defaults
(container.spec), mounts the container's overlay, applies cgroup limits and hands the spec
to the C shim. The state a command finds is first reconciled with reality (refresh): a container
whose process is gone is shown exited, whatever killed it or its monitor.
"""
from __future__ import annotations

import errno
import os
import stat
import sys
import time

from pyminidocker import jsonio
from pyminidocker import shim as _native
from pyminidocker.container import defaults
from pyminidocker.container import mounts as mountspec
from pyminidocker.container import spec as policy
from pyminidocker.container.mounts import mounts_of
from pyminidocker.errors import (
    Conflict,
    NotFound,
    PmdError,
    StartError,
    StoreError,
    UsageError,
    suppress,
)
from pyminidocker.proc import alive as _alive
from pyminidocker.proc import start_time as _pid_start
from pyminidocker.record import dataclass, field
from pyminidocker.store import Store, events
from pyminidocker.store.containers import (
    ContainerRecord,
    HostConfig,
    State,
    check_name,
    random_name,
)
from pyminidocker.store.files import now_iso, remove_tree
from pyminidocker.trace import Tracer

try:
    import _signal as signal  # the signal module without its enum wrappers (enum costs ms)
except ImportError:  # pragma: no cover - not CPython
    import signal

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


@dataclass
class CreateOptions:
    image: str
    cmd: list[str] = field(default_factory=list)
    name: str | None = None
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    hostname: str | None = None
    read_only: bool = False
    volumes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)         # --mount
    volumes_from: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    network: str = "bridge"
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    # the checked values of the further run flags (cli.runflags.run_extra): kept in the
    # record's host config, each applied where its comment in this module says
    extra: dict[str, Any] = field(default_factory=dict)


_RESTART_POLICIES = {"always": _native.RESTART_ALWAYS, "on-failure": _native.RESTART_ON_FAILURE,
                     "unless-stopped": _native.RESTART_UNLESS_STOPPED}


def _log_of(host: Mapping[str, Any]) -> dict[str, Any]:
    """--log-driver/--log-opt: {"driver", "max_size", "max_file"} (json-file by default)."""
    return host.get("log") or {"driver": "json-file"}


def restart_policy(host: Mapping[str, Any]) -> tuple[str, int]:
    """(name, maximum retry count) of a host config's --restart ("no", 0 by default)."""
    r = host.get("restart") or {}
    return str(r.get("name") or "no"), int(r.get("max") or 0)


def _read_restart(path: str) -> dict[str, Any] | None:
    """The monitor's restart record ({"restart_count", "pid", "restarting", "started_at"})."""
    try:
        with open(path, "rb") as f:
            data = jsonio.loads(f.read())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _read_exit(path: str) -> tuple[int, str, bool] | None:
    """The monitor's exit record (exit_code, finished_at, oom_killed), None if not (yet) there.
    The monitor writes it atomically, so a partial record is not expected; a corrupt one is
    treated as missing."""
    try:
        with open(path, "rb") as f:
            data = jsonio.loads(f.read())
        return (int(data["exit_code"]), str(data.get("finished_at") or now_iso()),
                bool(data.get("oom_killed", False)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# Runtime has a method named `list`: inside it, annotations need the builtin by another name.
List = list


class Runtime:
    def __init__(self, store: Store, tracer: Tracer | None = None):
        self.store = store
        self.containers = store.containers
        self.trace = tracer or Tracer(False)
        self.warnings: list[str] = []  # Docker's warnings (limits the host cannot apply)

    # ---- records ------------------------------------------------------------------------

    def get(self, ref: str) -> ContainerRecord:
        return self.refresh(self.containers.lookup(ref))

    def list(self) -> list[ContainerRecord]:
        return [self.refresh(r) for r in self.containers.list()]

    def refresh(self, rec: ContainerRecord) -> ContainerRecord:
        """Reconcile a running record with reality: the monitor's exit record, or a process
        that is gone (monitor killed, host rebooted). Tears down what the exit left."""
        st = rec.state
        if st.status != "running":
            return rec
        exit_file = os.path.join(self.containers.path(rec.id), "exit")
        record = _read_exit(exit_file)
        if record is None:
            if _alive(st.pid, st.pid_start):
                if st.monitor_pid and not _alive(st.monitor_pid, st.monitor_start):
                    self._watch(rec)  # its monitor was killed: someone must keep its code
                return rec
            if rec.host.get("restart") and _alive(st.monitor_pid, st.monitor_start):
                followed = self._follow_restart(rec)
                if followed is not None:
                    return followed
            # The container is gone. Its monitor (or the watcher that replaced a killed one),
            # if still alive, is between the container's exit and the exit record (draining
            # output, unmounting, removing the cgroup): wait for its word rather than guess.
            # A monitor that is gone too, unwatched (killed, host rebooted), said nothing: as
            # if SIGKILLed.
            deadline = time.monotonic() + 5
            while record is None and (_alive(st.monitor_pid, st.monitor_start)
                                      or self._watched(rec)) and time.monotonic() < deadline:
                time.sleep(0.005)
                record = _read_exit(exit_file)
                if record is None and rec.host.get("restart"):
                    followed = self._follow_restart(rec)
                    if followed is not None:
                        return followed
            record = record or _read_exit(exit_file) or (137, now_iso(), False)
        code, finished, oom = record
        with self.store.lock():
            fresh = self.containers.get(rec.id)
            if fresh.state.status != "running":
                return fresh
            fresh.state.oom_killed = oom
            r = _read_restart(os.path.join(self.containers.path(rec.id), "restart"))
            if r is not None:  # the monitor's last word on its restarts
                fresh.state.restart_count = int(r.get("restart_count") or 0)
                fresh.state.restarting = False
            self._finish(fresh, code, finished)
        self._unplug(fresh)
        return fresh

    def health(self, rec: ContainerRecord) -> dict[str, Any] | None:
        """Docker's State.Health of a container with a healthcheck ({"Status", "FailingStreak",
        "Log"}), as its monitor last wrote it; None without a healthcheck."""
        if not rec.host.get("healthcheck"):
            return None
        try:
            with open(os.path.join(self.containers.path(rec.id), "health"), "rb") as f:
                data = jsonio.loads(f.read())
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict):
            data = {"Status": "starting", "FailingStreak": 0, "Log": []}
        return data

    def _watched(self, rec: ContainerRecord) -> bool:
        """Whether a watcher (container/watch.py) keeps the container's exit code."""
        from pyminidocker import proc

        try:
            with open(os.path.join(self.containers.path(rec.id), "watcher"), "rb") as f:
                return proc.token_alive(f.read().decode())
        except OSError:
            return False

    def _watch(self, rec: ContainerRecord) -> None:
        """Start container/watch.py for a running container whose monitor is gone, unless one
        watches it already (its token is in <dir>/watcher)."""
        from pyminidocker import proc
        from pyminidocker.store.files import atomic_write

        if self._watched(rec):
            return
        d = self.containers.path(rec.id)
        package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package, env.get("PYTHONPATH")) if p)
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            pid = os.posix_spawn(
                sys.executable, [sys.executable, "-m", "pyminidocker.container.watch", d,
                                 str(rec.state.pid), rec.state.pid_start], env,
                file_actions=[(os.POSIX_SPAWN_DUP2, devnull, n) for n in (0, 1, 2)],
                setsid=True)
        except OSError:
            return
        finally:
            os.close(devnull)
        with suppress(PmdError):
            atomic_write(os.path.join(d, "watcher"), proc.token(pid).encode(), durable=False)

    def _follow_restart(self, rec: ContainerRecord) -> ContainerRecord | None:
        """A container whose monitor restarts it (--restart): its state as the monitor's
        restart record says (a new pid, or between two runs), or None when the record says
        the monitor is done restarting (its exit record follows)."""
        r = _read_restart(os.path.join(self.containers.path(rec.id), "restart"))
        if r is None:
            return None
        pid = int(r.get("pid") or 0)
        st = rec.state
        if r.get("restarting"):
            st.restarting = True
            st.restart_count = int(r.get("restart_count") or 0)
            return rec
        if pid <= 0 or pid == st.pid:
            return None
        start = _pid_start(pid)
        if not start:
            return None
        with self.store.lock():
            fresh = self.containers.get(rec.id)
            if fresh.state.status != "running":
                return fresh
            fresh.state.pid, fresh.state.pid_start = pid, start
            fresh.state.started_at = str(r.get("started_at") or now_iso())
            fresh.state.restart_count = int(r.get("restart_count") or 0)
            fresh.state.restarting = False
            self.containers.save_state(fresh)
        return fresh

    def _finish(self, rec: ContainerRecord, code: int, finished: str) -> None:
        """Record the exit and release what the running container held (mounts, cgroup)."""

        cg = _cgroup(rec)
        rec.state.oom_killed = rec.state.oom_killed or cg.oom_killed()
        self._teardown(rec)
        rec.state.status = "exited"
        rec.state.exit_code = code
        rec.state.finished_at = finished
        rec.state.pid = 0
        rec.state.pid_start = ""
        rec.state.monitor_pid = 0
        rec.state.monitor_start = ""
        self.containers.save_state(rec)
        # here, under the store lock and once the record says running no more: `die` is
        # logged once, by whichever command notices the exit first
        self._event(rec, "die", exitCode=str(code))

    def _teardown(self, rec: ContainerRecord) -> None:

        rootfs = os.path.join(self.containers.path(rec.id), "rootfs")
        with self.trace.phase("teardown"):
            if os.path.ismount(rootfs):
                with suppress(OSError):
                    _native.umount(rootfs, _native.MNT_DETACH)
            _cgroup(rec).remove()

    # ---- create -------------------------------------------------------------------------

    def create(self, opts: CreateOptions) -> ContainerRecord:
        """Raises NotFound (image), Conflict (name), UsageError (options)."""
        with self.trace.phase("store read"):
            image = self.store.images.lookup(opts.image)
            cfg = self.store.images.config(image).get("config") or {}
        entrypoint = ([opts.entrypoint] if opts.entrypoint else []) if opts.entrypoint \
            is not None else cfg.get("Entrypoint")
        cmd = opts.cmd or (cfg.get("Cmd") if opts.entrypoint is None else None) or []
        argv = policy.command(entrypoint, cmd)
        cid = os.urandom(32).hex()
        planned = self._plan_mounts(opts, cfg)
        caps = policy.capabilities(opts.privileged, opts.cap_add, opts.cap_drop)
        nnp = False
        profile: str | None = None
        security_opt = []
        for so in opts.security_opt:
            if so in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
                nnp = True
            elif so.startswith(("seccomp=", "seccomp:")):
                profile = _seccomp_option(self.store.root, so[len("seccomp="):], caps)
                so = f"seccomp={profile}"  # as Docker: the profile itself, not its file
            elif so.startswith(("apparmor=", "apparmor:", "label=", "label:")):
                pass  # accepted as Docker accepts them; not applied (the CLI says so)
            elif so not in ("no-new-privileges:false", "no-new-privileges=false"):
                raise UsageError(f"invalid --security-opt: {so!r}")
            security_opt.append(so)
        network = "bridge" if opts.network == "default" else opts.network
        # --network host shares the host's UTS name, as Docker's does
        hostname = opts.hostname or (os.uname().nodename if network == "host" else cid[:12])
        if network not in ("none", "host", "bridge"):
            from pyminidocker.store.networks import NetworkStore

            if network not in NetworkStore(self.store).names():
                raise NotFound(f"network {network} not found")
        extra = dict(opts.extra)
        labels = {**(cfg.get("Labels") or {}), **extra.pop("labels", {})}
        exposed = {*(cfg.get("ExposedPorts") or {}), *extra.get("expose", [])}
        for mode in ("pid_mode", "ipc_mode"):
            if extra.get(mode, "").startswith("container:"):
                raise UsageError(f"--{mode[:3]} {extra[mode]}: joining another container's "
                                 "namespace is not supported yet")
        if extra.get("uts_mode") == "host" and opts.hostname:
            raise UsageError("Conflicting options: hostname and the UTS mode")
        if opts.publish_all:  # -P: every port the image exposes, on a free host port
            opts.publish = [*opts.publish, *sorted(exposed)]
        if opts.publish and network in ("none", "host"):
            raise UsageError(f"published ports need a bridge network, not --network {network}")
        for spec in opts.publish:
            _parse_publish(spec)  # refuse a bad -p now, not at start
        rec = ContainerRecord(
            id=cid, name="", image=image.id, image_name=opts.image, created=now_iso(),
            argv=argv, env=list(opts.env),
            cwd=policy.workdir(opts.workdir or cfg.get("WorkingDir")),
            user=opts.user if opts.user is not None else cfg.get("User", ""),
            hostname=hostname, tty=opts.tty, open_stdin=opts.interactive,
            entrypoint=entrypoint, cmd=cmd,
            host=HostConfig.from_json({
                  "binds": opts.volumes, "mounts": planned, "tmpfs": opts.tmpfs,
                  "read_only": opts.read_only,
                  "memory": opts.memory, "cpus": opts.cpus, "pids_limit": opts.pids_limit,
                  "network": network, "ports": list(opts.publish),
                  "privileged": opts.privileged,
                  "cap_add": opts.cap_add, "cap_drop": opts.cap_drop, "no_new_privs": nnp,
                  "seccomp": profile, "security_opt": security_opt,
                  "auto_remove": opts.auto_remove, "image_env": cfg.get("Env") or [],
                  **extra}),
            labels=labels,
        )
        flags = rec.host.pop("health_flags", {})
        if flags.get("Test") == ["NONE"]:
            flags = {"Test": ["NONE"]}
        health = {**(cfg.get("Healthcheck") or {}), **{k: v for k, v in flags.items() if v}}
        if health.get("Test") and health["Test"][0] != "NONE":
            rec.host["healthcheck"] = health  # the image's HEALTHCHECK, each flag over it
        self._limits(rec.host)  # a bad combination of limits is refused now, not at start
        if rec.host.get("blkio_weight") and not any(
                os.path.exists(f"/sys/fs/cgroup/blkio/blkio.{f}") for f in ("weight",
                                                                           "bfq.weight")):
            self.warnings.append("Your kernel does not support Block I/O weight or the cgroup "
                                 "is not mounted. Weight discarded.")
            rec.host["blkio_weight"] = 0
        if any(h.endswith(":host-gateway") for h in extra.get("extra_hosts", [])):
            rec.host["host_gateway"] = self._host_gateway(network)
        with self.trace.phase("create"), self.store.lock():
            # again under the lock, which rmi holds: an image removed since the lookup above
            # is not there, and once the container is recorded rmi sees it as a user
            if not os.path.isdir(self.store.images.path(image.id)):
                raise NotFound(f"No such image: {opts.image}")
            taken = set(self.containers.names())
            rec.name = check_name(opts.name) if opts.name else random_name(taken)
            made = self._make_volumes(planned) if planned else []
            try:
                self.containers.create(rec, _etc_files(rec))
            except BaseException:
                self._drop_volumes(made)
                raise
        for name in made:
            events.emit(self.store.root, "volume", "create", name, {"driver": "local"})
        self._event(rec, "create")
        return rec

    def _event(self, rec: ContainerRecord, action: str, **extra: str) -> None:
        events.emit(self.store.root, "container", action, rec.id,
                    events.container_attrs(rec, **extra))

    def _host_gateway(self, network: str) -> str:
        """The address --add-host host-gateway names: the gateway of the container's bridge
        network (the default bridge's for host and none), the host as the container sees it."""
        from pyminidocker.network import bridge

        if network in ("none", "host", "bridge"):
            return bridge.default_network(self.store).gateway
        return bridge.get_network(self.store, network).gateway

    def _limits(self, host: Mapping[str, Any], devices: bool = True) -> Any:
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
                      memory_swappiness=host.get("memory_swappiness"))

    def _plan_mounts(self, opts: CreateOptions, cfg: dict[str, Any]) -> List[dict[str, Any]]:
        """-v, --mount, --volumes-from and the image's VOLUMEs → the mount records (see
        container.mounts). Raises UsageError, NotFound (a --volumes-from container)."""
        own = [mountspec.parse_volume(v) for v in opts.volumes]
        own += [mountspec.parse_mount(m) for m in opts.mounts]
        others: list[dict[str, Any]] = []
        for spec in opts.volumes_from:
            ref, mode = mountspec.parse_volumes_from(spec)
            others += mountspec.inherited(mounts_of(self.containers.lookup(ref).host), mode)
        return mountspec.plan(own, opts.tmpfs, others, sorted(cfg.get("Volumes") or {}))

    def _make_volumes(self, planned: List[dict[str, Any]]) -> List[str]:
        """Create the volumes the mounts name that do not exist yet, and the anonymous ones
        (naming them in their mount records). Returns the names made. Caller holds the store
        lock."""
        vols = self.store.volumes
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
            self._drop_volumes(made)
            raise
        return made

    def _drop_volumes(self, names: List[str]) -> None:
        """Remove volumes no container uses any more. Caller holds the store lock."""
        if not names:
            return
        users = self.store.volumes.users()
        for name in names:
            with suppress(PmdError, OSError):
                dead = self.store.volumes.remove(name, users, force=True)
                if dead:
                    self.store.discard(dead)
                    events.emit(self.store.root, "volume", "destroy", name, {"driver": "local"})

    # ---- start --------------------------------------------------------------------------

    def start(self, rec: ContainerRecord, attach: bool,
              stdio: tuple[int, int, int] = (-1, -1, -1),
              on_started: Callable[[Any], None] | None = None) -> int | None:
        """Start a created or exited container. Attached: wait and return its exit code
        (125/126/127 raised as StartError when it could not start); its stdin is stdio[0],
        and what it writes goes through pipes (or its tty) to stdio[1] and stdio[2] and into
        its json-file log, as a detached container's output does (-1: ours). With a tty, the
        caller owns proc.console_fd (on_started gets proc). Detached: return None once the
        monitor has it running."""
        if rec.state.status == "running":
            return None if not attach else self.wait(rec)
        from pyminidocker.container.cgroups import prime_migration

        prime_migration()
        d = self.containers.path(rec.id)
        for stale in ("exit", "exit.tmp", "restart", "stop", "health"):  # a previous run's
            # records must not end this one
            with suppress(FileNotFoundError):
                os.unlink(os.path.join(d, stale))
        bridged = rec.host.network not in ("none", "host")
        rules = None
        if bridged:  # the host's firewall rules are read while the container is set up
            from pyminidocker.network import bridge as network

            rules = network.rules_snapshot()
        output = None
        try:
            with self.trace.phase("overlay mount"):
                self._mount_root(rec, d)
            child_stdio = stdio
            if attach:
                output = _Output(None if _log_of(rec.host)["driver"] == "none"
                                 else os.path.join(d, f"{rec.id}-json.log"), rec.tty)
                child_stdio = (stdio[0], output.write[0], output.write[1]) if output.write \
                    else (-1, -1, -1)
            sp = self._spawn_spec(rec, d, child_stdio)
            sp.hold = bridged  # its network is plugged in before it runs
            with _oom_score(rec.host.get("oom_score_adj")):
                if output is not None:
                    with self.trace.phase("spawn (clone to execve)"):
                        proc = _native.spawn(sp)
                    output.spawned()
                else:
                    proc = self._spawn_monitored(rec, d, sp)
            if bridged:
                self._plug(rec, d, proc, rules)
            if attach:
                for phase, ms in proc.trace().items():
                    self.trace.note(f"  child: {phase}", ms)
        except BaseException as e:
            if output is not None:
                output.close()
            failed = _spawn_failure(e)
            self._start_failed(rec, failed)
            if failed is not None:
                raise _start_error(failed) from None
            raise
        finally:
            if rules is not None:
                rules.close()
        monitor_pid = getattr(proc, "monitor_pid", 0)
        prior = rec.state
        rec.state = State(status="running", pid=proc.pid, pid_start=_pid_start(proc.pid),
                          ip=rec.state.ip, ports=rec.state.ports,
                          extra_networks=rec.state.extra_networks,
                          monitor_pid=monitor_pid,
                          monitor_start=_pid_start(monitor_pid) if monitor_pid else "",
                          started_at=now_iso())
        try:
            self.containers.save_state(rec)
            if bridged:
                # Released only once the state says running: a kill -9 of this command
                # before this line ends the held container (the monitor, or the child, sees
                # EOF), after it leaves a running container that ps shows as such. Never a
                # running process that ps calls Created.
                try:
                    proc.release()
                except BaseException as e:
                    proc.abort()
                    rec.state = prior
                    failed = _spawn_failure(e)
                    self._start_failed(rec, failed)
                    if failed is not None:  # the exec failed: 126/127 as when not held
                        raise _start_error(failed) from None
                    raise
            self._event(rec, "start")
            if on_started:
                on_started(proc)  # e.g. to pass our input to its console
            if output is None:
                return None
            with self.trace.phase("wait"), \
                    _forward_signals(proc.pid, rec.host.get("sig_proxy", True)):
                code = output.relay(proc, stdio)
        finally:
            if output is not None:
                output.close()
        code = 128 - code if code < 0 else code
        with self.store.lock():
            self._finish(rec, code, now_iso())
        self._unplug(rec)
        return code

    def _plug(self, rec: ContainerRecord, d: str, proc: Any, rules: Any = None) -> None:
        """Connect a held container to its network (an address, the bridge and its rules, a
        veth pair into its namespace, published ports, its name in /etc/hosts); the caller
        releases it. On failure the child is ended and what was set up is undone."""
        from pyminidocker.config import Config
        from pyminidocker.network import bridge as network
        from pyminidocker.store.files import atomic_write

        net = rec.host.network
        try:
            with self.trace.phase("network"):
                ep = network.connect(self.store, net, rec.id, Config.load(self.store.root),
                                     rules)
                rec.state.ip = ep.address  # from here on, a failure releases the address
                _native.net_attach(proc.pid, ep.bridge, _host_ifname(rec.id), ep.address,
                                   ep.prefix_len, ep.gateway, mac=rec.host.get("mac_address"))
                ports = [m for spec in rec.host.ports
                         for m in network.parse_publish(spec)]
                if ports:
                    done = network.publish(network.get_network(self.store, ep.network),
                                           ep.address, ports)
                    rec.state.ports = [str(m) for m in done]
                # from the base file, not the last run's (its lines would be there twice)
                hosts = _base_hosts(rec) + _hosts_line(rec, ep.address, ep.network != "bridge")
                if ep.network != "bridge":  # names resolve on user networks (Docker's rule)
                    hosts += self._introduce(rec, ep.network, ep.address)
                atomic_write(os.path.join(d, "hosts"), hosts.encode(), durable=False)
                for extra in rec.host.networks:  # joined by `network connect`
                    self._attach_extra(rec, extra, proc.pid)
        except BaseException:
            proc.abort()
            self._unplug(rec)
            raise

    def _introduce(self, rec: ContainerRecord, network: str, address: str) -> str:
        """On a user network every member's /etc/hosts names every other member: add this
        container to theirs and return the lines for its own. Files are edited in place, as
        each is bind-mounted into its container (a rename would not be seen there)."""
        from pyminidocker.store.networks import NetworkStore

        own = ""
        with self.store.lock():
            for addr, cid in NetworkStore(self.store).allocations(network).items():
                if cid == rec.id:
                    continue
                try:
                    other = self.containers.get(cid)
                except NotFound:
                    continue
                own += _hosts_line(other, addr, True)
                _edit_hosts(os.path.join(self.containers.path(cid), "hosts"),
                            add=_hosts_line(rec, address, True))
        return own

    def _unplug(self, rec: ContainerRecord) -> None:
        """Undo _plug for a container whose processes are gone: published ports, the address.
        Its veth pairs are not deleted here: they went with its network namespace, which the
        kernel dismantles (asynchronously) once the last process has exited; deleting the
        host end ourselves would wait 10-15 ms for the same work. Idempotent. Not to be
        called with the store lock held: the address book takes it."""
        for name in list(rec.state.extra_networks):
            self._detach_extra(rec, name, gone=True)
        net = rec.host.network
        if net in ("none", "host"):
            return
        from pyminidocker.network import bridge as network

        # Driven by what the address book holds, not only by the state: a `run` killed
        # between the allocation and its state write left an address only the book knows.
        ip = rec.state.ip or network.address_of(self.store, net, rec.id)
        if not ip:
            return
        if rec.host.ports:  # rules exist only for a container that asked for ports
            with suppress(PmdError):
                network.unpublish_all(network.get_network(self.store, net), ip)
        if net != "bridge":
            self._forget(net, ip)
        network.disconnect(self.store, net, rec.id)
        rec.state.ip = ""
        rec.state.ports = []
        with suppress(PmdError, OSError):
            if os.path.isdir(self.containers.path(rec.id)):
                self.containers.save_state(rec)

    def connect(self, rec: ContainerRecord, net: str) -> str:
        """`network connect`: the container joins the user network `net` too, as Docker's: at
        once if it runs, and at each of its starts from now on (host.networks). There it
        has one more interface (eth1, eth2, ...; no second default route) with an address,
        and its name in the members' /etc/hosts. Returns the address, "" if it is not running.
        Raises Conflict (already connected; a container on the host's network or none),
        UsageError, NotFound (network), PmdError, OSError."""
        from pyminidocker.network import bridge as network

        rec = self.refresh(rec)
        joined = rec.host.networks
        if net == rec.host.network or net in joined:
            raise Conflict(f"container {rec.name} is already attached to network {net}")
        if net in ("none", "host"):
            raise UsageError(f"container cannot be connected to network {net}")
        if rec.host.network in ("none", "host"):
            raise Conflict(f"container {rec.name} is on the {rec.host.network} network: it "
                           "cannot be connected to another one")
        network.get_network(self.store, net)  # a missing network is refused now, not at start
        address = ""
        if rec.state.status == "running":
            address = self._attach_extra(rec, net, rec.state.pid)
            self.containers.save_state(rec)
        rec.host.networks = [*joined, net]
        self.containers.save_config(rec)
        return address

    def _attach_extra(self, rec: ContainerRecord, net: str, pid: int) -> str:
        """Plug the container whose init is pid into the user network `net`: an address, the
        first free ethN (and pmd<id>xN on the host), the names in /etc/hosts. Recorded in
        rec.state (not saved). Returns the address."""
        from pyminidocker.network import bridge as network

        ep = network.connect(self.store, net, rec.id)
        used = {info["ifname"] for info in rec.state.extra_networks.values()}
        n = next(i for i in range(1, len(used) + 2) if f"eth{i}" not in used)
        ifname, host_if = f"eth{n}", f"pmd{rec.id[:10]}x{n}"
        try:
            _native.net_attach(pid, ep.bridge, host_if, ep.address, ep.prefix_len, None,
                               container_ifname=ifname)
        except BaseException:
            network.disconnect(self.store, net, rec.id)
            raise
        rec.state.extra_networks[net] = {"ip": ep.address, "ifname": ifname,
                                         "host_ifname": host_if}
        hosts = os.path.join(self.containers.path(rec.id), "hosts")
        _edit_hosts(hosts, add=_hosts_line(rec, ep.address, True))
        for line in self._introduce(rec, ep.network, ep.address).splitlines(keepends=True):
            _edit_hosts(hosts, add=line)
        return ep.address

    def disconnect(self, rec: ContainerRecord, net: str) -> None:
        """`network disconnect`: undo connect, now and for the starts to come. Raises Conflict
        if the container was not connected to `net` that way."""
        rec = self.refresh(rec)
        joined = rec.host.networks
        if net not in joined and net not in rec.state.extra_networks:
            raise Conflict(f"container {rec.name} is not connected to network {net} "
                           "(only networks joined with `network connect` can be left)")
        if net in rec.state.extra_networks:
            self._detach_extra(rec, net)
            with suppress(PmdError, OSError):
                self.containers.save_state(rec)
        if net in joined:
            rec.host.networks = [n for n in joined if n != net]
            self.containers.save_config(rec)

    def _detach_extra(self, rec: ContainerRecord, net: str, gone: bool = False) -> None:
        """Undo connect; gone: the container's processes are gone, and its veth with them."""
        from pyminidocker.network import bridge as network

        info = rec.state.extra_networks.pop(net)
        if not gone:
            with suppress(OSError):
                _native.net_detach(info["host_ifname"])
        self._forget(net, info["ip"])
        network.disconnect(self.store, net, rec.id)

    def _forget(self, net: str, address: str) -> None:
        """Drop address from the /etc/hosts of every member of the user network net (the
        reverse of _introduce). Takes the store lock."""
        from pyminidocker.store.networks import NetworkStore

        with suppress(PmdError), self.store.lock():
            for cid in NetworkStore(self.store).allocations(net).values():
                _edit_hosts(os.path.join(self.containers.path(cid), "hosts"), drop=f"{address}\t")

    def _start_failed(self, rec: ContainerRecord, e: OSError | None) -> None:
        self._teardown(rec)
        self._unplug(rec)
        rec.state.status = "created" if rec.state.status == "created" else "exited"
        rec.state.error = _start_message(e) if e else "start interrupted"
        if e is not None:
            rec.state.exit_code = policy.exec_exit_code(e)
        self.containers.save_state(rec)

    def _mount_root(self, rec: ContainerRecord, d: str) -> None:
        image = self.store.images.get(rec.image)
        lowers = [self.store.layers.diff_path(layer.id)
                  for layer in self.store.layers.chain(image.layer)] if image.layer else []
        init = self.store.layers.init_path(image.layer) if image.layer else None
        have_init = init is not None and os.path.isdir(init)
        if init is not None and have_init:
            lowers.insert(0, init)
        if not lowers:
            empty = os.path.join(d, "empty")
            os.makedirs(empty, exist_ok=True)
            lowers = [empty]
        rootfs = os.path.join(d, "rootfs")
        if os.path.ismount(rootfs):
            _native.umount(rootfs, _native.MNT_DETACH)
        # A --rm container's writable layer is deleted with it: never synced (as Podman does),
        # which spares the sync of the store's whole filesystem at each umount. Should it be
        # started again (its remover was killed), the marker of the last mount must go first.
        volatile = bool(rec.host.auto_remove)
        marker = os.path.join(d, "work", "work", "incompat")
        if volatile and os.path.isdir(marker):
            remove_tree(marker)
        _native.overlay_mount(lowers, rootfs, upper=os.path.join(d, "upper"),
                              work=os.path.join(d, "work"), volatile=volatile)
        if init is not None and not have_init:
            with suppress(OSError, PmdError):  # only an optimisation: the child makes them
                self._make_init(rootfs, init)

    def _make_init(self, rootfs: str, init: str) -> None:
        """Make the image's init layer from what its root (as mounted at rootfs) lacks of the
        mount points every container gets (_INIT_DIRS, /etc/_INIT_FILES). Without it, each
        start would create them in the container's own layer (the child makes a missing mount
        point), and each removal delete them again: 1-2 ms of a start on a disk like this
        one's. As Docker's <id>-init layer, but made once per image. An /etc that is not a
        directory of the image's own (a symlink, say) is left to the child."""
        with self.store.lock():
            if os.path.isdir(init):
                return  # made by another start meanwhile
            staging = self.store.new_staging("locked")  # renamed under the store lock
            try:
                for name in _INIT_DIRS:
                    if not os.path.lexists(os.path.join(rootfs, name)):
                        os.mkdir(os.path.join(staging, name), 0o755)
                etc = os.path.join(rootfs, "etc")
                try:
                    st: os.stat_result | None = os.lstat(etc)
                except FileNotFoundError:
                    st = None
                if st is None or stat.S_ISDIR(st.st_mode):
                    missing = [f for f in _INIT_FILES
                               if st is None or not os.path.lexists(os.path.join(etc, f))]
                    if missing:
                        own = os.path.join(staging, "etc")
                        os.mkdir(own, 0o755)
                        if st is not None:  # it stands above the image's /etc: look the same
                            os.chown(own, st.st_uid, st.st_gid)
                            os.chmod(own, stat.S_IMODE(st.st_mode))
                        for f in missing:
                            os.close(os.open(os.path.join(own, f),
                                             os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
                os.rename(staging, init)
            except OSError:
                self.store.discard(staging)
                raise

    def _spawn_spec(self, rec: ContainerRecord, d: str, stdio: tuple[int, int, int]) -> Any:

        rootfs = os.path.join(d, "rootfs")
        host = rec.host
        with self.trace.phase("spec"):
            user = policy.resolve_user(rootfs, rec.user)
            env = policy.merge_env(host.image_env, rec.env, rec.hostname, user.home,
                                   rec.tty)
            workdir = policy.secure_join(rootfs, rec.cwd)
            if not os.path.isdir(workdir):
                try:
                    os.makedirs(workdir, mode=0o755, exist_ok=True)
                except OSError as e:
                    raise UsageError(f"cannot create working directory {rec.cwd}: "
                                     f"{e.strerror}") from None
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
            for name in ("hostname", "hosts", "resolv.conf"):
                mounts.append(_native.Mount(target=f"/etc/{name}", source=os.path.join(d, name),
                                            flags=_native.MS_BIND, mkdir=True))
            for m in mounts_of(host):
                mounts.append(self._mount(rootfs, m))
            for t in host.get("tmpfs", []):
                path, opts = policy.parse_tmpfs(t)
                flags, data = policy.tmpfs_options(opts)
                mounts.append(_native.Mount(
                    target=policy.resolved_destination(rootfs, path, f"--tmpfs {t}"),
                    source="tmpfs", fstype="tmpfs", mkdir=True, flags=flags, data=data))
        with self.trace.phase("cgroup"):
            cg = _cgroup(rec)
            cg.create(self._limits(host))
            self.warnings += cg.warnings
        cg_flags = _native.MS_RDONLY | _native.MS_NOSUID | _native.MS_NODEV | _native.MS_NOEXEC
        cg_mounts = cg.container_mounts()
        if cg_mounts and cg_mounts[0][1] == "cgroup":  # v1: a tmpfs to hold the hierarchies
            mounts.append(_native.Mount("/sys/fs/cgroup", "tmpfs", "tmpfs",
                                        _native.MS_NOSUID | _native.MS_NODEV | _native.MS_NOEXEC,
                                        "mode=755", mkdir=True))
        for target, fstype, data in cg_mounts:
            mounts.append(_native.Mount(target, "cgroup", fstype, cg_flags, data or None,
                                        mkdir=True))
        privileged = bool(host.privileged)
        return _native.SpawnSpec(
            argv=argv, env=env, namespaces=ns, rootfs=rootfs,
            readonly_root=bool(host.get("read_only")), mounts=mounts, dev_setup=True,
            masked_paths=[] if privileged else list(defaults.MASKED_PATHS),
            readonly_paths=[] if privileged else list(defaults.READONLY_PATHS),
            hostname=None if ns & _native.CLONE_NEWUTS == 0 else rec.hostname, cwd=rec.cwd,
            uid=user.uid, gid=user.gid, groups=groups, rlimits=_rlimits(host),
            cap_bounding=caps, cap_effective=caps,
            cap_permitted=caps, cap_inheritable=0, cap_ambient=0,
            no_new_privs=bool(host.no_new_privs),
            seccomp=_seccomp_program(self.store.root, host, caps),
            cgroup_procs=cg.procs_files(), stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
            setsid=True, console=rec.tty,
        )

    def _mount(self, rootfs: str, m: dict[str, Any]) -> Any:
        """The shim's Mount for one mount record; a volume's directory seeded from the image
        on its first use (mounts.seed). Raises UsageError, NotFound (a volume gone)."""
        given = m.get("Name") or m.get("Source") or ""  # the mount as the user wrote it
        dst = policy.resolved_destination(
            rootfs, m["Destination"],
            f"-v {given}:{m['Destination']}" if m["Type"] != "tmpfs" else "")
        ro = _native.MS_RDONLY if not m.get("RW", True) else 0
        if m["Type"] == "tmpfs":
            flags, data = policy.tmpfs_options(m.get("Options", ""))
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
        vol = self.store.volumes.get(m["Name"])
        opts = vol.options
        if opts:  # the local driver's mount(8)-like options: the device itself is mounted
            o = [x for x in opts.get("o", "").split(",") if x]
            if "bind" in o:
                return _native.Mount(target=dst, source=opts["device"], mkdir=True,
                                     flags=_native.MS_BIND | _native.MS_REC | ro)
            return _native.Mount(target=dst, source=opts["device"], fstype=opts.get("type"),
                                 mkdir=True, flags=ro, data=",".join(o) or None)
        src = self.store.volumes.data_path(vol.name)
        if not m.get("NoCopy"):
            try:
                mountspec.seed(policy.secure_join(rootfs, dst), src)
            except OSError as e:
                raise StoreError(f"cannot copy the image's {dst} into volume {vol.name}: "
                                 f"{e.strerror}") from None
        return _native.Mount(target=dst, source=src, mkdir=True,
                             flags=_native.MS_BIND | _native.MS_REC | ro)

    def _spawn_monitored(self, rec: ContainerRecord, d: str, sp: Any) -> Any:
        """Start the container under its pmd-monitor (see pmd_monitor_start in csrc/pmd.h):
        returns once it runs, with .pid and .monitor_pid. The monitor logs its output to
        <id>-json.log and, when it exits, unmounts the rootfs, removes the cgroup and writes
        the exit record that refresh() reads. Raises OSError as spawn does."""

        exit_argv = None
        if rec.host.auto_remove:
            # run -d --rm: the monitor becomes `rm` once it has recorded the exit. A plain rm,
            # not rm -f: should the container have been started again meanwhile, it stays.
            exit_argv = [sys.executable, "-m", "pyminidocker", "--root", self.store.root,
                         "rm", "-v", rec.id]
        restart = None
        policy_name, max_count = restart_policy(rec.host)
        if policy_name != "no":  # the monitor restarts it (see pmd_monitor_spec)
            restart = _native.RestartPolicy(
                _RESTART_POLICIES[policy_name], max_count, os.path.join(d, "restart"),
                os.path.join(d, "stop"))
        health = None
        hc = rec.host.get("healthcheck")
        if hc:  # run by the monitor: our own exec of the test, at its intervals
            test = list(hc["Test"])
            cmd = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
            health = _native.HealthCheck(
                [sys.executable, "-m", "pyminidocker", "--root", self.store.root, "exec",
                 rec.id, *cmd], [f"{k}={v}" for k, v in os.environ.items()],
                os.path.join(d, "health"), (hc.get("Interval") or 30_000_000_000) // 1_000_000,
                (hc.get("Timeout") or 30_000_000_000) // 1_000_000,
                (hc.get("StartPeriod") or 0) // 1_000_000, hc.get("Retries") or 3)
        log = _log_of(rec.host)
        stdin = None
        if rec.open_stdin and not rec.tty:  # run -d -i: a stdin that `attach` writes into
            stdin = os.path.join(d, "stdin")
            with suppress(FileNotFoundError):
                os.unlink(stdin)  # a previous run's: what was written there is not this one's
            os.mkfifo(stdin, 0o600)
        with self.trace.phase("monitor+clone+setup+exec"):
            return _native.monitor_start(
                sp, os.devnull if log["driver"] == "none" else
                os.path.join(d, f"{rec.id}-json.log"), os.path.join(d, "exit"),
                cleanup_mounts=[os.path.join(d, "rootfs")],
                cleanup_dirs=list(_cgroup(rec).dirs.values()),
                exit_argv=exit_argv,
                exit_env=[f"{k}={v}" for k, v in os.environ.items()] if exit_argv else None,
                restart=restart, health=health, log_max_size=log.get("max_size", 0),
                log_max_file=log.get("max_file", 1), stdin_path=stdin)

    # ---- exec ---------------------------------------------------------------------------

    def exec(self, rec: ContainerRecord, argv: List[str], env: List[str], user: str | None,
             workdir: str | None, tty: bool, stdio: tuple[int, int, int],
             on_started: Callable[[Any], None] | None = None) -> int:
        """Run argv in the running container: its namespaces and cgroup, the same confinement
        as its init. Returns the exit code; raises StartError (125/126/127) if it cannot start
        and Conflict if the container is not running."""

        rec = self.refresh(rec)
        if rec.state.status != "running":
            raise Conflict(f"Container {rec.id} is not running")
        host = rec.host
        rootfs = os.path.join(self.containers.path(rec.id), "rootfs")
        u = policy.resolve_user(rootfs, rec.user if user is None else user)
        full_env = policy.merge_env(host.image_env, [*rec.env, *env], rec.hostname,
                                    u.home, tty)
        ns, caps = _namespaces_and_caps(host)
        sp = _native.SpawnSpec(
            argv=argv, env=full_env, namespaces=ns, join_pid=rec.state.pid,
            cwd=policy.workdir(workdir) if workdir else rec.cwd, uid=u.uid, gid=u.gid,
            groups=list(u.groups),
            cap_bounding=caps, cap_effective=caps, cap_permitted=caps, cap_inheritable=0,
            cap_ambient=0, no_new_privs=bool(host.no_new_privs),
            seccomp=_seccomp_program(self.store.root, host, caps),
            cgroup_procs=_cgroup(rec).procs_files(), setsid=True, console=tty,
        )
        if not tty:
            sp.stdin, sp.stdout, sp.stderr = stdio
        try:
            proc = _native.spawn(sp)
        except OSError as e:
            raise _start_error(e) from None
        if on_started:
            on_started(proc)
        with _forward_signals(proc.pid):
            if tty:  # its pty's output to ours, not logged (Docker logs no exec's output)
                code = _Output(None, tty=True).relay(proc, stdio)
            else:
                code = _native.wait(proc.pid)
        return 128 - code if code < 0 else code

    # ---- stop / kill / wait / rm ----------------------------------------------------------

    def kill(self, rec: ContainerRecord, sig: int = signal.SIGKILL) -> None:
        """Raises Conflict if the container is not running."""
        rec = self.refresh(rec)
        if rec.state.status != "running":
            raise Conflict(f"Cannot kill container: {rec.name}: container {rec.id} is not "
                           "running")
        self._no_more_restarts(rec)
        with suppress(ProcessLookupError):
            os.kill(rec.state.pid, sig)
        self._event(rec, "kill", signal=str(int(sig)))
        if rec.state.paused:  # a frozen process acts on its signals once thawed (as Docker)
            self.unpause(rec)

    def _no_more_restarts(self, rec: ContainerRecord) -> None:
        """stop, kill and rm -f end a restart policy's restarts (Docker: manually stopped):
        the monitor looks for this file before each restart."""
        if rec.host.get("restart"):
            with suppress(OSError):
                os.close(os.open(os.path.join(self.containers.path(rec.id), "stop"),
                                 os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))

    def start_all_restart(self) -> List[str]:
        """What Docker's daemon does when it starts, for a daemonless engine at boot (see
        contrib/pyminidocker-restart.service): start every stopped container whose policy
        asks for it: always; unless-stopped unless it was stopped by stop/kill; on-failure
        when it last exited non-zero. Returns the ids started."""
        started = []
        for rec in self.list():
            name, _ = restart_policy(rec.host)
            st = rec.state
            if st.status == "running" or name == "no":
                continue
            stopped = os.path.exists(os.path.join(self.containers.path(rec.id), "stop"))
            if (name == "unless-stopped" and stopped) or (name == "on-failure" and (
                    st.exit_code == 0 or stopped)):
                continue
            with suppress(PmdError, OSError):
                self.start(rec, attach=False)
                started.append(rec.id)
        return started

    # ---- pause / unpause / restart / update ----------------------------------------------

    def _freeze(self, rec: ContainerRecord, frozen: bool) -> None:
        """The freezer: v1 freezer.state FROZEN/THAWED, v2 cgroup.freeze 1/0; returns once the
        kernel says it is done (v1 reports FREEZING meanwhile)."""
        cg = _cgroup(rec)
        if cg.version == "v2":
            path, value, done = os.path.join(cg.dirs[""], "cgroup.freeze"), \
                "1" if frozen else "0", None
        else:
            if "freezer" not in cg.dirs:
                raise PmdError("cannot pause: the cgroup v1 freezer controller is not mounted")
            path, value = os.path.join(cg.dirs["freezer"], "freezer.state"), \
                "FROZEN" if frozen else "THAWED"
            done = value
        try:
            with open(path, "w") as f:
                f.write(value)
            deadline = time.monotonic() + 5
            while done is not None and time.monotonic() < deadline:
                with open(path) as f:
                    if f.read().strip() == done:
                        break
                time.sleep(0.005)
        except OSError as e:
            raise PmdError(f"cannot {'pause' if frozen else 'unpause'} {rec.name}: "
                           f"{e.strerror}: {path}") from None

    def pause(self, rec: ContainerRecord) -> None:
        """Freeze every process of the container. Raises Conflict (not running, paused)."""
        rec = self.refresh(rec)
        if rec.state.status != "running":
            raise Conflict(f"Container {rec.id} is not running")
        if rec.state.paused:
            raise Conflict(f"Container {rec.id} is already paused")
        self._freeze(rec, True)
        with self.store.lock():
            rec.state.paused = True
            self.containers.save_state(rec)
        self._event(rec, "pause")

    def unpause(self, rec: ContainerRecord) -> None:
        """Raises Conflict for a container that is not paused."""
        rec = self.refresh(rec)
        if rec.state.status != "running" or not rec.state.paused:
            raise Conflict(f"Container {rec.id} is not paused")
        self._freeze(rec, False)
        with self.store.lock():
            fresh = self.containers.get(rec.id)
            fresh.state.paused = rec.state.paused = False
            self.containers.save_state(fresh)
        self._event(fresh, "unpause")

    def top(self, rec: ContainerRecord, ps_args: List[str]) -> tuple[List[str], List[List[str]]]:
        """`top`: (titles, rows) of ps for the container's processes. Raises Conflict."""
        from pyminidocker.container import observe

        rec = self.refresh(rec)
        if rec.state.status != "running":
            raise Conflict(f"Container {rec.id} is not running")
        return observe.top(_cgroup(rec).pids(), ps_args)

    def changes(self, rec: ContainerRecord) -> List[tuple[str, str]]:
        """`diff`: the container's changes to its image, from its upper layer."""
        from pyminidocker.container import observe

        image = self.store.images.get(rec.image)
        lowers = [self.store.layers.diff_path(layer.id)
                  for layer in self.store.layers.chain(image.layer)] if image.layer else []
        # mount points the engine makes are not the container's changes (Docker: its init layer)
        skip = {f"/{n}" for n in _INIT_DIRS} | {f"/etc/{n}" for n in _INIT_FILES}
        return observe.changes(os.path.join(self.containers.path(rec.id), "upper"), lowers, skip)

    def stats(self, rec: ContainerRecord) -> dict[str, Any]:
        """One reading of the container's counters (observe.sample). Raises Conflict."""
        from pyminidocker.container import observe

        rec = self.refresh(rec)
        return observe.sample(rec, _cgroup(rec))

    def restart(self, rec: ContainerRecord, timeout: int | None = None) -> None:
        """stop (if running), then start detached."""
        self.stop(rec, timeout)
        fresh = self.refresh(self.containers.get(rec.id))
        self.start(fresh, attach=False)
        self._event(fresh, "restart")

    def update(self, rec: ContainerRecord, changes: dict[str, Any]) -> None:
        """`update`: new limits (memory, memory_swap, memory_reservation, cpus, cpu_shares,
        cpu_period, cpu_quota, cpuset_cpus, cpuset_mems, pids_limit) kept in the record and,
        for a running container, written to its cgroup at once. Raises UsageError, PmdError."""
        host = {**rec.host, **changes}
        limits = self._limits(host, devices=False)  # checks the combination as create does
        rec = self.refresh(rec)
        if rec.state.status == "running":
            _cgroup(rec).create(limits)
        with self.store.lock():
            fresh = self.containers.get(rec.id)
            fresh.host.update(changes)
            self.containers.save_config(fresh)

    def stop(self, rec: ContainerRecord, timeout: int | None = None) -> None:
        """The container's stop signal (--stop-signal, SIGTERM), then SIGKILL after timeout
        seconds (None: its --stop-timeout, else 10); returns once it has exited."""
        rec = self.refresh(rec)
        if rec.state.status != "running":
            return
        if timeout is None:
            timeout = rec.host.get("stop_timeout", 10)
        sig = signal.SIGTERM
        if rec.host.get("stop_signal"):
            sig = policy.parse_signal(rec.host["stop_signal"])
        self._no_more_restarts(rec)
        st = rec.state
        if _alive(st.pid, st.pid_start):  # not between two runs of a restart policy
            with suppress(ProcessLookupError):
                os.kill(st.pid, sig)
            self._event(rec, "kill", signal=str(int(sig)))
        if st.paused:  # a frozen process acts on its signal once thawed (as Docker)
            self.unpause(rec)
        if not self._wait_gone(rec, timeout) and _alive(st.pid, st.pid_start):
            with suppress(ProcessLookupError):
                os.kill(st.pid, signal.SIGKILL)
            self._event(rec, "kill", signal=str(int(signal.SIGKILL)))
            self._wait_gone(rec, 10)
        self._event(rec, "stop")

    def _wait_gone(self, rec: ContainerRecord, timeout: float) -> bool:
        """True once the container has stopped (or was removed: `run --rm` does that)."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while time.monotonic() < deadline:
            try:
                if self.refresh(self.containers.get(rec.id)).state.status != "running":
                    return True
            except NotFound:
                return True
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return False

    def wait(self, rec: ContainerRecord) -> int:
        while True:
            rec = self.refresh(self.containers.get(rec.id))
            if rec.state.status != "running":
                return rec.state.exit_code
            time.sleep(0.02)

    def remove(self, rec: ContainerRecord, force: bool = False, volumes: bool = False) -> None:
        """Raises Conflict for a running container unless force. volumes (rm -v): its
        anonymous volumes go too, unless another container uses them (named ones stay)."""
        rec = self.refresh(rec)
        if rec.state.status == "running":
            if not force:
                raise Conflict(f"You cannot remove a running container {rec.id}. Stop the "
                               "container before attempting removal or force remove")
            # not self.kill(): a container that stops meanwhile (a racing stop) is no error
            if _alive(rec.state.pid, rec.state.pid_start):
                with suppress(ProcessLookupError):
                    os.kill(rec.state.pid, signal.SIGKILL)
                self._event(rec, "kill", signal=str(int(signal.SIGKILL)))
            self._wait_gone(rec, 10)
        with suppress(NotFound, StoreError):
            self._unplug(self.containers.get(rec.id))  # an address a crash left recorded
        with self.store.lock():
            self._teardown(rec)
            try:
                dead = self.store.retire(self.containers.path(rec.id))
            except FileNotFoundError:  # removed meanwhile: a racing rm, or run --rm
                if force:
                    return
                raise NotFound(f"No such container: {rec.id}") from None
            if volumes:
                self._drop_volumes([m["Name"] for m in mounts_of(rec.host)
                                    if m["Type"] == "volume" and m.get("Anonymous")])
        self._event(rec, "destroy")
        self.store.discard(dead)

    def rename(self, rec: ContainerRecord, new: str) -> None:
        new = check_name(new)
        with self.store.lock():
            names = self.containers.names()
            if new in names:
                raise Conflict(f'Conflict. The container name "/{new}" is already in use by '
                               f'container "{names[new]}". You have to remove (or rename) that '
                               "container to be able to reuse that name.")
            old, rec.name = rec.name, new
            self.containers.save_config(rec)
        self._event(rec, "rename", oldName=f"/{old}")


def _spawn_failure(e: BaseException) -> OSError | None:
    """The shim's error when spawning failed; a StoreError is an OSError too, but says what it
    means itself."""
    return e if isinstance(e, OSError) and not isinstance(e, PmdError) else None


def _start_error(e: OSError) -> StartError:
    return StartError(_start_message(e), exit_code=policy.exec_exit_code(e))


def _start_message(e: OSError | None) -> str:
    if e is None:
        return ""
    if e.errno == errno.ENOENT and e.filename:
        return (f'failed to create task: exec: "{e.filename}": executable file not found in '
                "$PATH")
    if e.errno == errno.EACCES and e.filename:
        return f'failed to create task: exec: "{e.filename}": permission denied'
    where = f": {e.filename}" if e.filename else ""
    return f"failed to create task: {e.strerror}{where}"


def _edit_hosts(path: str, add: str = "", drop: str = "") -> None:
    """Append a line to, or drop the lines starting with `drop` from, a container's hosts
    file, in place (it is bind-mounted: the inode must stay). Missing file: nothing to do."""
    try:
        with open(path, "r+") as f:
            lines = [ln for ln in f.readlines() if not (drop and ln.startswith(drop))]
            if add and add not in lines:
                lines.append(add)
            f.seek(0)
            f.write("".join(lines))
            f.truncate()
    except FileNotFoundError:
        pass


def _host_ifname(container_id: str) -> str:
    """The host end of a container's veth pair: 15 characters, the kernel's limit."""
    return "pmd" + container_id[:12]


def _parse_publish(spec: str) -> list[Any]:
    from pyminidocker.network import bridge as network

    return network.parse_publish(spec)


def _namespaces_and_caps(host: HostConfig) -> tuple[int, int]:
    """The namespaces a container (and what is exec'd in it) has, and its capability mask."""
    ns = defaults.DEFAULT_NAMESPACES | _native.CLONE_NEWCGROUP
    for flag, key, value in ((_native.CLONE_NEWNET, "network", "host"),
                             (_native.CLONE_NEWPID, "pid_mode", "host"),
                             (_native.CLONE_NEWIPC, "ipc_mode", "host"),
                             (_native.CLONE_NEWUTS, "uts_mode", "host"),
                             (_native.CLONE_NEWCGROUP, "cgroupns", "host")):
        if host.get(key) == value:
            ns &= ~flag
    caps = policy.capabilities(host.get("privileged", False), host.get("cap_add", []),
                               host.get("cap_drop", []))
    return ns, caps


# Docker's --init: its docker-init (tini) goes to this path; ours is Debian's static tini,
# which runs in any image (no libc needed from it).
INIT_PATH = "/sbin/docker-init"
TINI = "/usr/bin/tini-static"


def _cgroup(rec: ContainerRecord) -> Any:
    from pyminidocker.container.cgroups import Cgroup

    # Cgroup's own default parent unless --cgroup-parent names one (one place says what the
    # default is)
    parent = rec.host.get("cgroup_parent")
    return Cgroup(rec.id, parent) if parent else Cgroup(rec.id)


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


class _oom_score:
    """--oom-score-adj: the kernel copies oom_score_adj into every child, so ours is set for
    the spawn (the container and its monitor get it) and put back after."""

    def __init__(self, value: int | None):
        self.value = value
        self.old = b""

    def __enter__(self) -> None:
        if self.value is not None:
            with open("/proc/self/oom_score_adj", "r+b", buffering=0) as f:
                self.old = f.read().strip()
                f.seek(0)
                f.write(str(self.value).encode())

    def __exit__(self, *_: object) -> None:
        if self.value is not None and self.old:
            with open("/proc/self/oom_score_adj", "wb", buffering=0) as f:
                f.write(self.old)


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


def _seccomp_option(root: str, value: str, caps: int) -> str:
    """--security-opt seccomp=VALUE: "unconfined", or the text of the profile file VALUE,
    checked by compiling it (the program is then cached for the start). Raises UsageError
    with Docker's wording for a file that cannot be read or a profile that is wrong."""
    from pyminidocker.container import seccomp

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
        seccomp.program(os.path.join(root, "seccomp"), text, caps)
    except (ValueError, OSError) as e:
        raise UsageError(f"Decoding seccomp profile failed: {e}") from None
    return text


def _seccomp_program(root: str, host: HostConfig, caps: int) -> bytes:
    """The seccomp program of a container and what is exec'd in it: none when privileged or
    unconfined, else its profile's (Docker's default unless --security-opt seccomp=FILE)
    for its capabilities, from the store's cache (seccomp.program)."""
    from pyminidocker.container import seccomp

    profile = host.seccomp
    if host.privileged or profile == "unconfined":
        return b""
    try:
        return seccomp.program(os.path.join(root, "seccomp"), profile, caps)
    except (ValueError, OSError) as e:
        raise StartError(f"seccomp profile: {e}", exit_code=125) from None


def _standard_mounts(host_network: bool, privileged: bool | None) -> list[Any]:
    """Docker's standard mounts; /sys read-write when privileged, and bound from the host
    with the host's network (sysfs shows the network namespace of whoever mounts it)."""
    n = _native
    mounts = defaults.default_mounts()
    sys_flags = n.MS_NOSUID | n.MS_NOEXEC | n.MS_NODEV | (0 if privileged else n.MS_RDONLY)
    for i, m in enumerate(mounts):
        if m.target == "/sys":
            mounts[i] = n.Mount("/sys", "/sys", None, n.MS_BIND | n.MS_REC | sys_flags,
                                mkdir=True) if host_network else \
                n.Mount("/sys", "sysfs", "sysfs", sys_flags, mkdir=True)
    return mounts


# Mount points of every container (targets of the standard mounts and of the files in
# _etc_files), which an image's init layer holds where the image lacks them.
_INIT_DIRS = ("proc", "sys", "dev")
_INIT_FILES = ("hostname", "hosts", "resolv.conf")

# A container's /etc/hosts before its network adds its own name (and its peers' names).
_BASE_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
               "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
               "ff02::2\tip6-allrouters\n")


def _hosts_line(rec: ContainerRecord, address: str, by_name: bool) -> str:
    """A container's line in /etc/hosts: its address and host name, and where names resolve
    (user networks: Docker's DNS there, these lines here) its name, each once. The default
    bridge knows no names: a name Docker made up is not in the file. --network-alias es
    follow the name."""
    names = [rec.hostname, *([rec.name] if by_name and rec.name != rec.hostname else [])]
    names += rec.host.get("aliases", []) if by_name else []  # --network-alias
    return f"{address}\t{' '.join(names)}\n"


def _base_hosts(rec: ContainerRecord) -> str:
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


def _etc_files(rec: ContainerRecord) -> dict[str, bytes]:
    """The files the engine manages for the container, bound over its /etc/<name>; --dns*
    replace the host's resolver settings."""
    return {"hostname": f"{rec.hostname}\n".encode(), "hosts": _base_hosts(rec).encode(),
            "resolv.conf": _resolv_conf(rec.host.get("network") == "host", rec.host)}


def _resolv_conf(host_network: bool, host: Mapping[str, Any] | None = None) -> bytes:
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


class _Output:
    """A process's output on its way to us (see _native.relay): the json-file log of an
    attached container (None: not logged, as an exec's output is not), and the pipes its
    stdout and stderr write to, unless it has a tty, whose master is read instead (a pty has
    one stream: logged as stdout, as Docker does)."""

    def __init__(self, log_path: str | None, tty: bool):
        self.log = -1 if log_path is None else \
            os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.read: list[int] = []
        self.write: list[int] = []
        try:
            for _ in range(0 if tty else 2):
                r, w = os.pipe()
                self.read.append(r)
                self.write.append(w)
        except BaseException:
            self.close()
            raise

    def spawned(self) -> None:
        """The child has its copies of the write ends: ours go, so that the relay sees EOF
        once the container's processes have closed theirs."""
        for fd in self.write:
            os.close(fd)
        self.write = []

    def relay(self, proc: Any, stdio: tuple[int, int, int]) -> int:
        """Relay to stdio[1] and stdio[2] (-1: ours) until the process has exited; reap it
        and return its code (-signal if killed). A tty's master stays the caller's."""
        src = self.read or [os.dup(proc.console_fd)]
        self.read = []  # the relay's now
        return _native.relay(proc.pid, src, [stdio[1] if stdio[1] >= 0 else 1,
                                             stdio[2] if stdio[2] >= 0 else 2], self.log)

    def close(self) -> None:
        for fd in (self.log, *self.read, *self.write):
            if fd >= 0:
                os.close(fd)
        self.log, self.read, self.write = -1, [], []


class _forward_signals:
    """`with _forward_signals(pid):` passes the signals an attached `run` receives on to the
    container (Docker's sig-proxy)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
               signal.SIGUSR2)

    def __init__(self, pid: int, enabled: bool = True):
        self.pid = pid
        self.enabled = enabled  # --sig-proxy=false: our signals are ours
        self.old: dict[int, Any] = {}

    def forward(self, signum: int, _frame: object) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def __enter__(self) -> None:
        if not self.enabled:
            return
        try:
            self.old = {s: signal.signal(s, self.forward) for s in self.SIGNALS}
        except ValueError:  # not the main thread (the API server's workers): its own
            self.old = {}   # signals are not the container's business there

    def __exit__(self, *_: object) -> None:
        for s, h in self.old.items():
            signal.signal(s, h)


__all__ = ["CreateOptions", "NotFound", "PmdError", "Runtime"]
