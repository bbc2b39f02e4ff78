"""The edges of a connection on the httptools layer: the end of an answer, refusals
and failures, the client going away, timeouts, writing to and closing the transport, and handing the
socket over (``detach``, WebSocket).

Module-level functions that :class:`~webframe.server.httptools_impl.HTTPToolsProtocol`
takes as its methods (``self`` is the protocol), kept apart to keep each module small.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING

from tornado import httputil, iostream
from tornado.log import app_log, gen_log

from . import tornado_impl
from .framing import FramingError, refusal
from .httptools_body import EVENT_FAIL
from .stream import TransportStream

if TYPE_CHECKING:
    from .connection import HTTPToolsConnection
    from .httptools_impl import HTTPToolsProtocol


def parse_failed(self: HTTPToolsProtocol, reason: FramingError) -> None:
    self._dead = True
    self._pause()
    if self._queue or self._blocked():
        self._queue.append((EVENT_FAIL, reason))
    else:
        self._refuse(reason)


def response_done(self: HTTPToolsProtocol, conn: HTTPToolsConnection) -> None:
    """``conn`` finished its answer: on to the next request, or drain, or close."""
    if self._current is not conn:
        return
    if conn._status == 101 and conn._msg.upgrade:
        return  # detach() follows
    if conn._close_after:
        self._current = None
        conn._delegate = None
        self._close()
        return
    msg = conn._msg
    if conn._read_done:
        self._advance(conn, from_handler=True)
    elif (msg.length or msg.chunked or msg.expect or msg.upgrade) and not self._can_drain(conn):
        # (A request without a body is always drainable: no call for it.)
        self._current = None
        conn._delegate = None
        self._close()
    elif self._paused:
        self._resume()


def refuse(
    self: HTTPToolsProtocol, error: FramingError, conn: HTTPToolsConnection | None = None
) -> None:
    """400/501 + ``Connection: close`` (unless an answer has begun), then close."""
    self._dead = True
    if error.status == 431:
        # Tornado's wording for a head over max_header_size.
        gen_log.info("Unsatisfiable read, closing connection from %s: %s", self.context, error)
    else:
        gen_log.info("Malformed HTTP message from %s: %s", self.context, error.detail)
    if conn is None:
        conn = self._current
    if conn is None or not conn._headers_written:
        msg = conn._msg if conn is not None else self._msg
        self._write(refusal(error, msg.raw if msg is not None else []))
    self._close()


def delegate_failed(
    self: HTTPToolsProtocol, conn: HTTPToolsConnection, exc: BaseException
) -> None:
    """A delegate method raised: a bad request (``HTTPInputError``: Host header,
    gzip data) is refused; anything else is logged and the connection closed."""
    if isinstance(exc, httputil.HTTPInputError):
        self._refuse(FramingError(f"{exc}.", detail=str(exc)), conn)
        return
    app_log.error("Uncaught exception in the request delegate", exc_info=exc)
    self._abort()


def lost(self: HTTPToolsProtocol, conn: HTTPToolsConnection) -> None:
    """The client went away before ``conn`` was finished."""
    if conn._write_done:
        return
    callback = conn._close_callback
    conn._close_callback = None
    delegate, conn._delegate = conn._delegate, None
    try:
        # As HTTP1Connection: the delegate hears of it while its body is being
        # read; once the body is read, the handler's close callback does.
        if not conn._read_done:
            if conn._started and delegate is not None:
                delegate.on_connection_close()
        elif callback is not None:
            callback()
    except Exception:
        app_log.error("Uncaught exception in a close callback", exc_info=True)


def set_deadline(self: HTTPToolsProtocol, timeout: float | None) -> None:
    if timeout is None:
        self._deadline = None
        return
    deadline = self.loop.time() + timeout
    self._deadline = deadline
    timer = self._timer
    if timer is not None and deadline < self._timer_at:
        # An earlier deadline than the timer's (a shorter set_body_timeout).
        timer.cancel()
        timer = self._timer = None
    if timer is None and not self._closed:
        self._timer = self.loop.call_at(deadline, self._on_timer)
        self._timer_at = deadline


def refresh_deadline(self: HTTPToolsProtocol) -> None:
    """After reading resumes: restart the clock of the phase the parser is in."""
    server = self.server
    if self._in_head:
        self._set_deadline(server.header_timeout)
    elif self._msg is not None:
        conn = self._current
        timeout = conn._body_timeout if conn is not None else server.body_timeout
        self._set_deadline(timeout)
    elif self._current is None:
        self._set_deadline(server.idle_timeout)


def on_timer(self: HTTPToolsProtocol) -> None:
    self._timer = None
    deadline = self._deadline
    if deadline is None or self._closed or self._paused:
        return
    now = self.loop.time()
    if now < deadline:
        self._timer = self.loop.call_at(deadline, self._on_timer)
        self._timer_at = deadline
        return
    if self._msg is not None and not self._in_head:
        gen_log.info("Timeout reading body from %s", self.context)
    conn = self._current
    if conn is not None and conn._write_done is False and conn._read_done:
        return  # the handler is working; no read is pending
    self._abort()


def stream_view(self: HTTPToolsProtocol) -> TransportStream:
    """This connection's ``IOStream``-like view (made on first use)."""
    if self._view is None:
        self._view = TransportStream(self)
    return self._view


