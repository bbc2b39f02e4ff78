"""``HTTPHeaders`` filled and read directly (``_as_list``, ``_combined_cache``,
``_normalize_header``), where Tornado's layout is the one checked; else through
the public API."""

from __future__ import annotations

from typing import Any

from tornado import httputil

_normalize: Any = getattr(httputil, "_normalize_header", None)
#: whether ``HTTPHeaders`` keeps its fields as this module fills them.
FAST_HEADERS = _normalize is not None and {"_as_list", "_combined_cache"} <= set(
    vars(httputil.HTTPHeaders())
)


def _del_needs_cache() -> bool:
    """True on a Tornado (6.5) whose ``HTTPHeaders.__delitem__`` also deletes the
    combined-value cache entry unconditionally: a mapping filled directly must then
    fill that cache too, or deleting a header raises KeyError."""
    headers = httputil.HTTPHeaders.__new__(httputil.HTTPHeaders)
    headers._as_list = {"X": ["1"]}
    headers._combined_cache = {}
    try:
        del headers["X"]
    except KeyError:
        return True
    return False


_FILL_CACHE = FAST_HEADERS and _del_needs_cache()


#: header name as received -> its Tornado spelling (Http-Header-Case), for the names seen
#: first (bounded: a client sending new names each time only misses the cache).
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 512


def headers_of(fields: dict[str, list[str]]) -> httputil.HTTPHeaders:
    """``HTTPHeaders`` holding ``fields`` (names already normalised, values already
    checked), filled as ``HTTPHeaders.add`` fills it. Only when :data:`FAST_HEADERS`."""
    headers = httputil.HTTPHeaders.__new__(httputil.HTTPHeaders)
    headers._as_list = fields
    headers._combined_cache = (
        {key: ",".join(values) for key, values in fields.items()} if _FILL_CACHE else {}
    )
    return headers


def headers_from_parsed(raw: list[tuple[bytes, bytes]]) -> httputil.HTTPHeaders:
    """``HTTPHeaders`` from the (name, value) pairs of a head llhttp has validated.

    llhttp has checked the name bytes (token) and value bytes (no control
    characters), so Tornado's per-field regex checks in ``HTTPHeaders.add`` are
    skipped: the mapping is filled as ``add`` fills it. Values lose the
    surrounding spaces/tabs, as Tornado's parser strips them.
    """
    if not FAST_HEADERS:  # pragma: no cover - another HTTPHeaders layout
        headers = httputil.HTTPHeaders()
        for name, value in raw:
            headers.add(name.decode("latin1"), value.decode("latin1").strip(" \t"))
        return headers
    as_list: dict[str, list[str]] = {}
    names = _NAMES
    for name, value in raw:
        key = names.get(name)
        if key is None:
            key = _normalize(name.decode("latin1"))
            if len(names) < _NAMES_MAX:
                names[bytes(name)] = key
        text = value.decode("latin1")
        if text and (text[-1] in " \t" or text[0] in " \t"):
            text = text.strip(" \t")
        values = as_list.get(key)
        if values is None:
            as_list[key] = [text]
        else:
            values.append(text)
    return headers_of(as_list)


def header_fields(headers: httputil.HTTPHeaders) -> dict[str, list[str]]:
    """Name -> values of ``headers`` (names in Tornado's Http-Header-Case): the
    mapping itself when Tornado's layout is known (read it, do not write it), else
    a copy made through the public API."""
    if FAST_HEADERS and type(headers) is httputil.HTTPHeaders:
        fields: dict[str, list[str]] = headers._as_list
        return fields
    copy: dict[str, list[str]] = {}
    for name, value in headers.get_all():
        copy.setdefault(_normalize(name) if _normalize else name, []).append(value)
    return copy
