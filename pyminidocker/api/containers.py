"""/containers/...: create, start, stop, restart, kill, wait, list, inspect, remove, rename,
prune, over the engine API. The create body is container_config's; output and console
(logs, attach, resize) are attach's."""
from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

from aiohttp import web

from pyminidocker.api.app import (
    ACTIVITY,
    APIError,
    add_table,
    bad_request,
    bool_param,
    call,
    filters_param,
    int_param,
    json_body,
)
from pyminidocker.api.attach import ATTACHED, CONSOLE_SIZE, INTERACTIVE
from pyminidocker.api.container_config import create_options
from pyminidocker.api.streams import client_gone
from pyminidocker.errors import NotFound, PmdError, suppress

# AutoRemove: the server removes the container once it has exited, rather than its monitor
# (`run -d --rm`'s way), so that it knows the exit code it reports to `wait` after the record
# is gone (docker run --rm asks for it then). Until it is removed, the server (its worker) stays
# up: it is the only one that knows to remove it.
AUTO_REMOVE = web.AppKey("auto_remove", set)
REMOVERS = web.AppKey("removers", set)
SUMMARIES = web.AppKey("summaries", dict)  # id -> (record, its list entry), the last list's


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    opts = create_options(body, request.query.get("name") or None)
    auto_remove, opts.auto_remove = opts.auto_remove, False
    rec = await call(request, lambda eng: eng.create(opts))
    if auto_remove:
        request.app[AUTO_REMOVE].add(rec.id)
        _activity(request.app, "hold")
    size = (body.get("HostConfig") or {}).get("ConsoleSize") or []
    if len(size) == 2 and all(isinstance(n, int) and n > 0 for n in size):
        request.app[CONSOLE_SIZE][rec.id] = (size[0], size[1])
    return web.json_response({"Id": rec.id, "Warnings": []}, status=201)


def _activity(app: web.Application, what: str) -> None:
    activity = app[ACTIVITY]
    if activity is not None:
        getattr(activity, what)()


def _auto_removed(app: web.Application, cid: str) -> None:
    """The AutoRemove container cid is gone: the server need not stay up for it."""
    if cid in app[AUTO_REMOVE]:
        app[AUTO_REMOVE].discard(cid)
        _activity(app, "release")


def _remove_exited(app: web.Application, eng: Any, cid: str) -> None:
    """The container the server ran attached has exited (in the start's thread): removed
    now if it is AutoRemove."""
    if cid not in app[AUTO_REMOVE]:
        return
    from pyminidocker.api.events import removing

    with suppress(PmdError):
        last = eng.container(cid)
        removing(app, last)
        eng.remove(last, force=True)


