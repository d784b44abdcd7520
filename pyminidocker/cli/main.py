"""The command line: its commands and their arguments (parsed by cliargs), output and exit codes.

Exit codes follow Docker's: 0 success, 1 an operation failed, 125 bad usage or an engine failure
(126/127 for containers come with the runtime), 130 interrupted.
"""
from __future__ import annotations

import os
import sys
import time

from pyminidocker import __version__
from pyminidocker.cli.args import REMAINDER, Help, Namespace, Parser
from pyminidocker.errors import PmdError, StartError, UsageError

# The start path imports what running a container needs and no more: typing, collections.abc
# and json (1-2 ms) only where they are used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import IO, Any

    from pyminidocker.engine import ContainerRecord, CreateOptions, Engine, Progress

PROG = "pyminidocker"


class Env:
    """What the CLI talks to, injectable for in-process tests."""

    def __init__(self, stdout: IO[str] | None = None, stderr: IO[str] | None = None,
                 stdin: IO[str] | None = None):
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.stdin = stdin or sys.stdin

    def out(self, line: str = "") -> None:
        self.stdout.write(line + "\n")

    @property
    def tty(self) -> bool:
        return self.stdout.isatty()


# ---- formatting helpers --------------------------------------------------------------------

def human_size(n: float) -> str:
    """Docker's size format: decimal units, 3 significant digits (4.26MB)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    """Docker's HumanDuration (go-units), e.g. "About an hour", "3 weeks"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def parse_time(stamp: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time as images carry it, or None."""
    from datetime import datetime

    if not stamp:
        return None
    s = stamp.strip().replace("Z", "+00:00")
    # Python's fromisoformat takes at most 6 fractional digits; Go writes up to 9.
    if "." in s:
        head, _, rest = s.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        s = f"{head}.{frac[:6]}{tz}"
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        return None


# ---- pull progress ---------------------------------------------------------------------------

class PullRenderer:
    """Docker-style per-layer lines: updated in place on a TTY, one line per change otherwise."""

    def __init__(self, env: Env):
        self.env = env
        self.tty = env.tty
        self.order: list[str] = []
        self.lines: dict[str, str] = {}
        self.last: dict[str, str] = {}

    def __call__(self, ev: Progress) -> None:
        text = ev.status
        if ev.status == "Downloading" and ev.total:
            width = 50
            done = min(width, int(width * ev.current / ev.total))
            bar = "=" * done + (">" if done < width else "") + " " * (width - done - 1)
            text = f"Downloading [{bar}]  {human_size(ev.current)}/{human_size(ev.total)}"
        if not self.tty:
            if self.last.get(ev.id) != ev.status:
                self.env.out(f"{ev.id}: {ev.status}")
                self.last[ev.id] = ev.status
            return
        if ev.id not in self.lines:
            self.order.append(ev.id)
            self.lines[ev.id] = text
            self.env.stdout.write(f"{ev.id}: {text}\n")
        else:
            self.lines[ev.id] = text
            up = len(self.order) - self.order.index(ev.id)
            self.env.stdout.write(f"\x1b[{up}A\r\x1b[2K{ev.id}: {text}\x1b[{up}B\r")
        self.env.stdout.flush()


# ---- commands --------------------------------------------------------------------------------

def _engine(args: Namespace) -> Engine:
    eng: Engine = args.engine
    return eng


def cmd_pull(args: Namespace, env: Env) -> int:
    from pyminidocker.engine import parse_reference

    eng = _engine(args)
    ref = parse_reference(args.ref)
    refs = [ref]
    if args.all_tags:
        if ref.digest or (ref.tag and args.ref.rsplit("/", 1)[-1].count(":")):
            raise UsageError("tag can't be used with --all-tags/-a")
        refs = eng.tags(ref)
        if not args.quiet:
            env.out(f"Pulling repository {ref.familiar_name}")
    for r in refs:
        render = None if args.quiet else PullRenderer(env)
        if render is not None:
            what = r.tag or r.digest
            env.out(f"{what}: Pulling from {r.repository}")
        res = eng.pull(r, args.platform, render)
        if args.quiet:  # Docker prints the reference pulled, fully qualified
            env.out(str(r))
            continue
        env.out(f"Digest: {res.digest}")
        familiar = r.familiar
        if res.fresh:
            env.out(f"Status: Downloaded newer image for {familiar}")
        else:
            env.out(f"Status: Image is up to date for {familiar}")
        env.out(str(r))
    return 0


