"""/events: Docker's event stream, from the engine's event log (store/events.py): what every
command and this server did, with `since` replaying the log and `until` ending the stream.
No daemon sees a container's exit as it happens: while a stream is open, the server looks
for ended containers every NOTICE_EXITS seconds (which logs their `die`).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from pyminidocker.api.app import add_table, bad_request, call, filters_param
from pyminidocker.api.streams import JSONStream, client_gone

POLL = 0.1
NOTICE_EXITS = 0.5
REMOVED = web.AppKey("removed", dict)  # id -> its record just before this server removed it


def removing(app: web.Application, rec: Any) -> None:
    """Called with a container's record before the server removes it (see REMOVED: wait
    answers with its exit code once it is gone); the last 100 are kept."""
    removed = app[REMOVED]
    removed[rec.id] = rec
    while len(removed) > 100:
        del removed[next(iter(removed))]


def _time_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {raw!r} (seconds since the "
                          "epoch)") from None


async def events(request: web.Request) -> web.StreamResponse:
    from pyminidocker.engine import EVENT_FILTERS

    filters = filters_param(request)
    for key in filters:
        if key not in EVENT_FILTERS:
            raise bad_request(f"invalid filter '{key}'")
    until = _time_param(request, "until")
    since = _time_param(request, "since")
    if since is None and until is not None:
        since = 0.0  # as dockerd: an until alone replays what is logged up to then
    reader = await call(request, lambda eng: eng.events(since, filters))
    try:
        async with JSONStream(request) as stream:
            last_notice = 0.0
            while True:
                done = until is not None and time.time() >= until
                if time.monotonic() - last_notice >= NOTICE_EXITS:
                    await call(request, lambda eng: eng.notice_exits())
                    last_notice = time.monotonic()
                for ev in await call(request, lambda eng: reader.read()):
                    if until is None or int(ev.get("timeNano") or 0) <= until * 1e9:
                        await stream.send(ev)
                if done or client_gone(request):
                    break
                await asyncio.sleep(POLL if until is None
                                    else max(0.0, min(POLL, until - time.time())))
    finally:
        reader.close()
    return stream.response


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    app[REMOVED] = {}
    return add_table(app, [("GET", "/events", events)])
