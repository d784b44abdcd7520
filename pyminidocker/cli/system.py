"""`inspect` (containers and images), `system reset`, `version`."""
from __future__ import annotations

from pyminidocker import __version__
from pyminidocker.errors import PmdError, UsageError

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from pyminidocker.cli.args import Namespace
    from pyminidocker.cli.main import Env
    from pyminidocker.engine import Engine

def cmd_inspect(args: Namespace, env: Env) -> int:
    from pyminidocker.cli import listing
    from pyminidocker.errors import CorruptRecord

    eng: Engine = args.engine
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
            try:
                out.append(eng.inspect_network(name))
                continue
            except PmdError:
                pass
        env.stderr.write(f"Error: No such {args.type or 'object'}: {name}\n")
        failed = True
    listing.inspect(args, env, out)
    return 1 if failed else 0


def cmd_system(args: Namespace, env: Env) -> int:
    """`system reset`: remove every container of this store, then everything the engine added
    to the host for networking (bridges, PMD-* rules), whichever store added it.
    `system check [--repair] [--full]`: exit 0 when nothing is wrong (or all was repaired).
    `system service`: the Docker Engine API server. `system df`, `system prune`: cli.verbs."""
    if args.action in ("df", "prune"):
        from pyminidocker.cli import verbs

        return verbs.cmd_system_df(args, env) if args.action == "df" \
            else verbs.cmd_system_prune(args, env)
    if args.action == "service":
        try:
            from pyminidocker.api.server import service_command
        except ImportError as e:  # aiohttp is the `api` extra
            raise PmdError(f"the API server needs {e.name}: pip install "
                           "'pyminidocker[api]'", exit_code=125) from None

        return service_command(args, env)
    if args.uri:
        raise UsageError(f"system {args.action} accepts no arguments")
    eng: Engine = args.engine
    if args.action == "check":
        left = 0
        for what, done in eng.check(repair=args.repair, full=args.full):
            if done is None:
                left += 1
                env.out(f"problem: {what}")
            else:
                env.out(f"repaired: {done} ({what})")
        env.out(f"{left} problem{'s' if left != 1 else ''} left" if left else "no problems")
        return 1 if left else 0
    for cid in eng.reset():
        env.out(f"Deleted container {cid}")
    env.out("Removed the engine's bridges and firewall rules from the host")
    return 0


def cmd_version(args: Namespace, env: Env) -> int:
    if getattr(args, "format", None):  # `-v` before any command has no --format
        from pyminidocker.cli import listing

        listing.render_each(env, args.format, [listing.version_doc(args.engine)])
        return 0
    env.out(f"pyminidocker version {__version__}")
    return 0


def cmd_info(args: Namespace, env: Env) -> int:
    from pyminidocker.cli import listing

    return listing.info(args, env, args.engine)
