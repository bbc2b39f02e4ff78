"""The session storage contract: IDs, records, the SessionStore ABC and the touch rule.

Backends (``webframe.sessions.backends``) subclass `SessionStore` and implement
its ``_`` hooks; nothing here knows about HTTP or about any one backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from webframe.sessions.records import (
    WOULD_BLOCK,
    Changeset,
    Count,
    NowaitRecord,
    Pending,
    Record,
)

__all__ = [
    "WOULD_BLOCK",
    "Changeset",
    "Count",
    "NowaitRecord",
    "Pending",
    "Record",
    "SessionStore",
    "SessionStoreError",
    "encode_value",
    "is_valid_session_id",
    "new_session_id",
    "touch_due",
]

logger = logging.getLogger("webframe.sessions")

_S = TypeVar("_S", bound="SessionStore")

# secrets.token_urlsafe(32): 32 random bytes -> 43 base64url characters, no padding.
SESSION_ID_BYTES = 32
SESSION_ID_LENGTH = 43
_SESSION_ID_RE = re.compile(rf"[A-Za-z0-9_-]{{{SESSION_ID_LENGTH}}}")

# How many distinct corrupt records a store remembers having logged.
_CORRUPT_LOG_MEMORY = 1024

# Counter names: printable, no spaces, short enough for every backend's key.
_COUNTER_KEY_RE = re.compile(r"[\x21-\x7e]{1,200}")

# The scanner of json.loads, without its whitespace and BOM handling: records are
# written compactly, so anything it does not parse whole goes through json.loads.
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def new_session_id() -> str:
    """Return a fresh, unguessable session ID (256 bits from `secrets`)."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def is_valid_session_id(sid: object) -> bool:
    """Return True if `sid` has the exact shape of an ID from `new_session_id`."""
    return isinstance(sid, str) and _SESSION_ID_RE.fullmatch(sid) is not None


def encode_value(key: object, value: Any) -> str:
    """Return `value` as compact JSON; raise TypeError naming `key` if it cannot be."""
    if not isinstance(key, str):
        raise TypeError(f"session keys must be str, not {type(key).__name__}: {key!r}")
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"session value for key {key!r} is not JSON-serialisable "
            f"({type(value).__name__}): {exc}; store only dict/list/str/int/"
            "float/bool/None"
        ) from exc


def touch_due(accessed: float, now: float, touch_interval: float, idle_timeout: float) -> bool:
    """Return True if a session last refreshed at `accessed` needs its idle expiry moved at `now`.

    The one touch rule: at most once per `touch_interval`, and at least twice per
    idle timeout, so a session in use never expires between two refreshes.
    """
    return now - accessed >= min(touch_interval, idle_timeout / 2)


class SessionStoreError(Exception):
    """The session backend is unreachable, timed out or locked; the HTTP layer answers 503."""


