"""Serving bound sockets: the server of the chosen layer, worker processes, and the
graceful stop (SIGTERM/SIGINT: no new connections, in-flight requests finish within
``shutdown_timeout``, then the app releases what it holds).

:mod:`webframe.cli` parses the flags and binds; this module runs what it bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tornado.autoreload
from tornado.httpserver import HTTPServer

from ..settings import Settings
from . import framing, tornado_impl
from .httptools_server import HTTPToolsServer

if TYPE_CHECKING:
    from ..app import Application

log = logging.getLogger("webframe")

AppFactory = Callable[[Settings], "Application"]
_BODY_CHUNK = 512 * 1024


def create_server(app: Application, s: Settings) -> HTTPServer:
    """The server of ``s.http_impl`` with webframe's timeouts; the app enforces body
    limits itself. Both layers are ``tornado.httpserver.HTTPServer`` instances."""
    # What both layers take alike; the body limit is the app's, not the server's.
    common: dict[str, Any] = {
        "xheaders": s.xheaders,
        "max_header_size": s.max_header_size,
        "idle_connection_timeout": s.idle_connection_timeout,
        "body_timeout": s.body_timeout,
        "max_body_size": framing.UNLIMITED,
    }
    if s.http_impl == "httptools":
        return HTTPToolsServer(
            app, header_timeout=s.header_timeout, chunk_size=_BODY_CHUNK, **common
        )
    server = HTTPServer(app, **common)
    # Body pieces of up to 512 KiB reach data_received (fewer trips through Tornado
    # and the upload parser per byte); socket reads keep Tornado's 64 KiB, since a
    # larger read buffer is allocated for every read, small requests included.
    params = tornado_impl.connection_parameters(server)
    params.chunk_size = _BODY_CHUNK
    # Tornado waits for the next request head (idle keep-alive time included) with
    # one timer; a slow-headers client is bounded by the smaller of the two settings.
    params.header_timeout = min(s.header_timeout, s.idle_connection_timeout)
    return server


def run_workers(
    make_app: AppFactory, settings: Settings, sockets: list[socket.socket], count: int
) -> int:
    """Fork ``count`` workers sharing the sockets; forward SIGTERM/SIGINT; restart crashes."""
    children: dict[int, int] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            # A stop asked for before this worker's loop is up is remembered, not fatal.
            signal.signal(signal.SIGTERM, _remember_stop)
            signal.signal(signal.SIGINT, _remember_stop)
            code = run_worker(make_app, settings, sockets)
            os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for i in range(count):
        spawn(i)
    for sock in sockets:
        sock.close()
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        index = children.pop(pid, None)
        code = os.waitstatus_to_exitcode(status)
        if index is None:
            continue
        if not stopping and code != 0:
            log.error("worker %d (pid %d) exited with %d; starting a new one", index, pid, code)
            spawn(index)
        else:
            worst = max(worst, abs(code))
    return worst


_stop_requested = False


def _remember_stop(signum: int, _frame: object) -> None:
    global _stop_requested
    _stop_requested = True


def run_worker(make_app: AppFactory, settings: Settings, sockets: list[socket.socket]) -> int:
    coro = serve(make_app, settings, sockets)
    if settings.loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


async def serve(make_app: AppFactory, settings: Settings, sockets: list[socket.socket]) -> int:
    app = make_app(settings)
    app.start_background_tasks()
    server = create_server(app, settings)
    server.add_sockets(sockets)
    if settings.debug:
        tornado.autoreload.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if _stop_requested:
        stop.set()
    await stop.wait()
    server.stop()  # no new connections
    if isinstance(server, HTTPToolsServer):
        # Idle keep-alive connections close now, busy ones after their answer
        # (sent with Connection: close).
        left = await server.drain(settings.shutdown_timeout)
        if left:
            log.warning(
                "%d connection(s) still busy after %.0fs; closing them",
                left,
                settings.shutdown_timeout,
            )
        await app.aclose()
        return 0
    deadline = loop.time() + settings.shutdown_timeout
    while app.inflight and loop.time() < deadline:
        await asyncio.sleep(0.02)
    if app.inflight:
        log.warning(
            "%d request(s) still running after %.0fs; closing them",
            len(app.inflight),
            settings.shutdown_timeout,
        )
    await server.close_all_connections()
    await app.aclose()
    return 0
