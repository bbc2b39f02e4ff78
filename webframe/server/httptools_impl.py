"""HTTP/1.1 on httptools (llhttp) and an ``asyncio.BufferedProtocol``, driving Tornado's
delegates.

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

Reading the socket (into the server's read buffer, or straight into a request's
reused body buffer) and the parsed head are in :mod:`.httptools_read`; the body
side (delivery, reused buffer, limits, waiting on awaitables) in
:mod:`.httptools_body`; the end of an answer, refusals, timeouts, the transport
and ``detach`` in :mod:`.httptools_edges`
— functions this class takes as methods.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any, cast

import httptools
from tornado import iostream

from . import httptools_body, httptools_edges, httptools_method, httptools_read
from .connection import HTTPToolsConnection, Message
from .context import RequestContext
from .framing import FramingError
from .httptools_body import EVENT_BODY, EVENT_END, EVENT_HEAD, EVENT_MORE
from .stream import TransportStream

if TYPE_CHECKING:
    from .httptools_server import HTTPToolsServer

log = logging.getLogger("webframe.server")

class _HeadTooLarge(Exception):
    pass


class HTTPToolsProtocol(asyncio.BufferedProtocol):
    """One client connection: bytes in → requests to the delegate, answers out."""

    def __init__(self, server: HTTPToolsServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.context: RequestContext = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self._msg: Message | None = None
        self._in_head = False
        self._head_size = 0
        self._head_bytes = 0
        self._refusal: FramingError | None = None
        #: a request head a read ended inside: (request, its bytes, that read).
        self._head_kept: tuple[Message, list[bytes], int] | None = None
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
        #: where reads go (the server's buffer), unless into a request's own buffer.
        self._read_view: memoryview = server.read_view
        self._into = False
        #: bytes of a large Content-Length body still to come past the parser.
        self._body_left = 0
        self._body_seen = 0
        self._view: TransportStream | None = None
        self._view_reads = False
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: when the timer fires (the deadline it was set for; no ``when()`` call).
        self._timer_at = 0.0
        self._scheduled = False
        self._done: asyncio.Future[None] = self.loop.create_future()
        self._done.set_result(None)
        self.closed: asyncio.Future[None] = self.loop.create_future()

    # -- asyncio.BufferedProtocol ---------------------------------------------
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

    get_buffer = httptools_read.get_buffer
    buffer_updated = httptools_read.buffer_updated
    data_received = httptools_read.data_received
    _raw_body = httptools_read.raw_body
    _filled = httptools_read.filled
    _body_done = httptools_read.body_done
    _refeed = httptools_method.refeed
    _keep_head = httptools_method.keep_head

    def eof_received(self) -> bool | None:
        # As Tornado: the client's end of stream ends the connection (what is already
        # written is still sent); the handler at work hears of it (on_connection_close).
        return False

    # -- parser callbacks -----------------------------------------------------
    def on_message_begin(self) -> None:
        self._msg = Message()
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

    on_headers_complete = httptools_read.headers_complete

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        self._event(EVENT_BODY, body)

    def on_message_complete(self) -> None:
        self._msg = None
        self._body_left = 0
        # _event(EVENT_END, None) inline (a call less for every request: about 1% of
        # hello's instructions under callgrind).
        conn = self._current
        if self._queue or (conn is not None and (conn._waiting or conn._read_done)):
            self._queue.append((EVENT_END, None))
            self._pause()
            return
        transport = self.transport
        if conn is None or self._closed or transport is None or transport.is_closing():
            return
        self._end(conn)

    # -- event dispatch -------------------------------------------------------
    def _event(self, kind: int, payload: Any) -> None:
        """Handle what the parser produced now, or queue it behind a busy delegate.
        (``_blocked()`` inline: this runs for every body piece.)"""
        conn = self._current
        if self._queue or (conn is not None and (conn._waiting or conn._read_done)):
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
        if kind == EVENT_HEAD:
            self._start(payload)
        elif kind == EVENT_BODY:
            conn = self._current
            if conn is not None:
                self._body(conn, payload)
        elif kind == EVENT_END:
            conn = self._current
            if conn is not None:
                self._end(conn)
        elif kind == EVENT_MORE:
            conn = self._current
            if conn is not None and not conn._write_done:
                self._pieces(conn, payload)
        else:
            self._refuse(payload)

    def _start(self, msg: Message) -> None:
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

    _after_head = httptools_body.after_head
    _body = httptools_body.body
    _pieces = httptools_body.pieces
    _fill = httptools_body.fill
    _filled_to = httptools_body.filled_to
    _next_fill = httptools_body.next_fill
    _deliver = httptools_body.deliver
    _end = httptools_body.end
    _wait = httptools_body.wait

    # -- answers and the next request ----------------------------------------
    _response_done = httptools_edges.response_done
    _can_drain = httptools_body.can_drain

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
        if self._paused and not self._dead:
            self._resume()

    # -- refusals and failures ------------------------------------------------
    _parse_failed = httptools_edges.parse_failed
    _refuse = httptools_edges.refuse
    _delegate_failed = httptools_edges.delegate_failed
    _lost = httptools_edges.lost

    # -- transport ------------------------------------------------------------
    _send = httptools_edges.send
    _write = httptools_edges.write
    _pause = httptools_edges.pause
    _resume = httptools_edges.resume
    _close = httptools_edges.close
    _abort = httptools_edges.abort
    close_when_idle = httptools_edges.close_when_idle

    # -- timeouts -------------------------------------------------------------
    _set_deadline = httptools_edges.set_deadline
    _refresh_deadline = httptools_edges.refresh_deadline
    _on_timer = httptools_edges.on_timer

    # -- detach ---------------------------------------------------------------
    stream_view = httptools_edges.stream_view
    _detach = httptools_edges.detach


def __getattr__(name: str) -> Any:
    # ``webframe.server.httptools_impl.HTTPServer``: the server class, found where the
    # compatibility runner (and ``HTTPServer.configure``) looks for a layer's server.
    if name == "HTTPServer":
        from .httptools_server import HTTPToolsServer

        return HTTPToolsServer
    raise AttributeError(name)
