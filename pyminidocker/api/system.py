"""/_ping and /version: what every client asks first, to learn our API version."""
from __future__ import annotations

import os
import platform

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


def add_routes(app: web.Application) -> None:
    route(app, "GET", "/_ping", ping)
    route(app, "HEAD", "/_ping", ping)
    route(app, "GET", "/version", version)