def detach(self: HTTPToolsProtocol, conn: HTTPToolsConnection) -> iostream.IOStream:
    transport = self.transport
    if transport is None or self._closed:
        raise iostream.StreamClosedError()
    self._detached = True
    self._current = None
    self._dead = True
    if self._timer is not None:
        self._timer.cancel()
        self._timer = None
    leftover, self._leftover = self._leftover or b"", None
    sock = transport.get_extra_info("socket")
    tls = transport.get_extra_info("sslcontext") is not None
    if tls or sock is None or transport.get_write_buffer_size():
        # The TLS state (or unsent bytes) stays with the transport: the stream is
        # a view of it, fed by this protocol from now on.
        view = self.stream_view()
        self._view_reads = True
        view.feed(leftover)
        if self._paused:
            self._paused = False
            transport.resume_reading()
        return view  # type: ignore[return-value]
    transport.pause_reading()
    dup = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
    # The transport lets go of its own descriptor; the duplicate keeps the
    # connection open for a real IOStream (every IOStream method works on it).
    transport.abort()
    stream = iostream.IOStream(dup)
    tornado_impl.feed_stream(stream, leftover)
    return stream


def send(self: HTTPToolsProtocol, data: bytes) -> asyncio.Future[None]:
    if self._closed or self.transport is None or self.transport.is_closing():
        future: asyncio.Future[None] = self.loop.create_future()
        future.set_exception(iostream.StreamClosedError())
        future.exception()
        return future
    if data:
        self.transport.write(data)
    if not self._write_paused:
        return self._done
    future = self.loop.create_future()
    self._waiters.append(future)
    return future


def write(self: HTTPToolsProtocol, data: bytes) -> None:
    transport = self.transport
    if transport is not None and not transport.is_closing():
        transport.write(data)


def pause(self: HTTPToolsProtocol) -> None:
    if not self._paused and self.transport is not None and not self._closed:
        self._paused = True
        self._deadline = None
        self.transport.pause_reading()


def resume(self: HTTPToolsProtocol) -> None:
    if self._paused and self.transport is not None and not self._closed:
        self._paused = False
        self.transport.resume_reading()
        self._refresh_deadline()


def close(self: HTTPToolsProtocol) -> None:
    """Close after what is written has been sent."""
    self._dead = True
    if self.transport is not None and not self.transport.is_closing():
        self.transport.close()


def abort(self: HTTPToolsProtocol) -> None:
    self._dead = True
    if self.transport is not None:
        self.transport.abort()


def close_when_idle(self: HTTPToolsProtocol) -> bool:
    """Graceful stop: close now if idle, else after the answer in progress.
    Returns whether the connection was idle."""
    self._draining = True
    if self._current is None and not self._queue and self._msg is None:
        self._close()
        return True
    return False