def cmd_images(args: Namespace, env: Env) -> int:
    from pyminidocker.cli import listing

    return listing.images(args, env, _engine(args))


def cmd_inspect(args: Namespace, env: Env) -> int:
    from pyminidocker.cli import listing
    from pyminidocker.errors import CorruptRecord

    eng = _engine(args)
    out = []
    failed = False
    for name in args.images:
        if args.type in (None, "container"):
            try:
                out.append(eng.inspect_container(eng.container(name)))
                continue
            except CorruptRecord as e:
                env.stderr.write(f"Error: {e}\n")
                failed = True
                continue
            except PmdError:
                if args.type == "container":
                    env.stderr.write(f"Error: No such container: {name}\n")
                    failed = True
                    continue
        if args.type in (None, "image"):
            try:
                out.append(eng.inspect_image(eng.image(name)))
                continue
            except PmdError as e:
                if args.type == "image":
                    env.stderr.write(f"Error: No such image: {name}\n"
                                     if isinstance(e, LookupError) else f"Error: {e}\n")
                    failed = True
                    continue
        if args.type in (None, "network"):
            from pyminidocker.cli.network import network_doc

            try:
                out.append(network_doc(eng, name))
                continue
            except PmdError:
                pass
        env.stderr.write(f"Error: No such {args.type or 'object'}: {name}\n")
        failed = True
    listing.inspect(args, env, out)
    return 1 if failed else 0


def cmd_tag(args: Namespace, env: Env) -> int:
    _engine(args).tag(args.source, args.target)
    return 0


def cmd_rmi(args: Namespace, env: Env) -> int:
    eng = _engine(args)
    status = 0
    for want in args.images:
        try:
            for action, what in eng.remove_image(want, args.force):
                env.out(f"{action}: {what}")
        except PmdError as e:
            env.stderr.write(f"Error: {e}\n")
            status = 1
    return status


def cmd_login(args: Namespace, env: Env) -> int:
    username = args.username
    password = args.password
    if args.password_stdin:
        if args.password:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise UsageError("must provide --username with --password-stdin")
        password = env.stdin.read().rstrip("\r\n")
    if not username:
        username = _prompt(env, "Username: ")
    if password is None:
        import getpass

        password = getpass.getpass("Password: ")
    if not username or not password:
        raise UsageError("username and password are required")
    _engine(args).login(args.server, username, password)
    env.out("Login Succeeded")
    return 0


def _prompt(env: Env, text: str) -> str:
    env.stdout.write(text)
    env.stdout.flush()
    return env.stdin.readline().strip()


def cmd_logout(args: Namespace, env: Env) -> int:
    from pyminidocker.engine import registry_server

    env.out(f"Removing login credentials for {registry_server(args.server)}")
    _engine(args).logout(args.server)
    return 0


def _container_group(args: Namespace, env: Env, parser: Any) -> int:
    return cmd_container_prune(args, env)


def cmd_system(args: Namespace, env: Env) -> int:
    """`system reset`: remove every container of this store, then everything the engine added
    to the host for networking (bridges, PMD-* rules), whichever store added it."""
    for cid in _engine(args).reset():
        env.out(f"Deleted container {cid}")
    env.out("Removed the engine's bridges and firewall rules from the host")
    return 0


def cmd_version(args: Namespace, env: Env) -> int:
    if getattr(args, "format", None):  # `-v` before any command has no --format
        from pyminidocker.cli import listing

        listing.render_each(env, args.format, [listing.version_doc(_engine(args))])
        return 0
    env.out(f"{PROG} version {__version__}")
    return 0


def cmd_info(args: Namespace, env: Env) -> int:
    from pyminidocker.cli import listing

    return listing.info(args, env, _engine(args))


# ---- containers ------------------------------------------------------------------------------

