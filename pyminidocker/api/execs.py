"""/containers/{id}/exec and /exec/{id}/...: a command in a running container, its stdio over
a hijacked connection (multiplexed without a TTY, raw with one), over the engine's exec.

Exec instances live in the server's memory, as dockerd's do: an id from create, used by start,
inspect (for the exit code, which the docker CLI reads once the stream ends) and resize.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pyminidocker.api import streams
from pyminidocker.api.app import ACTIVITY, APIError, add_table, call, json_body
from pyminidocker.api.attach import console_size
from pyminidocker.container.console import set_fd_size
from pyminidocker.errors import Conflict, NotFound, PmdError

CREATE_FIELDS: dict[str, Any] = {
    "AttachStdin": bool, "AttachStdout": bool, "AttachStderr": bool, "DetachKeys": str,
    "Tty": bool, "Env": list, "Cmd": list, "Privileged": bool, "User": str,
    "WorkingDir": str, "ConsoleSize": list, "Detach": bool,
    "Container": str,  # docker-py sends it; the path names the container
}
START_FIELDS: dict[str, Any] = {"Detach": bool, "Tty": bool, "ConsoleSize": list}
EXECS = web.AppKey("execs", dict)


@dataclass
class Exec:
    id: str
    container: str
    argv: list[str]
    env: list[str]
    user: str | None
    workdir: str | None
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    console: int = -1
    size: tuple[int, int] = (24, 80)
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _execs(request: web.Request) -> dict[str, Exec]:
    return request.app[EXECS]


def _get(request: web.Request) -> Exec:
    ex = _execs(request).get(request.match_info["id"])
    if ex is None:
        raise APIError(404, f"No such exec instance: {request.match_info['id']}")
    return ex


async def create(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    body = await json_body(request, CREATE_FIELDS)
    argv = body.get("Cmd") or []
    if not argv or not all(isinstance(a, str) for a in argv):
        raise APIError(400, "No exec command specified")
    if body.get("Privileged"):
        raise APIError(501, "privileged exec is not supported by pyminidocker yet")

    def check(eng: Any) -> str:
        rec = eng.container(ref)
        if rec.state.status != "running":
            raise Conflict(f"Container {rec.id} is not running")
        return str(rec.id)

    cid = await call(request, check)
    ex = Exec(id=os.urandom(32).hex(), container=cid, argv=list(argv),
              env=list(body.get("Env") or []), user=body.get("User") or None,
              workdir=body.get("WorkingDir") or None, tty=bool(body.get("Tty")),
              stdin=bool(body.get("AttachStdin")), stdout=bool(body.get("AttachStdout", True)),
              stderr=bool(body.get("AttachStderr", True)))
    size = body.get("ConsoleSize") or []
    if len(size) == 2 and all(isinstance(n, int) and n > 0 for n in size):
        ex.size = (size[0], size[1])
    _execs(request)[ex.id] = ex
    return web.json_response({"Id": ex.id}, status=201)


class _Stdio:
    """An exec's stdio pipes: the process's ends (in_r, out_w, err_w) and the server's
    (in_w, out_r, err_r, non-blocking); -1 where there is none. With a tty there is one
    output (the runtime relays the console to out_w) and input goes to the console."""

    def __init__(self, ex: Exec):
        self.in_r, self.in_w = os.pipe() if ex.stdin and not ex.tty else (-1, -1)
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe() if not ex.tty else (-1, -1)
        for fd in self.ours():
            if fd >= 0:
                os.set_blocking(fd, False)

    def ours(self) -> tuple[int, int, int]:
        return self.in_w, self.out_r, self.err_r

    def theirs(self) -> tuple[int, int, int]:
        return self.in_r, self.out_w, self.err_w


def _launch(request: web.Request, ex: Exec, io: _Stdio, started: asyncio.Event
            ) -> asyncio.Future[int]:
    """Run the exec in a worker thread; started is set once it runs (or failed to). When it
    ends, ex has its exit code (126 for the engine's failure to run it, as dockerd)."""
    loop = asyncio.get_running_loop()
    # a detached exec keeps the server (its worker) up while it runs, as a request does:
    # its process is the server's child, and inspect answers its exit code after
    activity: Any = request.app[ACTIVITY]

    def on_started(proc: Any) -> None:
        ex.pid = proc.pid
        if ex.tty:
            ex.console = proc.console_fd
            set_fd_size(ex.console, *ex.size)
        loop.call_soon_threadsafe(started.set)

    def work(eng: Any) -> int:
        try:
            rec = eng.container(ex.container)
            stdin = io.in_r if io.in_r >= 0 else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                return int(eng.exec(rec, ex.argv, ex.env, ex.user, ex.workdir, ex.tty,
                                    (stdin, io.out_w, io.err_w if io.err_w >= 0 else io.out_w),
                                    on_started=on_started))
            finally:
                if io.in_r < 0:
                    os.close(stdin)
        finally:
            for fd in io.theirs():  # ours: the reader sees EOF once the process's go
                if fd >= 0:
                    os.close(fd)
            loop.call_soon_threadsafe(started.set)

    def finished(t: asyncio.Future[int]) -> None:
        ex.running = False
        e = t.exception()
        ex.exit_code = t.result() if e is None else \
            (e.exit_code if isinstance(e, PmdError) else 126)
        if ex.console >= 0:
            os.close(ex.console)
            ex.console = -1
        ex.done.set()
        if activity is not None:
            activity.release()

    if activity is not None:
        activity.hold()
    task = asyncio.ensure_future(call(request, work))
    task.add_done_callback(finished)
    return task


async def start(request: web.Request) -> web.StreamResponse:
    ex = _get(request)
    body = await json_body(request, START_FIELDS, optional=True)
    if ex.running or ex.exit_code is not None:
        raise APIError(409, f"exec {ex.id[:12]} has already been started")
    ex.running = True
    io = _Stdio(ex)
    started = asyncio.Event()
    task = _launch(request, ex, io, started)
    if body.get("Detach"):
        for fd in io.ours():
            if fd >= 0:
                os.close(fd)
        await started.wait()
        if task.done() and task.exception():
            task.result()  # the engine's error, as Docker's status
        return web.Response(status=200)
    return await _attached(request, ex, io, started, task)


async def _attached(request: web.Request, ex: Exec, io: _Stdio, started: asyncio.Event,
                    task: asyncio.Future[int]) -> web.StreamResponse:
    """The exec's stdio over the hijacked connection, until its output has ended."""
    resp = streams.Hijacked(request, multiplexed=not ex.tty)
    await resp.start()
    pumps = [asyncio.ensure_future(streams.pump(io.out_r, streams.STDOUT, ex.tty, resp,
                                                ex.stdout))]
    if io.err_r >= 0:
        pumps.append(asyncio.ensure_future(streams.pump(io.err_r, streams.STDERR, False, resp,
                                                        ex.stderr)))
    feeder = asyncio.ensure_future(_feed(resp, ex, io.in_w, started))
    try:
        await asyncio.gather(*pumps)
        try:
            await task
        except PmdError as e:
            # too late for an error response: as dockerd, the message goes down the stream
            # (the client reads the exit code, 126 or 127, from inspect)
            text = f"{e}\r\n".encode()
            await resp.send(text if ex.tty else streams.frame(streams.STDOUT, text))
    finally:
        feeder.cancel()
        for p in pumps:
            p.cancel()
    return resp


async def _feed(resp: streams.Hijacked, ex: Exec, in_w: int, started: asyncio.Event) -> None:
    await started.wait()
    await streams.feed(resp, lambda: ex.console if ex.tty else in_w, in_w, ex.tty and ex.stdin)


async def inspect(request: web.Request) -> web.Response:
    ex = _get(request)
    return web.json_response({
        "ID": ex.id, "Running": ex.running, "ExitCode": ex.exit_code,
        "ProcessConfig": {"tty": ex.tty, "entrypoint": ex.argv[0], "arguments": ex.argv[1:],
                          "privileged": False, "user": ex.user or ""},
        "OpenStdin": ex.stdin, "OpenStderr": ex.stderr, "OpenStdout": ex.stdout,
        "CanRemove": False, "ContainerID": ex.container, "DetachKeys": "", "Pid": ex.pid,
    })


async def resize(request: web.Request) -> web.Response:
    ex = _get(request)
    ex.size = console_size(request)
    if ex.console >= 0:
        set_fd_size(ex.console, *ex.size)
    return web.Response(status=200)


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    app[EXECS] = {}
    return add_table(app, [
        ("POST", "/containers/{id}/exec", create),
        ("POST", "/exec/{id}/start", start),
        ("POST", "/exec/{id}/resize", resize),
        ("GET", "/exec/{id}/json", inspect),
    ])


__all__ = ["NotFound", "add_routes"]
