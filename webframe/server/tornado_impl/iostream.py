"""Tornado's connection layer reached below its API: ``IOStream``'s read buffer,
``HTTP1Connection``'s close-after-answer flag, ``HTTPServer``'s connection
parameters and the gzip body delegate."""

from __future__ import annotations

from typing import Any

import tornado
import tornado.http1connection
import tornado.iostream
from tornado import httputil
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters
from tornado.httpserver import HTTPServer
from tornado.iostream import BaseIOStream

from .probe import names_in

_Gzip: Any = getattr(tornado.http1connection, "_GzipMessageDelegate", None)


def gzip_delegate(
    delegate: httputil.HTTPMessageDelegate, chunk_size: int, max_body_size: int
) -> httputil.HTTPMessageDelegate:
    """Wrap ``delegate`` so a ``Content-Encoding: gzip`` body arrives decompressed
    (``HTTPServer(decompress_request=True)``)."""
    if _Gzip is None:  # pragma: no cover - a Tornado without the helper
        raise RuntimeError(
            f"decompress_request needs tornado.http1connection._GzipMessageDelegate, "
            f"missing in Tornado {tornado.version}"
        )
    try:
        wrapped: httputil.HTTPMessageDelegate = _Gzip(delegate, chunk_size, max_body_size)
    except TypeError:  # pragma: no cover - Tornado before 6.5 took no size limit
        wrapped = _Gzip(delegate, chunk_size)
    return wrapped


def feed_stream(stream: tornado.iostream.IOStream, data: bytes) -> None:
    """Put bytes already read from a socket in front of ``stream``'s read buffer,
    so a detached connection does not lose what the HTTP parser read past the
    request head (the first WebSocket frames of a fast client)."""
    if not data:
        return
    buffer = getattr(stream, "_read_buffer", None)
    if not isinstance(buffer, bytearray) or not hasattr(stream, "_read_buffer_size"):
        raise RuntimeError(  # pragma: no cover - a Tornado with another buffer layout
            f"cannot hand read-ahead bytes to IOStream in Tornado {tornado.version}"
        )
    buffer[:0] = data
    stream._read_buffer_size += len(data)


def connection_parameters(server: HTTPServer) -> HTTP1ConnectionParameters:
    """The parameters ``server`` gives each connection it makes (``HTTPServer``'s
    ``conn_params``, filled from its constructor's arguments)."""
    params: HTTP1ConnectionParameters = server.conn_params
    return params


#: What the refusal guard (:mod:`webframe.server.wire`) relies on:
#: ``HTTP1Connection._disconnect_on_finish`` (close after this answer) and the
#: ``BaseIOStream`` read buffer (``_read_buffer``, ``_read_buffer_size``,
#: ``_user_read_buffer``, ``_after_user_read_buffer``), emptied when the connection
#: closes. Checked against Tornado 6.5 and 6.6; without them (another Tornado), refused
#: requests still end their connection (``Connection: close``), the guard is not
#: installed and the plain Tornado path runs.
CAN_GUARD = names_in(HTTP1Connection.__init__, "_disconnect_on_finish") and names_in(
    BaseIOStream.__init__,
    "_read_buffer",
    "_read_buffer_size",
    "_user_read_buffer",
    "_after_user_read_buffer",
)


def close_after_answer(connection: HTTP1Connection) -> None:
    """Have Tornado close ``connection`` when the answer being written finishes (it
    would otherwise keep it for the next request)."""
    connection._disconnect_on_finish = True


def drop_read_buffer(stream: BaseIOStream | None) -> None:
    """Forget what ``stream`` read from its socket that nobody consumed yet.

    Tornado's ``IOStream.close()`` keeps its read buffer, and a read started after the
    close is still served from it: the request loop would parse the bytes that followed
    a refused head. Emptied, every later read fails with StreamClosedError.
    """
    if stream is None or not CAN_GUARD:
        return
    if stream._user_read_buffer:
        # A read_into() is filling the caller's buffer; the extra bytes wait here.
        stream._after_user_read_buffer = None
    else:
        stream._read_buffer = bytearray()
    stream._read_buffer_size = 0
