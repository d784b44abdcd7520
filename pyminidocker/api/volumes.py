"""/volumes/...: list, create, inspect, remove, prune, over the engine API."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from pyminidocker.api.app import (
    APIError,
    add_table,
    bad_request,
    bool_param,
    call,
    filters_param,
    json_body,
)
from pyminidocker.errors import PmdError

CREATE_FIELDS: dict[str, Any] = {"Name": str, "Driver": str, "DriverOpts": dict[str, str],
                                 "Labels": dict[str, str], "ClusterVolumeSpec": dict}


async def list_volumes(request: web.Request) -> web.Response:
    wanted = filters_param(request)

    def work(eng: Any) -> dict[str, Any]:
        from pyminidocker.engine import filters

        filters.check(wanted, filters.VOLUME_KEYS)
        users = eng.volume_users() if "dangling" in wanted else {}
        vols = filters.volumes(eng.volumes(), wanted, lambda vol: bool(users.get(vol.name)))
        return {"Volumes": [eng.inspect_volume(vol) for vol in vols], "Warnings": None}

    return web.json_response(await call(request, work))


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, CREATE_FIELDS, optional=True)
    if body.get("ClusterVolumeSpec"):
        raise APIError(501, "cluster volumes are not supported by pyminidocker")
    name = body.get("Name") or None
    doc = await call(request, lambda eng: eng.inspect_volume(eng.create_volume(
        name, body.get("Labels") or None, body.get("DriverOpts") or None,
        body.get("Driver") or "local")))
    return web.json_response(doc, status=201)


async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return web.json_response(await call(request, lambda eng: eng.inspect_volume(
        eng.volume(name))))


async def remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    force = bool_param(request, "force")
    errors = await call(request, lambda eng: eng.remove_volumes([name], force))
    if errors:
        err = errors[name]
        if isinstance(err, PmdError):
            raise err
        raise APIError(500, str(err))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    filters = filters_param(request)
    if set(filters) - {"label", "all"}:
        raise bad_request(f"invalid filter '{sorted(set(filters) - {'label', 'all'})[0]}'")
    names, freed = await call(request, lambda eng: eng.prune_volumes(filters.get("label")))
    return web.json_response({"VolumesDeleted": names or None, "SpaceReclaimed": freed})


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    return add_table(app, [
        ("GET", "/volumes", list_volumes),
        ("POST", "/volumes/create", create),
        ("POST", "/volumes/prune", prune),
        ("GET", "/volumes/{name}", inspect),
        ("DELETE", "/volumes/{name}", remove),
    ])
