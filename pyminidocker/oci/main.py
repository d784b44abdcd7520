"""pyminidocker-runc: runc's command line (the verbs, flags, exit codes and output containerd,
Podman and dockerd rely on) over pyminidocker's shim. This module reads the command line and
hands each verb to its module (as crun's src/<verb>.c), imported only for that verb:
containerd's shim starts this program several times per container, and `state` or `start`
should pay for nothing they do not use.

Errors are one line on stderr and, with --log, a record in the log (containerd reads the last
"error" record of a json log to say why a runtime failed); the exit code is 1 as runc's, 255
for a failed exec, the container's own for run and exec.
"""
from __future__ import annotations

import os
import sys

from pyminidocker.errors import NotFound, PmdError, UsageError
from pyminidocker.oci import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from pyminidocker.cli.args import Parser

VERSION = "0.1.0"
PROG = "pyminidocker-runc"


# ---- the parser -------------------------------------------------------------------------------

def _parser() -> Parser:
    from pyminidocker.cli.args import Parser

    p = Parser(PROG, "an OCI runtime with runc's command line, over pyminidocker's C shim")
    p.add_argument("--root", default=st.DEFAULT_ROOT, help="root directory for container state")
    p.add_argument("--log", default="", help="log file (default: stderr only)")
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--debug", action="store_true", help="debug output")
    p.add_argument("--systemd-cgroup", action="store_true",
                   help="use systemd for cgroups (not supported)")
    p.add_argument("--criu", default="", help="(ignored: no checkpoint/restore)")
    p.add_argument("--rootless", default="auto", help="(ignored: runs as root)")
    p.add_argument("-v", "--version", action="store_true", help="print the version")
    cmds = p.add_subparsers("verb")
    _lifecycle_verbs(cmds)
    _exec_verb(cmds.add_parser("exec", help="run a process in a running container"))
    _other_verbs(cmds)
    return p


def _bundle_flags(q: Parser) -> None:
    q.add_argument("-b", "--bundle", default="", help="path to the bundle (default: .)")
    q.add_argument("--console-socket", default="",
                   help="unix socket to which the pty master is sent")
    q.add_argument("--pid-file", default="", help="file to write the init's pid to")
    q.add_argument("--no-pivot", action="store_true", help="(accepted; pivot_root is used)")
    q.add_argument("--no-new-keyring", action="store_true",
                   help="(accepted; no session keyring is made)")
    q.add_argument("--preserve-fds", type=int, default=0,
                   help="extra fds to pass to the container")
    q.add_argument("id")


def _lifecycle_verbs(cmds: Any) -> None:
    _bundle_flags(cmds.add_parser("create", help="create a container (held until start)"))
    q = cmds.add_parser("run", help="create and start a container")
    q.add_argument("-d", "--detach", action="store_true", help="detach from the container")
    q.add_argument("--keep", action="store_true", help="keep the container's state at exit")
    _bundle_flags(q)
    cmds.add_parser("start", help="start a created container").add_argument("id")
    cmds.add_parser("state", help="output the state of a container").add_argument("id")
    q = cmds.add_parser("kill", help="send a signal to a container's init")
    q.add_argument("-a", "--all", action="store_true", help="every process of the container")
    q.add_argument("id")
    q.add_argument("signal", nargs="?", default="SIGTERM")
    q = cmds.add_parser("delete", help="delete a container's resources")
    q.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")
    q.add_argument("id")


def _exec_verb(q: Parser) -> None:
    from pyminidocker.cli.args import REMAINDER

    q.add_argument("--console-socket", default="")
    q.add_argument("--cwd", default="")
    q.add_argument("-e", "--env", action="append")
    q.add_argument("-t", "--tty", action="store_true")
    q.add_argument("-u", "--user", default="")
    q.add_argument("-g", "--additional-gids", action="append")
    q.add_argument("-p", "--process", default="")
    q.add_argument("-d", "--detach", action="store_true")
    q.add_argument("--pid-file", default="")
    q.add_argument("--process-label", default="")
    q.add_argument("--apparmor", default="")
    q.add_argument("--no-new-privs", action="store_true")
    q.add_argument("-c", "--cap", action="append")
    q.add_argument("--preserve-fds", type=int, default=0)
    q.add_argument("--ignore-paused", action="store_true")
    q.add_argument("--cgroup", action="append")
    q.add_argument("id")
    q.add_argument("command", nargs=REMAINDER)


