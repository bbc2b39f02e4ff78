"""Session-bound XSRF tokens: pure mask/verify functions and the handler hook.

A token is an HMAC of the session ID under the signing key, so it is only valid
for the session it was made for (Tornado's own token is a double-submit cookie,
tied to nothing). Each page gets it masked afresh with four random bytes, so the
token on a page never repeats and cannot be read back through compression.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import XSRFError
from .sessions.mixin import SessionMixin
from .sessions.session import CookieAction
from .signing import signing_keys

__all__ = [
    "TOKEN_BYTES",
    "XSRF_ANCHOR",
    "XSRFMixin",
    "header_token",
    "mask_token",
    "session_token",
    "token_valid",
]

#: a fresh session that carries an XSRF token must be stored so the token stays valid.
XSRF_ANCHOR = "_xsrf"
#: length of the unmasked token (a SHA-256 HMAC).
TOKEN_BYTES = 32
_MASK_BYTES = 4


def session_token(sid: str, key: bytes) -> bytes:
    """The unmasked token of session ``sid`` under signing ``key``."""
    return hmac.new(key, b"webframe-xsrf|" + sid.encode(), hashlib.sha256).digest()


def _xor(mask: bytes, data: bytes) -> bytes:
    return bytes(b ^ mask[i % _MASK_BYTES] for i, b in enumerate(data))


def mask_token(raw: bytes) -> bytes:
    """``raw`` masked with fresh random bytes, base64url without padding."""
    mask = os.urandom(_MASK_BYTES)
    return base64.urlsafe_b64encode(mask + _xor(mask, raw)).rstrip(b"=")


def token_valid(token: str, sid: str, keys: Sequence[bytes]) -> bool:
    """True if the masked ``token`` belongs to session ``sid`` under one of ``keys``."""
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return False
    if len(data) != _MASK_BYTES + TOKEN_BYTES:
        return False
    raw = _xor(data[:_MASK_BYTES], data[_MASK_BYTES:])
    return any(hmac.compare_digest(raw, session_token(sid, k)) for k in keys)


def header_token(headers: Mapping[str, str]) -> str | None:
    """The token sent in an ``X-XSRFToken`` (or ``X-CSRFToken``) header, if any."""
    return headers.get("X-Xsrftoken") or headers.get("X-Csrftoken") or None


class XSRFMixin(SessionMixin):
    """A session-bound XSRF token and its check; used through :class:`webframe.RequestHandler`."""

    _xsrf_sid: str | None = None

    @property
    def xsrf_token(self) -> bytes:
        """The anti-forgery token of this session (masked afresh on each page).

        It is also set in the (HttpOnly) ``_xsrf`` cookie (named by Tornado's
        ``xsrf_cookie_name`` setting, with ``xsrf_cookie_kwargs``), which HTTP clients such as
        :class:`webframe.testing.Client` echo in ``X-XSRFToken``; page scripts read the
        ``xsrf-token`` meta tag instead. A visitor with no session gets one, stored, so the
        token stays valid across tabs.
        """
        # Its own cache (not Tornado's ``_xsrf_token``): Tornado's property is replaced.
        if not hasattr(self, "_session_xsrf_token"):
            sid = self._session.sid if self._session is not None else None
            if sid is None:
                sid = self.session_id_from_cookie()
            if sid is None or (self._session is not None and self._session.new):
                session = self.session
                session[XSRF_ANCHOR] = 1
                sid = session.sid
            token = self._masked_xsrf_token(sid)
            self._session_xsrf_token = token
            self._xsrf_sid = sid
            current = self.request.cookies.get(self._xsrf_cookie_name())
            if current is None or not self._xsrf_valid(current.value, sid):
                self._set_xsrf_cookie(token)
        return self._session_xsrf_token

    def check_xsrf_cookie(self) -> None:
        """Called before ``prepare`` on unsafe methods: the token (``X-XSRFToken`` header
        or ``_xsrf`` form field; never the query string) must belong to this session."""
        token = header_token(self.request.headers) or self._body_xsrf_token()
        if not token:
            raise XSRFError(
                "The request has no security token (_xsrf form field or X-XSRFToken header); "
                "reload the page and try again."
            )
        sid = self.session_id_from_cookie()
        if sid is None or not self._xsrf_valid(token, sid):
            raise XSRFError(
                "The security token does not belong to your session (it may have expired); "
                "reload the page and try again."
            )

    def _session_cookie_changed(self, action: CookieAction) -> None:
        """After the session ID changed (login, logout, expiry), replace the XSRF
        cookie: the token it holds belonged to the old ID and would be refused."""
        super()._session_cookie_changed(action)
        session = self._session
        if session is None or action is CookieAction.NONE:
            return
        name = self._xsrf_cookie_name()
        if name not in self.request.cookies and self._xsrf_sid is None:
            return
        if self._xsrf_sid == session.sid:
            return  # the token of this response already belongs to the new ID
        if action is CookieAction.SET:
            self._xsrf_sid = session.sid
            self._set_xsrf_cookie(self._masked_xsrf_token(session.sid))
        else:
            # Same attributes as when set (a __Host- cookie is only cleared with Secure).
            kwargs = {
                k: v
                for k, v in self._xsrf_cookie_kwargs().items()
                if k.lower() not in ("expires", "max_age", "expires_days")
            }
            self.clear_cookie(name, **{"samesite": "Strict", **kwargs})

    def _xsrf_cookie_name(self) -> str:
        # Tornado's setting; the form field stays ``_xsrf`` whatever the cookie's name.
        name: str = self.application.settings.get("xsrf_cookie_name", "_xsrf")
        return name

    def _xsrf_cookie_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = self.application.settings.get("xsrf_cookie_kwargs") or {}
        return kwargs

    def _set_xsrf_cookie(self, token: bytes) -> None:
        """Set the XSRF cookie: SameSite=Strict, HttpOnly, then Tornado's
        ``xsrf_cookie_kwargs`` setting on top (it may override both)."""
        options: dict[str, Any] = {"samesite": "Strict", **self._xsrf_cookie_kwargs()}
        self.set_cookie(self._xsrf_cookie_name(), token, **options)

    def _masked_xsrf_token(self, sid: str) -> bytes:
        return mask_token(session_token(sid, signing_keys(self.application.settings)[0]))

    def _xsrf_valid(self, token: str, sid: str) -> bool:
        return token_valid(token, sid, signing_keys(self.application.settings))

    def _body_xsrf_token(self) -> str | None:
        values = self.request.body_arguments.get("_xsrf")
        if not values:
            return None
        return values[0].decode("latin-1")
