"""``WebTestCase``: Tornado's ``AsyncHTTPTestCase`` with a cookie-keeping client."""

from __future__ import annotations

from typing import Any

import tornado.testing
from tornado.httpclient import HTTPResponse
from tornado.httpserver import HTTPServer

from .client import Client
from .cookiejar import CookieJar
from .servers import test_server

__all__ = ["WebTestCase"]


class WebTestCase(tornado.testing.AsyncHTTPTestCase):
    """``AsyncHTTPTestCase`` whose ``fetch`` keeps cookies and sends XSRF tokens.

    Implement ``get_app()`` (use :func:`test_settings`). ``self.fetch(path,
    method=..., form=..., json=..., files=...)`` returns the response; ``self.cookies``
    is the jar; ``self.new_client()`` gives a second, independent browser.
    """

    xsrf_path: str | None = "/"

    def setUp(self) -> None:
        """Called before each test: starts the app and makes ``self.client``."""
        super().setUp()
        self.client = self.new_client()

    def get_http_server(self) -> HTTPServer:
        """Called by ``setUp``: the server of the app's ``http_impl`` setting (httptools
        unless set to ``tornado``; httptools for an app without webframe's settings);
        ``WEBFRAME_HTTP_IMPL`` in the environment overrides it, so a whole suite can
        run on either layer (see :mod:`webframe.testing.servers`)."""
        return test_server(self._app, **self.get_httpserver_options())

    def new_client(self) -> Client:
        """A second, independent browser (its own cookies); pass it as ``fetch(client=)``."""
        return Client(
            self.http_client,
            self.get_url(""),
            xsrf_path=self.xsrf_path,
            xsrf_cookie=self._app.settings.get("xsrf_cookie_name", "_xsrf"),
        )

    @property
    def cookies(self) -> CookieJar:
        """The cookie jar of the default client (``self.client``)."""
        return self.client.cookies

    def fetch(self, path: str, raise_error: bool = False, **kwargs: Any) -> HTTPResponse:
        """Send one request with the default client and wait for the response.

        Takes the keyword arguments of :meth:`Client.fetch`: ``method``, ``body``,
        ``headers``, ``form=`` (a dict of fields, urlencoded), ``json=`` (any
        JSON-encodable value), ``files=`` (``{field: (filename, content[, type])}``,
        sent as multipart with ``form`` as its other fields), ``params``,
        ``follow_redirects=`` (False by default: the redirect itself is returned;
        True follows it, keeping the cookies it sets) and ``xsrf``. ``client=``
        sends it from another :class:`Client` (see :meth:`new_client`).
        ``raise_error=True`` raises for a 4xx/5xx instead of returning it.
        """
        client: Client = kwargs.pop("client", None) or self.client
        response: HTTPResponse = self.io_loop.run_sync(
            lambda: client.fetch(path, **kwargs),
            timeout=tornado.testing.get_async_test_timeout(),
        )
        if raise_error:
            response.rethrow()
        return response

    def get(self, path: str, **kw: Any) -> HTTPResponse:
        """``fetch(path, method="GET", **kw)``."""
        return self.fetch(path, method="GET", **kw)

    def post(self, path: str, **kw: Any) -> HTTPResponse:
        """``fetch(path, method="POST", **kw)``."""
        return self.fetch(path, method="POST", **kw)

    def put(self, path: str, **kw: Any) -> HTTPResponse:
        """``fetch(path, method="PUT", **kw)``."""
        return self.fetch(path, method="PUT", **kw)

    def patch(self, path: str, **kw: Any) -> HTTPResponse:
        """``fetch(path, method="PATCH", **kw)``."""
        return self.fetch(path, method="PATCH", **kw)

    def delete(self, path: str, **kw: Any) -> HTTPResponse:
        """``fetch(path, method="DELETE", **kw)``."""
        return self.fetch(path, method="DELETE", **kw)
