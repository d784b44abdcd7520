"""/networks/...: list, inspect, create, remove, connect, disconnect, prune, over the engine
API."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from pyminidocker.api.app import (
    APIError,
    add_table,
    bad_request,
    call,
    filters_param,
    json_body,
)
from pyminidocker.api.container_config import endpoint_address

CREATE_FIELDS: dict[str, Any] = {
    "Name": str, "CheckDuplicate": bool, "Driver": str, "Scope": str, "Internal": bool,
    "Attachable": bool, "Ingress": bool, "ConfigOnly": bool, "ConfigFrom": dict,
    "IPAM": {"Driver": str, "Config": list, "Options": dict}, "EnableIPv6": bool,
    "Options": dict[str, str], "Labels": dict[str, str],
}
CONNECT_FIELDS: dict[str, Any] = {"Container": str, "EndpointConfig": dict, "Force": bool}


async def list_networks(request: web.Request) -> web.Response:
    wanted = filters_param(request)

    def work(eng: Any) -> list[dict[str, Any]]:
        from pyminidocker.engine import filters

        nets = filters.networks(eng.all_networks(), filters.check(wanted, filters.NETWORK_KEYS))
        return [eng.inspect_network(net.name) for net in nets]

    return web.json_response(await call(request, work))


async def inspect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    return web.json_response(await call(request, lambda eng: eng.inspect_network(ref)))


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, CREATE_FIELDS)
    name = body.get("Name") or ""
    if not name:
        raise bad_request("network name is required")
    if (body.get("Driver") or "bridge") != "bridge":
        raise APIError(501, f"network driver {body['Driver']!r} is not supported by "
                       "pyminidocker: only bridge")
    if body.get("EnableIPv6"):
        raise APIError(501, "IPv6 networks are not supported by pyminidocker yet")
    configs = (body.get("IPAM") or {}).get("Config") or []
    if len(configs) > 1:
        raise APIError(501, "one IPAM config per network is supported by pyminidocker")
    subnet = gateway = None
    if configs:
        if not isinstance(configs[0], dict):
            raise bad_request("json: cannot unmarshal into field IPAM.Config of type object")
        subnet = configs[0].get("Subnet") or None
        gateway = configs[0].get("Gateway") or None
    labels = body.get("Labels") or {}
    net = await call(request, lambda eng: eng.create_network(
        name, subnet=subnet, gateway=gateway, internal=bool(body.get("Internal")),
        labels=labels))
    return web.json_response({"Id": net.id, "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    await call(request, lambda eng: eng.remove_network(ref))
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    body = await json_body(request, CONNECT_FIELDS)
    container = body.get("Container") or ""
    if not container:
        raise bad_request("Container is required")
    endpoint = body.get("EndpointConfig") or {}
    aliases = endpoint.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise bad_request("json: cannot unmarshal into field EndpointConfig.Aliases of type "
                          "[]string")
    ip = endpoint_address(endpoint)
    if any(endpoint.get(k) for k in ("Links", "MacAddress")):
        raise APIError(501, "endpoint links and MAC addresses are not supported by "
                       "pyminidocker yet")
    await call(request, lambda eng: eng.connect(container, _name(eng, ref), aliases, ip))
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    body = await json_body(request, CONNECT_FIELDS)
    container = body.get("Container") or ""
    if not container:
        raise bad_request("Container is required")
    await call(request, lambda eng: eng.disconnect(container, _name(eng, ref)))
    return web.Response(status=200)


def _name(eng: Any, ref: str) -> str:
    """The network's name, from its name or (short) id. Raises NotFound."""
    return str(eng.inspect_network(ref)["Name"])


async def prune(request: web.Request) -> web.Response:
    if filters_param(request):
        raise APIError(501, "network prune filters are not supported by pyminidocker yet")
    removed = await call(request, lambda eng: eng.prune_networks())
    return web.json_response({"NetworksDeleted": removed or None})


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    table = [
        ("GET", "/networks", list_networks),
        ("POST", "/networks/create", create),
        ("POST", "/networks/prune", prune),
        ("GET", "/networks/{id}", inspect),
        ("DELETE", "/networks/{id}", remove),
        ("POST", "/networks/{id}/connect", connect),
        ("POST", "/networks/{id}/disconnect", disconnect),
    ]
    return add_table(app, table)
