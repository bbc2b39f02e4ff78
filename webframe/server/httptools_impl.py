"""HTTP/1.1 on httptools (llhttp) and an ``asyncio.Protocol``, driving Tornado's delegates.

One :class:`HTTPToolsProtocol` per socket parses with ``httptools`` and hands each
request to the server's ``HTTPServerConnectionDelegate`` (a
``tornado.web.Application``) through the same calls Tornado's ``HTTP1Connection``
makes: ``start_request``, then ``headers_received`` / ``data_received`` /
``finish`` / ``on_connection_close`` on the message delegate. Each request gets an
:class:`HTTPToolsConnection` (Tornado's ``HTTPConnection`` interface) to answer on.

Requests are served one at a time, in order. Everything the parser produces while
a delegate is busy (an awaitable from ``headers_received``/``data_received``, or a
pipelined request whose predecessor is not answered yet) waits in a queue and the
socket stops being read until the queue is empty, so the queue never holds more
than one socket read.

A refusal found by the parser or by :func:`~webframe.server.framing.check_request_head`
is answered with 400 and ``Connection: close`` and the parser is not fed again:
no byte after a refused head is ever read as a request.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import httptools
from tornado import httputil, iostream
from tornado.log import app_log, gen_log

from . import tornado_impl
from .connection import HTTPToolsConnection, _Message
from .context import RequestContext
from .framing import (
    FramingError,
    can_keep_alive,
    check_request_head,
    describe_parser_error,
    refusal,
)
from .stream import TransportStream

if TYPE_CHECKING:
    from .httptools_server import HTTPToolsServer

log = logging.getLogger("webframe.server")

_HEAD, _BODY, _END, _FAIL, _MORE = 0, 1, 2, 3, 4
_CONTINUE = b"HTTP/1.1 100 (Continue)\r\n\r\n"
#: Content-Length bodies from this size on are read past the parser once their head
#: is parsed (llhttp would copy every piece; the length is already validated).
_RAW_BODY = 64 * 1024


class _HeadTooLarge(Exception):
    pass


class HTTPToolsProtocol(asyncio.Protocol):
    """One client connection: bytes in → requests to the delegate, answers out."""

    def __init__(self, server: HTTPToolsServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.context: RequestContext = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self._msg: _Message | None = None
        self._in_head = False
        self._head_size = 0
        self._head_bytes = 0
        self._refusal: FramingError | None = None
        self._dead = False
        self._current: HTTPToolsConnection | None = None
        self._queue: collections.deque[tuple[int, Any]] = collections.deque()
        self._paused = False
        self._write_paused = False
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._draining = False
        self._leftover: bytes | None = None
        self._detached = False
        self._feeds = 0
        #: bytes of a large Content-Length body still to come past the parser.
        self._body_left = 0
        self._body_seen = 0
        self._view: TransportStream | None = None
        self._view_reads = False
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._scheduled = False
        self._done: asyncio.Future[None] = self.loop.create_future()
        self._done.set_result(None)
        self.closed: asyncio.Future[None] = self.loop.create_future()

    # -- asyncio.Protocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        address = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        family = sock.family if sock is not None else None
        tls = transport.get_extra_info("sslcontext") is not None
        protocol = server.protocol or ("https" if tls else "http")
        self.context = RequestContext(address, family, protocol, server.trusted_downstream)
        server._protocols.add(self)
        self._set_deadline(server.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server._protocols.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(iostream.StreamClosedError())
                waiter.exception()
        self._waiters.clear()
        self._queue.clear()
        conn = self._current
        if conn is not None and not self._detached:
            self._current = None
            self._lost(conn)
        if self._view is not None:
            self._view.connection_lost(exc)
            self._view = None
        if not self.closed.done():
            self.closed.set_result(None)
        # The parser and the transport point back at this protocol: let the cycle go.
        self.parser = None  # type: ignore[assignment]
        self.transport = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        conn = self._current
        if conn is not None and conn._write_done and conn._read_done:
            self._advance(conn, from_handler=False)

    def data_received(self, data: bytes) -> None:
        self._feeds += 1
        if self._dead:
            if self._view_reads and self._view is not None:
                self._view.feed(data)
            return
        if self._body_left:
            data = self._raw_body(data)
            if not data:
                return
        if self._in_head:
            # Bytes read while a head is incomplete: bound what the parser buffers.
            self._head_bytes += len(data)
            if self._head_bytes > self.server.max_header_size + 65536:
                self._parse_failed(FramingError("The request head is too large.", 431))
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._leftover = data[exc.args[0] :] if exc.args else b""
            self._dead = True
            self._pause()
        except httptools.HttpParserError as exc:
            seen = self._msg.raw if self._msg is not None else None
            self._parse_failed(self._refusal or describe_parser_error(str(exc), seen))
            return
        if self._body_left and self._msg is not None and not self._in_head:
            # A large fixed-length body goes on past the parser (no copy per piece);
            # a fresh parser takes the bytes after it.
            self._body_left -= self._body_seen
        else:
            self._body_left = 0

    def _raw_body(self, data: bytes) -> bytes:
        """The next bytes of a Content-Length body read past the parser; returns what
        follows the body (for a new parser), if anything."""
        left = self._body_left
        if len(data) <= left:
            self._body_left = left - len(data)
            self._event(_BODY, data)
            rest = b""
        else:
            self._body_left = 0
            self._event(_BODY, data[:left])
            rest = data[left:]
        if self._body_left == 0:
            self.parser = httptools.HttpRequestParser(self)
            self.on_message_complete()
        return rest

    def eof_received(self) -> bool | None:
        # As Tornado: the client's end of stream ends the connection (what is already
        # written is still sent); the handler at work hears of it (on_connection_close).
        return False

    # -- parser callbacks -----------------------------------------------------
    def on_message_begin(self) -> None:
        self._msg = _Message()
        self._in_head = True
        self._head_size = 0
        self._head_bytes = 0
        if self._current is None:
            self._set_deadline(self.server.header_timeout)

    def on_url(self, url: bytes) -> None:
        msg = self._msg
        assert msg is not None
        msg.url += url
        self._head_size += len(url)
        if self._head_size > self.server.max_header_size:
            self._refusal = FramingError("The request line is too long.", 431)
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.server.max_header_size:
            self._refusal = FramingError("The request head is too large.", 431)
            raise _HeadTooLarge
        if self._in_head:
            msg = self._msg
            assert msg is not None
            msg.raw.append((name, value))
            if len(msg.raw) > self.server.max_headers:
                self._refusal = FramingError("The request has too many header fields.", 431)
                raise _HeadTooLarge
        # else: a chunked body's trailer fields, bounded above and ignored as Tornado does

    def on_headers_complete(self) -> None:
        self._in_head = False
        msg = self._msg
        assert msg is not None
        parser = self.parser
        version = parser.get_http_version()
        try:
            msg.length, msg.chunked = check_request_head(version, msg.raw)
        except FramingError as exc:
            self._refusal = exc
            raise
        headers = tornado_impl.headers_from_parsed(msg.raw)
        method = parser.get_method().decode("ascii")
        http_version = "HTTP/1.1" if version == "1.1" else "HTTP/1.0"
        msg.start_line = httputil.RequestStartLine(method, msg.url.decode("latin1"), http_version)
        msg.headers = headers
        framed = msg.chunked or msg.length is not None
        fields = tornado_impl.header_fields(headers)
        connection = fields.get("Connection")
        msg.keep_alive = not self.server.no_keep_alive and can_keep_alive(
            version, ",".join(connection) if connection else None, framed, method
        )
        msg.upgrade = parser.should_upgrade()
        expect = fields.get("Expect")
        msg.expect = (
            expect is not None and ",".join(expect).lower() == "100-continue" and version == "1.1"
        )
        self._raw_reset()
        self._body_seen = 0
        big = msg.length is not None and msg.length >= _RAW_BODY and not msg.upgrade
        self._body_left = msg.length if big and msg.length is not None else 0
        if self._current is None and (msg.chunked or msg.length):
            self._set_deadline(self.server.body_timeout)
        self._event(_HEAD, msg)

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        self._event(_BODY, body)

    def on_message_complete(self) -> None:
        self._msg = None
        self._body_left = 0
        self._event(_END, None)

    def _raw_reset(self) -> None:
        self._head_bytes = 0

    # -- event dispatch -------------------------------------------------------
    def _event(self, kind: int, payload: Any) -> None:
        if self._queue or self._blocked():
            self._queue.append((kind, payload))
            self._pause()
            return
        self._handle(kind, payload)

    def _blocked(self) -> bool:
        conn = self._current
        if conn is None:
            return False
        return conn._waiting or conn._read_done

    def _run_queue(self) -> None:
        self._scheduled = False
        queue = self._queue
        while queue and not self._closed and not self._blocked():
            kind, payload = queue.popleft()
            self._handle(kind, payload)
        if not queue and not self._closed and not self._blocked() and not self._dead:
            self._resume()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._run_queue)

    def _handle(self, kind: int, payload: Any) -> None:
        transport = self.transport
        if self._closed or transport is None or transport.is_closing():
            return
        if kind == _HEAD:
            self._start(payload)
        elif kind == _BODY:
            conn = self._current
            if conn is not None:
                self._body(conn, payload)
        elif kind == _END:
            conn = self._current
            if conn is not None:
                self._end(conn)
        elif kind == _MORE:
            conn = self._current
            if conn is not None and not conn._write_done:
                self._pieces(conn, payload)
        else:
            self._refuse(payload)

    def _start(self, msg: _Message) -> None:
        server = self.server
        conn = HTTPToolsConnection(self, msg)
        self._current = conn
        headers = msg.headers
        assert headers is not None and msg.start_line is not None
        try:
            delegate = server.start_request(self, conn)
            conn._delegate = delegate
            if server.xheaders:
                self.context.apply_xheaders(headers)
            conn._started = True
            result = delegate.headers_received(msg.start_line, headers)
        except Exception as exc:
            self._delegate_failed(conn, exc)
            return
        if result is not None:
            self._wait(conn, result, self._after_head)
        else:
            self._after_head(conn)

    def _after_head(self, conn: HTTPToolsConnection) -> None:
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

    def _body(self, conn: HTTPToolsConnection, data: bytes) -> None:
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

    def _pieces(self, conn: HTTPToolsConnection, data: bytes) -> None:
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
                    self._queue.appendleft((_MORE, data[start + size :]))
                return

    def _fill(self, conn: HTTPToolsConnection, data: bytes) -> None:
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
            pos += n
            conn._fill_pos = pos
            if pos < len(buffer):
                return
            conn._fill_left -= pos
            waited = conn._fill_feed != self._feeds
            took = self.loop.time() - conn._fill_started
            conn._fill_pos = 0
            self._next_fill(conn, len(buffer), waited, took)
            if self._deliver(conn, buffer):  # type: ignore[arg-type]
                if view:
                    self._queue.appendleft((_MORE, bytes(view)))
                return

    def _next_fill(self, conn: HTTPToolsConnection, size: int, waited: bool, took: float) -> None:
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

    def _deliver(self, conn: HTTPToolsConnection, data: bytes) -> bool:
        """``data_received``; True if its awaitable now holds the body back."""
        try:
            result = conn._delegate.data_received(data)  # type: ignore[union-attr]
        except Exception as exc:
            self._delegate_failed(conn, exc)
            return True
        if result is not None:
            return self._wait(conn, result, None)
        return False

    def _end(self, conn: HTTPToolsConnection) -> None:
        conn._read_done = True
        self._deadline = None  # the handler works now; no read is pending
        if conn._write_done:
            self._advance(conn, from_handler=False)
            return
        try:
            conn._delegate.finish()  # type: ignore[union-attr]
        except Exception as exc:
            self._delegate_failed(conn, exc)

    def _wait(
        self,
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

    # -- answers and the next request ----------------------------------------
    def _response_done(self, conn: HTTPToolsConnection) -> None:
        if self._current is not conn:
            return
        if conn._status == 101 and conn._msg.upgrade:
            return  # detach() follows
        if conn._close_after:
            self._current = None
            conn._delegate = None
            self._close()
            return
        if conn._read_done:
            self._advance(conn, from_handler=True)
        elif not self._can_drain(conn):
            self._current = None
            conn._delegate = None
            self._close()
        else:
            self._resume()

    def _advance(self, conn: HTTPToolsConnection, from_handler: bool) -> None:
        """``conn`` is answered and read: go on to the next request, if any."""
        if self._write_paused:
            return  # resume_writing() comes back here
        self._current = None
        # The request's objects point at the connection and back (request ->
        # connection -> delegate -> request): let them go now, not at the next gc.
        conn._delegate = None
        if self.server.xheaders:
            self.context.unapply_xheaders()
        if self._draining:
            self._close()
            return
        if self._queue:
            if from_handler:
                self._schedule()
            return
        self._set_deadline(self.server.idle_timeout)
        if not self._dead:
            self._resume()

    def _can_drain(self, conn: HTTPToolsConnection) -> bool:
        """Whether an answered request's unread body may be read and dropped."""
        msg = conn._msg
        if msg.chunked or msg.upgrade or (msg.expect and not conn._continue_sent):
            return False
        left = (msg.length or 0) - conn._received
        return left <= self.server.max_drain_size

    # -- refusals and failures ------------------------------------------------
    def _parse_failed(self, reason: FramingError) -> None:
        self._dead = True
        self._pause()
        if self._queue or self._blocked():
            self._queue.append((_FAIL, reason))
        else:
            self._refuse(reason)

    def _refuse(self, error: FramingError, conn: HTTPToolsConnection | None = None) -> None:
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

    def _delegate_failed(self, conn: HTTPToolsConnection, exc: BaseException) -> None:
        """A delegate method raised: a bad request (``HTTPInputError``: Host header,
        gzip data) is refused; anything else is logged and the connection closed."""
        if isinstance(exc, httputil.HTTPInputError):
            self._refuse(FramingError(f"{exc}.", detail=str(exc)), conn)
            return
        app_log.error("Uncaught exception in the request delegate", exc_info=exc)
        self._abort()

    def _lost(self, conn: HTTPToolsConnection) -> None:
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

    # -- transport ------------------------------------------------------------
    def _send(self, data: bytes) -> asyncio.Future[None]:
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

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _pause(self) -> None:
        if not self._paused and self.transport is not None and not self._closed:
            self._paused = True
            self._deadline = None
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self.transport is not None and not self._closed:
            self._paused = False
            self.transport.resume_reading()
            self._refresh_deadline()

    def _close(self) -> None:
        """Close after what is written has been sent."""
        self._dead = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _abort(self) -> None:
        self._dead = True
        if self.transport is not None:
            self.transport.abort()

    def close_when_idle(self) -> bool:
        """Graceful stop: close now if idle, else after the answer in progress.
        Returns whether the connection was idle."""
        self._draining = True
        if self._current is None and not self._queue and self._msg is None:
            self._close()
            return True
        return False

    # -- timeouts -------------------------------------------------------------
    def _set_deadline(self, timeout: float | None) -> None:
        if timeout is None:
            self._deadline = None
            return
        deadline = self.loop.time() + timeout
        self._deadline = deadline
        timer = self._timer
        if timer is not None and deadline < timer.when():
            # An earlier deadline than the timer's (a shorter set_body_timeout).
            timer.cancel()
            timer = self._timer = None
        if timer is None and not self._closed:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _refresh_deadline(self) -> None:
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

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self._closed or self._paused:
            return
        now = self.loop.time()
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._on_timer)
            return
        if self._msg is not None and not self._in_head:
            gen_log.info("Timeout reading body from %s", self.context)
        conn = self._current
        if conn is not None and conn._write_done is False and conn._read_done:
            return  # the handler is working; no read is pending
        self._abort()

    # -- detach ---------------------------------------------------------------
    def stream_view(self) -> TransportStream:
        """This connection's ``IOStream``-like view (made on first use)."""
        if self._view is None:
            self._view = TransportStream(self)
        return self._view

    def _detach(self, conn: HTTPToolsConnection) -> iostream.IOStream:
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

def __getattr__(name: str) -> Any:
    # ``webframe.server.httptools_impl.HTTPServer``: the server class, found where the
    # compatibility runner (and ``HTTPServer.configure``) looks for a layer's server.
    if name == "HTTPServer":
        from .httptools_server import HTTPToolsServer

        return HTTPToolsServer
    raise AttributeError(name)
