"""The application: the middlewares of pyminidocker.api.app and every endpoint module's routes
on one aiohttp app. The endpoint modules import app's helpers; this module imports them, so
that the helpers never import the endpoints back.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from pyminidocker.api.app import (
    ACTIVITY,
    CONFIG,
    ENGINE,
    MAX_JSON_BODY,
    api_versions,
    docker_errors,
    docker_headers,
)


def make_app(config: Any = None, activity: Any = None) -> web.Application:
    """The application over the engine with this configuration (pyminidocker.config.Config).
    activity, if given, sees each request start and end (the server's idle timer)."""
    from pyminidocker.api import endpoints, system

    middlewares = [docker_errors, api_versions]
    if activity is not None:
        middlewares.insert(0, activity.middleware)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_JSON_BODY,
                          handler_args={"max_field_size": 16384})
    app[CONFIG] = config
    app[ACTIVITY] = activity
    app.on_response_prepare.append(docker_headers)
    with_engine = _engine_available()
    served = system.add_routes(app, with_engine)
    if with_engine:
        from pyminidocker.api import (
            archives,
            attach,
            containers,
            cp,
            events,
            execs,
            images,
            networks,
            verbs,
            volumes,
        )

        app[ENGINE] = {}
        for module in (images, archives, attach, containers, verbs, networks, execs, events,
                       volumes, cp):
            served |= module.add_routes(app)
    endpoints.add_pending_routes(app, frozenset(served))
    return app


def _engine_available() -> bool:
    """Whether pyminidocker.engine (issue 9) is here: the endpoints over it are served only
    then; without it they answer 501."""
    import importlib.util

    return importlib.util.find_spec("pyminidocker.engine") is not None
