"""Cookies with safe defaults (HttpOnly, SameSite=Lax, Path=/, Secure on HTTPS) and
refusal of values that could inject headers or attributes."""

from __future__ import annotations

import datetime
import re
from typing import Any

import tornado.web

# Control characters (CR, LF, NUL, ...) and ';' would end the value or add attributes.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f;]")
_SAMESITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


def check_cookie_part(part: str, value: object) -> None:
    """Raise ValueError naming ``part`` if ``value`` could break the Set-Cookie header."""
    if value is None:
        return
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    bad = _UNSAFE.search(text)
    if bad is not None:
        raise ValueError(
            f"cookie {part} contains {bad.group()!r} (control characters and ';' are not "
            "allowed: they would inject headers or attributes)"
        )


class CookieMixin(tornado.web.RequestHandler):
    """``set_cookie`` with safe defaults; each can be overridden per call."""

    def cookies_secure(self) -> bool:
        """True when cookies get the ``Secure`` flag by default (HTTPS or the setting)."""
        if self.request.protocol == "https":
            return True
        return bool(self.application.settings.get("webframe_secure_cookies", False))

    def set_cookie(
        self,
        name: str,
        value: str | bytes,
        domain: str | None = None,
        expires: float | tuple[int, ...] | datetime.datetime | None = None,
        path: str = "/",
        expires_days: float | None = None,
        *,
        httponly: bool = True,
        samesite: str | None = "Lax",
        secure: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Set a cookie: HttpOnly, SameSite=Lax, Path=/ and Secure (on HTTPS) by default.

        Raises ValueError, naming the attribute, for a name, value or attribute holding
        ';' or a control character.
        """
        check_cookie_part("name", name)
        check_cookie_part("value", value)
        check_cookie_part("domain", domain)
        check_cookie_part("path", path)
        for key, val in kwargs.items():
            check_cookie_part(key, val)
        if samesite is not None:
            normal = _SAMESITE.get(str(samesite).lower())
            if normal is None:
                raise ValueError(f"cookie samesite must be Strict, Lax or None, not {samesite!r}")
            samesite = normal
        if secure is None:
            secure = self.cookies_secure()
        if samesite == "None" and not secure:
            raise ValueError("cookie samesite=None requires secure=True (browsers drop it)")
        options: dict[str, Any] = dict(kwargs)
        if httponly:
            options["httponly"] = True
        if secure:
            options["secure"] = True
        if samesite is not None:
            options["samesite"] = samesite
        super().set_cookie(name, value, domain, expires, path, expires_days, **options)
