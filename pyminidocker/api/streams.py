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
"""
from __future__ import annotations

import asyncio
import json
import os
import struct
from collections.abc import Callable
from typing import Any

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
        if exc[0] is None or not isinstance(exc[1], ConnectionError):
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
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            await asyncio.sleep(0.005)
            continue
        data = data[n:]


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
