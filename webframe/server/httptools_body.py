"""Request bodies on the httptools layer: delivery to the delegate (in pieces or
through a reused buffer), body limits, ``Expect: 100-continue``, and waiting on the
awaitables a delegate returns.

Module-level functions that :class:`~webframe.server.httptools_impl.HTTPToolsProtocol`
takes as its methods (``self`` is the protocol), kept apart to keep each module small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .framing import FramingError

if TYPE_CHECKING:
    from .connection import HTTPToolsConnection
    from .httptools_impl import HTTPToolsProtocol

#: what the parser produces, queued while a delegate is busy.
EVENT_HEAD, EVENT_BODY, EVENT_END, EVENT_FAIL, EVENT_MORE = 0, 1, 2, 3, 4
_CONTINUE = b"HTTP/1.1 100 (Continue)\r\n\r\n"


def after_head(self: HTTPToolsProtocol, conn: HTTPToolsConnection) -> None:
    msg = conn._msg
    if msg.length is not None and msg.length > conn._max_body_size:
        self._refuse(
            FramingError(
                "The request body is larger than this server accepts.",
                detail="Content-Length too long",
            ),
            conn,
        )
        return
    if msg.expect and not conn._headers_written and not conn._read_done:
        self._write(_CONTINUE)
        conn._continue_sent = True


def body(self: HTTPToolsProtocol, conn: HTTPToolsConnection, data: bytes) -> None:
    if conn._write_done:
        return  # answered already: the rest of the body is read and dropped
    conn._received += len(data)
    if conn._received > conn._max_body_size:
        self._refuse(
            FramingError(
                "The request body is larger than this server accepts.",
                detail="chunked body too large" if conn._msg.chunked else "body too large",
            ),
            conn,
        )
        return
    self._pieces(conn, data)


def pieces(self: HTTPToolsProtocol, conn: HTTPToolsConnection, data: bytes) -> None:
    """Hand ``data`` (already counted) on: through the reused buffer when one is
    set, else in pieces of at most ``chunk_size`` (Tornado's promise). Whatever an
    awaitable holds back goes to the front of the queue."""
    if conn._fill is not None:
        self._fill(conn, data)
        return
    size = self.server.chunk_size
    if len(data) <= size:
        self._deliver(conn, data)
        return
    for start in range(0, len(data), size):
        if self._deliver(conn, data[start : start + size]):
            if start + size < len(data):
                self._queue.appendleft((EVENT_MORE, data[start + size :]))
            return


def fill(self: HTTPToolsProtocol, conn: HTTPToolsConnection, data: bytes) -> None:
    """Copy body bytes into the connection's reused buffer; hand the buffer on
    each time it is full (the last piece: exactly what is left)."""
    view = memoryview(data)
    while view:
        buffer = conn._fill
        assert buffer is not None
        pos = conn._fill_pos
        n = min(len(buffer) - pos, len(view))
        buffer[pos : pos + n] = view[:n]
        view = view[n:]
        if self._filled_to(conn, buffer, pos + n, conn._fill_feed != self._feeds):
            if view:
                self._queue.appendleft((EVENT_MORE, bytes(view)))
            return


def filled_to(
    self: HTTPToolsProtocol, conn: HTTPToolsConnection, buffer: bytearray, pos: int, waited: bool
) -> bool:
    """The reused buffer holds body bytes up to ``pos``: once full, hand it on
    (``waited``: its fill took more than one read). True if an awaitable now
    holds the body back."""
    if pos < len(buffer):
        conn._fill_pos = pos
        return False
    conn._fill_left -= pos
    took = self.loop.time() - conn._fill_started
    conn._fill_pos = 0
    self._next_fill(conn, pos, waited, took)
    return self._deliver(conn, buffer)  # type: ignore[arg-type]


def next_fill(
    self: HTTPToolsProtocol, conn: HTTPToolsConnection, size: int, waited: bool, took: float
) -> None:
    """Size the next fill: double while the client sends fast, back to the
    minimum after a slow fill (the policy of ``reuse_body_buffer``)."""
    low, high, fast, slow = conn._fill_policy
    left = conn._fill_left
    if left <= 0:
        conn._fill = None
        return
    if (not waited or took < fast) and size < high and left > size:
        size = min(2 * size, high)
        conn._fill = bytearray(min(size, left))
    elif took > slow and size > low:
        conn._fill = bytearray(min(low, left))
    elif left < size:
        conn._fill = bytearray(left)
    conn._fill_started = self.loop.time()
    conn._fill_feed = self._feeds


def deliver(self: HTTPToolsProtocol, conn: HTTPToolsConnection, data: bytes) -> bool:
    """``data_received``; True if its awaitable now holds the body back."""
    try:
        result = conn._delegate.data_received(data)  # type: ignore[union-attr]
    except Exception as exc:
        self._delegate_failed(conn, exc)
        return True
    if result is not None:
        return self._wait(conn, result, None)
    return False


def end(self: HTTPToolsProtocol, conn: HTTPToolsConnection) -> None:
    conn._read_done = True
    self._deadline = None  # the handler works now; no read is pending
    if conn._write_done:
        self._advance(conn, from_handler=False)
        return
    try:
        conn._delegate.finish()  # type: ignore[union-attr]
    except Exception as exc:
        self._delegate_failed(conn, exc)


def wait(
    self: HTTPToolsProtocol,
    conn: HTTPToolsConnection,
    result: Awaitable[None],
    then: Callable[[HTTPToolsConnection], None] | None,
) -> bool:
    """Go on once ``result`` is done (``then``, then the queue); True if waiting."""
    future = asyncio.ensure_future(result)
    if future.done() and not future.cancelled() and future.exception() is None:
        if then is not None:
            then(conn)
        return False
    conn._waiting = True
    self._pause()

    def done(f: asyncio.Future[None]) -> None:
        conn._waiting = False
        if self._closed or self._current is not conn:
            return
        exc = None if f.cancelled() else f.exception()
        if exc is not None:
            self._delegate_failed(conn, exc)
            return
        if then is not None:
            then(conn)
        self._run_queue()

    future.add_done_callback(done)
    return True


def can_drain(self: HTTPToolsProtocol, conn: HTTPToolsConnection) -> bool:
    """Whether an answered request's unread body may be read and dropped."""
    msg = conn._msg
    if msg.chunked or msg.upgrade or (msg.expect and not conn._continue_sent):
        return False
    left = (msg.length or 0) - conn._received
    return left <= self.server.max_drain_size
