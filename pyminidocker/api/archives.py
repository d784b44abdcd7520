"""Images and containers in and out as tars, over the engine API: /images/get (save),
/images/load, /images/create?fromSrc=- (import), /images/{name}/push,
/containers/{id}/export, /commit.

A tar the engine writes (save, export) is streamed as it is made, and one the client sends
(load, import) goes to the engine as it arrives (streams.out_of_thread and into_thread); the
engine reads it as hostile and stores nothing of a bad one.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pyminidocker.api.app import add_table, bad_request, bool_param, call, engine
from pyminidocker.api.streams import JSONStream, into_thread, out_of_thread, progress_message
from pyminidocker.errors import PmdError

Sink = Callable[[bytes], object]


async def _tar_response(request: web.Request, produce: Callable[[Any, Sink], None]
                        ) -> web.StreamResponse:
    """Stream what produce(engine, sink) writes as an application/x-tar response."""
    eng = engine(request)
    return await out_of_thread(request, lambda out: produce(eng, out.write))


async def save(request: web.Request) -> web.StreamResponse:
    """GET /images/get?names=A&names=B, GET /images/{name}/get."""
    names = request.query.getall("names", [])
    if "name" in request.match_info:
        names = [request.match_info["name"]]
    if not names:
        raise bad_request("at least one image name is required (names=)")
    # the engine finds every image before it writes a byte: NotFound is a plain 404
    return await _tar_response(request, lambda eng, sink: eng.save(names, sink))


async def export(request: web.Request) -> web.StreamResponse:
    """GET /containers/{id}/export."""
    rec = await call(request, lambda eng: eng.container(request.match_info["id"]))
    return await _tar_response(request, lambda eng, sink: eng.export(rec, sink))


async def _from_body(request: web.Request, fn: Callable[[Any, int], Any]) -> Any:
    """fn(engine, fd) in a worker thread, fd reading the request's body as it arrives."""
    eng = engine(request)
    return await into_thread(request, lambda fd: fn(eng, fd))


async def load(request: web.Request) -> web.StreamResponse:
    """POST /images/load[?quiet=1]: the body is the tar."""
    loaded = await _from_body(request, lambda eng, fd: eng.load(fd))
    from pyminidocker.engine import familiar

    async with JSONStream(request) as stream:
        for image_id, names in loaded:
            if not names:
                await stream.send({"stream": f"Loaded image ID: sha256:{image_id}\n"})
            for name in names:
                await stream.send({"stream": f"Loaded image: {familiar(name)}\n"})
    return stream.response


async def import_image(request: web.Request) -> web.StreamResponse:
    """POST /images/create?fromSrc=-&repo=&tag=&message=&changes=: the body is the tar (a
    URL in fromSrc is refused). Answers Docker's stream: {"status": "sha256:..."}."""
    q = request.query
    if q.get("fromSrc") != "-":
        raise bad_request("importing from a URL is not supported: send the tar as the body")
    repo, tag = q.get("repo", ""), q.get("tag", "")
    ref = (f"{repo}:{tag}" if tag else repo) or None
    changes = [line for c in q.getall("changes", []) for line in c.splitlines() if line]
    image_id = await _from_body(request, lambda eng, fd: eng.import_image(
        fd, ref, q.get("message", ""), changes))
    async with JSONStream(request) as stream:
        await stream.send({"status": f"sha256:{image_id}"})
    return stream.response


async def push(request: web.Request) -> web.StreamResponse:
    """POST /images/{name}/push[?tag=TAG]: Docker's JSON progress stream; an error once it
    has started is its last message. Credentials are the engine's (`login`), not the
    X-Registry-Auth header."""
    from pyminidocker.engine import parse_reference

    name = request.match_info["name"]
    tag = request.query.get("tag", "")
    full = f"{name}:{tag}" if tag else name
    ref = parse_reference(full)  # InvalidReference: 400
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def progress(ev: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ev)

    task = asyncio.ensure_future(call(request, lambda eng: eng.push(full, progress)))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    async with JSONStream(request) as stream:
        await stream.send({"status": f"The push refers to repository [{ref.name}]"})
        while (ev := await queue.get()) is not None:
            await stream.send(progress_message(ev))
        try:
            results = task.result()
        except PmdError as e:
            await stream.send({"errorDetail": {"message": str(e)}, "error": str(e)})
            return stream.response
        for _, res in results:
            await stream.send({"status": f"{res.tag}: digest: {res.digest} size: {res.size}"})
            await stream.send({"progressDetail": {}, "aux": {
                "Tag": res.tag, "Digest": res.digest, "Size": res.size}})
    return stream.response


async def commit(request: web.Request) -> web.Response:
    """POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=; 201 {"Id"}."""
    q = request.query
    container = q.get("container", "")
    if not container:
        raise bad_request("container is required")
    repo, tag = q.get("repo", ""), q.get("tag", "")
    if tag and not repo:
        raise bad_request("a tag needs a repo")
    ref = (f"{repo}:{tag}" if tag else repo) or None
    changes = [line for c in q.getall("changes", []) for line in c.splitlines() if line]
    pause = bool_param(request, "pause", True)
    await request.read()  # the container config a client may send: not applied (see README)

    def work(eng: Any) -> str:
        rec = eng.container(container)
        return str(eng.commit(rec, ref, q.get("comment", ""), q.get("author", ""), changes,
                              pause=pause))

    image_id = await call(request, work)  # a bad change is a UsageError: 400
    return web.json_response({"Id": f"sha256:{image_id}"}, status=201)


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    table = [
        ("GET", "/images/get", save),
        ("GET", "/images/{name:.+}/get", save),
        ("POST", "/images/load", load),
        ("POST", "/images/{name:.+}/push", push),
        ("GET", "/containers/{id}/export", export),
        ("POST", "/commit", commit),
    ]
    return add_table(app, table)


__all__ = ["add_routes"]
