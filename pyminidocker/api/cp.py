"""/containers/{id}/archive: HEAD (what is at a path), GET (its tar), PUT (extract a tar into a
directory), what `docker cp` and docker-py's get_archive/put_archive use, over the engine's
archive operations (pyminidocker.container.archive does the work and keeps it in the root).

The engine reads and writes files: it runs in a worker thread, and the tar flows between that
thread and the event loop one chunk at a time, so neither side holds a whole archive.
"""
from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp import web

from pyminidocker.api.app import BODY_TIMEOUT, APIError, add_table, bad_request, bool_param, call
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
    loop = asyncio.get_running_loop()
    resp = web.StreamResponse()

    async def begin(stat: Any) -> None:
        resp.content_type = "application/x-tar"
        resp.headers[STAT_HEADER] = stat_header(stat)
        await resp.prepare(request)

    def run(eng: Any) -> None:
        rec = eng.container(ref)
        # each chunk waits for the client to take the one before: a slow reader slows the
        # walk instead of filling memory; one that went away ends it (ConnectionError)
        eng.archive_get(rec, path,
                        lambda chunk: asyncio.run_coroutine_threadsafe(
                            resp.write(chunk), loop).result(),
                        on_stat=lambda st: asyncio.run_coroutine_threadsafe(
                            begin(st), loop).result())

    try:
        await call(request, run)
    except PmdError as e:
        if resp.prepared:  # too late for a status: the client sees a truncated tar
            raise ConnectionResetError(str(e)) from None
        raise _statuses(e) or e from None
    await resp.write_eof()
    return resp


class _Body:
    """The request body as a file with readinto, for the worker thread (read_tar)."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop):
        self.request, self.loop = request, loop
        self.pending = memoryview(b"")

    def readinto(self, buf: Any) -> int:
        if not self.pending:
            fut = asyncio.run_coroutine_threadsafe(self._read(), self.loop)
            self.pending = memoryview(fut.result())
            if not self.pending:
                return 0
        n = min(len(buf), len(self.pending))
        # through a byte view: a ctypes array's own slice assignment copies byte by byte
        # (75 ms a MiB)
        memoryview(buf).cast("B")[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    async def _read(self) -> bytes:
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                # a client's chunks are small (64 KiB at most are buffered): gathered up to
                # 1 MiB, for one trip between the threads per MiB rather than per chunk
                chunks, size = [], 0
                while size < (1 << 20):
                    chunk = await self.request.content.readany()
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                return b"".join(chunks)
        except TimeoutError:
            raise APIError(408, f"no part of the archive received within "
                           f"{BODY_TIMEOUT:g} s") from None

    def seekable(self) -> bool:
        return False


async def put(request: web.Request) -> web.Response:
    ref, path = request.match_info["id"], _path(request)
    no_overwrite = bool_param(request, "noOverwriteDirNonDir")
    copy_ids = bool_param(request, "copyUIDGID")
    body = _Body(request, asyncio.get_running_loop())

    def run(eng: Any) -> None:
        eng.archive_put(eng.container(ref), path, body, copy_ids=copy_ids,
                        no_overwrite_dir_nondir=no_overwrite)

    try:
        await call(request, run)
    except PmdError as e:
        raise _statuses(e) or e from None
    return web.Response(status=200)


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    return add_table(app, [
        ("HEAD", "/containers/{id}/archive", head),
        ("GET", "/containers/{id}/archive", get),
        ("PUT", "/containers/{id}/archive", put),
    ])
