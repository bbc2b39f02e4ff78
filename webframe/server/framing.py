"""Framing rules for a parsed request head: no I/O, one refusal reason or ``None``."""

from __future__ import annotations

import json
import re

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
        return FramingError("The request method is not one this server knows.", detail=line)
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
