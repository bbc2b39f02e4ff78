"""Tornado's template escaping and output encoding, the same bytes in fewer calls.

Public Tornado API only; :data:`webframe.server.tornado_impl.TEMPLATE_SPEEDUPS`
puts these into a webframe handler's template namespace.
"""

from __future__ import annotations

from typing import Any

import tornado.escape

_tornado_utf8 = tornado.escape.utf8
_tornado_xhtml_escape = tornado.escape.xhtml_escape


def template_utf8(value: Any) -> Any:
    """``tornado.escape.utf8`` with the common types first (bytes, str)."""
    cls = value.__class__
    if cls is bytes:
        return value
    if cls is str:
        return value.encode("utf-8")
    return _tornado_utf8(value)  # None, subclasses, and the TypeError for the rest


def template_xhtml_escape(value: Any) -> str:
    """``tornado.escape.xhtml_escape`` (``html.escape`` of the text) in one call."""
    cls = value.__class__
    if cls is bytes:
        text: str = value.decode("utf-8")
    elif cls is str:
        text = value
    else:
        return _tornado_xhtml_escape(value)
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )
