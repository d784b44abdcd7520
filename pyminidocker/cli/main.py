"""The command line's entry: the command table (each command's flags and the function of its
group module that runs it: images, containers, network, system), program() and main().

Exit codes follow Docker's: 0 success, 1 an operation failed, 125 bad usage or an engine failure
(126/127 for containers come with the runtime), 130 interrupted.
"""
from __future__ import annotations

import os
import sys
import time

from pyminidocker import __version__
from pyminidocker.cli.args import REMAINDER, Help, Parser
from pyminidocker.errors import PmdError

# The start path imports what running a container needs and no more: typing, collections.abc
# and json (1-2 ms) only where they are used, and of the command modules only the one that runs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import IO, Any

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


# ---- parser ----------------------------------------------------------------------------------

class _Unused:
    """Stands for the parser of a command that is not being run: its flags are not built."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass


_ENV_HELP = "set an environment variable: NAME=VALUE, or NAME to pass on ours"
_USER_HELP = "user name or UID (format: <name|uid>[:<group|gid>])"


# The commands whose flags this module declares (_add_run_commands); every other command's are
# in cli/commands.py, which a container's start does not load (its code is a third of the CLI's).
START_COMMANDS = ("create", "run", "exec", "start")


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The whole parser, or with argv one where only the command argv names has its flags
    (declaring every command's costs on each start): a command that starts a container alone,
    any other among every command, listed all the same."""
    p = Parser(PROG, "A daemonless container engine.")
    p.add_argument("--root", help="Store directory (default $PYMINIDOCKER_ROOT or "
                   "/var/lib/docker-mini)")
    p.add_argument("--debug", action="store_true", help="Show tracebacks of errors")
    p.add_argument("--trace", action="store_true",
                   help="Print the time of each phase (also PYMINIDOCKER_TRACE=1)")
    p.add_argument("-v", "--version", action="store_true", help="Print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    only = None if argv is None else p.command_word(argv)

    def add(name: str, fn: str | None, help: str, aliases: Sequence[str] = ()) -> Any:
        """fn: "module.function" of the command's group module under pyminidocker.cli,
        imported only when the command is built (so `run` loads containers, not images)."""
        sp = sub.add_parser(name, help=help, aliases=aliases)
        if only is not None and only != name and only not in aliases:
            return _Unused()
        if fn is not None:
            sp.set_defaults(func=_command(fn))
        return sp

    if only in START_COMMANDS:  # nothing else is declared: the other tables are not loaded
        _add_run_commands(add)
    else:
        from pyminidocker.cli.commands import add_commands

        add_commands(add, _add_run_commands)
    return p


def _create_flags(sp: Any) -> None:
    """The flags of create and run (the further ones: cli/containers.py's RUN_FLAGS, checked
    by cli/runflags.py when one is given)."""
    sp.add_argument("--name", help="Assign a name to the container")
    sp.add_argument("-e", "--env", action="append", default=[], help=_ENV_HELP)
    sp.add_argument("--env-file", action="append", default=[],
                    help="Read environment variables from a file")
    sp.add_argument("-w", "--workdir", help="Working directory inside the container")
    sp.add_argument("-u", "--user", help=_USER_HELP)
    sp.add_argument("--entrypoint", help="Overwrite the image's ENTRYPOINT")
    sp.add_argument("-h", "--hostname", help="The container's host name")
    sp.add_argument("--read-only", action="store_true",
                    help="Mount the container's root filesystem read-only")
    sp.add_argument("-v", "--volume", action="append", default=[],
                    help="Bind mount HOST_PATH:PATH[:ro|rw] or a volume NAME:PATH, /PATH")
    sp.add_argument("--mount", action="append", default=[],
                    help="Attach a mount: type=volume|bind|tmpfs,source=,target=,...")
    sp.add_argument("--volumes-from", action="append", default=[],
                    help="Mount the volumes of CONTAINER[:ro|rw]")
    sp.add_argument("--tmpfs", action="append", default=[],
                    help="Mount a tmpfs: /PATH[:OPTIONS]")
    sp.add_argument("-m", "--memory", help="Memory limit (e.g. 64m)")
    sp.add_argument("--cpus", help="Number of CPUs (e.g. 1.5)")
    sp.add_argument("--pids-limit", type=int,
                    help="Limit the number of processes in the container")
    sp.add_argument("--network", "--net", default="bridge",
                    help="Connect the container to a network: bridge, host, none or a name")
    sp.add_argument("-p", "--publish", action="append", default=[],
                    help="Publish a port: [[HOST_IP:]HOST_PORT:]PORT[/PROTO]")
    sp.add_argument("-P", "--publish-all", action="store_true",
                    help="Publish all exposed ports to random ports")
    sp.add_argument("--privileged", action="store_true",
                    help="Give extended privileges to the container")
    sp.add_argument("--cap-add", action="append", default=[], help="Add a Linux capability")
    sp.add_argument("--cap-drop", action="append", default=[],
                    help="Drop a Linux capability")
    sp.add_argument("--security-opt", action="append", default=[], help="Security options")
    sp.add_argument("-i", "--interactive", action="store_true", help="Keep stdin open")
    sp.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    if not isinstance(sp, _Unused):  # the rest, declared only when one is given (or --help)
        from pyminidocker.cli.containers import RUN_FLAGS

        sp.add_table(RUN_FLAGS, given="run_flags")
    sp.add_argument("image", metavar="IMAGE")
    sp.add_argument("cmd", nargs=REMAINDER, metavar="COMMAND")


def _add_run_commands(add: Callable[..., Any]) -> None:
    """create, run, exec, start: the commands that start a container."""
    sp = add("create", "containers.cmd_create", "Create a new container")
    _create_flags(sp)
    sp = add("run", "containers.cmd_run", "Create and start a container")
    sp.add_argument("-d", "--detach", action="store_true",
                    help="Run in the background and print the container id")
    sp.add_argument("--rm", action="store_true", help="Remove the container when it exits")
    _create_flags(sp)

    sp = add("exec", "containers.cmd_exec", "Run a command in a running container")
    sp.add_argument("-i", "--interactive", action="store_true", help="Keep stdin open")
    sp.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    sp.add_argument("-e", "--env", action="append", default=[], help=_ENV_HELP)
    sp.add_argument("-u", "--user", help=_USER_HELP)
    sp.add_argument("-w", "--workdir", help="Working directory inside the container")
    sp.add_argument("container", metavar="CONTAINER")
    sp.add_argument("cmd", nargs=REMAINDER, metavar="COMMAND")

    sp = add("start", "containers.cmd_start", "Start one or more stopped containers")
    sp.add_argument("-a", "--attach", action="store_true",
                    help="Attach to the container's output and wait for it")
    sp.add_argument("-i", "--interactive", action="store_true", help="Keep stdin open")
    sp.add_argument("--all-restart", action="store_true",
                    help="Start every container its restart policy would start (at boot)")
    sp.add_argument("containers", nargs="*", metavar="CONTAINER")


def _command(fn: str) -> Callable[..., int]:
    module, _, name = fn.partition(".")
    # __import__, not importlib: importlib is three more modules on the start path
    mod = __import__(f"pyminidocker.cli.{module}", fromlist=[name])
    func: Callable[..., int] = getattr(mod, name)
    return func


# Docker's management-command forms, as the classic command they stand for.
_MANAGEMENT = {
    "container": {"ls": ["ps"], "list": ["ps"], "ps": ["ps"],
                  "inspect": ["inspect", "--type", "container"],
                  **{v: [v] for v in ("create", "run", "start", "stop", "kill", "rm", "exec",
                                      "logs", "port", "rename", "wait", "export", "cp",
                                      "commit", "attach")}},
    "image": {"ls": ["images"], "list": ["images"], "inspect": ["inspect", "--type", "image"],
              "rm": ["rmi"], "remove": ["rmi"], "pull": ["pull"], "tag": ["tag"],
              **{v: [v] for v in ("save", "load", "import", "push")}},
    "system": {"info": ["info"], "events": ["events"]},
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
        from pyminidocker.cli.wording import docker_wording

        docker_wording(parser)
        env.stdout.write(h.parser.format_help())
        return 0
    if args.version:
        env.out(f"{PROG} version {__version__}")
        return 0
    if not getattr(args, "func", None):
        from pyminidocker.cli.wording import docker_wording

        env.stdout.write(docker_wording(parser).format_help())
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

