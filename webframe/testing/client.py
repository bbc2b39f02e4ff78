"""An HTTP client for tests that behaves like a browser tab: cookies, redirects, XSRF."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urljoin

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from .cookiejar import CookieJar
from .encoder import FileSpec, MultipartEncoder

__all__ = ["UNSAFE_METHODS", "Client"]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Client:
    """An HTTP client for tests that behaves like a browser tab.

    It keeps cookies in a :class:`CookieJar`, follows redirects itself (so cookies
    set on a redirect are kept), and on POST/PUT/PATCH/DELETE sends the XSRF token
    from the ``_xsrf`` cookie (or the one named ``xsrf_cookie``) in ``X-XSRFToken``
    (fetching ``xsrf_path`` first when it has no token yet). Responses are never
    raised: check ``response.code``.
    """

    def __init__(
        self,
        http_client: AsyncHTTPClient,
        base_url: str,
        *,
        xsrf_path: str | None = "/",
        jar: CookieJar | None = None,
        xsrf_cookie: str = "_xsrf",
    ) -> None:
        self.http_client = http_client
        self.base_url = base_url.rstrip("/")
        self.xsrf_path = xsrf_path
        #: the cookie the token is read from (the app's ``xsrf_cookie_name`` setting).
        self.xsrf_cookie = xsrf_cookie
        self.cookies = jar if jar is not None else CookieJar()

    def url(self, path: str) -> str:
        """``path`` made absolute against ``base_url`` (a full URL is returned unchanged)."""
        return path if "://" in path else self.base_url + path

    async def fetch(
        self,
        path: str,
        method: str = "GET",
        *,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str | Iterable[str]] | None = None,
        json: Any = None,
        files: Mapping[str, FileSpec | list[FileSpec]] | None = None,
        params: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
        xsrf: bool = True,
        **kwargs: Any,
    ) -> HTTPResponse:
        """Send one request (and follow redirects if asked); returns the last response.

        The body is at most one of: ``body`` (bytes or text, sent as given), ``form``
        (urlencoded; a value may be a list for repeated fields), ``json`` (encoded, with
        ``Content-Type: application/json``) or ``files`` (``multipart/form-data``
        streamed by :class:`MultipartEncoder`; ``form`` then gives its other fields).
        ``params`` is added to the query string. With ``follow_redirects=True`` the
        client follows up to 10 redirects itself, keeping cookies set on each hop
        (301/302/303 after a POST turn into GET); by default the redirect is returned.
        ``xsrf=False`` sends no XSRF token. Other keyword arguments go to Tornado's
        ``HTTPRequest`` (e.g. ``request_timeout``). Errors are returned, never raised.
        """
        method = method.upper()
        hdrs: dict[str, str] = dict(headers or {})
        producer = None
        if params:
            path += ("&" if "?" in path else "?") + urlencode(params)
        if files is not None:
            enc = MultipartEncoder(form, files)
            hdrs.setdefault("Content-Type", enc.content_type)
            hdrs.setdefault("Content-Length", str(enc.length))
            producer = enc.body_producer
        elif form is not None:
            body = urlencode(
                [(k, v) for k, vs in form.items() for v in ([vs] if isinstance(vs, str) else vs)]
            )
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif json is not None:
            body = jsonlib.dumps(json)
            hdrs.setdefault("Content-Type", "application/json")
        if xsrf and method in UNSAFE_METHODS:
            token = await self.xsrf_token()
            if token is not None:
                hdrs.setdefault("X-XSRFToken", token)
        if body is None and producer is None and method in UNSAFE_METHODS:
            body = b""
        url = self.url(path)
        for _hop in range(10):
            response = await self._send(url, method, hdrs, body, producer, kwargs)
            location = response.headers.get("Location")
            if not follow_redirects or response.code not in (301, 302, 303, 307, 308):
                return response
            if not location:
                return response
            url = urljoin(url, location)
            if response.code in (301, 302, 303) and method not in ("GET", "HEAD"):
                method, body, producer = "GET", None, None
                for name in ("Content-Type", "Content-Length", "X-XSRFToken"):
                    hdrs.pop(name, None)
        raise RuntimeError(f"more than 10 redirects starting at {path}")

    async def _send(
        self,
        url: str,
        method: str,
        headers: dict[str, str],
        body: bytes | str | None,
        producer: Any,
        kwargs: dict[str, Any],
    ) -> HTTPResponse:
        hdrs = dict(headers)
        cookie = self.cookies.header_for(url)
        if cookie:
            hdrs["Cookie"] = cookie
        request = HTTPRequest(
            url,
            method=method,
            headers=hdrs,
            body=body,
            body_producer=producer,
            follow_redirects=False,
            allow_nonstandard_methods=True,
            **kwargs,
        )
        response = await self.http_client.fetch(request, raise_error=False)
        self.cookies.update(url, response.headers.get_list("Set-Cookie"))
        return response

    async def xsrf_token(self) -> str | None:
        """The current XSRF token, fetching ``xsrf_path`` once to get one if needed."""
        token = self.cookies.get(self.xsrf_cookie)
        if token is None and self.xsrf_path is not None:
            await self._send(self.url(self.xsrf_path), "GET", {}, None, None, {})
            token = self.cookies.get(self.xsrf_cookie)
        return token

    async def get(self, path: str, **kw: Any) -> HTTPResponse:
        """Send a GET request; ``kw`` as for :meth:`fetch`."""
        return await self.fetch(path, "GET", **kw)

    async def head(self, path: str, **kw: Any) -> HTTPResponse:
        """Send a HEAD request; ``kw`` as for :meth:`fetch`."""
        return await self.fetch(path, "HEAD", **kw)

    async def options(self, path: str, **kw: Any) -> HTTPResponse:
        """Send a OPTIONS request; ``kw`` as for :meth:`fetch`."""
        return await self.fetch(path, "OPTIONS", **kw)

    async def post(self, path: str, **kw: Any) -> HTTPResponse:
        """Send a POST request; ``kw`` as for :meth:`fetch`."""
        return await self.fetch(path, "POST", **kw)

    async def put(self, path: str, **kw: Any) -> HTTPResponse:
        """Send a PUT request; ``kw`` as for :meth:`fetch`."""
        return await self.fetch(path, "PUT", **kw)

    async def patch(self, path: str, **kw: Any) -> HTTPResponse:
        """Send a PATCH request; ``kw`` as for :meth:`fetch`."""
        return await self.fetch(path, "PATCH", **kw)

    async def delete(self, path: str, **kw: Any) -> HTTPResponse:
        """Send a DELETE request; ``kw`` as for :meth:`fetch`."""
        return await self.fetch(path, "DELETE", **kw)
