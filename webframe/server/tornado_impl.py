"""Every Tornado private name the connection layers use, in one place, version-checked.

Each helper falls back to public behaviour (or says clearly what is missing)
when a Tornado release renames what it relies on.
"""

from __future__ import annotations

from typing import Any

import tornado
import tornado.http1connection
import tornado.iostream
from tornado import httputil

#: Tornado releases these helpers were checked against.
CHECKED_VERSIONS = ((6, 5), (6, 6))
TORNADO_VERSION = tuple(int(p) for p in tornado.version.split(".")[:2])

_Gzip: Any = getattr(tornado.http1connection, "_GzipMessageDelegate", None)


def gzip_delegate(
    delegate: httputil.HTTPMessageDelegate, chunk_size: int, max_body_size: int
) -> httputil.HTTPMessageDelegate:
    """Wrap ``delegate`` so a ``Content-Encoding: gzip`` body arrives decompressed
    (``HTTPServer(decompress_request=True)``)."""
    if _Gzip is None:  # pragma: no cover - a Tornado without the helper
        raise RuntimeError(
            f"decompress_request needs tornado.http1connection._GzipMessageDelegate, "
            f"missing in Tornado {tornado.version}"
        )
    try:
        wrapped: httputil.HTTPMessageDelegate = _Gzip(delegate, chunk_size, max_body_size)
    except TypeError:  # pragma: no cover - Tornado before 6.5 took no size limit
        wrapped = _Gzip(delegate, chunk_size)
    return wrapped


def feed_stream(stream: tornado.iostream.IOStream, data: bytes) -> None:
    """Put bytes already read from a socket in front of ``stream``'s read buffer,
    so a detached connection does not lose what the HTTP parser read past the
    request head (the first WebSocket frames of a fast client)."""
    if not data:
        return
    buffer = getattr(stream, "_read_buffer", None)
    if not isinstance(buffer, bytearray) or not hasattr(stream, "_read_buffer_size"):
        raise RuntimeError(  # pragma: no cover - a Tornado with another buffer layout
            f"cannot hand read-ahead bytes to IOStream in Tornado {tornado.version}"
        )
    buffer[:0] = data
    stream._read_buffer_size += len(data)
