"""The flag tables of every command that does not start a container (cli/main.py declares
create, run, exec and start): imported to run one of them, or to list them all (--help), so
that a container's start does not load them.
"""
from __future__ import annotations

from pyminidocker.cli.args import REMAINDER, Parser

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_FORMAT_HELP = "Format output using a Go template (Docker's), 'table TEMPLATE' or 'json'"
_FILTER_HELP = "Filter output based on conditions provided: KEY=VALUE"


def add_commands(add: Callable[..., Any], start_commands: Callable[..., None]) -> None:
    """Every command, through cli.main's add(), in the order --help lists them; start_commands
    is cli.main's table of the commands that start a container."""
    _add_pull_commands(add)
    _add_transfer_commands(add)
    start_commands(add)
    _add_lifecycle_commands(add)

    sp = add("network", None, "Manage networks")
    if isinstance(sp, Parser):  # its commands live in cli.network: imported only to run them
        from pyminidocker.cli.network import add_network_commands

        add_network_commands(sp)

    _add_verb_commands(add)
    _add_image_commands(add)
    _add_system_commands(add)


def _add_pull_commands(add: Callable[..., Any]) -> None:
    """pull, images, inspect, tag, rmi."""
    sp = add("pull", "images.cmd_pull", "Download an image from a registry")
    sp.add_argument("--platform", help="Os/arch[/variant] to pull (default: this host's)")
    sp.add_argument("-q", "--quiet", action="store_true", help="Print only the reference")
    sp.add_argument("-a", "--all-tags", action="store_true", help="Pull every tagged image")
    sp.add_argument("ref", metavar="NAME[:TAG|@DIGEST]")

    sp = add("images", "images.cmd_images", "List images")
    sp.add_argument("-a", "--all", action="store_true", help="Show all images (no "
                    "intermediate ones exist: the same as without)")
    sp.add_argument("--digests", action="store_true", help="Show digests")
    sp.add_argument("-f", "--filter", action="append", default=[], help=_FILTER_HELP)
    sp.add_argument("--format", help=_FORMAT_HELP)
    sp.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    sp.add_argument("-q", "--quiet", action="store_true", help="Only show image ids")
    sp.add_argument("filter_ref", nargs="?", metavar="REPOSITORY[:TAG]")

    sp = add("inspect", "system.cmd_inspect", "Show low-level information on containers, "
             "images and networks")
    sp.add_argument("-f", "--format", help="Format output using a Go template (each object)")
    sp.add_argument("-s", "--size", action="store_true", help="Accepted (sizes are not shown)")
    sp.add_argument("--type", choices=["container", "image", "network"],
                    help="Only objects of this type")
    sp.add_argument("images", nargs="+", metavar="NAME|ID")

    sp = add("tag", "images.cmd_tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    sp.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    sp.add_argument("target", metavar="TARGET_IMAGE[:TAG]")

    sp = add("rmi", "images.cmd_rmi", "Remove one or more images")
    sp.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    sp.add_argument("images", nargs="+", metavar="IMAGE")


def _add_transfer_commands(add: Callable[..., Any]) -> None:
    """save, load, import, export, commit, push, login, logout."""
    sp = add("save", "transfer.cmd_save", "Save one or more images to a tar archive "
             "(streamed to STDOUT by default)")
    sp.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    sp.add_argument("images", nargs="+", metavar="IMAGE")

    sp = add("load", "transfer.cmd_load", "Load an image from a tar archive or STDIN")
    sp.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    sp.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")

    sp = add("import", "transfer.cmd_import", "Import the contents from a tarball to create "
             "a filesystem image")
    sp.add_argument("-c", "--change", action="append", default=[],
                    help="Apply Dockerfile instruction to the created image")
    sp.add_argument("-m", "--message", help="Set commit message for imported image")
    sp.add_argument("--platform", help="Accepted: the image is for this host's platform")
    sp.add_argument("source", metavar="file|-")
    sp.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")

    sp = add("export", "transfer.cmd_export", "Export a container's filesystem as a tar "
             "archive")
    sp.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    sp.add_argument("container", metavar="CONTAINER")

    sp = add("commit", "transfer.cmd_commit", "Create a new image from a container's changes")
    sp.add_argument("-a", "--author", help='Author (e.g., "John Hannibal Smith '
                    '<hannibal@a-team.com>")')
    sp.add_argument("-c", "--change", action="append", default=[],
                    help="Apply Dockerfile instruction to the created image")
    sp.add_argument("-m", "--message", help="Commit message")
    sp.add_argument("-p", "--pause", action="store_true", default=True,
                    help="Pause container during commit (default true)")
    sp.add_argument("container", metavar="CONTAINER")
    sp.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")

    sp = add("push", "transfer.cmd_push", "Upload an image to a registry")
    sp.add_argument("-a", "--all-tags", action="store_true",
                    help="Push all tags of an image to the repository")
    sp.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    sp.add_argument("--disable-content-trust", action="store_true",
                    help="Accepted (content trust is not supported)")
    sp.add_argument("name", metavar="NAME[:TAG]")

    sp = add("login", "images.cmd_login", "Log in to a registry")
    sp.add_argument("-u", "--username", help="Username")
    sp.add_argument("-p", "--password",
                    help="Password (--password-stdin keeps it out of the process list)")
    sp.add_argument("--password-stdin", action="store_true", help="Take the password from stdin")
    sp.add_argument("server", nargs="?", metavar="SERVER")

    sp = add("logout", "images.cmd_logout", "Log out from a registry")
    sp.add_argument("server", nargs="?", metavar="SERVER")


def _add_lifecycle_commands(add: Callable[..., Any]) -> None:
    """ps, stop, kill, rm, wait, logs, attach, events, port, rename, container prune."""
    sp = add("ps", "verbs.cmd_ps", "List containers")
    sp.add_argument("-a", "--all", action="store_true",
                    help="Show all containers (default: the running ones)")
    sp.add_argument("-f", "--filter", action="append", default=[], help=_FILTER_HELP)
    sp.add_argument("--format", help=_FORMAT_HELP)
    sp.add_argument("-n", "--last", type=int, default=-1,
                    help="Show n last created containers (includes all states)")
    sp.add_argument("-l", "--latest", action="store_true",
                    help="Show the latest created container (includes all states)")
    sp.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    sp.add_argument("-q", "--quiet", action="store_true", help="Only show container ids")
    sp.add_argument("-s", "--size", action="store_true", help="Display total file sizes")

    sp = add("stop", "verbs.cmd_stop", "Stop one or more running containers")
    sp.add_argument("-t", "--time", type=int,
                    help="Seconds before SIGKILL (default: its --stop-timeout, else 10)")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")

    sp = add("kill", "verbs.cmd_kill", "Kill one or more running containers")
    sp.add_argument("-s", "--signal", default="KILL", help="Signal to send")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")

    sp = add("rm", "verbs.cmd_rm", "Remove one or more containers")
    sp.add_argument("-f", "--force", action="store_true",
                    help="Remove a running container too (it is killed)")
    sp.add_argument("-v", "--volumes", action="store_true",
                    help="Remove the container's anonymous volumes")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")

    sp = add("wait", "verbs.cmd_wait",
             "Block until containers stop, then print their exit codes")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")

    sp = add("logs", "verbs.cmd_logs", "Fetch the logs of a container")
    sp.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    sp.add_argument("--tail", default="all", help="Number of lines to show from the end")
    sp.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    sp.add_argument("container", metavar="CONTAINER")

    sp = add("attach", "attach.cmd_attach", "Attach local standard input, output, and error "
             "streams to a running container")
    sp.add_argument("--detach-keys", help="Override the key sequence for detaching a container "
                    "(default ctrl-p,ctrl-q)")
    sp.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    sp.add_argument("--sig-proxy", action="store_true", default=True,
                    help="Proxy all received signals to the process (default true)")
    sp.add_argument("container", metavar="CONTAINER")

    sp = add("events", "events.cmd_events", "Get real time events from the engine")
    sp.add_argument("-f", "--filter", action="append", default=[],
                    help="Filter output based on conditions provided: container, event, image, "
                    "label, network, scope, type, volume")
    sp.add_argument("--format", help="Format output using a Go template ('json': one JSON "
                    "object a line)")
    sp.add_argument("--since", help="Show all events created since timestamp")
    sp.add_argument("--until", help="Stream events until this timestamp")

    sp = add("port", "verbs.cmd_port", "List a container's published ports")
    sp.add_argument("container", metavar="CONTAINER")
    sp.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")

    sp = add("rename", "verbs.cmd_rename", "Rename a container")
    sp.add_argument("container", metavar="CONTAINER")
    sp.add_argument("new_name", metavar="NEW_NAME")

    sp = add("container", "verbs.cmd_container_prune", "Manage containers")
    sp.add_argument("action", choices=["prune"])
    sp.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    sp.add_argument("--filter", action="append", default=[],
                    help="Prune only: until=TIME|DURATION, label=KEY[=VALUE], label!=KEY")


def _add_verb_commands(add: Callable[..., Any]) -> None:
    """restart, pause, unpause, top, diff, stats, update (run by cli.verbs); cp (cli.cp)."""
    sp = add("restart", "verbs.cmd_simple", "Restart one or more containers")
    sp.add_argument("-t", "--time", type=int,
                    help="Seconds before SIGKILL (default: its --stop-timeout, else 10)")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")
    sp = add("pause", "verbs.cmd_simple",
             "Pause all processes within one or more containers")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")
    sp = add("unpause", "verbs.cmd_simple",
             "Unpause all processes within one or more containers")
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")
    sp = add("top", "verbs.cmd_top", "Display the running processes of a container")
    sp.add_argument("container", metavar="CONTAINER")
    sp.add_argument("ps_args", nargs=REMAINDER, metavar="[ps OPTIONS]")
    sp = add("diff", "verbs.cmd_diff",
             "Inspect changes to files or directories on a container's filesystem")
    sp.add_argument("container", metavar="CONTAINER")
    sp = add("cp", "cp.cmd_cp", "Copy files/folders between a container and the local filesystem")
    sp.add_argument("-a", "--archive", action="store_true",
                    help="Archive mode (copy all uid/gid information)")
    sp.add_argument("-L", "--follow-link", action="store_true",
                    help="Always follow symbol link in SRC_PATH")
    sp.add_argument("src", metavar="SRC_PATH")
    sp.add_argument("dest", metavar="DEST_PATH")
    sp = add("stats", "verbs.cmd_stats",
             "Display a live stream of container(s) resource usage statistics")
    sp.add_argument("-a", "--all", action="store_true", help="All containers (default: running)")
    sp.add_argument("--no-stream", action="store_true", help="Print one table and exit")
    sp.add_argument("--format", help="Pretty-print stats using a Go template")
    sp.add_argument("containers", nargs="*", metavar="CONTAINER")
    sp = add("update", "verbs.cmd_update", "Update configuration of one or more containers")
    for flag, short, what in (
            ("--memory", "-m", "Memory limit"), ("--memory-swap", None, "Memory + swap"),
            ("--memory-reservation", None, "Memory soft limit"),
            ("--kernel-memory", None, "Kernel memory limit (deprecated: not applied)"),
            ("--cpus", None, "Number of CPUs"), ("--cpu-shares", "-c", "CPU shares"),
            ("--cpu-period", None, "CPU CFS period"), ("--cpu-quota", None, "CPU CFS quota"),
            ("--cpuset-cpus", None, "CPUs allowed"), ("--cpuset-mems", None, "Memory nodes"),
            ("--pids-limit", None, "Pids limit (-1: unlimited)"),
            ("--blkio-weight", None, "Block IO weight")):
        sp.add_argument(*([short] if short else []), flag, help=what)
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")


def _add_image_commands(add: Callable[..., Any]) -> None:
    """`image prune|history` and `history`, (run by cli.verbs)."""
    sp = add("image", "verbs.cmd_image", "Manage images")
    sp.add_argument("action", choices=["prune", "history"])
    sp.add_argument("-a", "--all", action="store_true",
                    help="Prune: remove all unused images, not just dangling ones")
    sp.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    sp.add_argument("--filter", action="append", default=[],
                    help="Prune: provide filter values (e.g. 'until=<timestamp>', 'label=k=v')")
    sp.add_argument("--no-trunc", action="store_true", help="History: don't truncate output")
    sp.add_argument("-q", "--quiet", action="store_true", help="History: only show image IDs")
    sp.add_argument("image", nargs="?", metavar="IMAGE")
    sp = add("history", "verbs.cmd_history", "Show the history of an image")
    sp.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    sp.add_argument("--format", help="Pretty-print images using a Go template")
    sp.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    sp.add_argument("image", metavar="IMAGE")


def _add_system_commands(add: Callable[..., Any]) -> None:
    """volume, bench (their own modules), system, version, info."""
    sp = add("volume", None, "Manage volumes")
    if isinstance(sp, Parser):  # its commands live in cli/volume.py: imported only to run them
        from pyminidocker.cli.volume import add_volume_commands

        add_volume_commands(sp)

    sp = add("bench", None, "Measure start latency and pull time against other engines")
    if isinstance(sp, Parser):  # its commands live in cli/bench.py: imported only to run them
        from pyminidocker.cli.bench import add_bench_commands

        add_bench_commands(sp)

    sp = add("system", "system.cmd_system", "Manage the engine's footprint on this host")
    sp.add_argument("action", choices=["reset", "check", "service", "df", "prune"])
    sp.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    sp.add_argument("-a", "--all", action="store_true",
                    help="Prune: remove all unused images, not just dangling ones")
    sp.add_argument("--volumes", action="store_true", help="Prune: prune volumes too")
    sp.add_argument("--format", help="Df: format output using a custom template ('table', "
                    "'table TEMPLATE', 'json', or a Go template)")
    # service: the Docker Engine API server (pyminidocker.api.server)
    sp.add_argument("uri", nargs="?", metavar="URI",
                    help="Service: unix:///PATH (default unix:///run/pyminidocker/docker.sock) "
                    "or tcp://HOST:PORT (TLS only)")
    sp.add_argument("-t", "--time", type=int,
                    help="Service: seconds without a request before exiting (default 5, 0 never)")
    sp.add_argument("--group", help="Service: group of the unix socket (default docker, if any)")
    sp.add_argument("--tlsverify", action="store_true",
                    help="Service: TLS on tcp://, with client certificates signed by --tlscacert")
    sp.add_argument("--tlscacert", help="Service: CA of the client certificates")
    sp.add_argument("--tlscert", help="Service: the server's certificate")
    sp.add_argument("--tlskey", help="Service: the server's key")
    sp.add_argument("--repair", action="store_true",
                    help="Remove or quarantine what is broken, and say what was done (check)")
    sp.add_argument("--full", action="store_true",
                    help="Rehash every file of every layer against its extracted tree (check)")

    sp = add("version", "system.cmd_version", "Show the version")
    sp.add_argument("-f", "--format", help="Format output using a Go template")
    sp = add("info", "system.cmd_info", "Display system-wide information")
    sp.add_argument("-f", "--format", help="Format output using a Go template")
