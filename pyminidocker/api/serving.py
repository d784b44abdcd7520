"""The API server's event loop: aiohttp over the listening sockets that pyminidocker.api.server
made, until SIGTERM/SIGINT or the idle timer. Imported only once a client has connected (see
server.wait_for_client): aiohttp and asyncio are most of the server's memory.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from pyminidocker.api.streams import RawReader

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

log = logging.getLogger("pyminidocker.api")


class Activity:
    """Requests in flight, and the idle timer that stops the server after `idle` seconds
    without any (0: never)."""

    def __init__(self, idle: float, stop: asyncio.Event):
        self.idle = idle
        self.stop = stop
        self.active = 0
        self.timer: asyncio.TimerHandle | None = None
        self.idled = False  # the stop is the idle timer's (not a signal's)
        self.quiet = asyncio.Event()  # set while no request is in flight
        self.quiet.set()

    def arm(self) -> None:
        if self.active == 0:
            self.quiet.set()
            if self.idle > 0:
                self.timer = asyncio.get_running_loop().call_later(self.idle, self._idle)

    def _idle(self) -> None:
        self.idled = True
        self.stop.set()

    def _busy(self) -> None:
        self.active += 1
        self.quiet.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def hold(self) -> None:
        """Work of the server's own (a --rm container to remove) keeps it up as a request."""
        self._busy()

    def release(self) -> None:
        self.active -= 1
        self.arm()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self._busy()
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            self.active -= 1
            self.arm()


class _Handler(RequestHandler):
    """aiohttp's connection handler, keeping a hijacked connection open when the client
    half-closes it: `docker run -i` shuts its writing side at the end of stdin and reads the
    output to the end. (aiohttp's own closes the connection at EOF.)"""

    def eof_received(self) -> bool:  # type: ignore[override]
        parser = self._payload_parser
        if isinstance(parser, RawReader):
            parser.feed_eof()
            return True
        return False


class _Site(web.BaseSite):
    """A site on a listening socket, served by _Handler."""

    def __init__(self, runner: web.AppRunner, sock: socket.socket,
                 ssl_context: ssl.SSLContext | None = None):
        super().__init__(runner, ssl_context=ssl_context)
        self._sock = sock

    @property
    def name(self) -> str:
        addr = self._sock.getsockname()
        if isinstance(addr, str):
            return f"unix://{addr}"
        return f"{'https' if self._ssl_context else 'http'}://{addr[0]}:{addr[1]}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        kwargs = server._kwargs  # the handler arguments the application was given

        def handler() -> _Handler:
            return _Handler(server, loop=loop, **kwargs)

        self._server = await loop.create_server(handler, sock=self._sock,
                                                ssl=self._ssl_context)

    def stop_accepting(self) -> None:
        """No more connections: the listening socket is left to the process that made it
        (this one's copy is closed)."""
        if self._server is not None:
            self._server.close()


async def serve(config: Any, socks: list[socket.socket], idle: float,
                tls: ssl.SSLContext | None = None, ready: Any = None) -> None:
    """Serve the listening socks until SIGTERM/SIGINT or `idle` seconds without a request
    (the caller removes the unix socket)."""
    from pyminidocker.api.routes import make_app

    stop = asyncio.Event()
    activity = Activity(idle, stop)
    app = make_app(config, activity)
    runner = web.AppRunner(app, handle_signals=False, access_log=log if
                           log.isEnabledFor(logging.DEBUG) else None,
                           keepalive_timeout=60, shutdown_timeout=5)
    await runner.setup()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sites = []
    try:
        for s in socks:
            s.setblocking(False)
            site = _Site(runner, s, tls if s.family != socket.AF_UNIX else None)
            await site.start()
            sites.append(site)
            log.info("serving the Docker API on %s", site.name)
        activity.arm()
        if ready is not None:
            ready()
        await stop.wait()
        if activity.idled:
            await _leave_quietly(sites, activity)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


# a client's request follows its connect at once: a connection accepted just before the last
# accept has its request in flight within this
_LAST_REQUEST_GRACE = 0.05


async def _leave_quietly(sites: list[_Site], activity: Activity) -> None:
    """Before an idle exit: accept no more (a client that connects from now on waits in the
    backlog, for the next worker or server) and finish what was accepted, so that no client
    sees its connection closed before its answer."""
    for site in sites:
        site.stop_accepting()
    await asyncio.sleep(_LAST_REQUEST_GRACE)
    while not activity.quiet.is_set():
        await activity.quiet.wait()


def run(config: Any, socks: list[socket.socket], idle: float,
        tls: ssl.SSLContext | None = None) -> None:
    """serve() on an event loop of its own, until it returns (a worker's life). Unlike
    asyncio.run it does not wait for the worker threads still busy then: a log follower
    whose client went away waits in its thread for the container's next line, which may
    never come, and an idle worker (accepting no more) must not wait with it while clients
    queue for its successor. Such a thread only reads: the process leaves without it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(config, socks, idle, tls))
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    finally:
        loop.close()  # its executor is shut down without a wait
