"""/_ping and /version: what every client asks first, to learn our API version."""
from __future__ import annotations

import os
import platform
from typing import Any

from aiohttp import web

from pyminidocker import __version__
from pyminidocker.api.app import API_VERSION, MIN_API_VERSION, route
from pyminidocker.image.platforms import host_platform

# Headers of /_ping besides Api-Version (which every response has, and from which the docker
# CLI negotiates down to ours): so that it does not assume what an unknown daemon has.
PING_HEADERS = {
    "Docker-Experimental": "false",
    "OSType": "linux",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}


async def ping(request: web.Request) -> web.Response:
    # aiohttp leaves the body out of a HEAD response itself
    return web.Response(text="OK", content_type="text/plain", headers=PING_HEADERS)


def version_info() -> dict[str, object]:
    uname = os.uname()
    arch = host_platform().architecture
    details = {
        "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Arch": arch,
        "Os": "linux", "KernelVersion": uname.release, "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}", "BuildTime": "",
        "Experimental": "false",
    }
    return {
        "Platform": {"Name": "pyminidocker"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": details["GoVersion"], "Os": "linux", "Arch": arch,
        "KernelVersion": uname.release, "BuildTime": "",
    }


async def version(request: web.Request) -> web.Response:
    return web.json_response(version_info())


async def info(request: web.Request) -> web.Response:
    """Docker's /info: the engine's counts and settings, and the host's."""
    from pyminidocker.api.app import call

    def work(eng: Any) -> dict[str, Any]:
        data = eng.info()
        uname = os.uname()
        return {
            "ID": "", "Name": uname.nodename, "ServerVersion": __version__,
            "Containers": data["Containers"], "ContainersRunning": data["ContainersRunning"],
            "ContainersPaused": 0, "ContainersStopped": data["ContainersStopped"],
            "Images": data["Images"], "Driver": data["Driver"], "DriverStatus": [],
            "DockerRootDir": data["DockerRootDir"], "Plugins": {
                "Volume": [], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
            "MemoryLimit": True, "SwapLimit": False, "CpuCfsPeriod": True,
            "CpuCfsQuota": True, "PidsLimit": True, "IPv4Forwarding": True,
            "KernelVersion": uname.release, "OperatingSystem": _os_name(), "OSType": "linux",
            "OSVersion": "", "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1,
            "MemTotal": _mem_total(), "CgroupDriver": "cgroupfs",
            "CgroupVersion": str(data.get("CgroupVersion", "1")), "LoggingDriver": "json-file",
            "Runtimes": {"pyminidocker": {"path": "pmd-monitor"}},
            "DefaultRuntime": "pyminidocker", "Swarm": {"LocalNodeState": "inactive"},
            "SecurityOptions": ["name=seccomp,profile=builtin"], "Labels": [],
            "ExperimentalBuild": False, "LiveRestoreEnabled": True, "Warnings": None,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]},
        }

    return web.json_response(await call(request, work))


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


async def system_df(request: web.Request) -> web.Response:
    """Docker's /system/df: images and containers with their sizes; no volumes yet."""
    from pyminidocker.api import containers, images
    from pyminidocker.api.app import call

    def work(eng: Any) -> dict[str, Any]:
        imgs = [images.summary(eng, rec) for rec in eng.images()]
        used: dict[str, int] = {}
        ctrs = []
        for rec in eng.containers(all=True):
            used["sha256:" + rec.image] = used.get("sha256:" + rec.image, 0) + 1
            s = containers.summary(eng, rec)
            s["SizeRw"] = 0  # not measured yet: the rw layer is not walked
            s["SizeRootFs"] = next((i["Size"] for i in imgs if i["Id"] == s["ImageID"]), 0)
            ctrs.append(s)
        for i in imgs:
            i["Containers"] = used.get(i["Id"], 0)
        layers = sum(layer.uncompressed_size for layer in
                     (eng.store.layers.get(c) for c in eng.store.layers.all_ids()))
        return {"LayersSize": layers, "Images": imgs, "Containers": ctrs, "Volumes": [],
                "BuildCache": []}

    return web.json_response(await call(request, work))


def add_routes(app: web.Application, with_engine: bool = False) -> set[tuple[str, str]]:
    route(app, "GET", "/_ping", ping)
    route(app, "HEAD", "/_ping", ping)
    route(app, "GET", "/version", version)
    if not with_engine:
        return set()
    route(app, "GET", "/info", info)
    route(app, "GET", "/system/df", system_df)
    return {("GET", "/info"), ("GET", "/system/df")}
