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


_normalize: Any = getattr(httputil, "_normalize_header", None)
_FAST_HEADERS = _normalize is not None and {"_as_list", "_combined_cache"} <= set(
    vars(httputil.HTTPHeaders())
)


def headers_from_parsed(raw: list[tuple[bytes, bytes]]) -> httputil.HTTPHeaders:
    """``HTTPHeaders`` from the (name, value) pairs of a head llhttp has validated.

    llhttp has checked the name bytes (token) and value bytes (no control
    characters), so Tornado's per-field regex checks in ``HTTPHeaders.add`` are
    skipped: the mapping is filled as ``add`` fills it. Values lose the
    surrounding spaces/tabs, as Tornado's parser strips them.
    """
    if not _FAST_HEADERS:  # pragma: no cover - another HTTPHeaders layout
        headers = httputil.HTTPHeaders()
        for name, value in raw:
            headers.add(name.decode("latin1"), value.decode("latin1").strip(" \t"))
        return headers
    as_list: dict[str, list[str]] = {}
    normalize = _normalize
    for name, value in raw:
        key = normalize(name.decode("latin1"))
        text = value.decode("latin1")
        if text and (text[-1] in " \t" or text[0] in " \t"):
            text = text.strip(" \t")
        values = as_list.get(key)
        if values is None:
            as_list[key] = [text]
        else:
            values.append(text)
    headers = httputil.HTTPHeaders.__new__(httputil.HTTPHeaders)
    headers._as_list = as_list
    headers._combined_cache = {}
    return headers


def header_fields(headers: httputil.HTTPHeaders) -> dict[str, list[str]]:
    """Name -> values of ``headers`` (names in Tornado's Http-Header-Case): the
    mapping itself when Tornado's layout is known (read it, do not write it), else
    a copy made through the public API."""
    if _FAST_HEADERS and type(headers) is httputil.HTTPHeaders:
        fields: dict[str, list[str]] = headers._as_list
        return fields
    copy: dict[str, list[str]] = {}
    for name, value in headers.get_all():
        copy.setdefault(httputil._normalize_header(name) if _normalize else name, []).append(value)
    return copy
