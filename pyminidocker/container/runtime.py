"""Container lifecycle: create, start (attached or detached), stop, kill, rm, wait.

create checks the user's options and records the container; start mounts its overlay, has
container.specconv turn its record into the shim's spawn spec (cgroup made) and hands that to
the C shim, under its monitor when detached (container.monitor). The state a command finds is
first reconciled with reality (refresh, container.recovery): a container whose process is gone
is shown exited, whatever killed it or its monitor. The rest lives beside this module, imported
only by the operations that need it: network plugging (container.plugging), stop, kill, exec
and the other verbs (container.control, which the engine calls with a Runtime), an image's init
layer (container.initlayer), the undoing of a failed start (container.recovery), the streams
of an attached container (container.stdio).
"""
from __future__ import annotations

import os
import time

from pyminidocker import native as _native
from pyminidocker.container import spec as policy
from pyminidocker.container import specconv as conv
from pyminidocker.container import stdio as streams
from pyminidocker.errors import (
    Conflict,
    NotFound,
    PmdError,
    StoreError,
    UsageError,
    suppress,
)
from pyminidocker.proc import alive as _alive
from pyminidocker.proc import start_time as _pid_start
from pyminidocker.record import dataclass, field
from pyminidocker.store import Store, log_event
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
    from collections.abc import Callable
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
        """Reconcile a running record with reality (container.recovery): the monitor's exit
        record, or a process that is gone. Tears down what the exit left."""
        if rec.state.status != "running":
            return rec
        from pyminidocker.container import recovery

        return recovery.refresh(self, rec)

    def health(self, rec: ContainerRecord) -> dict[str, Any] | None:
        """Docker's State.Health (None without a healthcheck): see recovery.health."""
        from pyminidocker.container import recovery

        return recovery.health(self, rec)

    def _finish(self, rec: ContainerRecord, code: int, finished: str) -> None:
        """Record the exit and release what the running container held (mounts, cgroup)."""

        cg = conv.cgroup_of(rec)
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
        self.log(rec, "die", at=finished, exitCode=str(code))

    def _teardown(self, rec: ContainerRecord) -> None:

        rootfs = os.path.join(self.containers.path(rec.id), "rootfs")
        with self.trace.phase("teardown"):
            if os.path.ismount(rootfs):
                with suppress(OSError):
                    _native.umount(rootfs, _native.MNT_DETACH)
            conv.cgroup_of(rec).remove()

    # ---- create -------------------------------------------------------------------------

    @staticmethod
    def check_options(opts: CreateOptions) -> None:
        """The options whose syntax alone can be wrong (-e, -p, -v, --mount), checked before
        anything is looked up: a front end calls it before it pulls a missing image, as
        Docker's CLI parses them first. Raises UsageError."""
        policy.check_env(opts.env)
        for spec in opts.publish:
            _parse_publish(spec)
        if opts.volumes or opts.mounts:
            from pyminidocker.container import mounts as mountspec

            for v in opts.volumes:
                mountspec.parse_volume(v)
            for m in opts.mounts:
                mountspec.parse_mount(m)

    def create(self, opts: CreateOptions) -> ContainerRecord:
        """Raises NotFound (image), Conflict (name), UsageError (options)."""
        self.check_options(opts)  # first: a bad flag is its error, whatever the image
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
        nnp, profile, security_opt = conv.security_options(self.store.root, opts.security_opt,
                                                           caps)
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
        self._check_create(opts, extra, network, exposed)
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
        health = conv.healthcheck(cfg.get("Healthcheck"), rec.host.pop("health_flags", {}))
        if health:
            rec.host["healthcheck"] = health
        conv.limits(rec.host)  # a bad combination of limits is refused now, not at start
        if rec.host.get("blkio_weight") and not any(
                os.path.exists(f"/sys/fs/cgroup/blkio/blkio.{f}") for f in ("weight",
                                                                           "bfq.weight")):
            self.warnings.append("Your kernel does not support Block I/O weight or the cgroup "
                                 "is not mounted. Weight discarded.")
            rec.host["blkio_weight"] = 0
        if any(h.endswith(":host-gateway") for h in extra.get("extra_hosts", [])):
            from pyminidocker.container import plugging

            rec.host["host_gateway"] = plugging.host_gateway(self.store, network)
        made = self._record(rec, opts, image.id, planned)
        for name in made:
            log_event(self.store.root, "volume", "create", name, {"driver": "local"})
        self.log(rec, "create")
        return rec

    def _check_create(self, opts: CreateOptions, extra: dict[str, Any], network: str,
                      exposed: set[str]) -> None:
        """The options that name other containers, networks or ports, checked (and resolved:
        container:X by id, -P's ports) now rather than at the start. Raises NotFound,
        UsageError."""
        for mode in ("pid_mode", "ipc_mode"):  # container:X names X by its id from now on
            if extra.get(mode, "").startswith("container:"):
                extra[mode] = "container:" + self.containers.lookup(extra[mode][10:]).id
        shared = {extra.get(m) for m in ("pid_mode", "ipc_mode")
                  if extra.get(m, "").startswith("container:")}
        if len(shared) > 1:
            raise UsageError("--pid container:X and --ipc container:Y must name the same "
                             "container")
        for link in extra.get("links", []):  # --link: the container is named by its id
            from pyminidocker.container.plugging import linked

            link["id"] = linked(self, link, opts.name or "", network).id
        if extra.get("ip"):  # --ip: refused now rather than at the start, where it can be
            from pyminidocker.network import networks

            networks.check_wanted(self.store, network, extra["ip"])
        if extra.get("uts_mode") == "host" and opts.hostname:
            raise UsageError("Conflicting options: hostname and the UTS mode")
        added = sorted(exposed) if opts.publish_all else []  # -P: the ports the image exposes
        opts.publish = [*opts.publish, *added]
        if opts.publish and network in ("none", "host"):
            raise UsageError(f"published ports need a bridge network, not --network {network}")
        for spec in added:  # refused now, not at start (check_options saw the user's own)
            _parse_publish(spec)

    def _record(self, rec: ContainerRecord, opts: CreateOptions, image_id: str,
                planned: List[dict[str, Any]]) -> List[str]:
        """Record the container under the store lock, with a name and the volumes it makes;
        returns the volumes made. Raises NotFound (its image removed meanwhile), Conflict."""
        with self.trace.phase("create"), self.store.lock():
            # again under the lock, which rmi holds: an image removed since create looked it up
            # is not there, and once the container is recorded rmi sees it as a user
            if not os.path.isdir(self.store.images.path(image_id)):
                raise NotFound(f"No such image: {opts.image}")
            taken = set(self.containers.names())
            rec.name = check_name(opts.name) if opts.name else random_name(taken)
            made: list[str] = []
            if planned:
                from pyminidocker.container.mounts import drop_volumes, make_volumes

                made = make_volumes(self.store, planned)
            try:
                self.containers.create(rec, conv.etc_files(rec))
            except BaseException:
                if made:
                    drop_volumes(self.store, made)
                raise
        return made

    def log(self, rec: ContainerRecord, action: str, at: str | None = None,
            **extra: str) -> None:
        """Log a container event (store.log_event) with Docker's attributes: its labels, image
        and name, then extra (exitCode, signal, oldName). at: when it happened (an exit:
        when the monitor saw it), default now."""
        attrs = {**(rec.labels or {}), "image": rec.image_name, "name": rec.name, **extra}
        log_event(self.store.root, "container", action, rec.id, attrs, at)

    def _plan_mounts(self, opts: CreateOptions, cfg: dict[str, Any]) -> List[dict[str, Any]]:
        """-v, --mount, --volumes-from and the image's VOLUMEs → the mount records (see
        container.mounts). Raises UsageError, NotFound (a --volumes-from container)."""
        if not (opts.volumes or opts.mounts or opts.volumes_from or opts.tmpfs
                or cfg.get("Volumes")):
            return []  # the usual case: container.mounts is not even imported
        from pyminidocker.container import mounts as mountspec

        own = [mountspec.parse_volume(v) for v in opts.volumes]
        own += [mountspec.parse_mount(m) for m in opts.mounts]
        others: list[dict[str, Any]] = []
        for spec in opts.volumes_from:
            ref, mode = mountspec.parse_volumes_from(spec)
            others += mountspec.inherited(mountspec.mounts_of(self.containers.lookup(ref).host),
                                         mode)
        return mountspec.plan(own, opts.tmpfs, others, sorted(cfg.get("Volumes") or {}))

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
            from pyminidocker.network import firewall

            rules = firewall.rules_snapshot()
        output = None
        try:
            if attach:
                output = streams.Output(None if conv.log_of(rec.host)["driver"] == "none"
                                        else os.path.join(d, f"{rec.id}-json.log"), rec.tty)
            proc, held = self._launch(rec, d, stdio, output, bridged, rules)
        except BaseException as e:
            if output is not None:
                output.close()
            failed = streams.spawn_failure(e)
            self._start_failed(rec, failed)
            if failed is not None:
                raise streams.start_error(failed) from None
            raise
        finally:
            if rules is not None:
                rules.close()
        try:
            self._mark_running(rec, proc, held)
            self.log(rec, "start")
            if on_started:
                on_started(proc)  # e.g. to pass our input to its console
            if output is None:
                return None
            with self.trace.phase("wait"), \
                    streams.forward_signals(proc.pid, rec.host.get("sig_proxy", True)):
                code = output.relay(proc, stdio)
        finally:
            if output is not None:
                output.close()
        code = 128 - code if code < 0 else code
        with self.store.lock():
            self._finish(rec, code, now_iso())
        self._unplug(rec)
        return code

    def _launch(self, rec: ContainerRecord, d: str, stdio: tuple[int, int, int],
                output: Any, bridged: bool, rules: Any) -> tuple[Any, bool]:
        """start's setup and spawn: the root mounted, the spec made, the container spawned
        (attached when output is its streams.Output, else under its monitor), plugged into
        its network and configured. Returns it, and whether it is held (see _mark_running)."""
        with self.trace.phase("overlay mount"):
            self._mount_root(rec, d)
        child_stdio = stdio
        if output is not None:
            child_stdio = (stdio[0], output.write[0], output.write[1]) if output.write \
                else (-1, -1, -1)
        sp = conv.container_spec(self.store, self.trace, self.warnings, rec, d, child_stdio)
        # held: its network is plugged in, its sysctls and domain name set before it runs
        configure = bool(rec.host.get("sysctls") or rec.host.get("domainname"))
        held = sp.hold = bridged or configure
        with streams.oom_score(rec.host.get("oom_score_adj")):
            if output is not None:
                with self.trace.phase("spawn (clone to execve)"):
                    proc = _native.spawn(sp)
                output.spawned()
            else:
                from pyminidocker.container import monitor

                proc = monitor.spawn(self, rec, d, sp)
        if bridged:
            self._plug(rec, d, proc, rules)
        if configure:  # after the plugging: net.ipv4.conf.eth0.* needs its eth0
            from pyminidocker.container.namespaces import configure_held

            configure_held(proc, rec.host.get("sysctls") or {}, rec.host.get("domainname"))
        if output is not None:
            for phase, ms in proc.trace().items():
                self.trace.note(f"  child: {phase}", ms)
        return proc, held

    def _mark_running(self, rec: ContainerRecord, proc: Any, held: bool) -> None:
        """Record the spawned container as running (its pid and its monitor's, each with its
        start time) and release it if it was held (for its network, sysctls). Raises
        StartError (its exec failed once released) after undoing the start."""
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
        except StoreError:  # a full disk: what cannot be recorded as running must not run
            from pyminidocker.container import recovery

            recovery.abandon(self, rec, proc, held=held)
            rec.state = prior
            with suppress(StoreError):
                self._start_failed(rec, None)
            raise
        if held:
            # Released only once the state says running: a kill -9 of this command before
            # this line ends the held container (the monitor, or the child, sees EOF), after
            # it leaves a running container that ps shows as such. Never a running process
            # that ps calls Created.
            try:
                proc.release()
            except BaseException as e:
                proc.abort()
                rec.state = prior
                failed = streams.spawn_failure(e)
                self._start_failed(rec, failed)
                if failed is not None:  # the exec failed: 126/127 as when not held
                    raise streams.start_error(failed) from None
                raise

    def _start_failed(self, rec: ContainerRecord, e: OSError | None) -> None:
        from pyminidocker.container import recovery

        recovery.start_failed(self, rec, e)

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
            from pyminidocker.container import initlayer

            with suppress(OSError, PmdError):  # only an optimisation: the child makes them
                initlayer.make(self.store, rootfs, init)

    # ---- network plugging (container.plugging), exec and the other operations
    # (container.control): imported by the operations that need them, never by `run`'s

    def _plug(self, rec: ContainerRecord, d: str, proc: Any, rules: Any = None) -> None:
        from pyminidocker.container import plugging

        plugging.plug(self, rec, d, proc, rules)

    def _unplug(self, rec: ContainerRecord) -> None:
        if rec.state.extra_networks or rec.host.network not in ("none", "host"):
            from pyminidocker.container import plugging

            plugging.unplug(self, rec)

    # ---- stop / kill / wait / rm ----------------------------------------------------------

    def kill(self, rec: ContainerRecord, sig: int = signal.SIGKILL) -> None:
        """Raises Conflict if the container is not running."""
        from pyminidocker.container import control

        control.kill(self, rec, sig)

    def stop(self, rec: ContainerRecord, timeout: int | None = None) -> None:
        """The container's stop signal, then SIGKILL after timeout seconds; returns once it
        has exited (container.control.stop)."""
        from pyminidocker.container import control

        control.stop(self, rec, timeout)

    def unpause(self, rec: ContainerRecord) -> None:
        """Thaw a paused container (kill and stop do, as Docker). Raises Conflict."""
        from pyminidocker.container import control

        control.unpause(self, rec)
        self.log(rec, "unpause")

    def running(self, rec: ContainerRecord) -> bool:
        """Whether the container runs now; not once it was removed (`run --rm` does that at
        its exit)."""
        try:
            return self.refresh(self.containers.get(rec.id)).state.status == "running"
        except NotFound:
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
                self.log(rec, "kill", signal=str(int(signal.SIGKILL)))
            from pyminidocker.container.control import wait_gone

            wait_gone(self, rec, 10)
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
            if volumes and rec.host.get("mounts"):  # (old records' binds hold no volume)
                from pyminidocker.container.mounts import drop_volumes, mounts_of

                drop_volumes(self.store, [m["Name"] for m in mounts_of(rec.host)
                                          if m["Type"] == "volume" and m.get("Anonymous")])
        self.log(rec, "destroy")
        self.store.discard(dead)


def _parse_publish(spec: str) -> list[Any]:
    from pyminidocker.network import ports

    return ports.parse_publish(spec)


__all__ = ["CreateOptions", "NotFound", "PmdError", "Runtime"]