def _other_verbs(cmds: Any) -> None:
    from pyminidocker.cli.args import REMAINDER

    q = cmds.add_parser("list", help="list containers")
    q.add_argument("-f", "--format", default="table", choices=("table", "json"))
    q.add_argument("-q", "--quiet", action="store_true")
    q = cmds.add_parser("ps", help="processes of a container")
    q.add_argument("-f", "--format", default="table", choices=("table", "json"))
    q.add_argument("id")
    q.add_argument("ps_args", nargs=REMAINDER)
    cmds.add_parser("pause", help="freeze a container").add_argument("id")
    cmds.add_parser("resume", help="thaw a container").add_argument("id")
    q = cmds.add_parser("update", help="change a container's resources")
    q.add_argument("-r", "--resources", default="", help="linux.resources JSON file (- = stdin)")
    for flag in ("--memory", "--memory-swap", "--memory-reservation", "--kernel-memory",
                 "--cpu-quota", "--cpu-period", "--cpu-shares", "--cpuset-cpus",
                 "--cpuset-mems", "--pids-limit", "--blkio-weight", "--cpu-rt-period",
                 "--cpu-rt-runtime", "--l3-cache-schema", "--mem-bw-schema"):
        q.add_argument(flag, default=None)
    q.add_argument("id")
    cmds.add_parser("features", help="the features this runtime supports (JSON)")
    q = cmds.add_parser("spec", help="write a default config.json")
    q.add_argument("-b", "--bundle", default="")
    q.add_argument("--rootless", action="store_true")
    q = cmds.add_parser("events", help="container events (--stats: one sample)")
    q.add_argument("--stats", action="store_true")
    q.add_argument("--interval", default="5s")
    q.add_argument("id")


_LONG_FLAGS = frozenset({
    "root", "log", "log-format", "debug", "systemd-cgroup", "criu", "rootless", "version",
    "bundle", "console-socket", "pid-file", "no-pivot", "no-new-keyring", "preserve-fds",
    "detach", "keep", "all", "force", "cwd", "env", "tty", "user", "additional-gids",
    "process", "process-label", "apparmor", "no-new-privs", "cap", "ignore-paused", "cgroup",
    "format", "quiet", "resources", "memory", "memory-swap", "memory-reservation",
    "kernel-memory", "cpu-quota", "cpu-period", "cpu-shares", "cpuset-cpus", "cpuset-mems",
    "pids-limit", "blkio-weight", "stats", "interval", "help",
})


def _go_flags(argv: list[str]) -> list[str]:
    """Go's flag package (runc's CLI) takes `-root X` as `--root X`; so do we, for the flags
    we know, up to the container's command (exec ID CMD... is left alone)."""
    out: list[str] = []
    for i, a in enumerate(argv):
        if a == "--":
            return out + argv[i:]
        name = a[1:].partition("=")[0]
        out.append("-" + a if a.startswith("-") and not a.startswith("--")
                   and name in _LONG_FLAGS else a)
        if a == "exec":  # the rest may hold the container's own flags: stop at its id
            rest = argv[i + 1:]
            j = 0
            while j < len(rest) and rest[j].startswith("-"):
                j += 1
            return out + _go_flags(rest[:j]) + rest[j:] if j < len(rest) else out + rest
    return out


# ---- logging ----------------------------------------------------------------------------------

class Log:
    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        from pyminidocker.oci.runtime import now_rfc3339

        t = now_rfc3339()
        if self.fmt == "json":
            import json

            line = json.dumps({"level": level, "msg": msg, "time": t})
        else:
            line = f'time="{t}" level={level} msg="{msg}"'.replace("\n", " ")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line.encode() + b"\n")
            finally:
                os.close(fd)
        except OSError:
            pass  # a log that cannot be written must not hide the error itself


# ---- main -------------------------------------------------------------------------------------

def _json(obj: Any, indent: int) -> str:
    """obj indented as runc prints it, in its own key order; through record's JSON, as the json
    package imports re (milliseconds of every `state`)."""
    from pyminidocker import record

    def emit(o: Any, level: int) -> str:
        inner, outer = " " * indent * (level + 1), " " * indent * level
        if isinstance(o, dict) and o:
            items = [f"{inner}{record.dumps(str(k))}: {emit(v, level + 1)}" for k, v in o.items()]
            return "{\n" + ",\n".join(items) + f"\n{outer}}}"
        if isinstance(o, list) and o:
            return "[\n" + ",\n".join(inner + emit(v, level + 1) for v in o) + f"\n{outer}]"
        return record.dumps(o)

    return emit(obj, 0) + "\n"


