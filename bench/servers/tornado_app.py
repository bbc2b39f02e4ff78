"""The raw-Tornado twin of every benchmark server: what a Tornado user writes by hand.

``python -m bench.servers.tornado_app --scenario NAME --port N [--static-dir DIR]
[--upload-dir DIR]``

The ``upload`` scenario is the ceiling of this stack for uploads: a
``stream_request_body`` handler writing the body bytes straight to a file, with
``max_body_size`` raised; no parsing, no hashing. ``upload-sha256`` is the same
handler also computing the body's SHA-256 as it arrives (and answering with it),
which is the one per-byte job the webframe demo does that ``upload`` does not: the
twin for comparing the connection layers doing the same work.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import sys
import uuid
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
    UPLOAD_PATH,
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


#: the raw upload server takes bodies up to this size.
MAX_UPLOAD = 8 * 1024**3


@tornado.web.stream_request_body
class RawUploadHandler(tornado.web.RequestHandler):
    """Writes the request body, as it arrives, to a new file in the upload folder."""

    def check_xsrf_cookie(self) -> None:
        return None

    def prepare(self) -> None:
        self.request.connection.set_max_body_size(MAX_UPLOAD)  # type: ignore[union-attr]
        folder = self.settings["upload_dir"]
        self.path = os.path.join(folder, uuid.uuid4().hex)
        self.file = open(self.path, "wb")  # noqa: SIM115 - closed in _done / on_finish
        self.size = 0

    def data_received(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.size += len(chunk)

    def _done(self) -> None:
        self.file.close()
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(json.dumps({"path": self.path, "size": self.size}))

    def post(self) -> None:
        self._done()

    def put(self) -> None:
        self._done()

    def on_finish(self) -> None:
        if not self.file.closed:
            self.file.close()


@tornado.web.stream_request_body
class HashingUploadHandler(RawUploadHandler):
    """RawUploadHandler that also hashes every body byte, as the demo does."""

    def prepare(self) -> None:
        super().prepare()
        self.digest = hashlib.sha256()

    def data_received(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def _done(self) -> None:
        self.file.close()
        self.set_header("Content-Type", JSON_TYPE)
        answer = {"path": self.path, "size": self.size, "sha256": self.digest.hexdigest()}
        self.finish(json.dumps(answer))


def _no_access_log(handler: tornado.web.RequestHandler) -> None:
    # webframe runs with access_log=False; log nothing here either.
    return None


def make_app(
    scenario: str, static_dir: str | None, upload_dir: str | None = None
) -> tornado.web.Application:
    table: dict[str, list[Any]] = {
        "hello": [(r"/", HelloHandler)],
        "page": [(r"/page", PageHandler)],
        "json": [(r"/echo", EchoHandler)],
        "static": [],
        "upload": [(UPLOAD_PATH, RawUploadHandler)],
        "upload-sha256": [(UPLOAD_PATH, HashingUploadHandler)],
    }
    routes = table[scenario]
    settings: dict[str, Any] = {
        "cookie_secret": COOKIE_SECRET,
        "xsrf_cookies": True,
        "template_path": TEMPLATES,
        "log_function": _no_access_log,
    }
    if static_dir:
        settings["static_path"] = static_dir
    if upload_dir:
        os.makedirs(upload_dir, exist_ok=True)
        settings["upload_dir"] = upload_dir
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
    asyncio.run(serve(make_app(ns.scenario, ns.static_dir, ns.upload_dir), args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
