"""The wire: connection layers that serve a Tornado application.

``httptools`` (default) parses with llhttp on an ``asyncio.Protocol``;
``tornado`` is Tornado's own ``HTTPServer``. :func:`create_http_server` picks one.
"""

from __future__ import annotations

from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer

from .connection import HTTPToolsConnection
from .context import RequestContext
from .httptools_impl import HTTPToolsProtocol
from .httptools_server import HTTPToolsServer

HTTP_IMPLS = ("httptools", "tornado")

__all__ = [
    "HTTP_IMPLS",
    "HTTPToolsConnection",
    "HTTPToolsProtocol",
    "HTTPToolsServer",
    "RequestContext",
    "create_http_server",
]


def create_http_server(
    app: httputil.HTTPServerConnectionDelegate, impl: str = "httptools", **kwargs: Any
) -> HTTPToolsServer | HTTPServer:
    """A server for ``app`` on the layer ``impl`` (``HTTPServer`` arguments in ``kwargs``)."""
    if impl == "httptools":
        return HTTPToolsServer(app, **kwargs)
    if impl == "tornado":
        for name in ("header_timeout", "max_headers", "max_drain_size"):
            kwargs.pop(name, None)
        return HTTPServer(app, **kwargs)
    raise ValueError(f"unknown HTTP layer {impl!r}: use one of {', '.join(HTTP_IMPLS)}")
