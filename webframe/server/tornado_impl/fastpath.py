"""Cheaper steps of ``tornado.web``'s per-request path, each the same answer as
Tornado's own: ``RequestHandler.set_header`` with the check of a header value made
once per distinct text.

Gated on the code checked in Tornado 6.5 and 6.6; anything else takes Tornado's way.
"""

from __future__ import annotations

from typing import Any

import tornado.web

_BASE = tornado.web.RequestHandler
_CONVERT = _BASE._convert_header_value

#: ``set_header`` as checked: ``self._headers[name] = self._convert_header_value(value)``.
CAN_SET_HEADER_FAST = sorted(_BASE.set_header.__code__.co_names) == [
    "_convert_header_value",
    "_headers",
]
#: header texts ``_convert_header_value`` accepted (it returns a str unchanged), so the
#: regex check runs once per distinct text; emptied when it grows past ``_SAFE_MAX``.
_SAFE: set[str] = set()
_SAFE_MAX = 2048


def set_header(handler: tornado.web.RequestHandler, name: str, value: Any) -> bool:
    """``handler.set_header(name, value)`` as Tornado does it, with a str value
    already known to be valid (or an int) stored without the check. False (nothing
    done) where Tornado's ``set_header``/``_convert_header_value`` are not the ones
    checked: the caller then uses Tornado's."""
    if not CAN_SET_HEADER_FAST or type(handler)._convert_header_value is not _CONVERT:
        return False
    kind = type(value)
    if kind is str:
        if value not in _SAFE:
            value = _CONVERT(handler, value)  # raises on an unsafe value, as Tornado
            if len(_SAFE) >= _SAFE_MAX:
                _SAFE.clear()
            _SAFE.add(value)
    elif kind is int:
        value = str(value)
    else:
        value = _CONVERT(handler, value)
    handler._headers[name] = value
    return True
