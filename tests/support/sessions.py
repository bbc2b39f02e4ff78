"""Reading the session a test client holds; a store call that must fail in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import pytest
import tornado.web

from webframe.sessions import SessionStoreError
from webframe.testing import TEST_SECRET, CookieJar


def session_id(jar: CookieJar, name: str = "session") -> str | None:
    """The session ID inside the signed cookie in ``jar`` (None without a valid one)."""
    value = jar.get(name)
    if value is None:
        return None
    raw = tornado.web.decode_signed_value(TEST_SECRET, name, value)
    return raw.decode() if raw is not None else None


async def expect_store_error(
    op: Coroutine[Any, Any, Any], limit: float, match: str | None = None
) -> float:
    """Await ``op``, assert it raises SessionStoreError (whose message matches ``match``)
    within ``limit`` seconds; return the time it took."""
    started = time.monotonic()
    with pytest.raises(SessionStoreError, match=match):
        await asyncio.wait_for(op, limit + 5)  # the outer bound only guards against a hang
    elapsed = time.monotonic() - started
    assert elapsed < limit, f"took {elapsed:.2f}s, limit {limit}s"
    return elapsed
