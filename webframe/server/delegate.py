"""The per-request delegate of a webframe Application: framing checks, the body
limit, and drain-or-close for a request answered before its body was read.

Tornado calls ``Application.get_handler_delegate`` for each routed request; the
:class:`RequestDelegate` it returns sits between the connection (either layer) and
the handler. The rules it applies are :mod:`webframe.server.framing`'s (no I/O);
Tornado's internals it needs come from :mod:`webframe.server.tornado_impl`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.log import gen_log

from ..errors import HTTPError
from . import framing, tornado_impl
from .wire import CLOSE, Wire

if TYPE_CHECKING:
    from ..app import Application


class RequestDelegate(tornado_impl.HandlerDelegate):
    """Tornado's handler delegate plus webframe's framing checks and body limit.

    A declared Content-Length over the limit (the route's, or the server's
    ``max_body_size`` if stricter) is refused with 413 before anything reaches the
    handler; a chunked body is stopped the moment it crosses the limit. A streaming
    handler may raise an HTTPError from ``data_received``: the body is no longer
    passed on and the handler answers with that error.

    Once a request is refused before its body was read, no byte after its head is
    ever parsed as a request: a body of unambiguous framing and at most ``DRAIN``
    bytes is read and dropped (the connection is kept); otherwise the answer says
    ``Connection: close`` and the connection ends with it. On Tornado's own
    ``HTTP1Connection`` a :class:`~webframe.server.wire.Wire` enforces that for
    every early answer, the handler's own (an XSRF 403 or a 415 from an upload route's
    ``prepare``) too.
    """

    _received = 0
    _limit = 0
    _route_limit = 0
    _started = False
    _error: HTTPError | None = None
    _answered = False
    _drain_left = 0
    _wire: Wire | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        app: Application = self.application  # type: ignore[assignment]
        app.inflight.add(self.request)
        # Most requests (GET, HEAD) carry no body: nothing to check or limit.
        fields = tornado_impl.header_fields(headers)  # read-only: names already normalised
        if "Content-Length" not in fields and "Transfer-Encoding" not in fields:
            self._started = True
            return super().headers_received(start_line, headers)
        connection = self.request.connection
        self._route_limit = route_limit = app.body_limit(self.handler_class)
        self._limit = limit = framing.body_limit(route_limit, framing.server_body_cap(connection))
        if connection is not None:
            connection.set_max_body_size(framing.UNLIMITED)  # type: ignore[attr-defined]
        expect = headers.get("Expect", "").lower() == "100-continue"
        wire = None
        if isinstance(connection, HTTP1Connection) and tornado_impl.CAN_GUARD:
            self._wire = wire = Wire(connection, self, expect)
        # A streaming handler may lift the server's cap for its request in prepare()
        # (Tornado's connection.set_max_body_size): its declared size is checked
        # against the server's cap once prepare() has run.
        reports = wire is not None or getattr(connection, "reports_body_limit", False)
        later = self.stream_request_body and reports and limit < route_limit
        error, declared, malformed = framing.check_framing(headers, route_limit if later else limit)
        if malformed is not None:
            gen_log.info("Malformed HTTP message from %s: %s", self.request.remote_ip, malformed)
        if wire is not None and malformed is None:
            wire.remaining = None if "Transfer-Encoding" in headers else declared
        if error is None:
            if self.stream_request_body and declared >= framing.BIG_BODY:
                read_big(self.request, getattr(self.handler_class, "reuses_body_buffer", False))
            self._started = True
            prepared = super().headers_received(start_line, headers)
            if later and declared > limit:
                return self._check_declared(prepared, declared)
            return prepared
        self._reject(error)
        if error.status_code == 413 and framing.can_drain(declared, expect):
            # One valid Content-Length of a size worth reading: answer now, then read
            # and drop exactly that body, and keep the connection.
            self._answer(close=False)
        else:
            # The body's end is unknown, too far, or the client waits for a 100 it will
            # not get: Tornado reads no body once these headers are gone, the answer
            # says Connection: close and the connection ends with it.
            for name in ("Content-Length", "Transfer-Encoding", "Expect"):
                if name in headers:
                    del headers[name]
            self._answer(close=True)
        return None

    async def _check_declared(self, prepared: Awaitable[None] | None, declared: int) -> None:
        """After a streaming handler's prepare(): refuse a declared body over the limit
        then in force (the server's cap, unless prepare() set the request's own)."""
        if prepared is not None:
            await prepared
        if (
            declared > self._limit
            and self._error is None
            and not tornado_impl.handler_finished(self.handler)
        ):
            self._reject(framing.too_large(declared, self._limit))
            self._answer(close=declared > framing.DRAIN)

    def execute(self) -> Awaitable[None] | None:
        """Called once the request may run (after the head when streaming, else after
        the body); the handler runs at once and needs a Task only if it suspends."""
        return tornado_impl.execute_eagerly(self)

    def limit_set(self, size: int) -> None:
        """The handler set its request's body limit (``set_max_body_size``): it replaces
        the server's cap; the route's own limit still applies."""
        self._limit = min(self._route_limit, size)

    def data_received(self, data: bytes) -> Awaitable[None] | None:
        wire = self._wire
        if wire is not None:
            wire.remaining_less(len(data))
            if wire.finished_early:
                return None  # answered before the body was read: the rest is dropped
        if self._error is not None:
            # Refused mid-body: read and drop up to DRAIN more bytes so the answer can
            # keep the connection; past that, answer now and close.
            self._drain_left -= len(data)
            if self._drain_left < 0 and not self._answered:
                self._answer(close=True)
            return None
        self._received += len(data)
        if self._received > self._limit:
            self._reject(framing.too_large_streamed(self._limit))
            return None
        if not self.stream_request_body:
            tornado_impl.add_body_chunk(self, data)
            return None
        try:
            result = self.handler.data_received(data)
        except HTTPError as exc:
            self._reject(exc)
            return None
        if result is None:
            return None
        return self._await_chunk(result)

    async def _await_chunk(self, result: Awaitable[None]) -> None:
        try:
            await result
        except HTTPError as exc:
            self._reject(exc)

    def finish(self) -> None:
        wire = self._wire
        if wire is not None and wire.body_complete():
            return  # answered before the body was read; the body is dropped
        if self._error is None:
            hook = (
                getattr(self.handler, "on_body_complete", None)
                if self.stream_request_body and self._started
                else None
            )
            if hook is not None:
                try:
                    hook()
                except Exception as exc:
                    # The handler is waiting for its body: it answers this error itself.
                    if tornado_impl.fail_body(self.request, exc):
                        return
                    raise
            super().finish()
        elif not self._answered:
            self._answer(close=False)

    def on_connection_close(self) -> None:
        self.application.inflight.discard(self.request)  # type: ignore[attr-defined]
        if self._started:
            super().on_connection_close()

    def _reject(self, error: HTTPError) -> None:
        """Stop passing the body on; ``error`` is answered once the body is drained."""
        self._error = error
        self._drain_left = framing.DRAIN
        tornado_impl.drop_body_chunks(self)

    def _answer(self, close: bool) -> None:
        """Send the error; ``close``: with ``Connection: close``, ending the connection."""
        error = self._error
        assert error is not None
        self._answered = True
        if close:
            error.headers["Connection"] = "close"
            if self._wire is not None:
                self._wire.mode = CLOSE
        # A streaming handler waiting for its body fails with the error, so its own
        # write_error answers and its clean-up hooks run.
        if self._started and self.stream_request_body and tornado_impl.fail_body(
            self.request, error
        ):
            return
        handler = self.handler_class(self.application, self.request, **self.handler_kwargs)
        tornado_impl.prepare_for_send_error(handler, self.application)
        self.handler = handler
        handler.send_error(error.status_code, exc_info=(type(error), error, None))


def read_big(request: httputil.HTTPServerRequest, reuse: bool) -> None:
    """Read a large streamed body from the socket in big pieces (Tornado allocates a
    fresh buffer of ``read_chunk_size`` per read, so small requests keep 64 KiB).

    ``reuse``: the handler takes its body pieces as one reused ``bytearray``
    (see ``RequestHandler.reuses_body_buffer``): the socket is read straight into
    it, with none of Tornado's per-read allocation and two copies.
    """
    connection = request.connection
    if reuse:
        if tornado_impl.reuse_body_buffer(connection):
            return
        # The httptools layer's connection fills the buffer itself, by the same policy.
        own = getattr(connection, "reuse_body_buffer", None)
        if own is not None and own(
            framing.BODY_BUFFER_MIN, framing.BODY_BUFFER, framing.FAST_FILL, framing.SLOW_FILL
        ):
            return
    stream = getattr(connection, "stream", None)
    if stream is None:
        return
    if getattr(stream, "read_chunk_size", framing.BIG_READ) < framing.BIG_READ:
        stream.read_chunk_size = framing.BIG_READ
