"""`inspect` (containers and images), `system reset`, `version`."""
from __future__ import annotations

from pyminidocker import __version__
from pyminidocker.errors import PmdError

TYPE_CHECKING = False  # typing is not imported at run time: the start path reads this file
if TYPE_CHECKING:
    from pyminidocker.cli.args import Namespace
    from pyminidocker.cli.main import Env
    from pyminidocker.engine import Engine

def cmd_inspect(args: Namespace, env: Env) -> int:
    import json

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
        try:
            rec = eng.image(name)
        except PmdError as e:
            env.stderr.write(f"Error: No such object: {name}\n" if args.type is None
                             else f"Error: {e}\n")
            failed = True
            continue
        out.append(eng.inspect_image(rec))
    env.out(json.dumps(out, indent=4))
    return 1 if failed else 0


def cmd_system(args: Namespace, env: Env) -> int:
    """`system reset`: remove every container of this store, then everything the engine added
    to the host for networking (bridges, PMD-* rules), whichever store added it."""
    eng: Engine = args.engine
    for cid in eng.reset():
        env.out(f"Deleted container {cid}")
    env.out("Removed the engine's bridges and firewall rules from the host")
    return 0


def cmd_version(args: Namespace, env: Env) -> int:
    env.out(f"pyminidocker version {__version__}")
    return 0
