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

Module-level functions that :class:`~webframe.server.httptools_impl.HTTPToolsProtocol`
takes as its methods (``self`` is the protocol), kept apart to keep each module small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httptools

from .framing import FramingError
from .httptools_body import EVENT_BODY

if TYPE_CHECKING:
    from .httptools_impl import HTTPToolsProtocol

#: size of a server's read buffer (what one read of the socket may bring).
READ_SIZE = 256 * 1024


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
    # parsed(), inline: this runs for every read.
    if self._body_left:
        if self._msg is not None and not self._in_head:
            self._body_left -= self._body_seen
            return
        self._body_left = 0
    if self._in_head:
        self._keep_head(data, start, seen)


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