class SessionStore(ABC):
    """Async storage for session records; concrete stores implement the `_` hooks.

    A record is expired when ``now - accessed > idle_timeout`` or
    ``now - created > absolute_timeout``; expired records are never loaded and
    never revived by a save.  Every backend operation is bounded by `timeout`.
    """

    def __init__(
        self,
        *,
        idle_timeout: float = 86400.0,
        absolute_timeout: float = 7 * 86400.0,
        clock: Callable[[], float] = time.time,
        timeout: float = 2.0,
    ) -> None:
        for name, value in (
            ("idle_timeout", idle_timeout),
            ("absolute_timeout", absolute_timeout),
            ("timeout", timeout),
        ):
            if not value > 0:
                raise ValueError(f"session store {name} must be > 0 seconds, got {value!r}")
        self.idle_timeout = float(idle_timeout)
        self.absolute_timeout = float(absolute_timeout)
        self.clock = clock
        self.timeout = float(timeout)
        self._corrupt_logged: set[str] = set()
        self._purger: asyncio.Task[None] | None = None

    #: whether `load_nowait` may use `_load_nowait` (set per class, see below).
    _answers_nowait: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # `_load_nowait` stands in for `load`/`_load` only where it was written next to
        # (or below) the `_load` in use: a subclass that wraps `load` or replaces `_load`
        # (a test double, a failing store) is always asked through them.
        nowait = next(k for k in cls.__mro__ if "_load_nowait" in k.__dict__)
        load = next(k for k in cls.__mro__ if "_load" in k.__dict__)
        cls._answers_nowait = (
            nowait is not SessionStore
            and load in nowait.__mro__  # not issubclass: the ABC is half-built here
            and cls.load is SessionStore.load
        )

    # -- public API ---------------------------------------------------------

    async def load(self, sid: str) -> Record | None:
        """Return the live record for `sid`, or None if unknown, expired, deleted or malformed."""
        if not is_valid_session_id(sid):
            return None
        return await self._load(sid, self.clock())

    def load_nowait(self, sid: str) -> NowaitRecord:
        """What `load` would return, when the backend can tell without waiting for I/O
        (the in-process store always, SQLite when no lock is in the way); otherwise
        `WOULD_BLOCK`, and the caller awaits `load`.  Spares a read its coroutines."""
        if not self._answers_nowait:
            return WOULD_BLOCK
        if not is_valid_session_id(sid):
            return None
        return self._load_nowait(sid, self.clock())

    def load_nowait_checked(self, sid: str) -> NowaitRecord:
        """`load_nowait` for an ID the caller already found valid with
        `is_valid_session_id` (the HTTP layer does so once per verified cookie and
        remembers it): the same answer without checking the ID again."""
        if not self._answers_nowait:
            return WOULD_BLOCK
        return self._load_nowait(sid, self.clock())

    async def save(
        self,
        sid: str,
        changes: Mapping[str, Any],
        deleted_keys: Iterable[str] = frozenset(),
        *,
        new: bool,
        touch: bool = True,
    ) -> bool:
        """Apply `changes` and `deleted_keys` to the record for `sid`.

        With ``new=True`` the record is created (created = accessed = now) if it
        is absent or expired.  With ``new=False`` it is written only if it still
        exists and is live.  Returns True if written, False if the session is gone.
        Raises TypeError (naming the key) for a value that is not JSON.
        """
        if not is_valid_session_id(sid):
            raise ValueError("refusing to save under a malformed session ID")
        encoded = {key: encode_value(key, value) for key, value in changes.items()}
        deleted = frozenset(k for k in deleted_keys if k not in encoded)
        cs = Changeset(values=dict(changes), encoded=encoded, deleted=deleted, new=new, touch=touch)
        return await self._save(sid, cs, self.clock())

    async def touch(self, sid: str) -> bool:
        """Refresh the idle expiry of `sid`; return False if the session is gone."""
        if not is_valid_session_id(sid):
            return False
        cs = Changeset(values={}, encoded={}, deleted=frozenset(), new=False, touch=True)
        return await self._save(sid, cs, self.clock())

    async def take(self, sid: str, keys: Collection[str]) -> dict[str, Any]:
        """Atomically remove `keys` from the stored session `sid` and return them.

        Returns ``{key: value}`` for exactly the keys that existed and were
        removed by this call: of several concurrent takes of one key, exactly
        one gets it.  Other keys are untouched.  A session that is unknown,
        expired, deleted, corrupt or has a malformed ID yields ``{}``; `take`
        never creates a record and never refreshes the idle expiry.  Use it for
        read-once data such as flash messages, then `Session.forget` the keys
        so the request's commit writes nothing for them.  Raises
        SessionStoreError if the backend fails or times out.
        """
        if isinstance(keys, (str, bytes)):
            raise TypeError("take() needs a collection of keys, not a single str")
        wanted = frozenset(keys)
        for key in wanted:
            if not isinstance(key, str):
                raise TypeError(f"session keys must be str, not {type(key).__name__}: {key!r}")
        if not wanted or not is_valid_session_id(sid):
            return {}
        return await self._take(sid, wanted, self.clock())

    async def delete(self, sid: str) -> None:
        """Remove the record for `sid` (no error if it does not exist)."""
        if is_valid_session_id(sid):
            await self._delete(sid)

    async def incr(self, key: str, window: float, amount: int = 1) -> Count:
        """Add `amount` to the counter `key` and return its new value, atomically.

        A counter lives for a fixed `window` (seconds) from its first increment,
        then starts again from zero; concurrent increments (from any process or
        node sharing the backend) are never lost.  ``amount=0`` reads the
        counter without creating it (value 0, ``reset_in == window`` when absent).
        Counters are kept apart from sessions.  Raises ValueError for a bad key
        or window and SessionStoreError if the backend fails.
        """
        if not isinstance(key, str) or not _COUNTER_KEY_RE.fullmatch(key):
            raise ValueError(
                f"counter key {key!r} must be 1 to 200 printable ASCII characters, no spaces"
            )
        if not (isinstance(window, (int, float)) and 0 < window < float("inf")):
            raise ValueError(f"counter window must be > 0 seconds, got {window!r}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise ValueError(f"counter amount must be an int >= 0, got {amount!r}")
        return await self._incr(key, float(window), amount, self.clock())

    async def reset_counter(self, key: str) -> None:
        """Remove the counter `key` (no error if absent); the next `incr` starts at zero."""
        if isinstance(key, str) and _COUNTER_KEY_RE.fullmatch(key):
            await self._reset_counter(key)

    async def purge_expired(self) -> int:
        """Delete every expired record now; return how many were removed."""
        return await self._purge(self.clock())

    def start_purger(self, interval: float) -> asyncio.Task[None]:
        """Start a task calling `purge_expired` every `interval` seconds; `close` stops it."""
        if interval <= 0:
            raise ValueError(f"purge interval must be > 0 seconds, got {interval!r}")
        if self._purger is not None and not self._purger.done():
            return self._purger
        self._purger = asyncio.get_running_loop().create_task(self._purge_loop(interval))
        return self._purger

    async def close(self) -> None:
        """Stop the purger and release connections; the store is unusable afterwards."""
        purger, self._purger = self._purger, None
        if purger is not None:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
        await self._close()

    def is_expired(self, created: float, accessed: float, now: float) -> bool:
        """Return True if a record with these times is past either timeout at `now`."""
        return now - accessed > self.idle_timeout or now - created > self.absolute_timeout

    def expires_at(self, created: float, accessed: float) -> float:
        """Return the epoch time at which a record with these times expires."""
        return min(accessed + self.idle_timeout, created + self.absolute_timeout)

    # -- construction from a URL ---------------------------------------------

    @classmethod  # noqa: B027 - an optional hook: by default every URL of the scheme is fine
    def check_url(cls, url: str) -> None:
        """Called at start-up and by `open_store`; raise ValueError if `url` is malformed."""

    @classmethod
    def from_url(cls: type[_S], url: str, **kwargs: Any) -> _S:
        """Called by `open_store` after `check_url`; build the store for `url`."""
        return cls(**kwargs)

    # -- backend hooks ------------------------------------------------------

    @abstractmethod
    async def _load(self, sid: str, now: float) -> Record | None:
        """Called by `load` with a well-formed ID; return the live record or None."""

    def _load_nowait(self, sid: str, now: float) -> NowaitRecord:
        """Called by `load_nowait` with a well-formed ID: what `_load` would return, or
        `WOULD_BLOCK` when that needs waiting (then `_load` is awaited)."""
        return WOULD_BLOCK

    @abstractmethod
    async def _save(self, sid: str, cs: Changeset, now: float) -> bool:
        """Called by `save`/`touch`; apply `cs` atomically and return whether it was written."""

    @abstractmethod
    async def _take(self, sid: str, keys: frozenset[str], now: float) -> dict[str, Any]:
        """Called by `take` with a well-formed ID and a non-empty key set.

        In one atomic step: if the record exists and is live at `now`, delete
        those of `keys` it holds and return them decoded; never create the
        record, never change its timestamps.  Otherwise return {}.
        """

    @abstractmethod
    async def _delete(self, sid: str) -> None:
        """Called by `delete` with a well-formed ID."""

    @abstractmethod
    async def _purge(self, now: float) -> int:
        """Called by `purge_expired`; delete records expired at `now`, return the count."""

    async def _incr(self, key: str, window: float, amount: int, now: float) -> Count:
        """Called by `incr` with checked arguments: in one atomic step, start the
        counter afresh (window ending at ``now + window``) if absent or its window
        ended at or before `now`, add `amount` (``amount=0`` creates nothing) and
        return the value with ``reset_in = window end - now``."""
        raise NotImplementedError(f"{type(self).__name__} does not keep counters")

    async def _reset_counter(self, key: str) -> None:
        """Called by `reset_counter` with a well-formed key: delete the counter."""
        raise NotImplementedError(f"{type(self).__name__} does not keep counters")

    async def _close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Called by `close` after the purger stopped; release backend resources."""

    # -- helpers for backends -----------------------------------------------

    def _decode_data(self, sid: str, blob: str | bytes | None) -> dict[str, Any]:
        """Parse a stored JSON object; log once and return {} if it is corrupt."""
        if type(blob) is str:
            try:
                data, end = _scan_json(blob, 0)
            except (StopIteration, ValueError):
                pass  # json.loads tells what is wrong
            else:
                if end == len(blob) and type(data) is dict:
                    return data
        try:
            data = json.loads(blob) if blob is not None else None
        except (ValueError, TypeError) as exc:
            self._report_corrupt(sid, f"invalid JSON: {exc}")
            return {}
        if not isinstance(data, dict):
            self._report_corrupt(sid, f"expected a JSON object, found {type(data).__name__}")
            return {}
        return data

    def _report_corrupt(self, sid: str, reason: str) -> None:
        """Log a corrupt record once per store (never the full ID: it is a credential)."""
        if sid in self._corrupt_logged:
            return
        if len(self._corrupt_logged) >= _CORRUPT_LOG_MEMORY:
            self._corrupt_logged.clear()
        self._corrupt_logged.add(sid)
        logger.warning(
            "session %s…: stored record is corrupt (%s); loading it as an empty session",
            sid[:6],
            reason,
        )

    @staticmethod
    def _as_time(value: object, default: float) -> float:
        """Return `value` as a float timestamp, or `default` if it is not one."""
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                result = float(value)
            except ValueError:
                return default
            if result == result and abs(result) != float("inf"):
                return result
        return default

    async def _purge_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await self.purge_expired()
            except SessionStoreError as exc:
                logger.warning("purging expired sessions failed: %s", exc)
            else:
                if removed:
                    logger.debug("purged %d expired sessions", removed)
