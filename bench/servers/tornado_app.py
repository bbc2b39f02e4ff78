"""The raw-Tornado twin of every benchmark server: what a Tornado user writes by hand.

``python -m bench.servers.tornado_app --scenario NAME --port N [--static-dir DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from bench.servers.common import (
    COOKIE_SECRET,
    HELLO,
    JSON_TYPE,
    TEMPLATES,
    TEXT_TYPE,
    bench_args,
    page_context,
)


class HelloHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", TEXT_TYPE)
        self.write(HELLO)


class PageHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.render("page.html", **page_context())


class EchoHandler(tornado.web.RequestHandler):
    def check_xsrf_cookie(self) -> None:
        # Same as the webframe twin: a JSON API route needs no XSRF token.
        return None

    def post(self) -> None:
        data = json.loads(self.request.body)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(json.dumps(data))


def _no_access_log(handler: tornado.web.RequestHandler) -> None:
    # webframe runs with access_log=False; log nothing here either.
    return None


def make_app(scenario: str, static_dir: str | None) -> tornado.web.Application:
    routes: list[Any] = {
        "hello": [(r"/", HelloHandler)],
        "page": [(r"/page", PageHandler)],
        "json": [(r"/echo", EchoHandler)],
        "static": [],
    }[scenario]
    settings: dict[str, Any] = {
        "cookie_secret": COOKIE_SECRET,
        "xsrf_cookies": True,
        "template_path": TEMPLATES,
        "log_function": _no_access_log,
    }
    if static_dir:
        settings["static_path"] = static_dir
    return tornado.web.Application(routes, **settings)


async def serve(app: tornado.web.Application, port: int) -> None:
    sockets = bind_sockets(port, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    print(f"tornado: serving on http://127.0.0.1:{port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    await server.close_all_connections()


def main(argv: list[str] | None = None) -> int:
    ns, rest = bench_args(argv)
    p = argparse.ArgumentParser(prog="tornado_app")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(rest)
    asyncio.run(serve(make_app(ns.scenario, ns.static_dir), args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
