"""webframe.server.tornado_impl: the gates on Tornado's private names and their fallbacks.

Each gate is checked against the installed Tornado; a Tornado without a name is
simulated by switching the gate off (and making the private name fail if called),
and an upload must still arrive whole on Tornado's own connection layer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import tornado
import tornado.web
from tornado.http1connection import HTTP1Connection

from webframe import Application, RequestHandler
from webframe.server import framing, tornado_impl
from webframe.testing import test_settings

from ._support import responses, serving

MiB = 1024 * 1024


@tornado.web.stream_request_body
class Sink(RequestHandler):
    """Hashes a streamed body; records each piece's type and size (the side effect)."""

    reuses_body_buffer: ClassVar[bool] = True
    pieces: ClassVar[list[tuple[str, int]]] = []

    def prepare(self) -> None:
        self.digest = hashlib.sha256()

    def data_received(self, chunk: bytes) -> None:
        Sink.pieces.append((type(chunk).__name__, len(chunk)))
        self.digest.update(chunk)

    def put(self) -> None:
        self.write(self.digest.hexdigest())


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    Sink.pieces.clear()
    yield
    Sink.pieces.clear()


def upload(size: int) -> tuple[int, str, bytes]:
    """PUT ``size`` bytes to the Sink on Tornado's own layer: (status, answer, body)."""
    body = (hashlib.sha256(b"seed").digest() * (size // 32 + 1))[:size]
    app = Application([("/sink", Sink)], test_settings(xsrf=False, http_impl="tornado"))

    async def go() -> bytes:
        async with serving(app, "tornado") as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"PUT /sink HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n" % size
            )
            writer.write(body)
            out = await asyncio.wait_for(reader.read(), 20)
            writer.close()
            return out

    [(status, _, answer)] = responses(asyncio.run(go()))
    return status, answer.decode(), body


def test_the_gates_match_the_installed_tornado() -> None:
    assert tuple(tornado.version_info) == tornado_impl.VERSION_INFO
    has = hasattr(HTTP1Connection, "_deliver_body")
    assert (has and tornado.version_info >= (6, 6)) == tornado_impl.HAS_DELIVER_BODY
    # What webframe's delegate relies on is present in every Tornado setup.cfg allows.
    assert tornado_impl.CAN_READ_INTO
    assert tornado_impl.CAN_GUARD
    assert tornado_impl.CAN_FAIL_BODY


def test_the_reused_buffer_on_tornados_layer() -> None:
    status, digest, body = upload(3 * MiB + 5)
    assert status == 200 and digest == hashlib.sha256(body).hexdigest()
    assert {kind for kind, _ in Sink.pieces} == {"bytearray"}
    assert Sink.pieces[0][1] == framing.BODY_BUFFER_MIN
    assert sum(n for _, n in Sink.pieces) == len(body)


def test_a_tornado_without_deliver_body(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on Tornado 6.5: the reader delivers the pieces itself, and never calls
    ``_deliver_body``."""
    calls: list[Any] = []

    async def missing(*args: Any) -> None:
        calls.append(args)
        raise AssertionError("_deliver_body called although the gate says it is missing")

    monkeypatch.setattr(tornado_impl, "HAS_DELIVER_BODY", False)
    monkeypatch.setattr(HTTP1Connection, "_deliver_body", missing, raising=False)
    status, digest, body = upload(3 * MiB + 5)
    assert status == 200 and digest == hashlib.sha256(body).hexdigest()
    assert calls == []
    assert {kind for kind, _ in Sink.pieces} == {"bytearray"}
    assert sum(n for _, n in Sink.pieces) == len(body)


def test_a_tornado_without_a_replaceable_body_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """No reused buffer: Tornado's own reads (fresh ``bytes``) carry the body."""
    monkeypatch.setattr(tornado_impl, "CAN_READ_INTO", False)
    status, digest, body = upload(3 * MiB + 5)
    assert status == 200 and digest == hashlib.sha256(body).hexdigest()
    assert {kind for kind, _ in Sink.pieces} == {"bytes"}
    assert sum(n for _, n in Sink.pieces) == len(body)


def test_reuse_is_declined_off_tornados_connection() -> None:
    assert not tornado_impl.reuse_body_buffer(None)
    assert not tornado_impl.reuse_body_buffer(SimpleNamespace())  # type: ignore[arg-type]


def test_drop_read_buffer_forgets_what_was_read_ahead() -> None:
    stream: Any = SimpleNamespace(
        _user_read_buffer=False, _read_buffer=bytearray(b"GET /probe HTTP/1.1\r\n"),
        _read_buffer_size=21, _after_user_read_buffer=None,
    )
    tornado_impl.drop_read_buffer(stream)
    assert stream._read_buffer == bytearray() and stream._read_buffer_size == 0
    # a read_into() in progress: the bytes waiting behind it are dropped instead
    stream = SimpleNamespace(
        _user_read_buffer=True, _read_buffer=bytearray(16), _read_buffer_size=21,
        _after_user_read_buffer=bytearray(b"GET /probe"),
    )
    tornado_impl.drop_read_buffer(stream)
    assert stream._after_user_read_buffer is None and stream._read_buffer_size == 0
    tornado_impl.drop_read_buffer(None)


@pytest.mark.parametrize("kind", [list, bytearray])
def test_body_chunks_in_either_tornado_layout(kind: type) -> None:
    """Tornado 6.5 keeps a list of pieces, 6.6 one bytearray: both are filled and emptied."""
    delegate: Any = SimpleNamespace(chunks=kind())
    tornado_impl.add_body_chunk(delegate, b"ab")
    tornado_impl.add_body_chunk(delegate, b"cd")
    kept = b"".join(delegate.chunks) if kind is list else bytes(delegate.chunks)
    assert kept == b"abcd"
    tornado_impl.drop_body_chunks(delegate)
    assert type(delegate.chunks) is kind and len(delegate.chunks) == 0


def test_fail_body_without_a_body_future_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    request: Any = SimpleNamespace()
    assert not tornado_impl.fail_body(request, ValueError("x"))
    monkeypatch.setattr(tornado_impl, "CAN_FAIL_BODY", False)
    loop = asyncio.new_event_loop()
    try:
        request._body_future = loop.create_future()
        assert not tornado_impl.fail_body(request, ValueError("x"))
        assert not request._body_future.done()
        monkeypatch.setattr(tornado_impl, "CAN_FAIL_BODY", True)
        assert tornado_impl.fail_body(request, ValueError("x"))
        assert isinstance(request._body_future.exception(), ValueError)
    finally:
        loop.close()
