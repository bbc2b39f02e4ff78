"""Serve a Tornado app on either connection layer inside one asyncio loop; raw clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import tornado.netutil
import tornado.web
from tornado.httpserver import HTTPServer

from webframe.server import HTTPToolsProtocol, HTTPToolsServer

LAYERS = ("httptools", "tornado")


@contextlib.asynccontextmanager
async def serving(
    app: Any, layer: str = "httptools", **kwargs: Any
) -> AsyncIterator[tuple[int, HTTPServer]]:
    """Serve ``app`` on 127.0.0.1 with the layer ``layer``; yields (port, server)."""
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    port = sock.getsockname()[1]
    server: HTTPServer
    if layer == "httptools":
        server = HTTPToolsServer(app, **kwargs)
        server.add_sockets([sock])
        await server.start_serving()
    else:
        kwargs.pop("header_timeout", None)
        server = HTTPServer(app, **kwargs)
        server.add_sockets([sock])
    try:
        yield port, server
    finally:
        server.stop()
        await server.close_all_connections()


async def exchange(port: int, data: bytes, timeout: float = 5.0, half_close: bool = False) -> bytes:
    """Send ``data`` on one connection and read until the server closes it (or timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        if half_close:
            writer.write_eof()
        out = b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                piece = await asyncio.wait_for(reader.read(65536), left)
            except (asyncio.TimeoutError, ConnectionError):
                break
            if not piece:
                break
            out += piece
        return out
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream of HTTP/1.1 answers (Content-Length, chunked or none)."""
    out: list[tuple[int, dict[str, str], bytes]] = []
    rest = raw
    while rest:
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status in (100, 101):
            out.append((status, headers, b""))
            continue
        if "content-length" in headers:
            n = int(headers["content-length"])
            body, rest = rest[:n], rest[n:]
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line, 16)
                body += rest[:size]
                rest = rest[size + 2 :]
                if size == 0:
                    break
        else:
            body, rest = b"", rest
        out.append((status, headers, body))
    return out


class Recorder(tornado.web.RequestHandler):
    """Answers with what it got and records every hit (the side effect tests count)."""

    hits: list[str] = []

    def prepare(self) -> None:
        Recorder.hits.append(f"{self.request.method} {self.request.path}")

    def get(self, *args: str) -> None:
        self.write(f"{self.request.method} {self.request.uri} {self.request.remote_ip} "
                   f"{self.request.protocol}")

    def post(self, *args: str) -> None:
        self.write(b"len=%d:" % len(self.request.body) + self.request.body[:64])

    put = post

    def head(self, *args: str) -> None:
        self.write("not sent")  # counted in Content-Length, never sent for HEAD


def receive(protocol: asyncio.BufferedProtocol, data: bytes) -> int:
    """Bytes from the socket, as the loop hands them to a ``BufferedProtocol``:
    ``get_buffer()``, the bytes copied into it (at most its length), then
    ``buffer_updated(n)``, again until all of ``data`` is in. Returns the number of
    reads it took (as many as a socket holding ``data`` would need)."""
    view = memoryview(data)
    reads = 0
    while view:
        buffer = protocol.get_buffer(-1)
        n = min(len(buffer), len(view))
        assert n > 0, "get_buffer() gave an empty buffer"
        buffer[:n] = view[:n]
        view = view[n:]
        reads += 1
        protocol.buffer_updated(n)
    return reads


class FakeTransport(asyncio.Transport):
    """What a socket transport gives the protocol, without a socket. Given the
    protocol, ``close()`` reports the connection lost to it on the next loop turn."""

    def __init__(self, protocol: asyncio.BaseProtocol | None = None) -> None:
        super().__init__()
        self.protocol = protocol
        self.out = bytearray()
        self.paused = False
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            if self.protocol is not None:
                asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000)}.get(name, default)


def feed(make_app: Callable[[], Any], pieces: list[bytes]) -> tuple[bytes, bool]:
    """Drive one httptools connection to the app ``make_app()`` by hand (no socket), the
    bytes in ``pieces`` one read each, waiting while reading is paused; returns what the
    server wrote and whether it closed the connection."""

    async def go() -> tuple[bytes, bool]:
        protocol = HTTPToolsProtocol(HTTPToolsServer(make_app()))
        transport = FakeTransport(protocol)
        protocol.connection_made(transport)
        for piece in pieces:
            for _ in range(200):
                if not transport.paused or transport.closing:
                    break
                await asyncio.sleep(0)
            if transport.closing:
                break
            assert not transport.paused, "reading stayed paused"
            receive(protocol, piece)
        for _ in range(200):
            if transport.closing:
                break
            await asyncio.sleep(0)
        closing = transport.closing
        if not closing:
            transport.close()
        await asyncio.sleep(0)
        return bytes(transport.out), closing

    return asyncio.run(go())
