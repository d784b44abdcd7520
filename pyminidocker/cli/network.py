"""`network create|ls|inspect|rm|prune|connect|disconnect`: the CLI face of the engine's networks.

Imported only when a network command runs (and so are the network modules and pyroute2).
"""
from __future__ import annotations

from pyminidocker.errors import CorruptRecord, NotFound, PmdError, UsageError

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.cli.args import Namespace, Parser
    from pyminidocker.engine import Engine


def key_values(items: list[str], what: str = "label") -> dict[str, str]:
    """--label/--opt KEY[=VALUE] flags as a dict. Raises UsageError for an empty key."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {what}: {item}")
        out[key] = value
    return out


def cmd_network(args: Namespace, env: Any) -> int:
    eng: Engine = args.engine
    if args.network_command == "create":
        net = eng.create_network(args.name, subnet=args.subnet, gateway=args.gateway,
                               internal=args.internal, labels=key_values(args.label))
        env.out(net.id)
        return 0
    if args.network_command in ("ls", "list"):
        from pyminidocker.cli import listing

        warnings: list[str] = []
        nets = eng.all_networks(warnings)
        for message in warnings:  # the others are listed all the same
            env.stderr.write(f"WARNING: {message}\n")
        return listing.networks(args, env, nets)
    if args.network_command == "inspect":
        from pyminidocker.cli import listing

        out, failed = [], False
        for name in args.networks:
            try:
                out.append(eng.inspect_network(name))
            except CorruptRecord as e:
                env.stderr.write(f"Error: {e}\n")
                failed = True
            except PmdError:
                env.stderr.write(f"Error: No such network: {name}\n")
                failed = True
        listing.inspect(args, env, out)
        return 1 if failed else 0
    if args.network_command in ("rm", "remove"):
        failed = False
        for name in args.networks:
            try:
                eng.remove_network(name, force=args.force)
                env.out(name)
            except NotFound as e:
                if not args.force:  # Docker's -f: no error for a network that is not there
                    env.stderr.write(f"Error: {e}\n")
                    failed = True
            except PmdError as e:
                env.stderr.write(f"Error: {e}\n")
                failed = True
        return 1 if failed else 0
    if args.network_command == "prune":
        if not args.force:
            env.stdout.write("WARNING! This will remove all custom networks not used by at "
                             "least one container.\nAre you sure you want to continue? [y/N] ")
            env.stdout.flush()
            if env.stdin.readline().strip().lower() not in ("y", "yes"):
                return 0
        removed = eng.prune_networks()
        if removed:
            env.out("Deleted Networks:")
            for name in removed:
                env.out(name)
        return 0
    if args.network_command in ("connect", "disconnect"):
        if args.network_command == "connect":
            eng.connect(args.container, args.network, args.alias, args.ip)
        else:
            eng.disconnect(args.container, args.network)
        return 0
    raise UsageError("network: a command is needed (create, ls, inspect, rm, prune, connect, "
                     "disconnect)")


def add_network_commands(sp: Parser) -> None:
    """Declare the commands of `network` on its parser sp (cli.build_parser's)."""
    sp.set_defaults(func=cmd_network)
    sub = sp.add_subparsers(dest="network_command", metavar="COMMAND")
    c = sub.add_parser("create", help="Create a network")
    c.add_argument("--subnet", help="subnet in CIDR format (default: a free one of the pool)")
    c.add_argument("--gateway", help="IPv4 gateway of the subnet (default: its first address)")
    c.add_argument("--internal", action="store_true", help="no access to the outside")
    c.add_argument("--label", action="append", default=[], help="KEY=VALUE metadata")
    c.add_argument("-d", "--driver", choices=["bridge"], default="bridge", help="network driver")
    c.add_argument("name", metavar="NETWORK")
    ls = sub.add_parser("ls", aliases=["list"], help="List networks")
    ls.add_argument("-q", "--quiet", action="store_true", help="only show network ids")
    ls.add_argument("-f", "--filter", action="append", default=[],
                    help="Filter output based on conditions provided: KEY=VALUE")
    ls.add_argument("--format", help="Format output using a Go template, 'table ...' or 'json'")
    ls.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    i = sub.add_parser("inspect", help="Show details of networks")
    i.add_argument("-f", "--format", help="Format output using a Go template (each network)")
    i.add_argument("networks", nargs="+", metavar="NETWORK")
    rm = sub.add_parser("rm", aliases=["remove"], help="Remove networks not in use")
    rm.add_argument("-f", "--force", action="store_true",
                    help="Do not error if the network does not exist; remove one whose "
                         "record is corrupt")
    rm.add_argument("networks", nargs="+", metavar="NETWORK")
    for verb, what in (("connect", "Connect a running container to a network"),
                       ("disconnect", "Disconnect a container from a network it was connected "
                                      "to")):
        cd = sub.add_parser(verb, help=what)
        if verb == "connect":
            cd.add_argument("--alias", action="append", default=[],
                            help="Add network-scoped alias for the container")
            cd.add_argument("--ip", help="IPv4 address (e.g., 172.30.100.104)")
        cd.add_argument("network", metavar="NETWORK")
        cd.add_argument("container", metavar="CONTAINER")
    p = sub.add_parser("prune", help="Remove all networks not in use")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt")
