"""Docker's endpoints that the server does not serve yet.

They wait for the engine's typed API (pyminidocker.engine, issue 9): the API server is a front
end and calls the engine, never the store or the runtime itself. Until an endpoint is served,
a client gets Docker's error shape with 501 Not Implemented naming it, rather than a 404 that
reads like a typo in the path.
"""
from __future__ import annotations

from aiohttp import web

from pyminidocker.api.app import Handler, not_implemented, route

PENDING = [
    ("GET", "/info", "system info"),
    ("GET", "/events", "events"),
    ("GET", "/system/df", "system df"),
    ("POST", "/images/create", "image pull"),
    ("GET", "/images/json", "image list"),
    ("POST", "/images/prune", "image prune"),
    ("GET", "/images/{name:.+}/json", "image inspect"),
    ("GET", "/images/{name:.+}/history", "image history"),
    ("POST", "/images/{name:.+}/tag", "image tag"),
    ("POST", "/images/{name:.+}/push", "image push"),
    ("DELETE", "/images/{name:.+}", "image remove"),
    ("GET", "/images/search", "image search"),
    ("GET", "/images/get", "image save"),
    ("GET", "/images/{name:.+}/get", "image save"),
    ("POST", "/images/load", "image load"),
    ("POST", "/build", "image build"),
    ("POST", "/build/prune", "build cache prune"),
    ("POST", "/commit", "container commit"),
    ("GET", "/containers/json", "container list"),
    ("POST", "/containers/create", "container create"),
    ("POST", "/containers/prune", "container prune"),
    ("GET", "/containers/{id}/json", "container inspect"),
    ("GET", "/containers/{id}/top", "container top"),
    ("GET", "/containers/{id}/logs", "container logs"),
    ("GET", "/containers/{id}/changes", "container changes"),
    ("GET", "/containers/{id}/export", "container export"),
    ("GET", "/containers/{id}/stats", "container stats"),
    ("POST", "/containers/{id}/resize", "container resize"),
    ("POST", "/containers/{id}/start", "container start"),
    ("POST", "/containers/{id}/stop", "container stop"),
    ("POST", "/containers/{id}/restart", "container restart"),
    ("POST", "/containers/{id}/kill", "container kill"),
    ("POST", "/containers/{id}/update", "container update"),
    ("POST", "/containers/{id}/rename", "container rename"),
    ("POST", "/containers/{id}/pause", "container pause"),
    ("POST", "/containers/{id}/unpause", "container unpause"),
    ("POST", "/containers/{id}/attach", "container attach"),
    ("GET", "/containers/{id}/attach/ws", "container attach over websocket"),
    ("POST", "/containers/{id}/wait", "container wait"),
    ("DELETE", "/containers/{id}", "container remove"),
    ("HEAD", "/containers/{id}/archive", "container archive stat"),
    ("GET", "/containers/{id}/archive", "container archive get"),
    ("PUT", "/containers/{id}/archive", "container archive put"),
    ("POST", "/containers/{id}/exec", "exec create"),
    ("POST", "/exec/{id}/start", "exec start"),
    ("POST", "/exec/{id}/resize", "exec resize"),
    ("GET", "/exec/{id}/json", "exec inspect"),
    ("GET", "/networks", "network list"),
    ("GET", "/networks/{id}", "network inspect"),
    ("POST", "/networks/create", "network create"),
    ("POST", "/networks/prune", "network prune"),
    ("POST", "/networks/{id}/connect", "network connect"),
    ("POST", "/networks/{id}/disconnect", "network disconnect"),
    ("DELETE", "/networks/{id}", "network remove"),
    ("GET", "/volumes", "volume list"),
    ("POST", "/volumes/create", "volume create"),
    ("POST", "/volumes/prune", "volume prune"),
    ("GET", "/volumes/{name}", "volume inspect"),
    ("DELETE", "/volumes/{name}", "volume remove"),
]


def _pending(what: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise not_implemented(what)

    return handler


def add_pending_routes(app: web.Application, served: frozenset[tuple[str, str]] = frozenset()
                       ) -> None:
    """Route each endpoint not in served (method, path) to a 501."""
    for method, path, what in PENDING:
        if (method, path) not in served:
            route(app, method, path, _pending(what))
