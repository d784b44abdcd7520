"""`create`, `run`, `start`, `exec`: the CLI face of the engine's containers that starts one
(the others are in cli/verbs.py). On the start path (`run`): it imports what running a
container needs and no more."""
from __future__ import annotations

import os

from pyminidocker.errors import PmdError, StartError, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pyminidocker.cli.args import Namespace
    from pyminidocker.cli.main import Env
    from pyminidocker.engine import ContainerRecord, CreateOptions, Engine


# Docker's further create and run flags (names, action, help[, default]): cli/main.py declares
# them on first use (Parser.add_table), cli/runflags.py checks them, only when one is given.
RUN_FLAGS = (
    ('-l --label', 'append', 'Set metadata KEY=VALUE'),
    ('--label-file', 'append', 'Read labels from a file'),
    ('--add-host', 'append', 'Add a HOST:IP line to /etc/hosts (IP may be host-gateway)'),
    ('--dns', 'append', 'Set a nameserver'),
    ('--dns-search', 'append', 'Set a search domain'),
    ('--dns-option --dns-opt', 'append', 'Set a resolver option'),
    ('--shm-size', 'store', 'Size of /dev/shm (default 64m)'),
    ('--ulimit', 'append', 'NAME=SOFT[:HARD]'),
    ('--stop-signal', 'store', 'Signal to stop the container (default SIGTERM)'),
    ('--stop-timeout', 'store', 'Seconds to wait before killing the container on stop'),
    ('--cidfile', 'store', 'Write the container id to this file'),
    ('--expose', 'append', 'Expose a port or range of ports'),
    ('--group-add', 'append', 'Additional groups to join'),
    ('--pull', 'store', 'Pull the image: always, missing or never', 'missing'),
    ('--platform', 'store', 'Os/arch[/variant] of the image'),
    ('--memory-swap', 'store', 'Memory + swap (-1: unlimited swap)'),
    ('--memory-reservation', 'store', 'Memory soft limit'),
    ('--kernel-memory', 'store', 'Kernel memory limit (deprecated; accepted, not applied)'),
    ('--cpuset-cpus', 'store', 'CPUs to run on (0-3, 0,1)'),
    ('--cpuset-mems', 'store', 'Memory nodes to use (0-3, 0,1)'),
    ('-c --cpu-shares', 'store', 'CPU shares (relative weight)'),
    ('--cpu-period', 'store', 'CPU CFS period in microseconds'),
    ('--cpu-quota', 'store', 'CPU CFS quota in microseconds'),
    ('--cpu-rt-period', 'store', 'Limit CPU real-time period in microseconds'),
    ('--cpu-rt-runtime', 'store', 'Limit CPU real-time runtime in microseconds'),
    ('--blkio-weight', 'store', 'Block IO weight, 10 to 1000 (0: none)'),
    ('--mac-address', 'store', 'Container MAC address (e.g., 92:d0:c6:0a:29:33)'),
    ('--network-alias', 'append', 'Add network-scoped alias for the container'),
    ('--memory-swappiness', 'store', 'Tune container memory swappiness (0 to 100) (default -1)'),
    ('--runtime', 'store', "Runtime to use for this container (runc: the engine's own)"),
    ('--isolation', 'store', 'Container isolation technology (default only, on Linux)'),
    ('--volume-driver', 'store', 'Optional volume driver for the container (local)'),
    ('--storage-opt', 'append',
     'Storage driver options for the container (size: refused, as on overlay over ext4)'),
    ('--gpus', 'store', 'GPU devices to add to the container (refused: no GPU driver)'),
    ('--disable-content-trust', 'store_true',
     'Skip image verification (default true; content trust is not supported)', True),
    ('--oom-kill-disable', 'store_true', 'Disable the OOM killer'),
    ('--oom-score-adj', 'store', 'The OOM score adjustment, -1000 to 1000'),
    ('--cgroup-parent', 'store', "Parent cgroup of the container's"),
    ('--cgroupns', 'store', 'Cgroup namespace: host or private'),
    ('--pid', 'store', 'PID namespace: host'),
    ('--ipc', 'store', 'IPC namespace: private, shareable, host, none'),
    ('--uts', 'store', 'UTS namespace: host'),
    ('--userns', 'store', 'User namespace: host'),
    ('--device', 'append', 'Add a host device HOST[:CONTAINER[:rwm]]'),
    ('--device-cgroup-rule', 'append', "A device cgroup rule: 'c 1:3 rwm'"),
    ('--init', 'store_true', 'Run an init (tini) as PID 1'),
    ('--health-cmd', 'store', 'Command to run to check health'),
    ('--health-interval', 'store', 'Time between running the check (ms|s|m|h) (default 0s)'),
    ('--health-timeout', 'store', 'Maximum time to allow one check to run (ms|s|m|h) (default 0s)'),
    ('--health-retries', 'store', 'Consecutive failures needed to report unhealthy'),
    ('--health-start-period', 'store',
     'Start period for the container to initialize before '
     'starting health-retries countdown (ms|s|m|h) (default 0s)'),
    ('--no-healthcheck', 'store_true', 'Disable any container-specified HEALTHCHECK'),
    ('--log-driver', 'store',
     'Logging driver for the container: '
     'json-file, local (written as json-file) or none', 'json-file'),
    ('--log-opt', 'append', 'Log driver options: max-size, max-file'),
    ('--restart', 'store', 'Restart policy: no, always, on-failure[:N], unless-stopped', 'no'),
    ('--sig-proxy', 'store_true', 'Proxy received signals to the process (attached)', True),
    ('-a --attach', 'append', 'Attach to STDIN, STDOUT or STDERR'),
    ('--detach-keys', 'store', 'The key sequence that detaches (default ctrl-p,ctrl-q)'),
    ('--device-read-bps', 'append', 'Limit read rate (bytes per second) from a device (PATH:RATE)'),
    ('--device-write-bps', 'append', 'Limit write rate (bytes per second) to a device (PATH:RATE)'),
    ('--device-read-iops', 'append', 'Limit read rate (IO per second) from a device (PATH:RATE)'),
    ('--device-write-iops', 'append', 'Limit write rate (IO per second) to a device (PATH:RATE)'),
    ('--link', 'append',
     'Add link to another container (NAME[:ALIAS]): its address under ALIAS in /etc/hosts'),
    ('--blkio-weight-device', 'append',
     'Block IO weight (relative device weight) DEVICE:WEIGHT '
     '(discarded where the kernel has no weight files, as Docker)'),
    ('--ip6', 'store', "IPv6 address (refused: the engine's networks are IPv4 only)"),
    ('--link-local-ip', 'append', 'Container IPv4/IPv6 link-local addresses'),
    ('--ip', 'store', 'IPv4 address (e.g., 172.30.100.104) on a user-defined network'),
    ('--sysctl', 'append',
     'Sysctl options (namespaced ones: net.*, kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*)'),
    ('--domainname', 'store', 'Container NIS domain name'),
)


