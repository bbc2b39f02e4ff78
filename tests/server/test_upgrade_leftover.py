"""Bytes that arrive with an upgrade request (the first WebSocket frames of a fast
client) reach the upgraded connection, on webframe's Application (whose handlers
may run inside the parser's callbacks) and on a plain Tornado Application."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
import tornado.web
import tornado.websocket

from webframe import Application, Settings

from ._support import LAYERS, serving

FRAMES = 10


class Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message)


def masked_text_frame(text: bytes) -> bytes:
    assert len(text) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
    return struct.pack("!BB", 0x81, 0x80 | len(text)) + mask + body


def read_frames(data: bytes) -> list[bytes]:
    """The payloads of the unmasked server frames in ``data`` (short frames only)."""
    out = []
    while len(data) >= 2:
        size = data[1] & 0x7F
        assert size < 126 and not data[1] & 0x80
        if len(data) < 2 + size:
            break
        out.append(data[2 : 2 + size])
        data = data[2 + size :]
    return out


async def handshake_with_frames(port: int) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    head = (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    frames = b"".join(masked_text_frame(b"message %d" % i) for i in range(FRAMES))
    writer.write(head + frames)  # one write: the frames come in the upgrade's read
    try:
        data = b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while b"\r\n\r\n" not in data or len(read_frames(data.split(b"\r\n\r\n", 1)[1])) < FRAMES:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                piece = await asyncio.wait_for(reader.read(65536), left)
            except asyncio.TimeoutError:
                break
            if not piece:
                break
            data += piece
        assert data.startswith(b"HTTP/1.1 101"), data[:200]
        return read_frames(data.split(b"\r\n\r\n", 1)[1])
    finally:
        writer.close()


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("kind", ["webframe", "tornado"])
def test_frames_sent_with_the_handshake_all_arrive(layer: str, kind: str) -> None:
    routes = [("/ws", Echo)]
    app: tornado.web.Application
    if kind == "webframe":
        app = Application(routes, Settings(cookie_secret="x" * 40, access_log=False))
    else:
        app = tornado.web.Application(routes)

    async def go() -> list[bytes]:
        async with serving(app, layer) as (port, _):
            return await handshake_with_frames(port)

    got = asyncio.run(go())
    assert got == [b"message %d" % i for i in range(FRAMES)]
