"""The refusal guard on Tornado's own connection layer: a request answered before its
body was read never has the bytes after its head parsed as a request.

Public Tornado API only (it wraps an ``HTTP1Connection``'s public methods); the two
steps that need Tornado's internals come from :mod:`webframe.server.tornado_impl`,
which also says (``CAN_GUARD``) whether this Tornado has them.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from tornado import httputil
from tornado.http1connection import HTTP1Connection

from . import framing
from .tornado_impl import close_after_answer, drop_read_buffer


class LimitedDelegate(Protocol):
    """The delegate a :class:`Wire` reports to (webframe's handler delegate)."""

    def limit_set(self, size: int) -> None:
        """The handler set its request's body limit (``set_max_body_size``)."""


#: the fate of a connection whose answer started before its body was complete.
DRAIN_MODE = "drain"
CLOSE = "close"


class Wire:
    """Tornado's ``HTTP1Connection`` of one request with a body, kept to the rule that
    no byte after the head of a request answered before its body was read is ever
    parsed as a request.

    It wraps the connection's ``write_headers``, ``finish`` and ``close`` (for this
    request only: Tornado makes a connection object per request). An answer whose
    headers go out before the body is complete decides the connection's fate: if the
    rest of the body has a known length of at most ``framing.DRAIN`` bytes (and the client
    is not waiting for a ``100 Continue``), the connection is kept and, once the answer
    is finished, the rest of the body is read and dropped, the answer's end held back
    until then (Tornado would close otherwise); if not, the answer gets
    ``Connection: close``, and when Tornado closes the connection after it, the bytes
    it had already buffered are dropped with it, so nothing is parsed after the head.
    """

    __slots__ = (
        "_close",
        "_finish",
        "_write_headers",
        "connection",
        "delegate",
        "done",
        "expect",
        "finished_early",
        "got_body",
        "mode",
        "remaining",
    )

    def __init__(
        self, connection: HTTP1Connection, delegate: LimitedDelegate, expect: bool
    ) -> None:
        self.connection = connection
        self.delegate = delegate
        #: body bytes still to come; None: unknown (chunked, or framing refused).
        self.remaining: int | None = None
        self.expect = expect
        self.got_body = False
        self.done = False
        #: None until an answer starts before the body is complete.
        self.mode: str | None = None
        #: the answer finished before the body: the rest is dropped as it arrives.
        self.finished_early = False
        self._write_headers = connection.write_headers
        self._finish = connection.finish
        self._close = connection.close
        connection.write_headers = self.write_headers  # type: ignore[method-assign]
        connection.finish = self.finish  # type: ignore[method-assign]
        connection.close = self.close  # type: ignore[method-assign]
        connection.set_max_body_size = self.set_max_body_size  # type: ignore[method-assign]

    def set_max_body_size(self, max_body_size: int) -> None:
        # Tornado's own cap stays lifted: the delegate counts and answers 413.
        self.delegate.limit_set(max_body_size)

    def remaining_less(self, size: int) -> None:
        self.got_body = True
        if self.remaining is not None:
            self.remaining -= size

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        if not self.done and self.mode is None:
            waiting = self.expect and not self.got_body
            self.mode = DRAIN_MODE if framing.can_drain(self.remaining, waiting) else CLOSE
        if self.mode == CLOSE:
            headers["Connection"] = "close"
        return self._write_headers(start_line, headers, chunk)

    def finish(self) -> None:
        if self.mode == CLOSE:
            # Tornado decides to close only if the body is still unread at this point.
            close_after_answer(self.connection)
        elif not self.done and self.mode == DRAIN_MODE:
            # Ended by body_complete(), once the rest of the body has been dropped.
            self.finished_early = True
            return
        self._finish()

    def body_complete(self) -> bool:
        """Called when the whole body has been read; True if it was answered before."""
        self.done = True
        if self.finished_early:
            self._finish()
            return True
        return False

    def close(self) -> None:
        drop_read_buffer(self.connection.stream)
        self._close()
