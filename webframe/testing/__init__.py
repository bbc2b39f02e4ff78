"""Test support: a client with a real cookie jar and XSRF handling, a multipart encoder,
``WebTestCase`` for unittest style, and helpers for the pytest fixtures.

The pieces live in :mod:`webframe.testing.client`, :mod:`~webframe.testing.cookiejar`,
:mod:`~webframe.testing.encoder`, :mod:`~webframe.testing.case` and
:mod:`~webframe.testing.config`; import them from here. The pytest fixtures are in
:mod:`webframe.pytest_plugin` (and :mod:`~webframe.testing.fixtures`). Tests serve the
app on the connection layer of its ``http_impl`` setting, httptools by default
(:mod:`~webframe.testing.servers`; ``WEBFRAME_HTTP_IMPL=tornado`` for Tornado's).
"""

from __future__ import annotations

from .case import WebTestCase
from .client import UNSAFE_METHODS, Client
from .config import TEST_SECRET, test_settings
from .cookiejar import Cookie, CookieJar
from .encoder import FileSpec, FileValue, MultipartEncoder

__all__ = [
    "TEST_SECRET",
    "UNSAFE_METHODS",
    "Client",
    "Cookie",
    "CookieJar",
    "FileSpec",
    "FileValue",
    "MultipartEncoder",
    "WebTestCase",
    "test_settings",
]