def _default_extra() -> dict[str, Any]:
    """What runflags.run_extra makes of RUN_FLAGS' defaults (a unit test holds the two equal,
    in order: the keys are the record's on disk)."""
    return {"labels": {}, "extra_hosts": [], "dns": [], "dns_search": [], "dns_options": [],
            "ulimits": {}, "expose": [], "group_add": [], "oom_kill_disable": False,
            "cgroupns": "", "pid_mode": "", "ipc_mode": "", "uts_mode": "", "devices": [],
            "device_cgroup_rules": [], "init": False, "restart": {"name": "no", "max": 0},
            "log": {"driver": "json-file"}, "attach": [], "sig_proxy": True}


def _create_options(args: Namespace, env_: Env) -> CreateOptions:
    from pyminidocker.engine import CreateOptions, parse_cpus, parse_env_file, parse_memory

    if args.run_flags or (args.hostname and args.network == "host"):  # the latter: its check
        from pyminidocker.cli.runflags import run_extra

        extra = run_extra(args, lambda line: env_.stderr.write(line + "\n"))
    else:
        extra = _default_extra()

    env = []
    for f in args.env_file:
        env.extend(parse_env_file(f))
    env.extend(args.env)
    for so in args.security_opt:
        if so.startswith(("apparmor=", "apparmor:", "label=", "label:")):
            # no AppArmor or SELinux policy is loaded for containers here: Docker's flag works,
            # its confinement is the engine's own (capabilities, seccomp, no-new-privileges)
            import sys

            print(f"WARNING: --security-opt {so} accepted but not applied: this engine loads "
                  "no AppArmor or SELinux policy", file=sys.stderr)
    return CreateOptions(
        image=args.image, cmd=list(args.cmd), name=args.name, env=env, workdir=args.workdir,
        user=args.user, entrypoint=args.entrypoint, hostname=args.hostname,
        read_only=args.read_only, volumes=args.volume, mounts=args.mount,
        volumes_from=args.volumes_from, tmpfs=args.tmpfs,
        memory=parse_memory(args.memory) if args.memory else None,
        cpus=parse_cpus(args.cpus) if args.cpus else None,
        pids_limit=args.pids_limit, network=args.network, privileged=args.privileged,
        cap_add=args.cap_add, cap_drop=args.cap_drop, security_opt=args.security_opt,
        tty=args.tty, interactive=args.interactive, auto_remove=getattr(args, "rm", False),
        publish=args.publish, publish_all=args.publish_all, extra=extra,
    )


