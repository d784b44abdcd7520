"""`volume create|ls|inspect|rm|prune`: the CLI face of the engine's volumes.

Kept out of cli/main.py so that the one hook there (add_volume_commands) is the whole merge;
imported only when a volume command runs.
"""
from __future__ import annotations

from pyminidocker.errors import NotFound, UsageError

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.cli.args import Namespace, Parser
    from pyminidocker.engine import Engine


def _create(args: Namespace, env: Any, eng: Engine) -> int:
    from pyminidocker.cli.network import key_values

    if args.name and args.name_flag and args.name != args.name_flag:
        raise UsageError("conflicting options: either specify --name or provide "
                         "positional arg, not both")
    vol = eng.create_volume(args.name or args.name_flag, key_values(args.label, "label"),
                            key_values(args.opt, "option"), args.driver)
    env.out(vol.name)
    return 0


def _ls(args: Namespace, env: Any, eng: Engine) -> int:
    from pyminidocker.cli.output import table
    from pyminidocker.engine import filters

    wanted = filters.parse(args.filter, filters.VOLUME_KEYS)
    users = eng.volume_users() if "dangling" in wanted else {}
    vols = filters.volumes(eng.volumes(), wanted, lambda vol: bool(users.get(vol.name)))
    if args.quiet:
        for vol in vols:
            env.out(vol.name)
        return 0
    if args.format:
        from pyminidocker.cli import columns
        from pyminidocker.cli.listing import render

        items = [{"Driver": v.driver, "Name": v.name, "Labels": columns.labels_text(v.labels),
                  "Mountpoint": eng.inspect_volume(v)["Mountpoint"], "Scope": "local",
                  "Links": "N/A", "Size": "N/A"} for v in vols]
        render(env, args.format, items, columns.VOLUMES_HEADER, columns.VOLUMES_TABLE)
        return 0
    # Docker's tabwriter here pads every column to at least 10 characters
    table([["DRIVER".ljust(7), "VOLUME NAME"],
           *([v.driver.ljust(7), v.name] for v in vols)], env)
    return 0


def _inspect(args: Namespace, env: Any, eng: Engine) -> int:
    import json

    out, failed = [], False
    for name in args.volumes:
        try:
            out.append(eng.inspect_volume(eng.volume(name)))
        except NotFound:
            env.stderr.write(f"Error: No such volume: {name}\n")
            failed = True
    if args.format:
        from pyminidocker.cli.listing import render_each

        render_each(env, args.format, out)
    else:
        env.out(json.dumps(out, indent=4))
    return 1 if failed else 0


def _rm(args: Namespace, env: Any, eng: Engine) -> int:
    errors = eng.remove_volumes(args.volumes, args.force)
    for name in args.volumes:
        e = errors.get(name)
        if e is None:
            env.out(name)
        elif isinstance(e, NotFound):
            env.stderr.write(f"Error: {e}\n")
        else:
            env.stderr.write(f"Error response from daemon: {e}\n")
    return 1 if errors else 0


def _prune(args: Namespace, env: Any, eng: Engine) -> int:
    from pyminidocker.cli.output import human_size
    from pyminidocker.engine import filters

    labels = filters.parse(args.filter, {"label"}).get("label")
    if not args.force:
        env.stdout.write("WARNING! This will remove all local volumes not used by at least "
                         "one container.\nAre you sure you want to continue? [y/N] ")
        env.stdout.flush()
        if env.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed, freed = eng.prune_volumes(labels)
    if removed:
        env.out("Deleted Volumes:")
        for name in removed:
            env.out(name)
        env.out("")
    env.out(f"Total reclaimed space: {human_size(freed)}")
    return 0


_COMMANDS = {"create": _create, "ls": _ls, "list": _ls, "inspect": _inspect, "rm": _rm,
             "remove": _rm, "prune": _prune}


def cmd_volume(args: Namespace, env: Any) -> int:
    run = _COMMANDS.get(args.volume_command)
    if run is None:
        raise UsageError("volume: a command is needed (create, ls, inspect, rm, prune)")
    return run(args, env, args.engine)


def add_volume_commands(sp: Parser) -> None:
    """Declare the commands of `volume` on its parser sp (cli.main.build_parser's)."""
    sp.set_defaults(func=cmd_volume)
    sub = sp.add_subparsers(dest="volume_command", metavar="COMMAND")
    c = sub.add_parser("create", help="Create a volume")
    c.add_argument("-d", "--driver", default="local", help="Volume driver name")
    c.add_argument("--label", action="append", default=[], help="KEY=VALUE metadata")
    c.add_argument("-o", "--opt", action="append", default=[],
                   help="Driver options: type=, device=, o= (as mount(8))")
    c.add_argument("--name", dest="name_flag", help="The volume's name")
    c.add_argument("name", nargs="?", metavar="VOLUME")
    ls = sub.add_parser("ls", aliases=["list"], help="List volumes")
    ls.add_argument("-q", "--quiet", action="store_true", help="Only show volume names")
    ls.add_argument("-f", "--filter", action="append", default=[],
                    help="Dangling=true|false, name=, label=, driver=")
    ls.add_argument("--format", help="Pretty-print volumes using a Go template")
    i = sub.add_parser("inspect", help="Display detailed information on volumes")
    i.add_argument("volumes", nargs="+", metavar="VOLUME")
    i.add_argument("-f", "--format", help="Format output using a custom template")
    rm = sub.add_parser("rm", aliases=["remove"], help="Remove volumes")
    rm.add_argument("-f", "--force", action="store_true",
                    help="No error for a volume that does not exist")
    rm.add_argument("volumes", nargs="+", metavar="VOLUME")
    p = sub.add_parser("prune", help="Remove all unused local volumes")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt")
    p.add_argument("--filter", action="append", default=[], help="Label=KEY[=VALUE]")
