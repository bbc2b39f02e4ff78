"""The server tests serve an app on: the connection layer an app is served on elsewhere.

``WebTestCase`` and the pytest fixtures (``http_server``, ``https_server``, hence
``webframe_client``) serve on the layer of the app's ``http_impl`` setting:
httptools unless it says ``tornado`` (an app without webframe's settings, such as a
plain ``tornado.web.Application``, gets httptools too, as ``run.py`` would give it).
``WEBFRAME_HTTP_IMPL`` in the environment overrides both, so a whole suite can be run
on either layer.
"""

from __future__ import annotations

import os
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer

from ..server import HTTP_IMPLS, create_http_server
from ..settings import Settings

__all__ = ["ENV_VAR", "test_http_impl", "test_server"]

#: the environment variable that picks the layer for a whole test run.
ENV_VAR = "WEBFRAME_HTTP_IMPL"


def test_http_impl(app: object) -> str:
    """The layer ``app`` is served on in tests: ``WEBFRAME_HTTP_IMPL``, else the app's
    ``http_impl`` setting, else ``httptools``."""
    impl = os.environ.get(ENV_VAR)
    if not impl:
        settings = getattr(app, "wf_settings", None)
        impl = settings.http_impl if isinstance(settings, Settings) else "httptools"
    if impl not in HTTP_IMPLS:
        raise ValueError(f"{ENV_VAR}={impl!r}: use one of {', '.join(HTTP_IMPLS)}")
    return impl


def test_server(app: httputil.HTTPServerConnectionDelegate, **options: Any) -> HTTPServer:
    """A server for ``app`` on its test layer (:func:`test_http_impl`); ``options`` are
    ``HTTPServer``'s (``ssl_options``, ``max_body_size``, ...)."""
    return create_http_server(app, test_http_impl(app), **options)


# Not tests, whatever their names say (pytest collects test_* from modules it imports).
test_http_impl.__test__ = False  # type: ignore[attr-defined]
test_server.__test__ = False  # type: ignore[attr-defined]