def _create(args: Namespace, env: Env, run: bool) -> ContainerRecord:
    """create's work for create and run: like Docker, pull the image if it is missing. Exit
    codes as Docker's CLI: a bad flag value is 125 for both; any other failure (a name in use,
    a full disk, a failed pull) is 125 for run (which wraps the daemon's errors: the
    container's own codes come later) but 1 for create (docker/cli's create returns the
    daemon's error as it is)."""
    try:
        opts = _create_options(args, env)
        if args.cidfile and os.path.exists(args.cidfile):
            raise PmdError(f"Container ID file found, make sure the other container isn't "
                           f"running or delete {args.cidfile}")
        eng: Engine = args.engine
        if _must_pull(eng, args):
            from pyminidocker.cli.images import pull_missing

            eng.check_create(opts)  # a bad -p, -e or -v is its error, not a pull's
            pull_missing(eng, args.image, env, args.platform)
        rec = eng.create(opts)
        for w in eng.warnings():
            env.stderr.write(f"WARNING: {w}\n")
        if args.cidfile:
            try:
                with open(args.cidfile, "x") as f:
                    f.write(rec.id)
            except OSError as e:
                eng.remove(rec, force=True, volumes=True)
                raise PmdError(f"failed to create the container ID file: {e.strerror}: "
                               f"{args.cidfile}") from None
        return rec
    except PmdError as e:
        if run:
            e.exit_code = 125
        raise


def _must_pull(eng: Engine, args: Namespace) -> bool:
    """--pull missing (Docker's default), always or never; with --platform, an image of
    another platform counts as missing. Raises NotFound for never."""
    from pyminidocker.errors import NotFound

    rec = None if args.pull == "always" else eng.find_image(args.image)
    if rec is not None and args.platform:
        from pyminidocker.engine import parse_platform

        want = parse_platform(args.platform)
        cfg = eng.image_config(rec)
        have = (cfg.get("os"), cfg.get("architecture"))
        if have != (want.os, want.architecture):
            if args.pull == "never":
                raise NotFound(f"image with reference {args.image} was found but does not "
                               f"match the specified platform: wanted {args.platform}, "
                               f"actual: {have[0]}/{have[1]}")
            rec = None
    if rec is None and args.pull == "never":
        raise NotFound(f"No such image: {args.image}")
    return rec is None


def cmd_create(args: Namespace, env: Env) -> int:
    env.out(_create(args, env, run=False).id)
    return 0


def _check_tty(args: Namespace, env: Env) -> None:
    """-it needs a terminal on our stdin, as Docker checks before it creates anything; not
    with -d (`run -dit`: its stdin is for a later attach)."""
    if not (args.tty and args.interactive) or getattr(args, "detach", False):
        return
    try:
        ok = os.isatty(env.stdin.fileno())
    except (OSError, ValueError, AttributeError):  # an in-process stream has no descriptor
        ok = False
    if not ok:
        raise PmdError("the input device is not a TTY")


def cmd_run(args: Namespace, env: Env) -> int:
    _check_tty(args, env)
    eng: Engine = args.engine
    eng.prepare_start()  # overlaps a kernel wait with create (see its docstring)
    rec = _create(args, env, run=True)
    if args.detach:
        eng.start(rec, attach=False)
        env.out(rec.id)
        return 0
    return _attached_start(eng, rec, env, interactive=args.interactive, remove=args.rm)


def _attached_start(eng: Engine, rec: ContainerRecord, env: Env, interactive: bool,
                    remove: bool) -> int:
    try:
        if rec.tty:
            return _run_with_pty(
                lambda started, stdio: eng.start(rec, attach=True, stdio=stdio,
                                                 on_started=started), env, interactive)
        # -a: only the streams named are ours (by default stdout and stderr, stdin with -i);
        # the others still reach the container's log
        streams = rec.host.get("attach") or ["stdout", "stderr", *(["stdin"] * interactive)]
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            env.stdout.flush()
            code = eng.start(rec, attach=True, stdio=(
                -1 if interactive and "stdin" in streams else null,
                env.stdout.fileno() if "stdout" in streams else null,
                env.stderr.fileno() if "stderr" in streams else null))
        finally:
            os.close(null)
        return int(code or 0)
    finally:
        if remove:  # --rm: whatever happened, the container goes, with its anonymous volumes
            eng.remove(eng.reload(rec), force=True, volumes=True)

