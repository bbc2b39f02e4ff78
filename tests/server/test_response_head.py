"""The response head the httptools layer writes: one pass with a cache of header
names and values already checked, which must never let CR or LF through (response
splitting), whatever was cached before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import tornado.web
from tornado import httputil

from webframe.server import HTTPToolsServer
from webframe.server.httptools_impl import HTTPToolsProtocol

from ._support import FakeTransport


class _Raw(tornado.web.RequestHandler):
    """Writes the head the test gives straight to the connection."""

    head: tuple[int, str, list[tuple[str, str]]] = (200, "OK", [])
    error: Exception | None = None

    def get(self) -> None:
        code, reason, fields = _Raw.head
        headers = httputil.HTTPHeaders()
        for name, value in fields:
            # Past HTTPHeaders' own checks (newer Tornado refuses CR/LF in add()): a
            # header that got in some other way must still be refused on the way out.
            headers._as_list.setdefault(name, []).append(value)
            headers._combined_cache.pop(name, None)
        headers["Content-Length"] = "0"
        conn = self.request.connection
        assert conn is not None
        try:
            conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", code, reason), headers)
        except ValueError as exc:
            _Raw.error = exc
            conn.close()
            self._finished = True
            return
        conn.finish()
        self._finished = True


def _answer(code: int, reason: str, fields: list[tuple[str, str]]) -> tuple[bytes, Any]:
    async def go() -> tuple[bytes, Any]:
        _Raw.head = (code, reason, fields)
        _Raw.error = None
        proto = HTTPToolsProtocol(HTTPToolsServer(tornado.web.Application([("/", _Raw)])))
        transport = FakeTransport()
        proto.connection_made(transport)
        proto.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        proto.connection_lost(None)
        return bytes(transport.out), _Raw.error

    return asyncio.run(go())


def test_head_is_written_in_order_with_the_status_line() -> None:
    data, error = _answer(201, "Made", [("X-One", "a"), ("X-Two", "b"), ("X-One", "c")])
    assert error is None
    assert data.startswith(b"HTTP/1.1 201 Made\r\n")
    assert data.endswith(b"\r\n\r\n")
    assert b"X-One: a\r\nX-One: c\r\nX-Two: b\r\nContent-Length: 0\r\n\r\n" in data
    # The same code with another reason is not answered with the cached line.
    data, _ = _answer(201, "Other", [])
    assert data.startswith(b"HTTP/1.1 201 Other\r\n")


@pytest.mark.parametrize(
    ("reason", "fields"),
    [
        ("OK", [("X-Safe", "fine\r\nSet-Cookie: evil=1")]),
        ("OK", [("X-Safe", "fine\nX-Evil: 1")]),
        ("OK", [("X-Safe", "fine\r")]),
        ("OK", [("X-Evil\r\nSet-Cookie", "fine")]),
        ("OK\r\nSet-Cookie: evil=1", []),
    ],
    ids=["value-CRLF", "value-LF", "value-CR", "name-CRLF", "reason-CRLF"],
)
def test_cr_or_lf_is_refused_even_after_safe_values_were_cached(
    reason: str, fields: list[tuple[str, str]]
) -> None:
    # Cache the safe texts first (the same name, the same status code).
    data, error = _answer(200, "OK", [("X-Safe", "fine")])
    assert error is None and b"X-Safe: fine\r\n" in data
    data, error = _answer(200, reason, fields)
    assert isinstance(error, ValueError)
    assert "Illegal characters (CR or LF) in header" in str(error)
    assert data == b""  # nothing of the head was written
    # And the refused text was not remembered as safe.
    data, error = _answer(200, reason, fields)
    assert isinstance(error, ValueError) and data == b""
