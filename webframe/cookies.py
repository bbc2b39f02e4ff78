"""Cookies with safe defaults (HttpOnly, SameSite=Lax, Path=/, Secure on HTTPS),
refusal of values that could inject headers or attributes, and signed cookies that
keep verifying across a key rotation."""

from __future__ import annotations

import datetime
import http.cookies
import re
from typing import TYPE_CHECKING, Any

import tornado.web

from .signing import signing_keys

if TYPE_CHECKING:
    from .settings import Settings

# Control characters (CR, LF, NUL, ...) and ';' would end the value or add attributes;
# a space is not allowed in a name or attribute either (as in Tornado).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f;]")
_UNSAFE_ATTR = re.compile(r"[\x00-\x20\x7f;]")
# The characters http.cookies accepts in a name (RFC 6265 token characters and ':').
_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~:]+")
_SAMESITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


class CookieAttributeError(ValueError, http.cookies.CookieError):
    """A cookie name, value or attribute that could break the Set-Cookie header.

    Both a ``ValueError`` (webframe's earlier contract) and an
    ``http.cookies.CookieError`` (what Tornado raises for a bad name or attribute).
    """


def check_cookie_part(part: str, value: object) -> None:
    """Raise CookieAttributeError naming ``part`` if ``value`` could break the header."""
    if value is None:
        return
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    bad = (_UNSAFE if part == "value" else _UNSAFE_ATTR).search(text)
    if bad is not None:
        what = "value" if part == "value" else f"attribute {part}={text!r}"
        raise CookieAttributeError(
            f"Invalid cookie {what}: cookie {part} contains {bad.group()!r} (control "
            "characters and ';' are not allowed: they would inject headers or attributes)"
        )


class CookieMixin(tornado.web.RequestHandler):
    """``set_cookie`` with safe defaults; each can be overridden per call."""

    @property
    def wf_settings(self) -> Settings:
        """The application's :class:`~webframe.Settings`."""
        settings: Settings = self.application.wf_settings  # type: ignore[attr-defined]
        return settings

    def cookies_secure(self) -> bool:
        """True when cookies get the ``Secure`` flag by default (HTTPS or the setting)."""
        return self.request.protocol == "https" or self.wf_settings.secure_cookies

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

        Raises :class:`CookieAttributeError` (a ``ValueError`` and an
        ``http.cookies.CookieError``), naming the attribute, for a name, value or
        attribute holding ';' or a control character (or a space, outside the value).
        """
        check_cookie_part("name", name)
        if not _NAME.fullmatch(name.decode("latin-1") if isinstance(name, bytes) else name):
            raise CookieAttributeError(
                f"Invalid cookie attribute name={name!r}: a cookie name is letters, digits "
                "and !#$%&'*+-.^_`|~: only"
            )
        check_cookie_part("value", value)
        check_cookie_part("domain", domain)
        check_cookie_part("path", path)
        for key, val in kwargs.items():
            check_cookie_part(key, val)
        if samesite is not None:
            check_cookie_part("samesite", samesite)
            normal = _SAMESITE.get(str(samesite).lower())
            if normal is None:
                raise CookieAttributeError(
                    f"Invalid cookie attribute samesite={samesite!r}: cookie samesite must "
                    "be Strict, Lax or None"
                )
            samesite = normal
        if secure is None:
            secure = self.cookies_secure()
        if samesite == "None" and not secure:
            raise CookieAttributeError(
                "cookie samesite=None requires secure=True (browsers drop it)"
            )
        options: dict[str, Any] = dict(kwargs)
        if httponly:
            options["httponly"] = True
        if secure:
            options["secure"] = True
        if samesite is not None:
            options["samesite"] = samesite
        super().set_cookie(name, value, domain, expires, path, expires_days, **options)

    def get_signed_cookie(
        self,
        name: str,
        value: str | None = None,
        max_age_days: float = 31,
        min_version: int | None = None,
    ) -> bytes | None:
        """The verified value of the signed cookie ``name``, or None.

        With ``cookie_secret`` as ``{version: secret}``, a cookie names the version that
        signed it; one signed before rotation was introduced carries no version (it was
        signed with the then only secret), so it is checked against every known key.
        """
        result = super().get_signed_cookie(name, value, max_age_days, min_version)
        secret = self.application.settings.get("cookie_secret")
        if result is not None or not isinstance(secret, dict):
            return result
        if value is None:
            value = self.get_cookie(name)
        if value is None or tornado.web.get_signature_key_version(value) != 0 or 0 in secret:
            return None
        for key in signing_keys(self.application.settings):
            result = tornado.web.decode_signed_value(
                key, name, value, max_age_days=max_age_days, min_version=min_version
            )
            if result is not None:
                return result
        return None

    get_secure_cookie = get_signed_cookie
