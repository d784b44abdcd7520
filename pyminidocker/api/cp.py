"""/containers/{id}/archive: HEAD (what is at a path), GET (its tar), PUT (extract a tar into a
directory), what `docker cp` and docker-py's get_archive/put_archive use, over the engine's
archive operations (pyminidocker.container.archive does the work and keeps it in the root).

The engine reads and writes the files in a worker thread; the tar flows between it and the
client through streams.out_of_thread and into_thread.
"""
from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from pyminidocker.api import streams
from pyminidocker.api.app import APIError, add_table, bad_request, bool_param, call, engine
from pyminidocker.errors import PmdError

STAT_HEADER = "X-Docker-Container-Path-Stat"


def stat_header(stat: Any) -> str:
    """The stat as the header's base64 JSON. dockerd encodes with Go's URL alphabet and the
    docker CLI decodes with it, while docker-py decodes with the standard one (dropping the
    characters it does not know): a JSON whose encoding has neither "+/" nor "-_" reads the
    same in both, and trailing spaces (insignificant in JSON) shift the bytes until it has."""
    data = json.dumps(stat.docker()).encode()
    for pad in range(64):
        enc = base64.urlsafe_b64encode(data + b" " * pad).decode()
        if "-" not in enc and "_" not in enc:
            return enc
    return base64.urlsafe_b64encode(data).decode()


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise bad_request("Bad parameter: path cannot be empty")
    return path


def _statuses(e: PmdError) -> APIError | None:
    from pyminidocker.container.archive import ReadOnly, Refused

    if isinstance(e, ReadOnly):
        return APIError(403, str(e))
    if isinstance(e, Refused):
        return APIError(400, str(e))
    return None


def _stat(eng: Any, ref: str, path: str) -> Any:
    return eng.path_stat(eng.container(ref), path)


async def head(request: web.Request) -> web.Response:
    stat = await call(request, _stat, request.match_info["id"], _path(request))
    return web.Response(headers={STAT_HEADER: stat_header(stat)})


async def get(request: web.Request) -> web.StreamResponse:
    ref, path = request.match_info["id"], _path(request)
    eng = engine(request)

    def produce(out: streams.ThreadWriter) -> None:
        eng.archive_get(eng.container(ref), path, out.write,
                        on_stat=lambda st: out.begin({STAT_HEADER: stat_header(st)}))

    try:
        return await streams.out_of_thread(request, produce)
    except PmdError as e:
        raise _statuses(e) or e from None


async def put(request: web.Request) -> web.Response:
    ref, path = request.match_info["id"], _path(request)
    no_overwrite = bool_param(request, "noOverwriteDirNonDir")
    copy_ids = bool_param(request, "copyUIDGID")
    eng = engine(request)

    def consume(fd: int) -> None:
        with open(fd, "rb", buffering=0, closefd=False) as body:
            eng.archive_put(eng.container(ref), path, body, copy_ids=copy_ids,
                            no_overwrite_dir_nondir=no_overwrite)

    try:
        await streams.into_thread(request, consume)
    except PmdError as e:
        raise _statuses(e) or e from None
    return web.Response(status=200)


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    return add_table(app, [
        ("HEAD", "/containers/{id}/archive", head),
        ("GET", "/containers/{id}/archive", get),
        ("PUT", "/containers/{id}/archive", put),
    ])
