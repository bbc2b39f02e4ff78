"""Test support: a client with a real cookie jar and XSRF handling, a multipart encoder,
``WebTestCase`` for unittest style, and helpers for the pytest fixtures."""

from __future__ import annotations

import email.utils
import io
import json as jsonlib
import mimetypes
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urljoin, urlsplit

import tornado.testing
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.httpserver import HTTPServer

from .settings import Settings

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TEST_SECRET = "webframe-test-secret-" + "0" * 24


def test_settings(**overrides: Any) -> Settings:
    """Settings for tests: a fixed secret, in-memory sessions, no access log."""
    values: dict[str, Any] = {
        "cookie_secret": TEST_SECRET,
        "session_store": "memory://",
        "access_log": False,
    }
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]


# Cookie jar ---------------------------------------------------------------


@dataclass
class Cookie:
    """One cookie in a :class:`CookieJar`, with the attributes its ``Set-Cookie`` gave."""

    name: str
    value: str
    path: str
    expires: float | None  # epoch seconds; None for a session cookie
    secure: bool = False
    httponly: bool = False
    samesite: str | None = None

    def expired(self, now: float) -> bool:
        """True if the cookie's ``Max-Age``/``Expires`` is at or before ``now`` (epoch s)."""
        return self.expires is not None and self.expires <= now


def _default_path(request_path: str) -> str:
    # RFC 6265 5.1.4: the directory of the request path.
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[: request_path.rfind("/")]


def _path_matches(cookie_path: str, request_path: str) -> bool:
    if request_path == cookie_path:
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