def _create_options(args: Namespace) -> CreateOptions:
    from pyminidocker.engine import CreateOptions, parse_cpus, parse_env_file, parse_memory

    env = []
    for f in args.env_file:
        env.extend(parse_env_file(f))
    env.extend(args.env)
    for so in args.security_opt:
        if so.startswith(("apparmor=", "apparmor:", "label=", "label:")):
            # no AppArmor or SELinux policy is loaded for containers here: Docker's flag works,
            # its confinement is the engine's own (capabilities, seccomp, no-new-privileges)
            print(f"WARNING: --security-opt {so} accepted but not applied: this engine loads "
                  "no AppArmor or SELinux policy", file=sys.stderr)
    return CreateOptions(
        image=args.image, cmd=list(args.cmd), name=args.name, env=env, workdir=args.workdir,
        user=args.user, entrypoint=args.entrypoint, hostname=args.hostname,
        read_only=args.read_only, volumes=args.volume, tmpfs=args.tmpfs,
        memory=parse_memory(args.memory) if args.memory else None,
        cpus=parse_cpus(args.cpus) if args.cpus else None,
        pids_limit=args.pids_limit, network=args.network, privileged=args.privileged,
        cap_add=args.cap_add, cap_drop=args.cap_drop, security_opt=args.security_opt,
        tty=args.tty, interactive=args.interactive, auto_remove=getattr(args, "rm", False),
        publish=args.publish, publish_all=args.publish_all,
    )


def _create(args: Namespace, env: Env) -> ContainerRecord:
    """create's work for create and run: like Docker, pull the image if it is missing, and
    exit 125 for any failure of the engine (the container's own codes come later)."""
    try:
        opts = _create_options(args)
        eng = _engine(args)
        if eng.find_image(args.image) is None:
            _pull_missing(eng, args.image, env)
        return eng.create(opts)
    except PmdError as e:
        e.exit_code = 125
        raise


def _pull_missing(eng: Engine, image: str, env: Env) -> None:
    from pyminidocker.engine import parse_reference

    ref = parse_reference(image)
    err_env = Env(stdout=env.stderr, stderr=env.stderr)
    err_env.out(f"Unable to find image '{ref.familiar}' locally")
    err_env.out(f"{ref.tag or ref.digest}: Pulling from {ref.repository}")
    res = eng.pull(ref, None, PullRenderer(err_env))
    err_env.out(f"Digest: {res.digest}")
    err_env.out(f"Status: Downloaded newer image for {ref.familiar}")


def cmd_create(args: Namespace, env: Env) -> int:
    env.out(_create(args, env).id)
    return 0


def _check_tty(args: Namespace, env: Env) -> None:
    """-it needs a terminal on our stdin, as Docker checks before it creates anything."""
    if not (args.tty and args.interactive):
        return
    try:
        ok = os.isatty(env.stdin.fileno())
    except (OSError, ValueError, AttributeError):  # an in-process stream has no descriptor
        ok = False
    if not ok:
        raise PmdError("the input device is not a TTY")


def cmd_run(args: Namespace, env: Env) -> int:
    _check_tty(args, env)
    eng = _engine(args)
    eng.prepare_start()  # overlaps a kernel wait with create (see its docstring)
    rec = _create(args, env)
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
        stdin = -1 if interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            env.stdout.flush()
            code = eng.start(rec, attach=True,
                             stdio=(stdin, env.stdout.fileno(), env.stderr.fileno()))
        finally:
            if stdin >= 0:
                os.close(stdin)
        return int(code or 0)
    finally:
        if remove:  # --rm: whatever happened, the container goes
            eng.remove(eng.reload(rec), force=True)
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
    eng = _engine(args)
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
    eng = _engine(args)
    status = 0
    for ref in args.containers:
        try:
            rec = eng.container(ref)
            if args.attach:
                return _attached_start(eng, rec, env, args.interactive, rec.host.get(
                    "auto_remove", False))
            eng.start(rec, attach=False)
            env.out(ref)
        except PmdError as e:
            env.stderr.write(f"Error: {e}\n")
            status = e.exit_code if isinstance(e, UsageError) else 1
    return status