def _dispatch(cmd: str, args: Any, root: str) -> int:
    """Run one verb from its module; the exit code."""
    if cmd == "state":
        sys.stdout.write(_json(st.oci_state(st.load(root, args.id)), 2))
    elif cmd == "create":
        from pyminidocker.oci.create import create
        create(args, root)
    elif cmd in ("start", "run"):
        from pyminidocker.oci import start
        if cmd == "run":
            return start.run(args, root)
        start.start(root, args.id)
    elif cmd == "exec":
        from pyminidocker.oci.execute import exec_
        return exec_(root, args)
    elif cmd in ("kill", "delete", "pause", "resume", "update"):
        from pyminidocker.oci import control
        if cmd in ("pause", "resume"):
            control.pause(root, args.id, cmd == "pause")
        else:
            getattr(control, cmd)(root, args)
    elif cmd in ("list", "ps", "events"):
        from pyminidocker.oci import listing
        sys.stdout.write(getattr(listing, "list_" if cmd == "list" else cmd)(root, args))
    elif cmd == "features":
        from pyminidocker.oci.features import features
        sys.stdout.write(_json(features(VERSION), 4))
    elif cmd == "spec":
        from pyminidocker.oci.features import spec
        spec(args.bundle)
    return 0


# ---- containerd's calls after create --------------------------------------------------------

_QUICK_VALUES = {"--root": "root", "--log": "log", "--log-format": "log_format"}


class _QuickArgs:
    """What the parser makes of such a command line: the attributes program and the verb read."""

    version = systemd_cgroup = debug = force = False
    root, log, log_format = st.DEFAULT_ROOT, "", "text"
    verb = id = ""


def _quick_args(argv: list[str]) -> _QuickArgs | None:
    """The command lines containerd's shim runs after create (`--root R --log L --log-format F`
    then `start ID`, `state ID` or `delete [--force] ID`), read without the parser: importing
    it and building its tree of verbs is 1 ms of each of those calls, whose whole work is less.
    None for any other command line, which the parser reads (and whose errors it words)."""
    a = _QuickArgs()
    i = 0
    while i + 1 < len(argv) and argv[i] in _QUICK_VALUES and not argv[i + 1].startswith("-"):
        setattr(a, _QUICK_VALUES[argv[i]], argv[i + 1])
        i += 2
    rest = argv[i:]
    if rest[:1] == ["delete"] and rest[1:2] in (["--force"], ["-f"]):
        a.force = True
        del rest[1]
    if len(rest) != 2 or rest[0] not in ("start", "state", "delete") or \
            rest[1].startswith("-") or a.log_format not in ("text", "json"):
        return None
    a.verb, a.id = rest
    return a


def _parse(argv: list[str]) -> Any:
    """The command line's values; None once help is printed (--help, or no verb)."""
    quick = _quick_args(argv)
    if quick is not None:
        return quick
    from pyminidocker.cli.args import Help

    parser = _parser()
    try:
        args = parser.parse_args(_go_flags(argv))
    except Help as h:
        sys.stdout.write(h.parser.format_help())
        return None
    if args.verb is None and not args.version:
        sys.stdout.write(parser.format_help())
        return None
    return args


def program(argv: list[str]) -> int:
    args = _parse(argv)
    if args is None:
        return 0
    if args.version:
        from pyminidocker.oci.config import SUPPORTED_OCI_VERSION

        sys.stdout.write(f"{PROG} version {VERSION}\nspec: {SUPPORTED_OCI_VERSION}\n")
        return 0
    if args.systemd_cgroup:
        raise PmdError("--systemd-cgroup is not supported: pyminidocker-runc drives cgroupfs "
                       "only (configure the caller with SystemdCgroup=false)")
    if hasattr(args, "id"):
        st.check_id(args.id)
    return _dispatch(args.verb, args, os.path.abspath(args.root))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    log = Log("", "text")
    try:
        # the log flags are read first, so that a usage error is logged too
        for i, a in enumerate(argv):
            if a.lstrip("-") in ("log", "log-format") and i + 1 < len(argv):
                if a.lstrip("-") == "log":
                    log.path = argv[i + 1]
                else:
                    log.fmt = argv[i + 1]
            elif a.lstrip("-").startswith("log="):
                log.path = a.partition("=")[2]
            elif a.lstrip("-").startswith("log-format="):
                log.fmt = a.partition("=")[2]
        return program(argv)
    except PmdError as e:
        msg = str(e)
        code = 1 if isinstance(e, (UsageError, NotFound)) or e.exit_code == 125 \
            else e.exit_code
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        msg, code = f"{e.strerror or e}{where}", 1
    except KeyboardInterrupt:
        return 130
    log.write("error", msg)
    sys.stderr.write(f"{msg}\n")
    return code


def command() -> None:
    """The `pyminidocker-runc` console script: main(), flushed, then exit without the
    interpreter's finalisation (as pyminidocker's command; see cli/main.py)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    command()
