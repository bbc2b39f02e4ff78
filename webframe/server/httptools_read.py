"""Reading the socket on the httptools layer (``asyncio.BufferedProtocol``).

The loop asks :func:`get_buffer` where to read and reports with :func:`buffer_updated`
how many bytes landed there. Two places:

- while a large Content-Length body whose handler asked for a reused buffer
  (``HTTPToolsConnection.reuse_body_buffer``) is being read past the parser, the
  part of that buffer still to fill: the socket is read straight into the
  ``bytearray`` the handler's ``data_received`` is then given, with no copy;
- otherwise the server's read buffer (one per server: its connections share a loop,
  and a read is reported before the next one starts), whose filled part goes to the
  parser as a ``memoryview``.

The read buffer is reused by the next read, so whatever outlives a call is copied to
``bytes`` first: llhttp's callbacks give ``bytes`` already; a body read past the
parser, the bytes after an upgrade request's head, and bytes fed to a detached
stream are copied here.

:func:`headers_complete` (the parser's ``on_headers_complete``) turns a parsed head
into Tornado's start line and headers and hands the request on.

Module-level functions that :class:`~webframe.server.httptools_impl.HTTPToolsProtocol`
takes as its methods (``self`` is the protocol), kept apart to keep each module small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httptools
from tornado import httputil

from . import tornado_impl
from .framing import FramingError, can_keep_alive, check_request_head
from .httptools_body import EVENT_BODY, EVENT_HEAD
from .tornado_impl.headers import FAST_HEADERS

if TYPE_CHECKING:
    from .httptools_impl import HTTPToolsProtocol

#: size of a server's read buffer (what one read of the socket may bring).
READ_SIZE = 256 * 1024
#: Content-Length bodies from this size on are read past the parser once their head
#: is parsed (llhttp would copy every piece; the length is already validated).
RAW_BODY = 64 * 1024

_START_LINE = httputil.RequestStartLine
_new_tuple = tuple.__new__


def get_buffer(self: HTTPToolsProtocol, sizehint: int) -> memoryview:
    """Where the next read of the socket goes (``asyncio.BufferedProtocol``)."""
    if self._body_left:
        conn = self._current
        if (
            conn is not None
            and conn._fill is not None
            and conn._msg is self._msg
            and not conn._waiting
            and not conn._write_done
            and not self._queue
            and not self._dead
        ):
            # The body's own buffer; never more than what is left of the body (the
            # last fill is sized to it), so no byte after the body lands there.
            self._into = True
            return memoryview(conn._fill)[conn._fill_pos :]
    return self._read_view


def buffer_updated(self: HTTPToolsProtocol, nbytes: int) -> None:
    """``nbytes`` were read into the buffer :func:`get_buffer` gave."""
    self._feeds += 1
    if self._into:
        self._into = False
        self._filled(nbytes)
        return
    data = self._read_view[:nbytes]
    if self._dead:
        if self._view_reads and self._view is not None:
            self._view.feed(bytes(data))
        return
    if self._body_left:
        data = self._raw_body(data)
        if not data:
            return
    if self._in_head:
        # Bytes read while a head is incomplete: bound what the parser buffers.
        self._head_bytes += nbytes
        if self._head_bytes > self.server.max_header_size + 65536:
            self._parse_failed(FramingError("The request head is too large.", 431))
            return
    # The request this read begins in (None: between two) and its body bytes so far.
    start, seen = self._msg, self._body_seen
    try:
        self.parser.feed_data(data)
    except httptools.HttpParserUpgrade as exc:
        self._leftover = bytes(data[exc.args[0] :]) if exc.args else b""
        self._dead = True
        self._pause()
    except httptools.HttpParserError as exc:
        # A method llhttp does not know: the request again, under a stand-in.
        self._refeed(exc, data, start, seen)
        return
    parsed(self, data, start, seen)


def parsed(self: HTTPToolsProtocol, data: memoryview, start: Any, seen: int) -> None:
    """After the parser took ``data`` (``start``, ``seen``: the request the read began
    in and its body bytes then)."""
    if self._body_left:
        if self._msg is not None and not self._in_head:
            # A large fixed-length body goes on past the parser (no copy per piece);
            # a fresh parser takes the bytes after it.
            self._body_left -= self._body_seen
            return
        self._body_left = 0
    if self._in_head:
        self._keep_head(data, start, seen)


def raw_body(self: HTTPToolsProtocol, data: memoryview) -> memoryview:
    """The next bytes of a Content-Length body read past the parser (into the read
    buffer: copied to ``bytes``); returns what follows the body, if anything."""
    left = self._body_left
    if len(data) <= left:
        self._body_left = left - len(data)
        self._event(EVENT_BODY, bytes(data))
        rest = data[:0]
    else:
        self._body_left = 0
        self._event(EVENT_BODY, bytes(data[:left]))
        rest = data[left:]
    if self._body_left == 0:
        self._body_done()
    return rest


def filled(self: HTTPToolsProtocol, nbytes: int) -> None:
    """``nbytes`` of the body were read straight into the request's reused buffer."""
    conn = self._current
    assert conn is not None
    self._body_left -= nbytes
    conn._received += nbytes
    if conn._received > conn._max_body_size:
        self._refuse(
            FramingError(
                "The request body is larger than this server accepts.",
                detail="body too large",
            ),
            conn,
        )
        return
    buffer = conn._fill
    assert buffer is not None
    # Waited: this fill took more than the one read that began it.
    self._filled_to(conn, buffer, conn._fill_pos + nbytes, self._feeds > conn._fill_feed + 1)
    if self._body_left == 0:
        self._body_done()


