"""Docker's wording for `--help`: for each command and option Docker also has, Docker's own
help text (docker CLI 24-27, `docker COMMAND --help`) and the kind of value its help shows
(`bytes`, `decimal`, `network`). docker_wording() puts them on a parser tree (cli.main's) before
its help is printed, so the words live in one place whoever declares the flags. Options of our
own (--root, --trace, `bench`) keep the help they are declared with.

Not on the start path: imported for --help, and by cli.reference (completion, man page).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyminidocker.cli.args import Parser

_CREATE: dict[str, Any] = {
    "--name": "Assign a name to the container",
    "--env": "Set environment variables",
    "--env-file": "Read in a file of environment variables",
    "--workdir": "Working directory inside the container",
    "--user": "Username or UID (format: <name|uid>[:<group|gid>])",
    "--entrypoint": "Overwrite the default ENTRYPOINT of the image",
    "--hostname": "Container host name",
    "--read-only": "Mount the container's root filesystem as read only",
    "--volume": "Bind mount a volume",
    "--tmpfs": "Mount a tmpfs directory",
    "--memory": ("bytes", "Memory limit"),
    "--cpus": ("decimal", "Number of CPUs"),
    "--pids-limit": "Tune container pids limit (set -1 for unlimited)",
    "--network": ("network", "Connect a container to a network"),
    "--publish": "Publish a container's port(s) to the host",
    "--publish-all": "Publish all exposed ports to random ports",
    "--privileged": "Give extended privileges to this container",
    "--cap-add": "Add Linux capabilities",
    "--cap-drop": "Drop Linux capabilities",
    "--security-opt": "Security Options",
    "--interactive": "Keep STDIN open even if not attached",
    "--tty": "Allocate a pseudo-TTY",
}
_FORMAT = "Format output using a custom template: 'json': Print in JSON format"
_NO_PROMPT = {"--force": "Do not prompt for confirmation"}

# command path -> {"": its summary, option's first long name -> help or (kind, help)}
DOCKER_WORDING: dict[str, dict[str, Any]] = {
    "": {"--debug": "Enable debug mode", "--version": "Print version information and quit",
         # ours, in the same style
         "--root": "Location of the store (default $PYMINIDOCKER_ROOT or /var/lib/docker-mini)",
         "--trace": "Print the time of each phase of the command (also PYMINIDOCKER_TRACE=1)"},
    "pull": {"": "Download an image from a registry",
             "--platform": "Set platform if server is multi-platform capable",
             "--quiet": "Suppress verbose output",
             "--all-tags": "Download all tagged images in the repository"},
    "images": {"": "List images", "--quiet": "Only show image IDs", "--format": _FORMAT},
    "inspect": {"": "Return low-level information on containers and images",
                "--type": "Return JSON for specified type"},
    "tag": {"": "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"},
    "rmi": {"": "Remove one or more images", "--force": "Force removal of the image"},
    "login": {"": "Log in to a registry", "--username": "Username", "--password": "Password",
              "--password-stdin": "Take the password from stdin"},
    "logout": {"": "Log out from a registry"},
    "create": {"": "Create a new container", **_CREATE},
    "run": {"": "Create and run a new container from an image",
            "--detach": "Run container in background and print container ID",
            "--rm": "Automatically remove the container when it exits", **_CREATE},
    "exec": {"": "Execute a command in a running container",
             "--interactive": "Keep STDIN open even if not attached",
             "--tty": "Allocate a pseudo-TTY", "--env": "Set environment variables",
             "--user": 'Username or UID (format: "<name|uid>[:<group|gid>]")',
             "--workdir": "Working directory inside the container"},
    "start": {"": "Start one or more stopped containers",
              "--attach": "Attach STDOUT/STDERR and forward signals",
              "--interactive": "Attach container's STDIN"},
    "ps": {"": "List containers", "--all": "Show all containers (default shows just running)",
           "--quiet": "Only display container IDs", "--format": _FORMAT},
    "stop": {"": "Stop one or more running containers",
             "--time": "Seconds to wait before killing the container"},
    "kill": {"": "Kill one or more running containers",
             "--signal": "Signal to send to the container"},
    "rm": {"": "Remove one or more containers",
           "--force": "Force the removal of a running container (uses SIGKILL)",
           "--volumes": "Remove anonymous volumes associated with the container"},
    "wait": {"": "Block until one or more containers stop, then print their exit codes"},
    "logs": {"": "Fetch the logs of a container", "--follow": "Follow log output",
             "--tail": "Number of lines to show from the end of the logs",
             "--timestamps": "Show timestamps"},
    "port": {"": "List port mappings or a specific mapping for the container"},
    "rename": {"": "Rename a container"},
    "container": {"": "Manage containers", **_NO_PROMPT},
    "network": {"": "Manage networks"},
    "network create": {"": "Create a network",
                       "--subnet": ("strings",
                                    "Subnet in CIDR format that represents a network segment"),
                       "--gateway": ("strings", "IPv4 or IPv6 Gateway for the master subnet"),
                       "--internal": "Restrict external access to the network",
                       "--label": "Set metadata on a network",
                       "--driver": "Driver to manage the Network"},
    "network ls": {"": "List networks", "--quiet": "Only display network IDs"},
    "network inspect": {"": "Display detailed information on one or more networks"},
    "network rm": {"": "Remove one or more networks"},
    "network connect": {"": "Connect a container to a network"},
    "network disconnect": {"": "Disconnect a container from a network"},
    "network prune": {"": "Remove all unused networks", **_NO_PROMPT},
    "system": _NO_PROMPT,
    "version": {"": "Show the version information"},
}


def commands(parser: Parser, path: str = "") -> Iterator[tuple[str, Parser]]:
    """(path, parser) of the parser and every command below it, depth first: ("", root),
    ("pull", ...), ..., ("network create", ...); each with all its flags declared."""
    parser.declare_table()
    yield path, parser
    if parser._commands is not None:
        for sub in parser._commands.parsers():
            yield from commands(sub, f"{path} {sub.name}".strip())


def long_name(option: Any) -> str:
    return next((n for n in option.names if n.startswith("--")), option.names[0])


def docker_wording(parser: Parser) -> Parser:
    """Docker's help text (and value kind) on every command and option of parser's tree that
    Docker also has; returns parser."""
    for path, p in commands(parser):
        words = DOCKER_WORDING.get(path, {})
        if "" in words:
            p.summary = p.description = words[""]
        for o in p._options:
            text = words.get(long_name(o))
            if isinstance(text, tuple):
                o.metavar, text = text
            if text:
                o.help = text
    return parser
