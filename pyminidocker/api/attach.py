"""A container's output and console: /containers/{id}/logs, /attach and /resize, and the
Interactive session of `docker run -i`, which the server starts attached itself."""
from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pyminidocker.api import streams
from pyminidocker.api.app import add_table, bad_request, bool_param, call
from pyminidocker.errors import PmdError, UsageError, suppress

CONSOLE_SIZE = web.AppKey("console_size", dict)  # id -> (rows, columns) asked at create
ATTACHED = web.AppKey("attached", dict)  # container id -> attach streams reading its output


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    """The first word on fut wins: started, or the start's failure."""
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


INTERACTIVE = web.AppKey("interactive", dict)  # container id -> Interactive, until its start


class Interactive:
    """`docker run -i` (and `-it`): the client attaches with stdin before it starts the
    container. The engine has no way into a detached container's stdin, so such a container
    is started attached instead, by the server (as `pyminidocker run -i` starts it): its stdin
    a pipe (or its console, with a tty) fed by the hijacked connection, its output pumped
    back. The server is then its parent: it runs as long as the connection is open (an open
    connection keeps the server from its idle exit)."""

    def __init__(self, resp: streams.Hijacked, want_out: bool, want_err: bool):
        self.resp = resp
        self.want = (want_out, want_err)
        self.taken = asyncio.Event()
        self.fds: dict[str, int] = {}
        self.console = -1
        self.task: asyncio.Future[Any] | None = None

    async def start(self, request: web.Request, rec: Any,
                    on_exit: Callable[[Any], None] | None = None) -> None:
        """Start rec attached to this session; return once it runs; on_exit(engine), if
        given, runs in the start's thread once it has exited. Raises what the engine's start
        raises."""
        loop = asyncio.get_running_loop()
        in_r, in_w = os.pipe() if not rec.tty else (-1, -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe() if not rec.tty else (-1, -1)
        for fd in (in_w, out_r, err_r):
            if fd >= 0:
                os.set_blocking(fd, False)
        self.fds = {"in": in_w, "out": out_r, "err": err_r}
        started: asyncio.Future[None] = loop.create_future()

        def on_started(proc: Any) -> None:
            if rec.tty:
                self.console = proc.console_fd
                from pyminidocker.container.console import set_fd_size

                set_fd_size(self.console, *request.app[CONSOLE_SIZE].pop(rec.id, (24, 80)))
            loop.call_soon_threadsafe(_settle, started, None)

        def work(eng: Any) -> Any:
            try:
                return eng.start(rec, attach=True, stdio=(in_r, out_w,
                                                          err_w if err_w >= 0 else out_w),
                                 on_started=on_started)
            finally:
                for fd in (in_r, out_w, err_w):
                    if fd >= 0:
                        os.close(fd)
                if on_exit is not None:
                    on_exit(eng)

        self.task = asyncio.ensure_future(call(request, work))
        self.task.add_done_callback(lambda t: _settle(
            started, t.exception() or RuntimeError("the container exited at once")))
        try:
            await started
        except BaseException:
            for fd in self.fds.values():
                if fd >= 0:
                    os.close(fd)
            self.fds = {}
            raise
        finally:
            self.taken.set()

    async def serve(self, tty: bool) -> None:
        """Pass input and output until the container has exited and its output is sent."""
        await self.taken.wait()
        if not self.fds or self.task is None:
            return  # its start failed: the start request said so
        pumps = [asyncio.ensure_future(streams.pump(self.fds["out"], streams.STDOUT, tty,
                                                    self.resp, self.want[0]))]
        if self.fds["err"] >= 0:
            pumps.append(asyncio.ensure_future(streams.pump(
                self.fds["err"], streams.STDERR, False, self.resp, self.want[1])))
        in_w = self.fds["in"]
        feeder = asyncio.ensure_future(streams.feed(
            self.resp, lambda: self.console if tty else in_w, in_w, tty))
        try:
            await asyncio.gather(*pumps)
            with suppress(PmdError):
                await self.task
        finally:
            feeder.cancel()
            if self.console >= 0:
                os.close(self.console)
                self.console = -1


async def _records(request: web.Request, rec: Any, tail: int | None, follow: bool,
                   skip: int = 0) -> Any:
    """The container's log records, from a worker thread (following blocks), as they come.
    A client that goes away stops the reader at its next record."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
    gone = False

    def work(eng: Any) -> None:
        n = 0
        try:
            for r in eng.logs(rec, tail=tail, follow=follow):
                if gone:
                    return
                n += 1
                if n <= skip:
                    continue
                asyncio.run_coroutine_threadsafe(queue.put(r), loop).result()
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = asyncio.ensure_future(call(request, work))
    try:
        while (r := await queue.get()) is not None:
            yield r
        await task
    finally:
        gone = True
        while not queue.empty():
            queue.get_nowait()


def _chunk(r: dict[str, str], tty: bool, timestamps: bool) -> bytes:
    data = (f"{r.get('time', '')} " if timestamps else "").encode() + r["log"].encode()
    if tty:
        return data
    return streams.frame(streams.STDERR if r.get("stream") == "stderr" else streams.STDOUT,
                         data)


async def logs(request: web.Request) -> web.StreamResponse:
    ref = request.match_info["id"]
    want_out = bool_param(request, "stdout")
    want_err = bool_param(request, "stderr")
    if not (want_out or want_err):
        raise bad_request("Bad parameters: you must choose at least one stream")
    follow = bool_param(request, "follow")
    timestamps = bool_param(request, "timestamps")
    raw_tail = request.query.get("tail", "all")
    tail = None
    if raw_tail not in ("", "all"):
        try:
            tail = int(raw_tail)
        except ValueError:
            raise bad_request(f"invalid value for tail: {raw_tail!r}") from None
    rec = await call(request, lambda eng: eng.container(ref))
    resp = web.StreamResponse()
    resp.content_type = streams.RAW_STREAM if rec.tty else streams.MULTIPLEXED_STREAM
    await resp.prepare(request)
    async for r in _records(request, rec, tail, follow):
        err = r.get("stream") == "stderr"
        if (err and want_err) or (not err and want_out):
            await resp.write(_chunk(r, rec.tty, timestamps))
    await resp.write_eof()
    return resp


async def attach(request: web.Request) -> web.StreamResponse:
    """The container's output from now on (with logs=1, what it wrote before too), over a
    hijacked connection, until it has exited. With stdin, to a container not started yet
    (`docker run -i`), the start makes an Interactive session of it; to a running container
    started with -i and no tty (its monitor keeps its stdin), what the client sends goes to
    its stdin up to the detach keys (detachKeys, default ctrl-p,ctrl-q), which end the
    attach; to any other, what the client sends is dropped."""
    ref = request.match_info["id"]
    want_out = bool_param(request, "stdout")
    want_err = bool_param(request, "stderr")
    with_logs = bool_param(request, "logs")
    rec = await call(request, lambda eng: eng.container(ref))
    resp = streams.Hijacked(request, multiplexed=not rec.tty)
    if bool_param(request, "stdin") and rec.open_stdin and rec.state.status == "created":
        session = Interactive(resp, want_out, want_err)
        sessions = request.app[INTERACTIVE]
        sessions[rec.id] = session
        await resp.start()
        try:
            await session.serve(rec.tty)
        finally:
            del sessions[rec.id]
        return resp
    stdin = None
    if bool_param(request, "stdin"):
        try:
            stdin = await call(request, lambda eng: eng.open_stdin(
                rec, request.query.get("detachKeys") or None))
        except UsageError as e:
            raise bad_request(str(e)) from None
    await resp.start()
    attached = request.app[ATTACHED]
    attached[rec.id] = attached.get(rec.id, 0) + 1
    try:
        return await _attached_output(request, rec, resp, want_out, want_err, with_logs,
                                      stdin)
    finally:
        if stdin is not None:
            stdin.close()
        attached[rec.id] -= 1
        if not attached[rec.id]:
            del attached[rec.id]


async def _attached_output(request: web.Request, rec: Any, resp: streams.Hijacked,
                           want_out: bool, want_err: bool, with_logs: bool,
                           stdin: Any = None) -> web.StreamResponse:
    output: asyncio.Future[Any] | None = None

    async def drain_input() -> None:
        """The client's input: to the container's stdin (a StdinWriter) or dropped; the
        detach keys end the attach."""
        while data := await resp.input.stream.read(65536):
            if stdin is None:
                continue
            try:
                detached = await call(request, lambda eng: stdin.write(data))
            except OSError:
                return  # the container is gone: its output's end closes the attach
            if detached and output is not None:
                output.cancel()
                return

    reader = asyncio.ensure_future(drain_input())
    output = asyncio.ensure_future(_send_output(request, rec, resp, want_out, want_err,
                                                with_logs))
    try:
        await output
    except asyncio.CancelledError:
        if not output.cancelled():
            raise
    finally:
        reader.cancel()
    return resp


async def _send_output(request: web.Request, rec: Any, resp: streams.Hijacked,
                       want_out: bool, want_err: bool, with_logs: bool) -> None:
    try:
        skip = 0
        if not with_logs:  # what was logged before we came is not ours
            skip = await call(request, lambda eng: sum(1 for _ in eng.logs(rec)))
        # wait for a container that is not started yet (docker run attaches first)
        while rec.state.status == "created":
            await asyncio.sleep(0.02)
            rec = await call(request, lambda eng, r=rec: eng.refresh(r))
        async for r in _records(request, rec, None, True, skip):
            err = r.get("stream") == "stderr"
            if (err and want_err) or (not err and want_out):
                await resp.send(_chunk(r, rec.tty, False))
    except PmdError:
        # removed (--rm) as soon as it exited, its record caught half gone: what it wrote
        # was sent; the headers are long gone, so there is no error to answer anyway
        pass


def console_size(request: web.Request) -> tuple[int, int]:
    """The h and w of a resize request (rows, columns). Raises APIError(400)."""
    out = []
    for name, what in (("h", "height"), ("w", "width")):
        raw = request.query.get(name, "")
        if not raw.isdigit() or int(raw) > 0xFFFF:  # a terminal's size is two u16s
            raise bad_request(f"invalid resize {what} {raw!r}")
        out.append(int(raw))
    return out[0], out[1]


async def resize(request: web.Request) -> web.Response:
    """POST /containers/{id}/resize?h=&w=: the container's console takes that size, as a
    terminal window would (its processes get SIGWINCH). As dockerd: 409 for a container that
    is not running, 200 (and nothing done) for one without a tty."""
    from pyminidocker.container.console import set_fd_size

    ref = request.match_info["id"]
    rows, cols = console_size(request)
    rec = await call(request, lambda eng: eng.container(ref))
    session = request.app[INTERACTIVE].get(rec.id)
    if session is not None and session.console >= 0:  # run -it: the console is ours
        set_fd_size(session.console, rows, cols)
    else:
        await call(request, lambda eng: eng.resize(rec, rows, cols))
    return web.Response(status=200)


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    app[INTERACTIVE] = {}
    app[CONSOLE_SIZE] = {}
    app[ATTACHED] = {}
    return add_table(app, [
        ("GET", "/containers/{id}/logs", logs),
        ("POST", "/containers/{id}/attach", attach),
        ("POST", "/containers/{id}/resize", resize),
    ])


__all__ = ["ATTACHED", "CONSOLE_SIZE", "INTERACTIVE", "Interactive", "add_routes"]
