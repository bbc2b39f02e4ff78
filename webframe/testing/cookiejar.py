"""A cookie jar for test clients that keeps cookies as a browser does (RFC 6265 path,
expiry and deletion, for one host)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Cookie", "CookieJar"]


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
