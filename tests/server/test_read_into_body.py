"""The httptools layer reads a large body straight into the handler's reused buffer.

``HTTPToolsProtocol`` is an ``asyncio.BufferedProtocol``: while a Content-Length body
of a ``reuses_body_buffer`` handler is read past the parser, ``get_buffer()`` gives
the loop the rest of that handler's ``bytearray``, so the object ``data_received``
is handed is the one the socket was read into. Served over a real socket, on
asyncio's own loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import tornado.test
import tornado.web
import uvloop

from webframe import Application, RequestHandler
from webframe.server import HTTPToolsProtocol, HTTPToolsServer, framing
from webframe.server.httptools_read import READ_SIZE
from webframe.testing import test_settings

from ._support import FakeTransport, receive, responses, serving

MiB = 1024 * 1024
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@tornado.web.stream_request_body
class Sink(RequestHandler):
    """Hashes a streamed body; keeps every piece object (to compare identities)."""

    reuses_body_buffer: ClassVar[bool] = True
    max_body_size = 1 << 30
    pieces: ClassVar[list[Any]] = []
    lengths: ClassVar[list[int]] = []

    def prepare(self) -> None:
        self.digest = hashlib.sha256()

    def data_received(self, chunk: bytes) -> None:
        Sink.pieces.append(chunk)
        Sink.lengths.append(len(chunk))
        self.digest.update(chunk)

    def put(self) -> None:
        self.write(self.digest.hexdigest())


class Reads:
    """What the loop reads into: every buffer ``get_buffer`` gave, and how many bytes
    landed in a request's own buffer rather than the server's read buffer."""

    def __init__(self) -> None:
        self.targets: list[Any] = []
        self.into_body = 0
        self.into_server = 0


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    seen = Reads()
    get_buffer = HTTPToolsProtocol.get_buffer
    buffer_updated = HTTPToolsProtocol.buffer_updated

    def spy_get(self: HTTPToolsProtocol, sizehint: int) -> memoryview:
        view = get_buffer(self, sizehint)
        seen.targets.append(view.obj)
        return view

    def spy_updated(self: HTTPToolsProtocol, nbytes: int) -> None:
        if seen.targets[-1] is self.server.read_view.obj:
            seen.into_server += nbytes
        else:
            seen.into_body += nbytes
        buffer_updated(self, nbytes)

    monkeypatch.setattr(HTTPToolsProtocol, "get_buffer", spy_get)
    monkeypatch.setattr(HTTPToolsProtocol, "buffer_updated", spy_updated)
    Sink.pieces.clear()
    Sink.lengths.clear()
    yield seen
    Sink.pieces.clear()
    Sink.lengths.clear()


def body_of(size: int) -> bytes:
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB, differs at every offset
    return (block * (size // len(block) + 1))[:size]


def put(
    loop: str, size: int, then: bytes = b"", tls: bool = False
) -> list[tuple[int, dict[str, str], bytes]]:
    """PUT a ``size``-byte body to /sink over a real socket (``then``: requests
    pipelined after it; ``tls``: over TLS); returns the answers."""
    body = body_of(size)
    app = Application([("/sink", Sink)], test_settings(xsrf=False))
    options: dict[str, Any] = {}
    client = None
    if tls:
        certs = Path(tornado.test.__file__).parent
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs / "test.crt", certs / "test.key")
        options["ssl_options"] = context
        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE

    async def go() -> bytes:
        async with serving(app, **options) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            close = b"" if then else b"Connection: close\r\n"
            writer.write(b"PUT /sink HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n" % (
                close, size))
            await writer.drain()
            for start in range(0, size, MiB):
                writer.write(body[start : start + MiB])
                await writer.drain()
            writer.write(then)
            out = await asyncio.wait_for(reader.read(), 60)
            writer.close()
            return out

    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return responses(runner.run(go()))


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_the_socket_is_read_into_the_buffer_the_handler_is_given(
    reads: Reads, loop: str
) -> None:
    size = 48 * MiB + 12345
    [(status, _, answer)] = put(loop, size)
    assert status == 200
    assert answer.decode() == hashlib.sha256(body_of(size)).hexdigest()
    assert sum(Sink.lengths) == size
    assert {type(piece) for piece in Sink.pieces} == {bytearray}
    # Every piece is a buffer a read went into, not a copy of one, except what came
    # in the read of the head (into the server's buffer, up to READ_SIZE bytes).
    targets = {id(target) for target in reads.targets}
    copied = [len(piece) for piece in Sink.pieces if id(piece) not in targets]
    assert sum(copied) <= READ_SIZE, copied
    assert len(copied) < len(Sink.pieces) // 4, copied
    # The rest of the body went straight into those buffers.
    assert reads.into_body >= size - READ_SIZE, (reads.into_body, reads.into_server)
    assert reads.into_server < 2 * READ_SIZE
    # Pieces grew to the largest buffer (the growth policy still holds).
    assert max(Sink.lengths) == framing.BODY_BUFFER


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_over_tls_too(reads: Reads, loop: str) -> None:
    """TLS runs in the loop, which decrypts into the buffer ``get_buffer`` gives."""
    size = 8 * MiB + 3
    [(status, _, answer)] = put(loop, size, tls=True)
    assert status == 200
    assert answer.decode() == hashlib.sha256(body_of(size)).hexdigest()
    targets = {id(target) for target in reads.targets}
    assert sum(n for piece, n in zip(Sink.pieces, Sink.lengths, strict=True)
               if id(piece) not in targets) <= READ_SIZE
    assert reads.into_body >= size - READ_SIZE


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_request_pipelined_after_the_body_is_parsed(reads: Reads, loop: str) -> None:
    size = 4 * MiB + 1
    then = b"PUT /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    answers = put(loop, size, then)
    assert [status for status, _, _ in answers] == [200, 200]
    assert answers[0][2].decode() == hashlib.sha256(body_of(size)).hexdigest()
    assert answers[1][2].decode() == hashlib.sha256(b"hello").hexdigest()
    assert reads.into_body > 0


def test_bytes_kept_past_a_read_do_not_change_when_the_buffer_is_reused() -> None:
    """A small streamed request's pieces, a pipelined request after it and the
    read buffer overwritten by the next read: what was handed on stays intact."""
    kept: list[bytes] = []

    @tornado.web.stream_request_body
    class Keep(RequestHandler):
        def data_received(self, chunk: bytes) -> None:
            kept.append(chunk)

        def put(self) -> None:
            self.write(b"".join(kept))

    async def go() -> bytes:
        server = HTTPToolsServer(Application([("/keep", Keep)], test_settings(xsrf=False)))
        proto = HTTPToolsProtocol(server)
        transport = FakeTransport(proto)
        proto.connection_made(transport)
        body = b"A" * 100_000
        receive(proto, b"PUT /keep HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        receive(proto, body + b"PUT /keep HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nZZ")
        server.read_view[:] = b"\xff" * len(server.read_view)  # the next read
        for _ in range(100):
            if bytes(transport.out).count(b"HTTP/1.1 200") >= 2:
                break
            await asyncio.sleep(0.01)
        return bytes(transport.out)

    answers = responses(asyncio.run(go()))
    assert [status for status, _, _ in answers] == [200, 200]
    assert answers[0][2] == b"A" * 100_000
    assert answers[1][2] == b"A" * 100_000 + b"ZZ"
    assert all(isinstance(piece, bytes) for piece in kept)
