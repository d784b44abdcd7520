"""What the API streams to its clients.

- JSON messages, one object after another (pull progress, events, stats): Docker writes them
  back to back with a newline; clients (the docker CLI's jsonmessage, docker-py) decode a stream
  of JSON values, so each is flushed as it happens.
- stdout and stderr multiplexed on one stream (logs, attach and exec without a TTY): each chunk
  goes behind an 8-byte header, [stream, 0, 0, 0, size as a big-endian uint32], stream 1 for
  stdout and 2 for stderr (moby's stdcopy format). With a TTY there is one stream, sent raw.
- A hijacked connection (attach, exec start): the client asks with `Connection: Upgrade` and
  `Upgrade: tcp`, the server answers `101 UPGRADED`, and from then on the socket carries the
  container's raw (or multiplexed) stdio both ways, with half-close: the client shuts down its
  writing side when its stdin ends and still reads the output to the end.
- Archives (cp, save, export, load, import): the engine reads and writes them in a worker
  thread (it blocks on files), and they flow between that thread and the event loop a chunk at a
  time, so that neither side holds a whole archive: out_of_thread and into_thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

STDIN, STDOUT, STDERR, SYSTEM = 0, 1, 2, 3
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

_HEADER = struct.Struct(">BxxxL")


def frame(stream: int, data: bytes) -> bytes:
    """One chunk of the multiplexed format. Raises ValueError for an unknown stream."""
    if stream not in (STDIN, STDOUT, STDERR, SYSTEM):
        raise ValueError(f"no such stream: {stream}")
    return _HEADER.pack(stream, len(data)) + data


def unframe(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete chunks at the start of data, and what is left of an incomplete one."""
    chunks = []
    while len(data) >= _HEADER.size:
        stream, size = _HEADER.unpack_from(data)
        if len(data) < _HEADER.size + size:
            break
        chunks.append((stream, data[_HEADER.size:_HEADER.size + size]))
        data = data[_HEADER.size + size:]
    return chunks, data


def client_gone(request: web.Request) -> bool:
    """Whether the client has closed the connection: a streamed response that has nothing
    to send (a wait, an events stream) learns it only so, and would hold the server up."""
    transport = request.transport
    return transport is None or transport.is_closing()


class JSONStream:
    """A response of JSON messages, each written (and flushed) as it comes."""

    def __init__(self, request: web.Request, status: int = 200):
        self.request = request
        self.response = web.StreamResponse(status=status)
        self.response.content_type = "application/json"

    async def __aenter__(self) -> JSONStream:
        await self.response.prepare(self.request)
        return self

    async def send(self, message: Any) -> None:
        await self.response.write(json.dumps(message).encode() + b"\r\n")

    async def __aexit__(self, *exc: object) -> None:
        if not client_gone(self.request) and (exc[0] is None or not isinstance(
                exc[1], ConnectionError)):
            await self.response.write_eof()


class RawReader:
    """What the client sends on a hijacked connection, as an asyncio.StreamReader. aiohttp's
    protocol feeds it once it is its payload parser (as it feeds a websocket reader)."""

    def __init__(self, limit: int = 1 << 20):
        self.stream = asyncio.StreamReader(limit=limit)

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.stream.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.stream.feed_eof()


class Hijacked(web.StreamResponse):
    """The response of a hijacked connection: `101 UPGRADED` (or, for a client that did not
    ask for the upgrade, Docker's older `200 OK` followed by the raw stream), then whatever
    the endpoint writes, unframed by HTTP (no chunked encoding). The connection is closed
    when the endpoint is done."""

    def __init__(self, request: web.Request, multiplexed: bool):
        upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
        super().__init__(status=101 if upgrade else 200, reason="UPGRADED" if upgrade else None)
        self._length_check = False  # raw bytes after the headers, as a websocket's
        self.content_type = MULTIPLEXED_STREAM if multiplexed else RAW_STREAM
        if upgrade:
            self.headers["Connection"] = "Upgrade"
            self.headers["Upgrade"] = "tcp"
        self.force_close()
        self.input = RawReader()
        self._request = request

    async def start(self) -> None:
        """Send the headers and take over the connection's input."""
        await self.prepare(self._request)
        protocol = self._request.protocol
        if protocol is None:
            raise ConnectionResetError("the client went away")
        protocol.set_parser(self.input)  # type: ignore[arg-type]

    async def send(self, data: bytes) -> None:
        await self.write(data)


async def pump(fd: int, stream: int, raw: bool, resp: Hijacked, wanted: bool) -> None:
    """What a process writes on fd (non-blocking), to the client (framed unless raw), until
    EOF; fd is closed then."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                return
            if wanted:
                await resp.send(data if raw else frame(stream, data))
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def write_all(fd: int, data: bytes) -> None:
    """data to fd (non-blocking: a pipe or a console), waiting while it is full. Raises
    OSError (BrokenPipeError: its reader is gone)."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(fd, writable.set_result, None)
            try:
                await writable
            finally:
                loop.remove_writer(fd)