def _each(args: Namespace, env: Env, action: Callable[[Engine, ContainerRecord], None],
          echo: bool = True, corrupt_ok: bool = False) -> int:
    eng = _engine(args)
    status = 0
    for ref in args.containers:
        try:
            action(eng, eng.container(ref, corrupt_ok=corrupt_ok))
            if echo:
                env.out(ref)
        except PmdError as e:
            env.stderr.write(f"Error: {e}\n")
            status = 1
    return status


def cmd_stop(args: Namespace, env: Env) -> int:
    return _each(args, env, lambda eng, rec: eng.stop(rec, args.time))


def cmd_kill(args: Namespace, env: Env) -> int:
    from pyminidocker.engine import parse_signal

    try:
        sig = parse_signal(args.signal)
    except UsageError:
        # the daemon refuses it in Docker: an operation failed (1), not a usage error (125)
        raise PmdError(f"Invalid signal: {args.signal}") from None
    return _each(args, env, lambda eng, rec: eng.kill(rec, sig))


def cmd_rm(args: Namespace, env: Env) -> int:
    # rm -f also takes a container whose record is corrupt: what is found of it goes
    return _each(args, env, lambda eng, rec: eng.remove(rec, args.force),
                 corrupt_ok=args.force)


def cmd_wait(args: Namespace, env: Env) -> int:
    def wait(eng: Engine, rec: ContainerRecord) -> None:
        env.out(str(eng.wait(rec)))
        env.stdout.flush()

    return _each(args, env, wait, echo=False)


def cmd_logs(args: Namespace, env: Env) -> int:
    """The container's output from its json-file log (written by the monitor of a detached
    container, by the runtime's relay for an attached one). -f follows it until the container
    has exited and everything it wrote is shown."""
    eng = _engine(args)
    rec = eng.container(args.container)
    tail = None
    if args.tail not in (None, "all"):
        try:
            tail = int(args.tail)
        except ValueError:
            raise UsageError(f"invalid value for --tail: {args.tail!r}") from None
    for r in eng.logs(rec, tail, args.follow):
        out = env.stderr if r.get("stream") == "stderr" else env.stdout
        out.write(f"{r.get('time', '')} {r['log']}" if args.timestamps else r["log"])
        if args.follow:
            out.flush()
    return 0


def cmd_rename(args: Namespace, env: Env) -> int:
    eng = _engine(args)
    eng.rename(eng.container(args.container), args.new_name)
    return 0


def cmd_ps(args: Namespace, env: Env) -> int:
    from pyminidocker.cli import listing

    return listing.ps(args, env, _engine(args))


def cmd_port(args: Namespace, env: Env) -> int:
    """Docker's `port`: every mapping, or the host addresses of one container port (rc 1 and
    Docker's message when it is not published)."""
    rec = _engine(args).container(args.container)
    if args.port is None:
        for mapping in rec.state.ports:
            env.out(mapping)
        return 0
    want = args.port if "/" in args.port else f"{args.port}/tcp"
    found = [m.partition(" -> ")[2] for m in rec.state.ports if m.partition(" -> ")[0] == want]
    if not found:
        raise PmdError(f"No public port '{want}' published for {rec.name}")
    for address in found:
        env.out(address)
    return 0


def cmd_container_prune(args: Namespace, env: Env) -> int:
    keep = None
    if args.filter:  # Docker's until= and label= (label!=)
        from pyminidocker.cli import filters

        wanted = filters.parse(args.filter, filters.PRUNE_KEYS)

        def keep(recs: list[ContainerRecord]) -> list[ContainerRecord]:
            return filters.prune(recs, wanted, lambda r: parse_time(r.created) or 0.0,
                                 lambda r: r.labels)

    ids = _engine(args).prune_containers(keep)
    env.out("Deleted Containers:")
    for cid in ids:
        env.out(cid)
    return 0


# ---- parser ----------------------------------------------------------------------------------

