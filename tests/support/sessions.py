"""Reading the session a test client holds."""

from __future__ import annotations

import tornado.web

from webframe.testing import TEST_SECRET, CookieJar


def session_id(jar: CookieJar, name: str = "session") -> str | None:
    """The session ID inside the signed cookie in ``jar`` (None without a valid one)."""
    value = jar.get(name)
    if value is None:
        return None
    raw = tornado.web.decode_signed_value(TEST_SECRET, name, value)
    return raw.decode() if raw is not None else None
