"""What `ps`, `images`, `inspect`, `network ls|inspect`, `version` and `info` print, with
Docker's --format, --filter, -n/-l, --no-trunc, -s, -a and --digests.

The commands keep their place in the command table; each hands its records here. Imported
only by those commands: never on the `run` path.
"""
from __future__ import annotations

import os
import time

from pyminidocker.cli import columns
from pyminidocker.cli.gotemplate import TemplateError, format_items
from pyminidocker.cli.output import human_size, parse_time
from pyminidocker.engine import filters
from pyminidocker.errors import PmdError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.cli.args import Namespace
    from pyminidocker.engine import Engine


class FormatError(PmdError):
    """A --format template that does not parse or execute: Docker prints it as it is."""

    bare = True   # no "Error: " before it


def render(env: Any, fmt: str | None, items: list[Any], header: dict[str, str],
           default_table: str, missingkey: str = "default") -> None:
    """items as fmt says (None: the default table). Raises FormatError."""
    try:
        env.stdout.write(format_items(fmt or default_table, items, header, default_table,
                                      missingkey))
    except TemplateError as e:
        raise FormatError(f"template parsing error: {e}") from None


def render_each(env: Any, fmt: str, docs: list[Any]) -> None:
    """inspect -f: the template applied to each document, missing keys an error as Docker's
    raw-JSON fallback makes them. Raises FormatError."""
    from pyminidocker.cli.gotemplate import Template

    try:
        tmpl = Template(fmt)
        for doc in docs:
            env.stdout.write(tmpl.execute(doc, missingkey="error") + "\n")
    except TemplateError as e:
        raise FormatError(f"template parsing error: {e}") from None


def _dir_size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                continue
    return total


def ps(args: Namespace, env: Any, eng: Engine) -> int:
    """`ps` over the engine's containers, newest first."""
    recs = eng.containers(all=True)
    for message in eng.corrupt_containers():  # the others are listed all the same
        env.stderr.write(f"WARNING: {message}\n")
    wanted = filters.parse(args.filter, filters.PS_KEYS)
    last = 1 if args.latest else args.last
    show_all = filters.lists_stopped(args.all, wanted, last)
    recs = filters.containers_of(eng, recs, wanted)
    if not show_all:
        recs = [r for r in recs if r.state.status == "running"]
    if last > 0:
        recs = recs[:last]
    trunc = not args.no_trunc
    if args.quiet:
        for r in recs:
            env.out(r.short_id if trunc else r.id)
        return 0
    now = time.time()

    def size(rec: Any) -> tuple[int, int] | None:
        if not args.size:
            return None
        rw = _dir_size(os.path.join(eng.store.containers.path(rec.id), "upper"))
        try:
            virtual = eng.image_size(eng.image(rec.image))
        except PmdError:
            virtual = 0
        return rw, rw + virtual

    rows = [columns.ContainerContext(r, now, trunc, size(r), eng.health(r)) for r in recs]
    table = columns.PS_TABLE + ("\t{{.Size}}" if args.size else "")
    render(env, args.format, rows, columns.PS_HEADER, table)
    return 0


def image_rows(eng: Engine) -> list[dict[str, Any]]:
    """One row per repository:tag of each image (an untagged image: <none>), newest first."""
    from pyminidocker.engine import split_name

    rows: list[dict[str, Any]] = []
    for rec in eng.images():
        try:
            cfg = eng.image_config(rec)
        except PmdError:
            cfg = {}
        size = eng.image_size(rec)
        digests: dict[str, str] = {}
        tags: list[tuple[str, str]] = []
        for n in rec.names:
            repo, tag, digest = split_name(n)
            if digest:
                digests[repo] = digest
            else:
                tags.append((repo, tag))
        if not tags:
            tags = [(repo, "<none>") for repo in digests] or [("<none>", "<none>")]
        for repo, tag in tags:
            rows.append({"Repository": repo, "Tag": tag, "ID": rec.id,
                         "Digest": digests.get(repo, "<none>"), "CreatedAt": rec.created,
                         "Created": parse_time(rec.created) or 0.0, "Size": size,
                         "Labels": (cfg.get("config") or {}).get("Labels") or {}})
    rows.sort(key=lambda r: r["Created"], reverse=True)
    return rows


def images(args: Namespace, env: Any, eng: Engine) -> int:
    """`images [REPOSITORY[:TAG]]`."""
    rows = image_rows(eng)
    for message in eng.corrupt_images():  # the others are listed all the same
        env.stderr.write(f"WARNING: {message}\n")
    for message in eng.corrupt_layers():  # rebuilt from the images: nothing fails
        env.stderr.write(f"WARNING: {message}\n")
    wanted = filters.parse(args.filter, filters.IMAGES_KEYS)
    if args.filter_ref:
        wanted.setdefault("reference", []).append(args.filter_ref)
    rows = filters.images_of(eng, rows, wanted)
    trunc = not args.no_trunc
    if args.quiet:
        for i in dict.fromkeys(r["ID"] for r in rows):
            env.out(i[:12] if trunc else "sha256:" + i)
        return 0
    now = time.time()
    items = [columns.ImageContext(r["ID"], r["Repository"], r["Tag"], r["Digest"],
                                  r["CreatedAt"], r["Size"], now, trunc) for r in rows]
    table = columns.IMAGES_DIGESTS_TABLE if args.digests else columns.IMAGES_TABLE
    render(env, args.format, items, columns.IMAGES_HEADER, table)
    return 0