class _Unused:
    """Stands for the parser of a command that is not being run: its flags are not built."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The whole parser, or with argv one where only the command argv names has its flags
    (declaring every command's costs on each start); every command is listed all the same."""
    p = Parser(PROG, "A daemonless container engine.")
    p.add_argument("--root", help="store directory (default $PYMINIDOCKER_ROOT or "
                   "/var/lib/docker-mini)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p.add_argument("--trace", action="store_true",
                   help="print the time of each phase (also PYMINIDOCKER_TRACE=1)")
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    only = None if argv is None else p.command_word(argv)

    def add(name: str, fn: Callable[..., int] | None, help: str,
            aliases: Sequence[str] = ()) -> Any:
        sp = sub.add_parser(name, help=help, aliases=aliases)
        if fn is not None:
            sp.set_defaults(func=fn)
        return sp if only is None or only == name or only in aliases else _Unused()

    sp = add("pull", cmd_pull, "Download an image from a registry")
    sp.add_argument("--platform", help="os/arch[/variant] to pull (default: this host's)")
    sp.add_argument("-q", "--quiet", action="store_true", help="print only the reference")
    sp.add_argument("-a", "--all-tags", action="store_true", help="pull every tagged image")
    sp.add_argument("ref", metavar="NAME[:TAG|@DIGEST]")

    format_help = "Go template (Docker's), 'table TEMPLATE' or 'json'"
    filter_help = "filter output: KEY=VALUE (repeatable)"
    sp = add("images", cmd_images, "List images")
    sp.add_argument("-a", "--all", action="store_true", help="show all images (no "
                    "intermediate ones exist: the same as without)")
    sp.add_argument("--digests", action="store_true", help="show digests")
    sp.add_argument("-f", "--filter", action="append", default=[], help=filter_help)
    sp.add_argument("--format", help=format_help)
    sp.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    sp.add_argument("-q", "--quiet", action="store_true", help="only show image ids")
    sp.add_argument("filter_ref", nargs="?", metavar="REPOSITORY[:TAG]")

    sp = add("inspect", cmd_inspect, "Show low-level information on containers, images and "
             "networks")
    sp.add_argument("-f", "--format", help="Go template applied to each object")
    sp.add_argument("-s", "--size", action="store_true", help="accepted (sizes are not shown)")
    sp.add_argument("--type", choices=["container", "image", "network"],
                    help="only objects of this type")
    sp.add_argument("images", nargs="+", metavar="NAME|ID")

    sp = add("tag", cmd_tag, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    sp.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    sp.add_argument("target", metavar="TARGET_IMAGE[:TAG]")

    sp = add("rmi", cmd_rmi, "Remove one or more images")
    sp.add_argument("-f", "--force", action="store_true", help="force removal of the image")
    sp.add_argument("images", nargs="+", metavar="IMAGE")

    sp = add("login", cmd_login, "Log in to a registry")
    sp.add_argument("-u", "--username", help="username")
    sp.add_argument("-p", "--password",
                    help="password (--password-stdin keeps it out of the process list)")
    sp.add_argument("--password-stdin", action="store_true", help="take the password from stdin")
    sp.add_argument("server", nargs="?", metavar="SERVER")

    sp = add("logout", cmd_logout, "Log out from a registry")
    sp.add_argument("server", nargs="?", metavar="SERVER")

    env_help = "set an environment variable: NAME=VALUE, or NAME to pass on ours"
    user_help = "user name or UID (format: <name|uid>[:<group|gid>])"

    def create_flags(sp: Any) -> None:
        sp.add_argument("--name", help="assign a name to the container")
        sp.add_argument("-e", "--env", action="append", default=[], help=env_help)
        sp.add_argument("--env-file", action="append", default=[],
                        help="read environment variables from a file")
        sp.add_argument("-w", "--workdir", help="working directory inside the container")
        sp.add_argument("-u", "--user", help=user_help)
        sp.add_argument("--entrypoint", help="overwrite the image's ENTRYPOINT")
        sp.add_argument("-h", "--hostname", help="the container's host name")
        sp.add_argument("--read-only", action="store_true",
                        help="mount the container's root filesystem read-only")
        sp.add_argument("-v", "--volume", action="append", default=[],
                        help="bind mount HOST_PATH:PATH[:ro|rw]")
        sp.add_argument("--tmpfs", action="append", default=[],
                        help="mount a tmpfs: /PATH[:OPTIONS]")
        sp.add_argument("-m", "--memory", help="memory limit (e.g. 64m)")
        sp.add_argument("--cpus", help="number of CPUs (e.g. 1.5)")
        sp.add_argument("--pids-limit", type=int,
                        help="limit the number of processes in the container")
        sp.add_argument("--network", "--net", default="bridge",
                        help="connect the container to a network: bridge, host, none or a name")
        sp.add_argument("-p", "--publish", action="append", default=[],
                        help="publish a port: [[HOST_IP:]HOST_PORT:]PORT[/PROTO]")
        sp.add_argument("-P", "--publish-all", action="store_true",
                        help="publish all exposed ports to random ports")
        sp.add_argument("--privileged", action="store_true",
                        help="give extended privileges to the container")
        sp.add_argument("--cap-add", action="append", default=[], help="add a Linux capability")
        sp.add_argument("--cap-drop", action="append", default=[],
                        help="drop a Linux capability")
        sp.add_argument("--security-opt", action="append", default=[], help="security options")
        sp.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
        sp.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
        sp.add_argument("image", metavar="IMAGE")
        sp.add_argument("cmd", nargs=REMAINDER, metavar="COMMAND")

    sp = add("create", cmd_create, "Create a new container")
    create_flags(sp)
    sp = add("run", cmd_run, "Create and start a container")
    sp.add_argument("-d", "--detach", action="store_true",
                    help="run in the background and print the container id")
    sp.add_argument("--rm", action="store_true", help="remove the container when it exits")
    create_flags(sp)

    sp = add("exec", cmd_exec, "Run a command in a running container")
    sp.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    sp.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    sp.add_argument("-e", "--env", action="append", default=[], help=env_help)
    sp.add_argument("-u", "--user", help=user_help)
    sp.add_argument("-w", "--workdir", help="working directory inside the container")
    sp.add_argument("container", metavar="CONTAINER")
    sp.add_argument("cmd", nargs=REMAINDER, metavar="COMMAND")

    sp = add("start", cmd_start, "Start one or more stopped containers")
    sp.add_argument("-a", "--attach", action="store_true",
                    help="attach to the container's output and wait for it")
    sp.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")

    sp = add("ps", cmd_ps, "List containers")
    sp.add_argument("-a", "--all", action="store_true",
                    help="show all containers (default: the running ones)")
    sp.add_argument("-f", "--filter", action="append", default=[], help=filter_help)
    sp.add_argument("--format", help=format_help)
    sp.add_argument("-n", "--last", type=int, default=-1,
                    help="show the n last created containers (all states)")
    sp.add_argument("-l", "--latest", action="store_true",
                    help="show the latest created container (all states)")
    sp.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    sp.add_argument("-q", "--quiet", action="store_true", help="only show container ids")
    sp.add_argument("-s", "--size", action="store_true", help="display total file sizes")

    sp = add("stop", cmd_stop, "Stop one or more running containers")
    sp.add_argument("-t", "--time", type=int, default=10,
                    help="seconds to wait before killing the container")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")

    sp = add("kill", cmd_kill, "Kill one or more running containers")
    sp.add_argument("-s", "--signal", default="KILL", help="signal to send")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")

    sp = add("rm", cmd_rm, "Remove one or more containers")
    sp.add_argument("-f", "--force", action="store_true",
                    help="remove a running container too (it is killed)")
    sp.add_argument("-v", "--volumes", action="store_true",
                    help="remove anonymous volumes (there are none: bind mounts only)")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")

    sp = add("wait", cmd_wait, "Block until containers stop, then print their exit codes")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")

    sp = add("logs", cmd_logs, "Fetch the logs of a container")
    sp.add_argument("-f", "--follow", action="store_true", help="follow log output")
    sp.add_argument("--tail", default="all", help="number of lines to show from the end")
    sp.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    sp.add_argument("container", metavar="CONTAINER")

    sp = add("port", cmd_port, "List a container's published ports")
    sp.add_argument("container", metavar="CONTAINER")
    sp.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")

    sp = add("rename", cmd_rename, "Rename a container")
    sp.add_argument("container", metavar="CONTAINER")
    sp.add_argument("new_name", metavar="NEW_NAME")

    sp = add("container", lambda a, e: _container_group(a, e, p), "Manage containers")
    sp.add_argument("action", choices=["prune"])
    sp.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    sp.add_argument("--filter", action="append", default=[],
                    help="prune only: until=TIME|DURATION, label=KEY[=VALUE], label!=KEY")

    sp = add("network", None, "Manage networks")
    if isinstance(sp, Parser):  # its commands live in cli_network: imported only to run them
        from pyminidocker.cli.network import add_network_commands

        add_network_commands(sp)

    sp = add("bench", None, "Measure start latency and pull time against other engines")
    if isinstance(sp, Parser):  # its commands live in cli/bench.py: imported only to run them
        from pyminidocker.cli.bench import add_bench_commands

        add_bench_commands(sp)

    sp = add("system", cmd_system, "Manage the engine's footprint on this host")
    sp.add_argument("action", choices=["reset"])
    sp.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")

    sp = add("version", cmd_version, "Show the version")
    sp.add_argument("-f", "--format", help="Go template over the version document")
    sp = add("info", cmd_info, "Display system-wide information")
    sp.add_argument("-f", "--format", help="Go template over the info document")
    return p


# Docker's management-command forms, as the classic command they stand for.
_MANAGEMENT = {
    "container": {"ls": ["ps"], "list": ["ps"], "ps": ["ps"],
                  "inspect": ["inspect", "--type", "container"],
                  **{v: [v] for v in ("create", "run", "start", "stop", "kill", "rm", "exec",
                                      "logs", "port", "rename", "wait")}},
    "image": {"ls": ["images"], "list": ["images"], "inspect": ["inspect", "--type", "image"],
              "rm": ["rmi"], "remove": ["rmi"], "pull": ["pull"], "tag": ["tag"]},
    "system": {"info": ["info"]},
}


def _classic(argv: list[str]) -> list[str]:
    """`container ls` -> `ps`, `image inspect X` -> `inspect --type image X`, ..."""
    for i, word in enumerate(argv):
        if not word.startswith("-") and (i == 0 or argv[i - 1] != "--root"):
            verbs = _MANAGEMENT.get(word, {})
            if i + 1 < len(argv) and argv[i + 1] in verbs:
                return [*argv[:i], *verbs[argv[i + 1]], *argv[i + 2:]]
            break
    return argv


def program(argv: Sequence[str], env: Env) -> int:
    argv = _classic(list(argv))
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except Help as h:
        env.stdout.write(h.parser.format_help())
        return 0
    if args.version:
        return cmd_version(args, env)
    if not getattr(args, "func", None):
        env.stdout.write(parser.format_help())
        return 0
    from pyminidocker.engine import Engine  # after parsing: help and usage errors need none

    trace = args.trace or os.environ.get("PYMINIDOCKER_TRACE") == "1"
    args.engine = eng = Engine(args.root, trace=trace)
    try:
        return int(args.func(args, env))
    finally:
        eng.tracer.report(time.process_time() * 1000 if eng.tracer.enabled else None)


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    env = env or Env()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return program(argv, env)
    except PmdError as e:
        if debug:
            import traceback

            traceback.print_exc(file=env.stderr)
        # a --format error prints as Docker's does, without "Error: "
        env.stderr.write(("" if getattr(e, "bare", False) else "Error: ") + f"{e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        env.stderr.write("\n")
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`); don't let Python complain at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        if debug:
            import traceback

            traceback.print_exc(file=env.stderr)
        where = f": {e.filename}" if e.filename else ""
        env.stderr.write(f"Error: {e.strerror or e}{where}\n")
        return 125
    except Exception as e:
        if debug:
            import traceback

            traceback.print_exc(file=env.stderr)
        env.stderr.write(f"Error: internal error: {type(e).__name__}: {e} "
                         "(run with --debug for details)\n")
        return 125


def command() -> None:
    """The `pyminidocker` command: main(), then exit without the interpreter's finalisation
    (freeing every module and object one by one: about 3 ms of each container start). Nothing
    is left to finalise: files are closed by their `with`, no thread outlives main(), and
    the standard streams are flushed here."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # as the interpreter's own exit would report a failed flush
    os._exit(code)