def body_done(self: HTTPToolsProtocol) -> None:
    """The last byte of a body read past the parser: a new parser for what follows."""
    self.parser = httptools.HttpRequestParser(self)
    self.on_message_complete()


def data_received(self: HTTPToolsProtocol, data: bytes) -> None:
    """Bytes handed over whole (``asyncio.Protocol``'s way, for code that drives the
    protocol by hand; the loop calls :func:`get_buffer`): read through the same path."""
    view = memoryview(data)
    while view:
        buffer = self.get_buffer(-1)
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        view = view[n:]
        self.buffer_updated(n)


def headers_complete(self: HTTPToolsProtocol) -> None:
    """The parser has a request's head: check it, make Tornado's start line and
    headers, decide its framing, and hand it on (or queue it)."""
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
    # The namedtuple made without its Python-level __new__ (the same object).
    msg.start_line = _new_tuple(_START_LINE, (method, msg.url.decode("latin1"), http_version))
    msg.headers = headers
    framed = msg.chunked or msg.length is not None
    # headers_from_parsed made Tornado's own HTTPHeaders: its mapping, read without a call.
    fields = headers._as_list if FAST_HEADERS else tornado_impl.header_fields(headers)
    connection = fields.get("Connection")
    if connection is None and version == "1.1":
        msg.keep_alive = not self.server.no_keep_alive  # can_keep_alive's answer
    else:
        msg.keep_alive = not self.server.no_keep_alive and can_keep_alive(
            version, ",".join(connection) if connection else None, framed, method
        )
    msg.upgrade = parser.should_upgrade()
    expect = fields.get("Expect")
    msg.expect = (
        expect is not None and ",".join(expect).lower() == "100-continue" and version == "1.1"
    )
    self._head_bytes = 0
    self._body_seen = 0
    big = msg.length is not None and msg.length >= RAW_BODY and not msg.upgrade
    self._body_left = msg.length if big and msg.length is not None else 0
    if self._current is None and (msg.chunked or msg.length):
        self._set_deadline(self.server.body_timeout)
    if msg.upgrade:
        # The handler may run within this call (the eager fast path) and detach
        # the connection; the bytes read past the head are known only once the
        # parser returns (HttpParserUpgrade), so the request waits for that.
        self._queue.append((EVENT_HEAD, msg))
        self._schedule()
        return
    # _event() then _handle(), inline: this runs for every request.
    conn = self._current
    if self._queue or (conn is not None and (conn._waiting or conn._read_done)):
        self._queue.append((EVENT_HEAD, msg))
        self._pause()
        return
    transport = self.transport
    if not self._closed and transport is not None and not transport.is_closing():
        self._start(msg)