def networks(args: Namespace, env: Any, nets: list[Any]) -> int:
    """`network ls`: by name, as Docker sorts them."""
    nets = filters.networks(sorted(nets, key=lambda n: n.name),
                            filters.parse(args.filter, filters.NETWORK_KEYS))
    trunc = not args.no_trunc
    if args.quiet:
        for n in nets:
            env.out(n.id[:12] if trunc else n.id)
        return 0
    items = [columns.NetworkContext(n.name, n.id, n.driver, n.created, n.internal, n.labels,
                                    trunc) for n in nets]
    render(env, args.format, items, columns.NETWORKS_HEADER, columns.NETWORKS_TABLE)
    return 0


def inspect(args: Namespace, env: Any, docs: list[Any]) -> None:
    """inspect's output: a JSON array as Docker indents it, or -f's template per object."""
    if args.format:
        render_each(env, args.format, docs)
        return
    import json

    env.out(json.dumps(docs, indent=4, ensure_ascii=False))


def version_doc(eng: Engine) -> dict[str, Any]:
    """`version`'s document: a client and a server (the same program: daemonless)."""
    v = eng.version()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(v["Arch"], v["Arch"])
    server = {"Platform": {"Name": "pyminidocker"}, "Version": v["Version"],
              "ApiVersion": v["ApiVersion"], "MinAPIVersion": "1.12", "GitCommit": "",
              "GoVersion": "python" + v.get("PythonVersion", ""), "Os": v["Os"], "Arch": arch,
              "KernelVersion": v["KernelVersion"], "BuildTime": "", "Experimental": False,
              "Components": [{"Name": "Engine", "Version": v["Version"],
                              "Details": {"ApiVersion": v["ApiVersion"], "Arch": arch,
                                          "Os": v["Os"]}}]}
    client = {k: server[k] for k in ("Platform", "Version", "ApiVersion", "GitCommit",
                                     "GoVersion", "Os", "Arch", "BuildTime")}
    client["DefaultAPIVersion"] = v["ApiVersion"]
    client["Context"] = "default"
    return {"Client": client, "Server": server}


def info_doc(eng: Engine) -> dict[str, Any]:
    """`info`'s document, Docker's field names over the engine's info; zero values for what
    a daemonless engine has not got (swarm, plugins, a registry mirror list)."""
    import platform

    base = eng.info()
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    os_name = "Linux"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return {
        "ID": "", "Containers": base["Containers"],
        "ContainersRunning": base["ContainersRunning"], "ContainersPaused": 0,
        "ContainersStopped": base["ContainersStopped"], "Images": base["Images"],
        "Driver": base["Driver"],
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                         ["Native Overlay Diff", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": False, "KernelMemory": False,
        "KernelMemoryTCP": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
        "BridgeNfIptables": True, "BridgeNfIp6tables": True, "Debug": False, "NFd": 0,
        "OomKillDisable": True, "NGoroutines": 0,
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if v2 else "1",
        "NEventsListener": 0, "KernelVersion": platform.release(),
        "OperatingSystem": os_name, "OSVersion": "", "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [],
                           "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {},
                           "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": mem, "GenericResources": None,
        "DockerRootDir": base["DockerRootDir"], "HttpProxy": os.environ.get("HTTP_PROXY", ""),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
        "NoProxy": os.environ.get("NO_PROXY", ""), "Name": platform.node(), "Labels": [],
        "ExperimentalBuild": False, "ServerVersion": base["Version"],
        "Runtimes": {"pmd": {"path": "pmd-monitor"}}, "DefaultRuntime": "pmd",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""}, "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=default"], "Warnings": None,
        "ClientInfo": {"Debug": False, "Context": "default", "Plugins": [], "Warnings": None},
    }


def info(args: Namespace, env: Any, eng: Engine) -> int:
    """`info`: Docker's text (the lines scripts grep) or --format over its document."""
    doc = info_doc(eng)
    if args.format:
        render_each(env, args.format, [doc])
        return 0
    lines = [
        "Client:", " Context:    default", " Debug Mode: false", "",
        "Server:",
        f" Containers: {doc['Containers']}", f"  Running: {doc['ContainersRunning']}",
        f"  Paused: {doc['ContainersPaused']}", f"  Stopped: {doc['ContainersStopped']}",
        f" Images: {doc['Images']}", f" Server Version: {doc['ServerVersion']}",
        f" Storage Driver: {doc['Driver']}", f" Logging Driver: {doc['LoggingDriver']}",
        f" Cgroup Driver: {doc['CgroupDriver']}", f" Cgroup Version: {doc['CgroupVersion']}",
        " Plugins:", "  Volume: local", "  Network: bridge host null",
        "  Log: json-file", " Swarm: inactive", f" Default Runtime: {doc['DefaultRuntime']}",
        f" Kernel Version: {doc['KernelVersion']}",
        f" Operating System: {doc['OperatingSystem']}", f" OSType: {doc['OSType']}",
        f" Architecture: {doc['Architecture']}", f" CPUs: {doc['NCPU']}",
        f" Total Memory: {human_size(doc['MemTotal'])}", f" Name: {doc['Name']}",
        f" Docker Root Dir: {doc['DockerRootDir']}", " Debug Mode: false",
        " Experimental: false", " Live Restore Enabled: false",
    ]
    env.out("\n".join(lines))
    return 0