async def _remove_when_exited(request: web.Request, cid: str) -> None:
    from pyminidocker.api.events import removing

    try:
        def check(eng: Any) -> bool:
            rec = eng.refresh(eng.container(cid))
            if rec.state.status == "running":
                return False
            removing(request.app, rec)  # its exit code, for wait and events
            eng.remove(rec)
            return True

        deadline = time.monotonic() + 10
        while True:
            # its output is still on its way to an attached client: that reads its log
            if request.app[ATTACHED].get(cid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                continue
            try:
                if await call(request, check):
                    break
            except NotFound:
                break
            except PmdError as e:
                request.app.logger.warning("--rm of %s: %s", cid[:12], e)
                break
            await asyncio.sleep(0.05)
    finally:
        _auto_removed(request.app, cid)


def _container(eng: Any, ref: str) -> Any:
    return eng.container(ref)


def _refresh(eng: Any, rec: Any) -> Any:
    return eng.refresh(rec)


async def start(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    rec = await call(request, _container, ref)
    if rec.state.status == "running":
        return web.Response(status=304)
    session = request.app[INTERACTIVE].get(rec.id)
    if session is not None and not session.taken.is_set():
        try:
            await session.start(request, rec, on_exit=lambda eng: _remove_exited(
                request.app, eng, rec.id))
        finally:
            if session.task is not None:  # done: removed, if it is AutoRemove
                session.task.add_done_callback(lambda _: _auto_removed(request.app, rec.id))
        return web.Response(status=204)
    request.app[CONSOLE_SIZE].pop(rec.id, None)  # a detached console is its monitor's

    def work(eng: Any) -> bool:
        rec = eng.container(ref)
        if rec.state.status == "running":
            return False
        eng.start(rec, attach=False)
        return True

    try:
        started = await call(request, work)
    except PmdError:
        if rec.id in request.app[AUTO_REMOVE]:  # as dockerd: one that failed to start goes
            _spawn_remover(request, rec.id)
        raise
    if started and rec.id in request.app[AUTO_REMOVE]:
        _spawn_remover(request, rec.id)
    return web.Response(status=204 if started else 304)


def _spawn_remover(request: web.Request, cid: str) -> None:
    tasks = request.app[REMOVERS]  # held here: a task nobody refers to may be collected
    task = asyncio.ensure_future(_remove_when_exited(request, cid))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def stop(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    timeout = int_param(request, "t", 10)

    def work(eng: Any) -> bool:
        rec = eng.container(ref)
        if rec.state.status != "running":
            return False
        eng.stop(rec, timeout)
        return True

    return web.Response(status=204 if await call(request, work) else 304)


async def restart(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    timeout = int_param(request, "t", 10)

    def work(eng: Any) -> None:
        rec = eng.container(ref)
        eng.stop(rec, timeout)
        eng.start(eng.container(ref), attach=False)

    await call(request, work)
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    from pyminidocker.engine import parse_signal

    ref = request.match_info["id"]
    try:
        sig = parse_signal(request.query.get("signal") or "KILL")
    except PmdError as e:
        raise bad_request(str(e)) from None
    def work(eng: Any) -> None:
        rec = eng.container(ref)
        eng.kill(rec, sig)
        if sig == signal.SIGKILL:  # as dockerd, answer once a SIGKILLed container is gone
            eng.wait(rec)

    await call(request, work)
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    """The headers go at once (the docker CLI waits for them before it starts the container:
    the wait is in place), the exit code once the condition is met."""
    ref = request.match_info["id"]
    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise bad_request(f"invalid condition: {condition!r}")
    from pyminidocker.api.events import REMOVED

    try:
        first = await call(request, _container, ref)
    except NotFound:
        gone = next((r for r in request.app[REMOVED].values()
                     if ref in (r.id, r.name) or (len(ref) >= 12 and r.id.startswith(ref))),
                    None)
        if gone is None:
            raise
        return web.json_response({"StatusCode": gone.state.exit_code, "Error": None})
    before = (first.state.status, first.state.finished_at)
    resp = web.StreamResponse()
    resp.content_type = "application/json"
    await resp.prepare(request)
    last = first
    session = request.app[INTERACTIVE].get(first.id)
    if session is not None and condition != "not-running":
        # a container this server runs attached: its start's result is the word on its
        # exit (the store's record is written by that start, and removed after it with --rm)
        await session.taken.wait()
        code = 125
        if session.task is not None:
            with suppress(PmdError):
                code = int(await asyncio.shield(session.task) or 0)
        return await _answer_wait(resp, code)
    while True:
        if client_gone(request):  # the docker CLI's run -d hangs up once it has started
            return resp
        try:
            rec = await call(request, _refresh, last)
        except NotFound:
            gone = request.app[REMOVED].get(last.id)
            if gone is not None:  # removed by this server: it saw the exit
                last = gone
            if condition == "removed" or last is first or gone is not None:
                break
            raise
        last = rec
        st = rec.state
        if st.status != "running":
            done = condition == "not-running" or \
                ((st.status, st.finished_at) != before and st.status == "exited")
            if done and condition != "removed":
                break
        await asyncio.sleep(0.02)
    code = last.state.exit_code
    return await _answer_wait(resp, code)


async def _answer_wait(resp: web.StreamResponse, code: int) -> web.StreamResponse:
    # a client may hang up before the exit (the docker CLI 28 does in run --rm): no one
    # to answer, nothing to log
    with suppress(ConnectionError):
        await resp.write(json.dumps({"StatusCode": code, "Error": None}).encode())
        await resp.write_eof()
    return resp


def _port_map(rec: Any) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for mapping in rec.state.ports:  # "80/tcp -> 0.0.0.0:8080"
        inside, _, outside = mapping.partition(" -> ")
        hip, _, hport = outside.rpartition(":")
        ports.setdefault(inside, []).append({"HostIp": hip, "HostPort": hport})
    return ports


def summary(eng: Any, rec: Any) -> dict[str, Any]:
    import shlex

    from pyminidocker.humanize import parse_time, status_text

    now = time.time()
    ports = []
    for inside, binds in _port_map(rec).items():
        port, _, proto = inside.partition("/")
        for b in binds:
            ports.append({"IP": b["HostIp"], "PrivatePort": int(port),
                          "PublicPort": int(b["HostPort"]), "Type": proto or "tcp"})
    network = rec.host.get("network") or "bridge"
    nets = {network: {"IPAddress": rec.state.ip}} if rec.state.ip else {}
    nets.update({n: {"IPAddress": i.get("ip", "")} for n, i in
                 rec.state.extra_networks.items()})
    return {
        "Id": rec.id, "Names": ["/" + rec.name], "Image": rec.image_name,
        "ImageID": "sha256:" + rec.image, "Command": shlex.join(rec.argv),
        "Created": int(parse_time(rec.created) or 0), "Ports": ports, "Labels": rec.labels,
        "State": rec.state.status, "Status": status_text(rec.state, now, eng.health(rec)),
        "HostConfig": {"NetworkMode": network}, "NetworkSettings": {"Networks": nets},
        "Mounts": eng.container_mounts(rec),
    }


async def list_containers(request: web.Request) -> web.Response:
    show_all = bool_param(request, "all")
    limit = int_param(request, "limit", -1) or -1
    wanted = filters_param(request)

    def work(eng: Any) -> list[dict[str, Any]]:
        from pyminidocker.engine import filters
        from pyminidocker.humanize import status_text

        recs = filters.containers_of(eng, eng.container_views(),
                                     filters.check(wanted, filters.PS_KEYS))
        if not filters.lists_stopped(show_all, wanted, limit):
            recs = [r for r in recs if r.state.status == "running"]
        # the same record as last time (container_views keeps a stopped container's): the
        # same summary but for its age
        seen, now = request.app[SUMMARIES], time.time()
        fresh = {}
        for r in recs:
            hit = seen.get(r.id)
            if hit is not None and hit[0] is r:
                # its age and health ("Up 3 seconds (healthy)": compose 2.x's ps shows no other)
                fresh[r.id] = (r, {**hit[1], "Status": status_text(r.state, now, eng.health(r))})
            else:
                fresh[r.id] = (r, summary(eng, r))
        request.app[SUMMARIES] = fresh
        out = [s for _, s in fresh.values()]
        return out[:limit] if limit > 0 else out

    return web.json_response(await call(request, work))


async def inspect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]

    def work(eng: Any) -> dict[str, Any]:
        rec = eng.container(ref)
        doc = eng.inspect_container(rec)
        doc.setdefault("NetworkSettings", {})["Ports"] = _port_map(rec)
        doc["State"]["Pid"] = rec.state.pid
        doc.setdefault("Config", {})["AttachStdin"] = False
        # what clients read without checking (docker-py's run reads LogConfig.Type)
        doc["HostConfig"].setdefault("LogConfig", {"Type": "json-file", "Config": {}})
        if rec.id in request.app[AUTO_REMOVE]:
            doc["HostConfig"]["AutoRemove"] = True
        doc["HostConfig"].setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        doc["HostConfig"]["PortBindings"] = {k: v for k, v in _port_map(rec).items()}
        doc["RestartCount"] = 0
        doc["Driver"] = "overlay2"
        doc["Platform"] = "linux"
        return doc

    return web.json_response(await call(request, work))


async def remove(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    force = bool_param(request, "force")
    bool_param(request, "v")  # anonymous volumes: there are none yet
    if bool_param(request, "link"):
        raise APIError(501, "links are not supported by pyminidocker")
    def work(eng: Any) -> str:
        from pyminidocker.api.events import removing

        rec = eng.container(ref, corrupt_ok=force)
        removing(request.app, rec)
        eng.remove(rec, force)
        return str(rec.id)

    _auto_removed(request.app, await call(request, work))
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    name = request.query.get("name", "")
    if not name:
        raise bad_request("name is required")
    await call(request, lambda eng: eng.rename(eng.container(ref), name))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    wanted = filters_param(request)

    def work(eng: Any) -> list[str]:
        from pyminidocker.engine import filters

        return eng.prune_containers(filters.container_prune_keep(wanted))

    removed = await call(request, work)
    return web.json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    app[AUTO_REMOVE] = set()
    app[REMOVERS] = set()
    app[SUMMARIES] = {}
    table = [
        ("POST", "/containers/create", create),
        ("GET", "/containers/json", list_containers),
        ("POST", "/containers/prune", prune),
        ("GET", "/containers/{id}/json", inspect),
        ("POST", "/containers/{id}/start", start),
        ("POST", "/containers/{id}/stop", stop),
        ("POST", "/containers/{id}/restart", restart),
        ("POST", "/containers/{id}/kill", kill),
        ("POST", "/containers/{id}/wait", wait),
        ("POST", "/containers/{id}/rename", rename),
        ("DELETE", "/containers/{id}", remove),
    ]
    return add_table(app, table)


__all__ = ["add_routes"]