class CookieJar:
    """Cookies of one host, as a browser keeps them (RFC 6265 path, expiry, deletion)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._cookies: dict[tuple[str, str], Cookie] = {}
        self._clock = clock

    def update(self, request_url: str, set_cookie_headers: Iterable[str]) -> None:
        """Apply the ``Set-Cookie`` headers of a response to ``request_url``."""
        path = urlsplit(request_url).path or "/"
        now = self._clock()
        for header in set_cookie_headers:
            cookie = self._parse(header, path, now)
            if cookie is None:
                continue
            key = (cookie.name, cookie.path)
            if cookie.expired(now):
                self._cookies.pop(key, None)
            else:
                self._cookies[key] = cookie

    @staticmethod
    def _parse(header: str, request_path: str, now: float) -> Cookie | None:
        first, _, rest = header.partition(";")
        name, eq, value = first.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name:
            return None
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookie = Cookie(name, value, _default_path(request_path), None)
        max_age: float | None = None
        expires: float | None = None
        for attr in rest.split(";"):
            key, _, val = attr.strip().partition("=")
            key, val = key.strip().lower(), val.strip()
            if key == "path" and val.startswith("/"):
                cookie.path = val
            elif key == "max-age":
                try:
                    max_age = now + int(val) if int(val) > 0 else 0.0
                except ValueError:
                    continue
            elif key == "expires":
                try:
                    expires = email.utils.parsedate_to_datetime(val).timestamp()
                except (TypeError, ValueError, IndexError):
                    continue
            elif key == "secure":
                cookie.secure = True
            elif key == "httponly":
                cookie.httponly = True
            elif key == "samesite":
                cookie.samesite = val
        cookie.expires = max_age if max_age is not None else expires
        return cookie

    def header_for(self, request_url: str) -> str | None:
        """The ``Cookie`` header a browser would send to ``request_url``, or None."""
        path = urlsplit(request_url).path or "/"
        now = self._clock()
        live = []
        for key, cookie in list(self._cookies.items()):
            if cookie.expired(now):
                del self._cookies[key]
            elif _path_matches(cookie.path, path):
                live.append(cookie)
        if not live:
            return None
        live.sort(key=lambda c: len(c.path), reverse=True)
        return "; ".join(f"{c.name}={c.value}" for c in live)

    def get(self, name: str, path: str | None = None) -> str | None:
        """The value of a live cookie called ``name`` (longest path first), or None."""
        now = self._clock()
        found = [
            c
            for c in self._cookies.values()
            if c.name == name and not c.expired(now) and (path is None or c.path == path)
        ]
        if not found:
            return None
        return max(found, key=lambda c: len(c.path)).value

    def cookie(self, name: str) -> Cookie | None:
        """The full :class:`Cookie` called ``name`` (attributes included), or None."""
        now = self._clock()
        for c in self._cookies.values():
            if c.name == name and not c.expired(now):
                return c
        return None

    def set(self, name: str, value: str, path: str = "/") -> None:
        """Put a cookie in the jar by hand (e.g. a forged one in a security test)."""
        self._cookies[(name, path)] = Cookie(name, value, path, None)

    def delete(self, name: str) -> None:
        """Forget every cookie called ``name``."""
        for key in [k for k in self._cookies if k[0] == name]:
            del self._cookies[key]

    def clear(self) -> None:
        """Forget every cookie (a browser whose cookies were wiped)."""
        self._cookies.clear()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        now = self._clock()
        return sum(1 for c in self._cookies.values() if not c.expired(now))


# Multipart encoder -----------------------------------------------------------

FileValue = bytes | str | os.PathLike[str] | IO[bytes]
FileSpec = tuple[str, FileValue] | tuple[str, FileValue, str]


class MultipartEncoder:
    """Encode fields and files as ``multipart/form-data`` (Tornado has no encoder).

    ``files`` maps a field name to ``(filename, content[, content_type])`` or a list of
    them; content is bytes, a path (streamed from disk), or a binary file object.
    Use :attr:`content_type`, :attr:`length`, and either :meth:`to_bytes` or
    :meth:`body_producer` (streams, so a 1 GiB body never sits in memory).
    """

    chunk_size = 64 * 1024

    def __init__(
        self,
        fields: Mapping[str, str | Iterable[str]] | None = None,
        files: Mapping[str, FileSpec | list[FileSpec]] | None = None,
        boundary: str | None = None,
    ) -> None:
        self.boundary = boundary or "webframe" + secrets.token_hex(12)
        self._parts: list[bytes | tuple[Any, int]] = []
        for name, value in (fields or {}).items():
            values = [value] if isinstance(value, str) else list(value)
            for v in values:
                self._parts.append(self._head(name) + v.encode("utf-8") + b"\r\n")
        for name, spec in (files or {}).items():
            for one in spec if isinstance(spec, list) else [spec]:
                filename, content = one[0], one[1]
                ctype = one[2] if len(one) > 2 else None
                ctype = ctype or mimetypes.guess_type(filename)[0] or "application/octet-stream"
                self._parts.append(self._head(name, filename, ctype))
                self._parts.append(self._source(content))
                self._parts.append(b"\r\n")
        self._parts.append(f"--{self.boundary}--\r\n".encode())

    def _head(self, name: str, filename: str | None = None, ctype: str | None = None) -> bytes:
        disp = f'form-data; name="{_quote(name)}"'
        if filename is not None:
            disp += f'; filename="{_quote(filename)}"'
        head = f"--{self.boundary}\r\nContent-Disposition: {disp}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        return (head + "\r\n").encode("utf-8")

    @staticmethod
    def _source(content: FileValue) -> bytes | tuple[Any, int]:
        if isinstance(content, bytes):
            return content
        if isinstance(content, str | os.PathLike):
            return (Path(content), Path(content).stat().st_size)
        pos = content.tell()
        size = content.seek(0, io.SEEK_END) - pos
        content.seek(pos)
        return (content, size)

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header value, boundary included."""
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        """The body's size in bytes (for ``Content-Length``), without reading any file."""
        return sum(len(p) if isinstance(p, bytes) else p[1] for p in self._parts)

    def chunks(self) -> Iterable[bytes]:
        """The body, piece by piece."""
        for part in self._parts:
            if isinstance(part, bytes):
                yield part
                continue
            source, _size = part
            if isinstance(source, Path):
                with source.open("rb") as f:
                    while chunk := f.read(self.chunk_size):
                        yield chunk
            else:
                while chunk := source.read(self.chunk_size):
                    yield chunk

    def to_bytes(self) -> bytes:
        """The whole body in memory; for small bodies (use :meth:`body_producer` for big ones)."""
        return b"".join(self.chunks())

    async def body_producer(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        """For ``HTTPRequest(body_producer=...)``: stream the body with flow control."""
        for chunk in self.chunks():
            await write(chunk)

    def request_kwargs(self) -> dict[str, Any]:
        """``headers`` and ``body_producer`` for a streamed ``HTTPRequest``."""
        return {
            "headers": {"Content-Type": self.content_type, "Content-Length": str(self.length)},
            "body_producer": self.body_producer,
        }


def _quote(value: str) -> str:
    # What browsers do (WHATWG): percent-escape the characters that would end the value.
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


# The client --------------------------------------------------------------------


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
        unless set to ``tornado``); ``WEBFRAME_HTTP_IMPL`` in the environment overrides
        it, so a whole suite can run on either layer."""
        settings = getattr(self._app, "wf_settings", None)
        impl = os.environ.get("WEBFRAME_HTTP_IMPL") or (
            settings.http_impl if isinstance(settings, Settings) else "tornado"
        )
        if impl == "httptools":
            from .server import HTTPToolsServer

            return HTTPToolsServer(self._app, **self.get_httpserver_options())
        return super().get_http_server()

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