def _run_with_pty(start: Callable[[Callable[[Any], None], tuple[int, int, int]], int | None],
                  env: Env, interactive: bool) -> int:
    """-t: the process gets a pty from its own /dev/pts (the shim's console), whose output the
    runtime relays to our stdout while it waits for the process in start(on_started, stdio)
    (signal handlers need the main thread). With -i, once it runs, a thread passes our stdin
    (in raw mode if it is a terminal) to the pty."""
    import fcntl
    import select
    import signal
    import struct
    import termios
    import threading
    import tty

    in_fd = env.stdin.fileno() if interactive else -1
    is_tty = in_fd >= 0 and os.isatty(in_fd)
    done = threading.Event()
    master = -1

    def copy_winsize(*_: object) -> None:
        if master < 0:
            return
        size = fcntl.ioctl(in_fd, termios.TIOCGWINSZ, b"\0" * 8) if is_tty else \
            struct.pack("HHHH", 24, 80, 0, 0)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)

    def pass_input() -> None:
        try:
            while not done.is_set():
                r, _, _ = select.select([in_fd], [], [], 0.05)
                if not r:
                    continue
                data = os.read(in_fd, 65536)
                os.write(master, data or b"\x04")  # EOF on our stdin: ^D to the process
                if not data:
                    return
        except OSError:
            return  # the process is gone (EIO), or our stdin is

    t = threading.Thread(target=pass_input, name="pty-input", daemon=True)

    def on_started(proc: Any) -> None:
        nonlocal master
        master = proc.console_fd
        copy_winsize()
        if in_fd >= 0:
            t.start()

    saved = termios.tcgetattr(in_fd) if is_tty else None
    old_winch = signal.signal(signal.SIGWINCH, copy_winsize)
    try:
        if is_tty:
            # TCSANOW, not setraw's default TCSAFLUSH: what the user typed before the shell
            # started is input for it, not to be thrown away
            tty.setraw(in_fd, termios.TCSANOW)
        env.stdout.flush()
        try:
            code = start(on_started, (-1, env.stdout.fileno(), env.stderr.fileno())) or 0
        finally:
            done.set()
            if t.is_alive():
                t.join(timeout=5)
    finally:
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_winch)
        if master >= 0:
            os.close(master)
    return code


def cmd_exec(args: Namespace, env: Env) -> int:
    _check_tty(args, env)
    eng: Engine = args.engine
    try:
        rec = eng.container(args.container)
        if not args.cmd:
            raise UsageError("exec requires at least 1 command argument")
        extra_env = list(args.env)
        if args.tty:
            return _run_with_pty(
                lambda started, stdio: eng.exec(rec, args.cmd, extra_env, args.user,
                                                args.workdir, True, stdio, on_started=started),
                env, args.interactive)
        stdin = -1 if args.interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            env.stdout.flush()
            return eng.exec(rec, args.cmd, extra_env, args.user, args.workdir, False,
                            (stdin, env.stdout.fileno(), env.stderr.fileno()))
        finally:
            if stdin >= 0:
                os.close(stdin)
    except PmdError as e:
        if not isinstance(e, StartError):
            e.exit_code = 125 if isinstance(e, UsageError) else e.exit_code
        elif e.exit_code == 127:
            e.exit_code = 126  # Docker's exec: an OCI runtime exec failure is 126, even ENOENT
        raise


def cmd_start(args: Namespace, env: Env) -> int:
    eng: Engine = args.engine
    status = 0
    if args.all_restart:  # at boot: what Docker's daemon restarts when it starts
        if args.containers:
            raise UsageError("--all-restart takes no container")
        for cid in eng.start_all_restart():
            env.out(cid)
        return 0
    if not args.containers:
        raise UsageError('"start" requires at least 1 argument.')
    for ref in args.containers:
        try:
            rec = eng.container(ref)
            if args.attach:
                return _attached_start(eng, rec, env, args.interactive, rec.host.auto_remove)
            eng.start(rec, attach=False)
            env.out(ref)
        except PmdError as e:
            env.stderr.write(f"Error: {e}\n")
            status = e.exit_code if isinstance(e, UsageError) else 1
    return status
