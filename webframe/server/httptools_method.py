"""Request methods llhttp does not know, on the httptools layer.

llhttp parses a fixed list of methods and refuses any other (``OTHER``, ``FOO``)
as malformed, where RFC 9110 (and Tornado) take any token as a method: the
application answers 405 when it does not support it, or serves it when a handler's
``SUPPORTED_METHODS`` adds it. So when the parser refuses a request's method, the
request is read again from its first byte by a new parser given a stand-in method
(``GET``: no framing meaning of its own in a request, unlike ``HEAD`` or
``CONNECT``), which reports the request's own method once (:class:`RenamedParser`).

Only this error path (and a read ending inside a request head) does any work: the
normal path keeps the parser it has. The first bytes of a request are found again
with a scratch parser over the read (the requests before it end where that parser
counts them complete), from the start of the head a read ended inside
(:func:`keep_head`) when the read began in one. A method that is not a token is
still refused (400, ``Connection: close``, nothing after it parsed); one longer than
:data:`MAX_METHOD` is answered 501 (RFC 9112 section 3).

One case is refused as before: a read that began inside a chunked body (where it
ends is llhttp's to know) and then reaches an unknown method.

Module-level functions that :class:`~webframe.server.httptools_impl.HTTPToolsProtocol`
takes as its methods (``self`` is the protocol).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import httptools

from .framing import FramingError, describe_parser_error
from .httptools_read import parsed

if TYPE_CHECKING:
    from .httptools_impl import HTTPToolsProtocol

#: RFC 9110 tchar: what a method token is made of.
TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: the longest method read; a longer one is answered 501.
MAX_METHOD = 64
#: what llhttp's parser is given in place of a method it does not know.
STAND_IN = b"GET"
#: llhttp's words for an RTSP method (PLAY, FLUSH) on an HTTP request line.
_RTSP_METHOD = "invalid method for http/x.x request"
_LINE = "Malformed HTTP request line"


class RenamedParser(httptools.HttpRequestParser):
    """A request parser fed :data:`STAND_IN` for the method of its first request:
    ``get_method`` gives that request's own method once, then the parser's."""

    def __init__(self, protocol: object, method: bytes) -> None:
        super().__init__(protocol)
        self.method: bytes | None = method

    def get_method(self) -> bytes:
        method = self.method
        if method is None:
            return super().get_method()
        self.method = None
        return method


class MethodCollector(httptools.HttpRequestParser):
    """Stands in for the parser while an unknown method's token is incomplete: every
    read is refused back to :func:`unknown_method`, which adds it to :attr:`head`."""

    def __init__(self, head: bytes) -> None:
        super().__init__(_Completions())
        self.head = head

    def feed_data(self, data: Any) -> None:
        raise httptools.HttpParserInvalidMethodError("the method goes on")


class _Completions:
    """A scratch parser's protocol: counts the requests it completes."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def on_message_complete(self) -> None:
        self.count += 1


def completions(data: memoryview | bytes) -> int:
    """How many requests a new parser completes in ``data`` (up to its first error)."""
    counter = _Completions()
    with contextlib.suppress(httptools.HttpParserError, httptools.HttpParserUpgrade):
        httptools.HttpRequestParser(counter).feed_data(data)
    return counter.count


def message_start(data: memoryview | bytes) -> int:
    """Where in ``data`` (read from between two requests) the request the parser was
    at when it stopped begins: just after the last request it completed."""
    total = completions(data)
    if total == 0:
        return 0
    low, high = 1, len(data)
    while low < high:  # the shortest prefix that completes them all
        middle = (low + high) // 2
        if completions(data[:middle]) >= total:
            high = middle
        else:
            low = middle + 1
    return low


def is_unknown_method(exc: Exception) -> bool:
    """Whether llhttp refused a request's method (not its syntax elsewhere)."""
    return isinstance(exc, httptools.HttpParserInvalidMethodError) or (
        str(exc).lower() == _RTSP_METHOD
    )


def _whole(self: HTTPToolsProtocol, data: memoryview | bytes, start: Any, seen: int) -> Any:
    """This read's bytes from the start of the request it begins in (``start``; None:
    between two requests): after the head the read before kept, or after a stand-in
    head framing what is left of a Content-Length body (``seen``: its bytes read)."""
    if start is None:
        return data
    kept = self._head_kept
    if kept is not None and kept[0] is start and kept[2] == self._feeds - 1:
        return b"".join(kept[1]) + bytes(data)
    if start.start_line is not None and start.length is not None and not start.chunked:
        left = start.length - seen
        return b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n%b" % (left, bytes(data))
    return None  # inside a chunked body: where it ends is llhttp's to know


def keep_head(
    self: HTTPToolsProtocol, data: memoryview | bytes, start: Any, seen: int
) -> None:
    """A read ended inside a request head (``start``: the request the read began in,
    None between two): keep that head's bytes so far, so that the next read can find
    where the request after it begins if the parser refuses that one's method."""
    msg = self._msg
    kept = self._head_kept
    fresh = kept is not None and kept[2] == self._feeds - 1
    if fresh and kept is not None and start is not None and start is msg and kept[0] is msg:
        kept[1].append(bytes(data))  # the same head goes on
        self._head_kept = (msg, kept[1], self._feeds)
        return
    whole = _whole(self, data, start, seen)
    if whole is None or msg is None:
        self._head_kept = None
        return
    self._head_kept = (msg, [bytes(whole[message_start(whole) :])], self._feeds)


def unknown_method(
    self: HTTPToolsProtocol, exc: Exception, data: memoryview | bytes, start: Any, seen: int
) -> bytes | None:
    """The parser refused ``data``: if for a method it does not know, what to feed the
    new parser now in place (b"" while the method is incomplete); None to refuse
    (a 501 for a method too long is left in ``self._refusal``)."""
    if self._refusal is not None or not is_unknown_method(exc):
        return None
    parser = self.parser
    if isinstance(parser, MethodCollector):
        head = parser.head + bytes(data)
    else:
        whole = _whole(self, data, start, seen)
        if whole is None:
            return None  # where the request begins is not known: refused as before
        head = bytes(whole[message_start(whole) :])
    self._head_kept = None
    head = head.lstrip(b"\r\n")
    end = min(len(head), MAX_METHOD + 1)
    n = 0
    while n < end and head[n] in TCHAR:
        n += 1
    if n > MAX_METHOD:
        self._refusal = FramingError(
            "The request method is longer than any this server implements.", 501, detail=_LINE
        )
        return None
    if n == len(head):
        self.parser = MethodCollector(head)
        return b""
    if n == 0 or head[n] != 0x20:
        return None  # not a token
    self.parser = RenamedParser(self, head[:n])
    return STAND_IN + head[n:]


def refeed(
    self: HTTPToolsProtocol, exc: Exception, data: memoryview, start: Any, seen: int
) -> None:
    """The parser refused ``data``: a request with a method it does not know is fed
    again (with what follows it) under the stand-in; anything else is refused."""
    while True:
        again = unknown_method(self, exc, data, start, seen)
        if again is None:
            fields = self._msg.raw if self._msg is not None else None
            self._parse_failed(self._refusal or describe_parser_error(str(exc), fields))
            return
        if not again:
            return  # the method goes on in the next read
        data, start = memoryview(again), None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._leftover = bytes(data[upgrade.args[0] :]) if upgrade.args else b""
            self._dead = True
            self._pause()
        except httptools.HttpParserError as error:
            exc = error
            continue
        parsed(self, data, start, seen)
        return
