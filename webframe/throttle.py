"""Rate limits that hold across processes and nodes: counters in the session store.

A `RateLimiter` counts attempts per key (an account name, a client address) in
fixed windows, using the configured session store's atomic counter
(`SessionStore.incr`), so every worker and every node sharing that store
(Redis, Sentinel, Cluster, PostgreSQL; SQLite for the processes of one machine)
sees the same counts.  Over the limit, `TooManyRequestsError` answers 429 with
``Retry-After`` and a message; call it *before* the work it protects, so a
refused request runs nothing else::

    by_account = RateLimiter("login-account", limit=10, window=600,
                             message="Too many failed logins for this account.")

    async def post(self):
        store = self.application.session_store
        await enforce(store, (by_account, username), (by_address, self.request.remote_ip))
        ...                                        # only reached under both limits
        await by_account.reset(store, username)    # e.g. after a successful login
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from .errors import ServiceUnavailableError, TooManyRequestsError
from .sessions import Count, SessionStore, SessionStoreError

__all__ = ["RateLimiter", "TooManyRequestsError", "enforce"]

T = TypeVar("T")

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class RateLimiter:
    """At most `limit` counted attempts per key in each `window` (seconds).

    Keys are hashed (SHA-256) into the store's counter names, so any text (a
    user name, an IPv6 address) fits, and the store never holds it in clear.
    Keys are compared exactly: normalise them first (e.g. lower-case names).
    """

    def __init__(
        self,
        name: str,
        *,
        limit: int,
        window: float,
        message: str = TooManyRequestsError.default_message,
    ) -> None:
        if not name or not set(name) <= _NAME_CHARS or len(name) > 64:
            raise ValueError(f"rate limiter name {name!r}: use 1 to 64 of a-z, 0-9, '-', '_', '.'")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"rate limiter {name!r}: limit must be an int >= 1, got {limit!r}")
        if not (isinstance(window, (int, float)) and 0 < window < float("inf")):
            raise ValueError(f"rate limiter {name!r}: window must be > 0 seconds, got {window!r}")
        self.name = name
        self.limit = limit
        self.window = float(window)
        self.message = message

    def __repr__(self) -> str:
        return f"<RateLimiter {self.name} {self.limit} per {self.window:g}s>"

    def counter_key(self, key: str) -> str:
        """The store's counter name for `key` (``throttle:<name>:<sha256 prefix>``)."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"throttle:{self.name}:{digest}"

    async def hit(self, store: SessionStore, key: str) -> Count:
        """Count one attempt for `key` and return the new count (may be over the limit).

        Raises ServiceUnavailableError (503) if the store fails.
        """
        return await _guard(store.incr(self.counter_key(key), self.window))

    async def peek(self, store: SessionStore, key: str) -> Count:
        """Return the count for `key` without counting an attempt."""
        return await _guard(store.incr(self.counter_key(key), self.window, amount=0))

    async def reset(self, store: SessionStore, key: str) -> None:
        """Forget the attempts counted for `key` (e.g. after a successful login)."""
        await _guard(store.reset_counter(self.counter_key(key)))

    def refusal(self, count: Count) -> TooManyRequestsError | None:
        """The 429 for a `count` over the limit, or None if it is within it."""
        if count.value <= self.limit:
            return None
        wait = max(1, math.ceil(count.reset_in))
        return TooManyRequestsError(
            f"{self.message} Try again in {_seconds(wait)}.",
            headers={"Retry-After": str(wait)},
        )


async def enforce(store: SessionStore, *checks: tuple[RateLimiter, str]) -> None:
    """Count one attempt under each ``(limiter, key)`` and raise TooManyRequestsError
    (the longest wait of those over their limit) if any is over its limit.

    Every check is counted, refused or not, in one concurrent round trip; 503 if
    the store fails.
    """
    counts = await asyncio.gather(*(limiter.hit(store, key) for limiter, key in checks))
    _raise_worst((limiter for limiter, _key in checks), counts)


def _raise_worst(limiters: Iterable[RateLimiter], counts: Iterable[Count]) -> None:
    worst: tuple[float, TooManyRequestsError] | None = None
    for limiter, count in zip(limiters, counts, strict=True):
        error = limiter.refusal(count)
        if error is not None and (worst is None or count.reset_in > worst[0]):
            worst = (count.reset_in, error)
    if worst is not None:
        raise worst[1]


async def _guard(operation: Awaitable[T]) -> T:
    try:
        return await operation
    except SessionStoreError:
        raise ServiceUnavailableError(
            "Attempts cannot be counted right now (the session store is unavailable); "
            "try again in a moment.",
            headers={"Retry-After": "5"},
        ) from None


def _seconds(wait: int) -> str:
    if wait < 120:
        return f"{wait} second{'s' if wait != 1 else ''}"
    minutes = math.ceil(wait / 60)
    return f"{minutes} minutes"
