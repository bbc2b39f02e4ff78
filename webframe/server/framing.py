"""Framing rules for a parsed request head: no I/O, one refusal reason or ``None``."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]{1,18}")


class FramingError(Exception):
    """A request head that must be refused with 400 and ``Connection: close``."""


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
        raise FramingError(f"HTTP version {version!r} is not supported")
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
                    raise FramingError("more than one Content-Length header")
                cl = value
        elif n == 17 and name.lower() == b"transfer-encoding":
            if te is not None:
                raise FramingError("more than one Transfer-Encoding header")
            te = value
    if hosts > 1:
        raise FramingError("more than one Host header")
    if hosts == 0 and version == "1.1":
        raise FramingError("an HTTP/1.1 request needs a Host header")
    if te is not None:
        if cl is not None:
            raise FramingError("both Content-Length and Transfer-Encoding")
        if te.strip().lower() != b"chunked":
            raise FramingError(
                f"Transfer-Encoding {te[:40].decode('latin1')!r} is not supported; "
                "send 'chunked' or a Content-Length"
            )
        return None, True
    if cl is None:
        return None, False
    text = cl.decode("latin1").strip(" \t")
    if not _DIGITS.fullmatch(text):
        raise FramingError(f"Content-Length must be one non-negative integer, got {text[:40]!r}")
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