async def feed(resp: Hijacked, fd_of: Callable[[], int], pipe_w: int, console: bool) -> None:
    """The client's input to a process: to fd_of() (its stdin pipe's write end, pipe_w, or
    its console; -1: not attached, dropped as Docker drops it). At the client's EOF the pipe
    is closed, and a console gets ^D, as a terminal's user would type it."""
    try:
        while data := await resp.input.stream.read(65536):
            fd = fd_of()
            if fd >= 0:
                await write_all(fd, data)
        if console and fd_of() >= 0:
            os.write(fd_of(), b"\x04")
    except OSError:
        pass  # the process is gone
    finally:
        if pipe_w >= 0:
            os.close(pipe_w)


# ---- archives between the engine's thread and the event loop ---------------------------------

T = TypeVar("T")


class ThreadWriter:
    """A response body written from a worker thread. Each write hands its chunk to the event
    loop and returns once the response has taken it: a slow client slows the writer instead of
    filling memory, and one that went away fails the writer's next write (ConnectionError).
    The headers go with the first chunk, or with begin()."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop,
                 content_type: str):
        self.request = request
        self.loop = loop
        self.response = web.StreamResponse(headers={"Content-Type": content_type})

    def begin(self, headers: dict[str, str]) -> None:
        """Send the headers, with these added (called from the worker thread)."""
        self._run(self._begin(headers))

    def write(self, chunk: bytes) -> None:
        """Send chunk (called from the worker thread). Raises ConnectionError."""
        self._run(self._write(chunk))

    def _run(self, coro: Any) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _begin(self, headers: dict[str, str]) -> None:
        self.response.headers.update(headers)
        await self.response.prepare(self.request)

    async def _write(self, chunk: bytes) -> None:
        if not self.response.prepared:
            await self.response.prepare(self.request)
        await self.response.write(chunk)


async def out_of_thread(request: web.Request, produce: Callable[[ThreadWriter], Any],
                        content_type: str = "application/x-tar") -> web.StreamResponse:
    """The response of what produce(writer) writes, run in a worker thread. What produce
    raises before the first byte is raised here (the client gets it as an error response);
    after it, the connection is cut, as dockerd does: an archive cannot carry an error."""
    loop = asyncio.get_running_loop()
    out = ThreadWriter(request, loop, content_type)
    try:
        await loop.run_in_executor(None, produce, out)
    except Exception:
        if not out.response.prepared:
            raise
        if request.transport is not None:
            request.transport.close()
        return out.response
    if not out.response.prepared:
        await out.response.prepare(request)
    await out.response.write_eof()
    return out.response


async def into_thread(request: web.Request, consume: Callable[[int], T]) -> T:
    """consume(fd) in a worker thread, fd the read end of a pipe that carries the request's
    body as it arrives (the pipe bounds what is in flight). consume need not read it all: what
    it leaves is read and dropped. Raises what consume raises; APIError(408) when the client
    sends nothing for BODY_TIMEOUT seconds (the pipe then ends early, for consume)."""
    from pyminidocker.api.app import BODY_TIMEOUT, APIError

    loop = asyncio.get_running_loop()
    r, w = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(w, False)
    with contextlib.suppress(OSError):  # 1 MiB in flight rather than 64 KiB: fewer wake-ups
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)

    def work() -> T:
        try:
            return consume(r)
        finally:
            os.close(r)

    task = loop.run_in_executor(None, work)
    try:
        reading = True
        while True:
            try:
                async with asyncio.timeout(BODY_TIMEOUT):
                    chunk = await request.content.readany()
            except TimeoutError:
                raise APIError(408, "no part of the body received within "
                               f"{BODY_TIMEOUT:g} s") from None
            if not chunk:
                break
            if reading:
                try:
                    await write_all(w, chunk)
                except BrokenPipeError:
                    reading = False  # consume is done with it
    except BaseException:
        task.add_done_callback(lambda t: t.exception())  # consume's error, if any: not ours
        raise
    finally:
        os.close(w)
    return await task


def progress_message(ev: Any) -> dict[str, Any]:
    """A pull event as Docker's JSON message (what the docker CLI's jsonmessage renders)."""
    msg: dict[str, Any] = {"status": ev.status, "id": ev.id}
    if ev.status == "Downloading" and ev.total:
        from pyminidocker.humanize import human_size

        width = 50
        done = min(width, int(width * ev.current / ev.total))
        bar = "=" * done + (">" if done < width else "") + " " * (width - done - 1)
        msg["progressDetail"] = {"current": ev.current, "total": ev.total}
        msg["progress"] = f"[{bar}] {human_size(ev.current)}/{human_size(ev.total)}"
    else:
        msg["progressDetail"] = {}
    return msg
