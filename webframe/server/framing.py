"""Framing rules for a parsed request head: no I/O, one refusal reason or ``None``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from ..errors import BadRequestError, HTTPError, PayloadTooLargeError
from ..units import format_size

_DIGITS = re.compile(r"[0-9]{1,18}")
_TOKEN_BYTES = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
#: a list of transfer codings (tokens, optional parameters aside): anything else is
#: malformed (400), where a well-formed coding other than chunked is unknown (501).
_CODING_BYTES = _TOKEN_BYTES + rb"(?:[ \t]*;[^,]*)?"
_CODINGS = re.compile(_CODING_BYTES + rb"(?:[ \t]*,[ \t]*" + _CODING_BYTES + rb")*")


class FramingError(Exception):
    """A request head that must be refused (``status``, 400 or 501) with
    ``Connection: close``."""

    def __init__(self, message: str, status: int = 400, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        #: what the server log says (Tornado's wording where it has one).
        self.detail = detail or message


_TE_UNSUPPORTED = (
    "Transfer-Encoding {!r} is not supported; send 'chunked' or a Content-Length."
)
_BOTH = "A request may carry Content-Length or Transfer-Encoding, not both."
# Tornado's log wording, so log filters written for Tornado keep matching.
_BOTH_LOG = "Message with both Transfer-Encoding and Content-Length"
_CL_LOG = "Only integer Content-Length is allowed"
_CHUNKED_TWICE = (
    "Transfer-Encoding may name the chunked coding once; send one 'Transfer-Encoding: chunked'."
)
_REASONS = {400: "Bad Request", 431: "Request Header Fields Too Large", 501: "Not Implemented"}


def describe_parser_error(
    message: str, seen: list[tuple[bytes, bytes]] | None = None
) -> FramingError:
    """The refusal to send for an llhttp error ``message`` (worded as webframe's own
    checks word it, so both layers answer alike); ``seen``: the head fields parsed
    before the error."""
    low = message.lower()
    if "transfer-encoding" in low:
        if "content-length" in low:
            return FramingError(_BOTH, detail=_BOTH_LOG)
        if any(name.lower() == b"transfer-encoding" for name, _ in seen or ()):
            # chunked applied twice (RFC 9112 6.1): malformed, not an unknown coding.
            return FramingError(_CHUNKED_TWICE, detail="chunked transfer coding applied twice")
        return FramingError(
            _TE_UNSUPPORTED.format("(as sent)"), 501, detail="Unsupported Transfer-Encoding"
        )
    if "content-length" in low:
        return FramingError(
            "Content-Length must be one non-negative integer.", detail=_CL_LOG + f" ({message})"
        )
    if "chunk" in low:
        return FramingError(
            f"The chunked body is malformed ({message}).", detail=f"invalid chunk size: {message}"
        )
    line = "Malformed HTTP request line"
    if "method" in low:
        message = "The request method is not a valid token (RFC 9110 section 9)."
        return FramingError(message, detail=line)
    if "url" in low or "version" in low or "request line" in low:
        return FramingError(f"The request line is malformed ({message}).", detail=line)
    return FramingError(
        f"The request is malformed ({message}).", detail=f"Malformed HTTP headers: {message}"
    )


def check_request_head(
    version: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int | None, bool]:
    """Validate Host / Content-Length / Transfer-Encoding of one request head.

    Called once the whole head is parsed; returns ``(content_length, chunked)``
    or raises :class:`FramingError`. The parser has already refused bare CR,
    obs-fold, bad header-name bytes and a Content-Length beside chunked; these
    rules are the ones it leaves open (``gzip, chunked``, repeated codings, a
    missing or repeated Host), written down again where cheap so the layer
    does not depend on one parser version's strictness.
    """
    if version not in ("1.1", "1.0"):
        raise FramingError(f"HTTP version {version!r} is not supported; use HTTP/1.1.")
    hosts = 0
    te: bytes | None = None
    cl: bytes | None = None
    for name, value in headers:
        n = len(name)
        if n == 4:
            if name.lower() == b"host":
                hosts += 1
        elif n == 14:
            if name.lower() == b"content-length":
                if cl is not None:
                    raise FramingError(
                        "Content-Length must be one non-negative integer.",
                        detail="Multiple unequal Content-Lengths",
                    )
                cl = value
        elif n == 17 and name.lower() == b"transfer-encoding":
            if te is not None:
                raise FramingError(_CHUNKED_TWICE, detail="Transfer-Encoding sent twice")
            te = value
    if hosts > 1:
        raise FramingError("A request may carry one Host header, not several.")
    if hosts == 0 and version == "1.1":
        raise FramingError("An HTTP/1.1 request needs a Host header.")
    if te is not None:
        if cl is not None:
            raise FramingError(_BOTH, detail=_BOTH_LOG)
        value = te.strip(b" \t")
        if not _CODINGS.fullmatch(value):
            shown = te[:40].decode("latin1")
            raise FramingError(
                f"Transfer-Encoding {shown!r} is malformed; send 'Transfer-Encoding: chunked'.",
                detail=f"Malformed Transfer-Encoding {shown!r}",
            )
        if value.lower() != b"chunked":
            shown = te[:40].decode("latin1")
            raise FramingError(
                _TE_UNSUPPORTED.format(shown), 501, detail=f"Unsupported Transfer-Encoding {shown}"
            )
        return None, True
    if cl is None:
        return None, False
    text = cl.decode("latin1").strip(" \t")
    if not _DIGITS.fullmatch(text):
        raise FramingError(
            f"Content-Length must be one non-negative integer, got {text[:40]!r}.",
            detail=f"{_CL_LOG}: {text[:40]}",
        )
    return int(text), False


def can_keep_alive(
    version: str, connection: str | None, has_body_framing: bool, method: str
) -> bool:
    """Whether the connection may serve another request after this one (as Tornado decides)."""
    header = connection.lower() if connection is not None else None
    if version == "1.1":
        return header != "close"
    if has_body_framing or method in ("HEAD", "GET"):
        return header == "keep-alive"
    return False


def refusal(
    error: FramingError, raw_headers: list[tuple[bytes, bytes]]
) -> bytes:
    """The whole answer to a refused request: status line, ``Connection: close`` and a
    message, as JSON ``{"error": {"status", "message"}}`` when the client prefers JSON
    (the rule of ``RequestHandler.wants_json``, read from the head fields parsed so
    far), else plain text."""
    accept = ctype = ""
    for name, value in raw_headers:
        low = name.lower()
        if low == b"accept":
            accept = value.decode("latin1")
        elif low == b"content-type":
            ctype = value.decode("latin1")
    if "json" in accept:
        html = accept.find("html")
        wants_json = html < 0 or accept.find("json") < html
    else:
        wants_json = "json" in ctype and "html" not in accept
    status = error.status
    reason = _REASONS.get(status, "Bad Request")
    if wants_json:
        kind = "application/json; charset=UTF-8"
        text = json.dumps({"error": {"status": status, "message": str(error)}})
    else:
        kind = "text/plain; charset=UTF-8"
        text = f"{status} {reason}: {error}\n"
    body = text.encode("utf-8", "replace")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin1") + body


# -- Tornado's own connection layer: the decisions webframe's handler delegate takes ----
# (server/delegate.py and tornado_impl's body reader act on them; nothing here reads a
# socket or touches a Tornado object.)

#: Tornado's own per-connection cap is lifted; webframe enforces each route's limit
#: (or the server's ``max_body_size``, when it was given one and it is stricter).
UNLIMITED = 1 << 62
#: the most bytes of a refused body read and thrown away (its length known) so the
#: connection is kept and a client still sending can read the answer; a longer body
#: ends the connection instead.
DRAIN = 32 * 1024 * 1024
_CL_DIGITS = re.compile(r"[0-9]{1,19}")
#: an RFC 9110 token (a transfer coding's name).
_CODING_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def check_framing(
    headers: Mapping[str, str], limit: int
) -> tuple[HTTPError | None, int, str | None]:
    """Validate the Content-Length / Transfer-Encoding of a request head (Tornado's
    ``HTTPHeaders``: repeated fields come joined with commas) against ``limit``.

    Returns the error to answer (None: the framing is fine), the declared size, and
    for a malformed head the reason Tornado gives for it in its "Malformed HTTP
    message" log line (None for a well-formed one, a 413 included).
    """
    te = headers.get("Transfer-Encoding")
    cl = headers.get("Content-Length")
    if te is not None:
        if cl is not None:
            return (BadRequestError(_BOTH), 0, _BOTH_LOG)
        codings = [c.split(";", 1)[0].strip(" \t").lower() for c in te.split(",")]
        if codings != ["chunked"]:
            error: HTTPError
            if not all(_CODING_NAME.fullmatch(c) for c in codings):
                error = BadRequestError(
                    f"Transfer-Encoding {te[:40]!r} is not a list of transfer codings."
                )
            elif all(c == "chunked" for c in codings):
                # RFC 9112 6.1: chunked is applied at most once; a repeat is malformed.
                error = BadRequestError(
                    "Transfer-Encoding names chunked more than once; send it once."
                )
            else:
                error = HTTPError(_TE_UNSUPPORTED.format(te[:40]), status=501)
            return error, 0, f"Unsupported Transfer-Encoding {te}"
        return None, 0, None
    if cl is None:
        return None, 0, None
    pieces = {p.strip(" \t") for p in cl.split(",")}
    value = pieces.pop() if len(pieces) == 1 else ""
    if not _CL_DIGITS.fullmatch(value):
        reason = (
            f"Multiple unequal Content-Lengths: {cl!r}"
            if "," in cl
            else f"{_CL_LOG}: {cl}"
        )
        return (
            BadRequestError(f"Content-Length must be one non-negative integer, got {cl[:40]!r}."),
            0,
            reason,
        )
    size = int(value)
    if size > limit:
        return too_large(size, limit), size, None
    return None, size, None


def too_large(size: int, limit: int) -> PayloadTooLargeError:
    """The 413 for a declared body of ``size`` bytes where ``limit`` is allowed."""
    # Quiet: a body limit at work is no server problem; the access log has the 413.
    return PayloadTooLargeError(
        f"The request body is {format_size(size)}; this address accepts at most "
        f"{format_size(limit)}.",
        quiet=True,
    )


def too_large_streamed(limit: int) -> PayloadTooLargeError:
    """The 413 for a body (of no declared size) that crossed ``limit`` as it arrived."""
    return PayloadTooLargeError(
        f"The request body is larger than this address accepts ({format_size(limit)}).",
        quiet=True,
    )


def can_drain(remaining: int | None, waits_for_continue: bool) -> bool:
    """Whether a request answered before its body was read can keep its connection:
    the rest of the body has a known length of at most :data:`DRAIN` bytes (it is read
    and dropped), and the client is not holding it back for a ``100 Continue`` it will
    never get (it might send it, or not: its end is unknowable)."""
    return remaining is not None and remaining <= DRAIN and not waits_for_continue


def body_limit(route_limit: int, server_cap: int | None) -> int:
    """The body limit of one request: the route's, or the server's ``max_body_size``
    (``HTTPServer(app, max_body_size=...)``; None: not given) when that is stricter."""
    return route_limit if server_cap is None else min(route_limit, server_cap)


def server_body_cap(connection: object) -> int | None:
    """The ``max_body_size`` a connection's server was configured with (read from the
    connection's public ``params``, as both layers expose it), or None if unset."""
    params = getattr(connection, "params", None)
    cap = getattr(params, "max_body_size", None)
    return cap if isinstance(cap, int) else None


