"""An ``IOStream``-shaped view of an httptools connection's transport.

``request.connection.stream`` (code written for Tornado's ``HTTP1Connection``
writes raw bytes or closes through it) and ``detach()`` of a TLS connection
(whose TLS state lives in asyncio and cannot move to a Tornado ``SSLIOStream``)
get this object: the calls Tornado's WebSocket protocol and handlers make on a
stream (``write``, ``read_bytes``, ``read_until``, ``read_until_close``,
``close``, ``closed``, ``set_close_callback``, ``set_nodelay``, ``io_loop``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError, UnsatisfiableReadError

if TYPE_CHECKING:
    from .httptools_impl import HTTPToolsProtocol


class TransportStream:
    """Reads and writes of one connection, once the HTTP parser no longer reads it
    (after ``detach()``); writes go through the protocol's flow control."""

    def __init__(self, protocol: HTTPToolsProtocol) -> None:
        self._protocol = protocol
        self.io_loop = IOLoop.current()
        self.error: BaseException | None = None
        self._buffer = bytearray()
        self._read: tuple[str, Any, asyncio.Future[bytes]] | None = None
        self._close_callback: Callable[[], None] | None = None
        self._closed = False

    @property
    def socket(self) -> Any:
        transport = self._protocol.transport
        return transport.get_extra_info("socket") if transport is not None else None

    # -- writing -----------------------------------------------------------
    def write(self, data: bytes | memoryview) -> asyncio.Future[None]:
        """Send ``data``; the future waits while the socket's buffer is full."""
        return self._protocol._send(bytes(data))

    def set_nodelay(self, value: bool) -> None:
        """asyncio sets TCP_NODELAY on every TCP connection already."""

    # -- reading (after detach) ------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes from the socket (called by the protocol once detached)."""
        self._buffer += data
        self._try_read()

    def read_bytes(self, num_bytes: int, partial: bool = False) -> asyncio.Future[bytes]:
        """The next ``num_bytes`` bytes (or fewer, with ``partial``, once any arrive)."""
        return self._start_read("partial" if partial else "bytes", num_bytes)

    def read_until(self, delimiter: bytes, max_bytes: int | None = None) -> asyncio.Future[bytes]:
        """Bytes up to and including ``delimiter``."""
        return self._start_read("until", (delimiter, max_bytes))

    def read_until_close(self) -> asyncio.Future[bytes]:
        """Every byte until the peer closes."""
        return self._start_read("close", None)

    def _start_read(self, kind: str, arg: Any) -> asyncio.Future[bytes]:
        if self._read is not None:
            raise RuntimeError("Already reading")
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._read = (kind, arg, future)
        self._try_read()
        if self._closed and self._read is not None:
            self._fail_read()
        return future

    def _try_read(self) -> None:
        if self._read is None:
            return
        kind, arg, future = self._read
        buffer = self._buffer
        size = -1
        if kind == "bytes" and len(buffer) >= arg:
            size = arg
        elif kind == "partial" and buffer:
            size = min(arg, len(buffer))
        elif kind == "until":
            delimiter, max_bytes = arg
            max_bytes = max_bytes if max_bytes is not None else 1 << 62
            at = buffer.find(delimiter)
            if at >= 0:
                size = at + len(delimiter)
            too_long = size > max_bytes if size >= 0 else len(buffer) > max_bytes
            if too_long:
                self._read = None
                future.set_exception(UnsatisfiableReadError("delimiter not found in time"))
                return
        if size < 0:
            return
        data = bytes(buffer[:size])
        del buffer[:size]
        self._read = None
        if not future.done():
            future.set_result(data)

    def _fail_read(self) -> None:
        assert self._read is not None
        kind, _, future = self._read
        self._read = None
        if future.done():
            return
        if kind == "close":
            future.set_result(bytes(self._buffer))
            self._buffer.clear()
        else:
            future.set_exception(StreamClosedError(real_error=self.error))

    # -- closing ---------------------------------------------------------------
    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Called once when the connection closes."""
        self._close_callback = callback
        if callback is not None and self._closed:
            self._run_close_callback()

    def close(self, exc_info: Any = False) -> None:
        """Close the connection (what is written is still sent)."""
        self._protocol._close()

    def closed(self) -> bool:
        """Whether the connection is closed or closing."""
        transport = self._protocol.transport
        return self._closed or transport is None or transport.is_closing()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Called by the protocol when the socket is gone."""
        self._closed = True
        self.error = exc
        if self._read is not None:
            self._fail_read()
        self._run_close_callback()

    def _run_close_callback(self) -> None:
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            self.io_loop.add_callback(callback)
