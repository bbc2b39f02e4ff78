"""One request on an httptools connection: the parsed head and Tornado's
``HTTPConnection`` the application answers through."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from tornado import httputil, iostream

from . import framing, tornado_impl
from .stream import TransportStream
from .tornado_impl.headers import FAST_HEADERS

if TYPE_CHECKING:
    from .httptools_impl import HTTPToolsProtocol

_LAST_CHUNK = b"0\r\n\r\n"

#: status code -> (reason, status line) last sent with it.
_STATUS: dict[int, tuple[str, str]] = {}
#: header names and values already found free of CR and LF; emptied past _SAFE_MAX.
_SAFE: set[str] = set()
_SAFE_MAX = 2048


def _status_line(code: int, reason: str) -> tuple[str, str]:
    line = f"HTTP/1.1 {code} {reason}"
    if "\r" in line or "\n" in line:
        raise ValueError(f"Illegal characters (CR or LF) in header: {line!r}")
    status = _STATUS[code] = (reason, line)
    return status


def _check(name: str, value: str, text: str) -> None:
    """Refuse ``text`` (the name or the value of a header line) with CR or LF
    (response splitting); remember it without."""
    if "\r" in text or "\n" in text:
        line = f"{name}: {value}"
        raise ValueError(f"Illegal characters (CR or LF) in header: {line!r}")
    if len(_SAFE) >= _SAFE_MAX:
        _SAFE.clear()
    _SAFE.add(text)


def _limit_listener(delegate: object) -> Callable[[int], None] | None:
    """The ``limit_set`` of the delegate handling a request: the delegate itself, or
    the one a routing delegate (``tornado.web.Application``'s) handed the request to."""
    for _ in range(3):
        if delegate is None:
            return None
        listener = getattr(delegate, "limit_set", None)
        if callable(listener):
            return listener  # type: ignore[no-any-return]
        delegate = getattr(delegate, "delegate", None)
    return None


class Message:
    """One request as parsed: head fields, framing, and whether its body has ended."""

    __slots__ = (
        "chunked",
        "expect",
        "headers",
        "keep_alive",
        "length",
        "raw",
        "start_line",
        "upgrade",
        "url",
    )

    def __init__(self) -> None:
        self.url = b""
        self.raw: list[tuple[bytes, bytes]] = []
        self.start_line: httputil.RequestStartLine | None = None
        self.headers: httputil.HTTPHeaders | None = None
        self.length: int | None = None
        self.chunked = False
        self.keep_alive = False
        self.upgrade = False
        self.expect = False


class HTTPToolsConnection(httputil.HTTPConnection):
    """Tornado's ``HTTPConnection`` for one request on an :class:`HTTPToolsProtocol`."""

    __slots__ = (
        "_body_timeout",
        "_chunking",
        "_close_after",
        "_close_callback",
        "_continue_sent",
        "_delegate",
        "_fill",
        "_fill_feed",
        "_fill_left",
        "_fill_policy",
        "_fill_pos",
        "_fill_started",
        "_headers_written",
        "_max_body_size",
        "_msg",
        "_proto",
        "_read_done",
        "_received",
        "_remaining",
        "_started",
        "_status",
        "_waiting",
        "_write_done",
        "context",
        "params",
    )

    #: ``set_max_body_size`` reaches the request's delegate (its ``limit_set``), so a
    #: delegate may leave a declared size over the server's cap to be checked once a
    #: streaming handler's ``prepare()`` has run, as it does on Tornado's layer.
    reports_body_limit = True

    @property
    def stream(self) -> TransportStream:
        """The connection as an ``IOStream``-like object (raw writes, ``close()``)."""
        return self._proto.stream_view()

    def __init__(self, proto: HTTPToolsProtocol, msg: Message) -> None:
        self._proto = proto
        self._msg = msg
        self.context = proto.context
        server = proto.server
        self.params = server.params
        self._delegate: httputil.HTTPMessageDelegate | None = None
        self._close_callback: Callable[[], None] | None = None
        self._max_body_size: int = server.max_body_size
        self._body_timeout: float | None = server.body_timeout
        self._received = 0
        self._waiting = False
        self._read_done = False
        self._headers_written = False
        self._write_done = False
        self._chunking = False
        self._remaining: int | None = None
        self._close_after = not msg.keep_alive
        self._continue_sent = False
        self._status = 0
        self._started = False
        # _fill_pos, _fill_left, _fill_feed, _fill_started and _fill_policy are set by
        # reuse_body_buffer() and read only once _fill is set (not per request here).
        self._fill: bytearray | None = None

    # -- HTTPConnection -------------------------------------------------------
    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Called (once) if the client goes away before the answer is finished."""
        self._close_callback = callback

    def set_max_body_size(self, max_body_size: int) -> None:
        """Body limit for this request (overrides the server's ``max_body_size``).

        A handler calling it (in ``prepare()`` of a ``stream_request_body`` handler,
        as on Tornado's layer) also tells a delegate that counts the body itself
        (webframe's, through its ``limit_set``), which otherwise keeps the server's
        cap. ``framing.UNLIMITED`` is that delegate taking the counting over: it only
        lifts this connection's own limit.
        """
        self._max_body_size = max_body_size
        if max_body_size != framing.UNLIMITED:
            listener = _limit_listener(self._delegate)
            if listener is not None:
                listener(max_body_size)

    def reuse_body_buffer(
        self, min_size: int, max_size: int, fast_fill: float, slow_fill: float
    ) -> bool:
        """From now on, hand this request's body to ``data_received`` as one reused
        ``bytearray`` (each piece the whole buffer; the last one exactly what is left).

        Called from ``headers_received`` (before any body byte) by a delegate whose
        handler keeps nothing it is given. The buffer starts at ``min_size`` and
        doubles, up to ``max_size``, while fills come faster than ``fast_fill``
        seconds or were already read; a fill slower than ``slow_fill`` takes it back
        to ``min_size``. Returns False (and changes nothing) without a
        Content-Length or once body bytes were handed on.
        """
        length = self._msg.length
        if not length or self._received or self._msg.chunked:
            return False
        self._fill_policy: tuple[int, int, float, float] = (
            min_size,
            max_size,
            fast_fill,
            slow_fill,
        )
        self._fill = bytearray(min(min_size, length))
        self._fill_left: int = length
        self._fill_pos: int = 0
        self._fill_started: float = self._proto.loop.time()
        self._fill_feed: int = self._proto._feeds
        return True

    def set_body_timeout(self, timeout: float) -> None:
        """Seconds the client gets to send this request's body."""
        self._body_timeout = timeout
        self._proto._refresh_deadline()

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        """Send the status line and headers (and a first body piece)."""
        assert isinstance(start_line, httputil.ResponseStartLine)
        proto = self._proto
        msg = self._msg
        req = msg.start_line
        assert req is not None
        code = start_line.code
        self._status = code
        self._headers_written = True
        version = req.version
        method = req.method
        # Tornado's own mapping when its layout is known (one dict lookup per name).
        fields = tornado_impl.header_fields(headers)
        lengths = fields.get("Content-Length")
        self._chunking = chunking = (
            lengths is None
            and version == "HTTP/1.1"
            and method != "HEAD"
            and code != 204
            and code != 304
            and not 100 <= code < 200
        )
        close = self._close_after or proto._draining
        if not close:
            connection = fields.get("Connection")
            if connection is not None and ",".join(connection).lower() == "close":
                close = True
            elif msg.upgrade and code != 101:
                # The parser stops after an upgrade request's head; whatever follows
                # (a body, more requests) is not parsed, so the connection ends here.
                close = True
            elif (
                not self._read_done
                # A request without a body (the usual one) is always drainable.
                and (msg.length or msg.chunked or msg.expect or msg.upgrade)
                and not proto._can_drain(self)
            ):
                close = True
        self._close_after = close
        changed = chunking
        if close:
            if version == "HTTP/1.1":
                headers["Connection"] = "close"
                changed = True
        elif version == "HTTP/1.0":
            headers["Connection"] = "Keep-Alive"
            changed = True
        if chunking:
            headers["Transfer-Encoding"] = "chunked"
        if method == "HEAD" or code == 304:
            self._remaining = 0
        elif lengths is not None:
            declared = lengths[0] if len(lengths) == 1 else ",".join(lengths)
            if not (declared.isdigit() and declared.isascii()):
                raise ValueError(f"not an integer Content-Length: {declared!r}")
            self._remaining = int(declared)
        else:
            self._remaining = None
        if changed and not (FAST_HEADERS and type(headers) is httputil.HTTPHeaders):
            fields = tornado_impl.header_fields(headers)  # again: the copy is stale
        # One pass: each name and value checked for CR/LF (once per distinct text).
        status = _STATUS.get(code)
        reason = start_line.reason
        if status is None or status[0] != reason:
            status = _status_line(code, reason)
        parts = [status[1]]
        append = parts.append
        safe = _SAFE
        for name, values in fields.items():
            if name not in safe:
                _check(name, values[0] if values else "", name)
            for value in values:
                if value not in safe:
                    _check(name, value, value)
                append(f"{name}: {value}")
        append("\r\n")
        data = "\r\n".join(parts).encode("latin1")
        if chunk:
            remaining = self._remaining
            if chunking or remaining is None or len(chunk) > remaining:
                data += self._format(chunk)
            else:  # _format(), inline: the whole body of a Content-Length answer
                self._remaining = remaining - len(chunk)
                data += chunk
        transport = proto.transport
        if (
            transport is not None
            and not proto._closed
            and not proto._write_paused
            and not transport.is_closing()
        ):
            transport.write(data)  # _send(), inline: the usual case
            return proto._done
        return proto._send(data)

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """Send a body piece; the future waits while the socket's buffer is full."""
        return self._proto._send(self._format(chunk))

    def finish(self) -> None:
        """The answer is complete."""
        proto = self._proto
        if self._remaining and not proto._closed:
            proto._abort()
            raise httputil.HTTPOutputError(
                f"Tried to write {self._remaining} bytes less than Content-Length"
            )
        if self._chunking and not proto._closed:
            proto._write(_LAST_CHUNK)
        self._write_done = True
        self._close_callback = None
        proto._response_done(self)

    def detach(self) -> iostream.IOStream:
        """Hand the socket over (WebSocket): an ``IOStream`` that owns it from now on."""
        return self._proto._detach(self)

    def close(self) -> None:
        """Close the connection (what ``HTTP1Connection.close`` does)."""
        self._proto._abort()

    # -- helpers --------------------------------------------------------------
    def _format(self, chunk: bytes) -> bytes:
        remaining = self._remaining
        if remaining is not None:
            remaining -= len(chunk)
            self._remaining = remaining
            if remaining < 0:
                self._proto._abort()
                raise httputil.HTTPOutputError("Tried to write more data than Content-Length")
        if self._chunking and chunk:
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        return chunk