# -- the reused body buffer (RequestHandler.reuses_body_buffer) -------------------------

#: streamed bodies from this size on are read from the socket in BIG_READ pieces.
BIG_BODY = 1024 * 1024
BIG_READ = 512 * 1024
#: the largest reused buffer large bodies of ``reuses_body_buffer`` handlers are read
#: into (measured on 1 GiB uploads, server CPU per GiB: 512 KiB 1.19-1.20 s, 1 MiB
#: 1.11-1.13, 2 MiB 1.07-1.13, 4 MiB 1.14-1.16), and the smallest, where it starts.
BODY_BUFFER = 2 * 1024 * 1024
BODY_BUFFER_MIN = 64 * 1024
#: a fill quicker than FAST_FILL seconds (or already waiting in the socket) doubles the
#: buffer; one slower than SLOW_FILL takes it back to BODY_BUFFER_MIN, so a client
#: trickling its body (or stalling) holds 64 KiB, not 2 MiB.
FAST_FILL = 0.01
SLOW_FILL = 0.5


def first_buffer_size(content_length: int) -> int:
    """The size of the buffer a body of ``content_length`` bytes is first read into."""
    return min(BODY_BUFFER_MIN, content_length)


def next_buffer_size(size: int, waited: bool, took: float, remaining: int) -> int:
    """The buffer size for the next fill, after a fill of ``size`` bytes.

    ``waited``: the bytes were not already in the socket when the fill started;
    ``took``: seconds the fill took; ``remaining``: body bytes still to read. The
    buffer doubles (up to :data:`BODY_BUFFER`) after a fill that did not wait or was
    fast, if more than one buffer of body remains; it goes back to
    :data:`BODY_BUFFER_MIN` after a slow fill; otherwise it keeps its size. The last
    piece is read into an exact-size buffer (``min(result, remaining)``).
    """
    if (not waited or took < FAST_FILL) and size < BODY_BUFFER and remaining > size:
        return min(2 * size, BODY_BUFFER)
    if took > SLOW_FILL and size > BODY_BUFFER_MIN:
        return BODY_BUFFER_MIN
    return size
