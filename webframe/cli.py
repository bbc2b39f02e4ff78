"""``python run.py``: parse flags into Settings, bind, fork workers, serve, stop gracefully."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tornado.autoreload
import tornado.netutil
from tornado.httpserver import HTTPServer

from .app import Application
from .errors import ConfigurationError
from .server import HTTPToolsServer, framing, tornado_impl
from .sessions.registry import valid_schemes
from .settings import Settings

log = logging.getLogger("webframe")

AppFactory = Callable[[Settings], Application]
_BODY_CHUNK = 512 * 1024


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command-line flags; every flag overrides its ``WEBFRAME_*`` variable."""
    p = argparse.ArgumentParser(prog=prog, description="Serve a webframe application.")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 8888; 0 picks a free one)")
    p.add_argument(
        "--debug",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reload code and templates on change, show tracebacks (never in production)",
    )
    p.add_argument(
        "--processes", type=int, help="worker processes (default 1; 0 = one per CPU core)"
    )
    p.add_argument(
        "--xheaders",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trust X-Forwarded-For/-Proto from a reverse proxy (off by default)",
    )
    p.add_argument(
        "--loop", choices=("asyncio", "uvloop"), help="event loop (uvloop: webframe[fast])"
    )
    p.add_argument(
        "--http",
        dest="http_impl",
        choices=("httptools", "tornado"),
        help="HTTP connection layer (default httptools; tornado: Tornado's own HTTPServer)",
    )
    p.add_argument("--session-store", help="session store URL: " + valid_schemes())
    p.add_argument("--instance-path", help="folder for the dev secret, session db and uploads")
    p.add_argument(
        "--upload-storage",
        help="where uploads are kept: file:///path or s3://bucket/prefix (AWS_* variables)",
    )
    return p


def parse_settings(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    prog: str | None = None,
) -> Settings:
    """Settings from CLI flags > environment > ``defaults`` > webframe's defaults."""
    args = build_parser(prog).parse_args(argv)
    settings = Settings.from_sources(vars(args), env, defaults)
    check_serving(settings)
    return settings


def check_serving(s: Settings) -> None:
    """Refuse combinations of settings that cannot work together."""
    if s.processes != 1 and s.debug:
        raise ConfigurationError(
            "processes", "--debug reloads code in one process; use --processes 1 with --debug"
        )
    if s.processes != 1 and (s.session_store or "").startswith("memory:"):
        raise ConfigurationError(
            "session_store",
            "memory:// keeps sessions inside one process, so workers would not share them; "
            "use the SQLite default or redis:// with --processes",
        )
    if s.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "loop", "uvloop is not installed: pip install 'webframe[fast]'"
            ) from None


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


def main(
    make_app: AppFactory,
    argv: Sequence[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> int:
    """Entry point of ``run.py``: returns the process exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = parse_settings(argv, defaults=defaults, prog="run.py")
        # Build one app up front so bad settings fail before binding or forking.
        make_app(settings)
        sockets = tornado.netutil.bind_sockets(settings.port, settings.host)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 2
    port = sockets[0].getsockname()[1]
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    workers = settings.processes or (os.cpu_count() or 1)
    plural = "es" if workers != 1 else ""
    debug = "on" if settings.debug else "off"
    print(
        f"webframe: serving on http://{host}:{port}/ ({workers} process{plural}, debug {debug})",
        flush=True,
    )
    if workers == 1:
        return _run_worker(make_app, settings, sockets)
    return _run_workers(make_app, settings, sockets, workers)


def _run_workers(
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
            code = _run_worker(make_app, settings, sockets)
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


def _run_worker(make_app: AppFactory, settings: Settings, sockets: list[socket.socket]) -> int:
    coro = _serve(make_app, settings, sockets)
    if settings.loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


async def _serve(make_app: AppFactory, settings: Settings, sockets: list[socket.socket]) -> int:
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
