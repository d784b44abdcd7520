"""`bench start|pull`: the CLI face of pyminidocker.benchmark.

Its own module with one hook in the command table (add_bench_commands), so that nothing of it
is imported unless a bench command runs.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.cli.args import Namespace, Parser


def add_bench_commands(sp: Parser) -> None:
    """Declare the commands of `bench` on its parser sp (cli.main.build_parser's)."""
    from pyminidocker.cli.args import REMAINDER

    sp.set_defaults(func=cmd_bench)
    sub = sp.add_subparsers(dest="bench_command", metavar="COMMAND")
    s = sub.add_parser("start", help="Time container starts: ours against crun, runc, podman "
                       "and docker where present")
    s.add_argument("-n", "--runs", type=int, default=20, help="Timed runs of each engine")
    s.add_argument("-o", "--output", metavar="FILE.png",
                   help="Write a PNG: each engine's latency distribution and our phases")
    s.add_argument("--network", default="none",
                   help="Our container's network: none, bridge or a network's name (podman's "
                   "and docker's: none, or else their default bridge; crun's and runc's: lo "
                   "alone)")
    s.add_argument("--dir", help="Where the bundles and root copies go (default: $TMPDIR)")
    s.add_argument("image", nargs="?", default="busybox", metavar="IMAGE",
                   help="A stored image (default: busybox)")
    s.add_argument("cmd", nargs=REMAINDER, metavar="COMMAND")
    p = sub.add_parser("pull", help="Time pulls into an empty store: ours against skopeo+umoci, "
                       "podman, docker and bsdtar's extraction")
    p.add_argument("-n", "--runs", type=int, default=5, help="Timed pulls of each tool")
    p.add_argument("-o", "--output", metavar="FILE.png",
                   help="Write a PNG of each tool's pull times")
    p.add_argument("--dir", help="Where the empty stores go, on the disk to measure "
                   "(default: $TMPDIR)")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def cmd_bench(args: Namespace, env: Any) -> int:
    from pyminidocker import benchmark as B
    from pyminidocker.errors import UsageError

    if args.bench_command == "start":
        B.bench_start(args.root, args.image, args.cmd or ["true"], args.runs, args.output,
                      env.stdout, args.dir, args.network)
    elif args.bench_command == "pull":
        B.bench_pull(args.images, args.runs, args.output, env.stdout, args.dir)
    else:
        raise UsageError('"bench" requires a command: start or pull')
    return 0
