"""/events: Docker's event stream, for containers: create, start, die, destroy.

The engine has no event log yet (a daemonless engine has no one process that sees every
change), so the server watches: it lists the containers every POLL seconds and reports what
changed since the last look, as Docker's events. What happens between two looks and undoes
itself (a container created and removed within POLL) is not seen, and there is no history:
`since` in the past replays nothing.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from pyminidocker.api.app import APIError, add_table, bad_request, call, filters_param
from pyminidocker.api.streams import JSONStream

POLL = 0.2
REMOVED = web.AppKey("removed", dict)  # id -> its record just before this server removed it


def removing(app: web.Application, rec: Any) -> None:
    """Called with a container's record before the server removes it (see REMOVED); the
    last 100 are kept."""
    removed = app[REMOVED]
    removed[rec.id] = rec
    while len(removed) > 100:
        del removed[next(iter(removed))]


def _event(action: str, rec: Any, extra: dict[str, str] | None = None) -> dict[str, Any]:
    now = time.time_ns()
    attrs = {"image": rec.image_name, "name": rec.name, **(rec.labels or {}), **(extra or {})}
    return {"status": action, "id": rec.id, "from": rec.image_name, "Type": "container",
            "Action": action, "Actor": {"ID": rec.id, "Attributes": attrs}, "scope": "local",
            "time": now // 1_000_000_000, "timeNano": now}


def _wanted(ev: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "type":
            ok = "container" in values
        elif key == "event":
            ok = ev["Action"] in values
        elif key == "container":
            ok = any(ev["id"].startswith(v) or ev["Actor"]["Attributes"]["name"] == v
                     for v in values)
        elif key == "image":
            ok = ev["from"] in values
        elif key == "label":
            attrs = ev["Actor"]["Attributes"]
            ok = all(attrs.get(v.partition("=")[0]) == v.partition("=")[2]
                     if "=" in v else v in attrs for v in values)
        else:
            raise bad_request(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


def _snapshot(eng: Any) -> dict[str, Any]:
    return {r.id: r for r in eng.containers(all=True)}


def changes(before: dict[str, Any], after: dict[str, Any],
            last_seen: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Docker's events for what changed between two snapshots (id -> record); last_seen has
    the last record of containers removed through this server (for the exit code of one
    that exited and was removed between two looks)."""
    out = []
    for cid, rec in after.items():
        old = before.get(cid)
        if old is None:
            out.append(_event("create", rec))
        was = old.state if old is not None else None
        st = rec.state
        started_again = was is not None and st.started_at != was.started_at
        if st.status == "running" and (was is None or was.status != "running" or
                                       started_again):
            out.append(_event("start", rec))
        if st.status == "exited" and (was is None or was.status != "exited" or
                                      st.finished_at != was.finished_at):
            if was is None or was.status == "created":
                out.append(_event("start", rec))  # ran and ended between two looks
            out.append(_event("die", rec, {"exitCode": str(st.exit_code)}))
    for cid, rec in before.items():
        if cid not in after:
            last = (last_seen or {}).get(cid, rec)
            if rec.state.status == "running":  # exited and removed between two looks
                extra = {"exitCode": str(last.state.exit_code)} \
                    if last.state.status == "exited" else {}
                out.append(_event("die", last, extra))
            out.append(_event("destroy", rec))
    return out


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
    filters = filters_param(request)
    if filters.get("type") and "container" not in filters["type"]:
        raise APIError(501, "only container events are reported by pyminidocker yet")
    until = _time_param(request, "until")
    _time_param(request, "since")  # checked; nothing before now is known
    before = await call(request, _snapshot)
    async with JSONStream(request) as stream:
        while until is None or time.time() < until:
            await asyncio.sleep(POLL)
            after = await call(request, _snapshot)
            for ev in changes(before, after, request.app[REMOVED]):
                if _wanted(ev, filters):
                    await stream.send(ev)
            before = after
    return stream.response


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    app[REMOVED] = {}
    return add_table(app, [("GET", "/events", events)])
