"""The session of one request: a dict that records its changes and commits them to a store."""

from __future__ import annotations

import enum
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

from webframe.sessions.store import (
    Record,
    SessionStore,
    encode_value,
    new_session_id,
    touch_due,
)

__all__ = ["CookieAction", "Session"]

_new_object = object.__new__


class CookieAction(enum.Enum):
    """What the HTTP layer must do with the session cookie after `Session.commit`."""

    NONE = "none"  # leave the cookie alone
    SET = "set"  # send Set-Cookie with `session.sid`
    CLEAR = "clear"  # the client's session is gone: clear the cookie


class Session(MutableMapping[str, Any]):
    """The session of one request: a dict that records what changed for the store.

    Values must be JSON.  Mutating a stored value in place (``s["cart"].append(x)``)
    is not detected; call `mark_changed(key)` or assign the key again.
    """

    __slots__ = (
        "_accessed",
        "_changes",
        "_created",
        "_data",
        "_deleted",
        "_new",
        "_sid",
        "_stale_cookie",
        "_to_delete",
        "invalidated",
        "lost",
        "regenerated",
        "touch_interval",
    )

    def __init__(
        self,
        sid: str,
        record: Record,
        *,
        new: bool = False,
        touch_interval: float = 60.0,
    ) -> None:
        self._sid = sid
        self._data: dict[str, Any] = record.data
        self._created = record.created
        self._accessed = record.accessed
        self._new = new
        self.touch_interval = touch_interval
        self._changes: dict[str, Any] = dict(record.data) if new else {}
        self._deleted: set[str] = set()
        self._to_delete: str | None = None
        self._stale_cookie = False
        self.invalidated = False
        self.regenerated = False
        self.lost = False

    @classmethod
    def stored(cls, sid: str, record: Record, touch_interval: float) -> Session:
        """``Session(sid, record, touch_interval=touch_interval)``: a stored session as
        loaded, built without the keyword call (the HTTP layer makes one per read)."""
        self = _new_object(cls)
        self._sid = sid
        self._data = record.data
        self._created = record.created
        self._accessed = record.accessed
        self._new = False
        self.touch_interval = touch_interval
        self._changes = {}
        self._deleted = set()
        self._to_delete = None
        self._stale_cookie = False
        self.invalidated = False
        self.regenerated = False
        self.lost = False
        return self

    @classmethod
    def fresh(cls, now: float | None = None, *, touch_interval: float = 60.0) -> Session:
        """Return an empty, not yet stored session under a newly issued ID."""
        t = time.time() if now is None else now
        return cls(new_session_id(), Record({}, t, t), new=True, touch_interval=touch_interval)

    @classmethod
    async def open(
        cls, store: SessionStore, sid: str | None, *, touch_interval: float = 60.0
    ) -> Session:
        """Load the session `sid` from `store`, or start a fresh one if it is unknown.

        `sid` is the value of a verified cookie, or None if there was none.  An
        unknown ID is never adopted: the fresh session gets a new ID.
        """
        record = await store.load(sid) if sid else None
        return cls.loaded(store, sid, record, touch_interval=touch_interval)

    @classmethod
    def loaded(
        cls,
        store: SessionStore,
        sid: str | None,
        record: Record | None,
        *,
        touch_interval: float = 60.0,
    ) -> Session:
        """The session `open` returns once `store` answered `record` for `sid` (also
        used with what `SessionStore.load_nowait` answered)."""
        if record is not None and sid is not None:
            return cls(sid, record, touch_interval=touch_interval)
        session = cls.fresh(store.clock(), touch_interval=touch_interval)
        session._stale_cookie = bool(sid)
        return session

    # -- state --------------------------------------------------------------

    @property
    def sid(self) -> str:
        """The current ID (a new one after `regenerate`/`invalidate`)."""
        return self._sid

    @property
    def new(self) -> bool:
        """True while the current ID has not been written to the store."""
        return self._new

    @property
    def created(self) -> float:
        """Epoch seconds when this session was first issued."""
        return self._created

    @property
    def accessed(self) -> float:
        """Epoch seconds when the idle expiry was last refreshed."""
        return self._accessed

    @property
    def modified(self) -> bool:
        """True if `commit` has something to write or delete."""
        return bool(self._changes or self._deleted or self._to_delete)

    @property
    def changes(self) -> dict[str, Any]:
        """Keys set since load (or since the last commit)."""
        return self._changes

    @property
    def deleted_keys(self) -> set[str]:
        """Keys deleted since load (or since the last commit)."""
        return self._deleted

    # -- mapping ------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` when there is none."""
        # Mapping.get through __getitem__ and KeyError, without the detour.
        return self._data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        encode_value(key, value)  # fail here, where the bug is, not at commit
        self._data[key] = value
        self._changes[key] = value
        self._deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changes.pop(key, None)
        if not self._new:
            self._deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        state = "new" if self._new else "stored"
        return f"<Session {self._sid[:6]}… {state} keys={sorted(self._data)!r}>"

    def forget(self, key: str) -> None:
        """Drop `key` locally without recording a change or a deletion for `commit`.

        Use it after `SessionStore.take` removed the key from the store: commit
        then writes nothing for it.  A value set in this request and not yet
        committed is dropped too (it is no longer pending).  No error if absent.
        """
        self._data.pop(key, None)
        self._changes.pop(key, None)
        self._deleted.discard(key)

    def mark_changed(self, key: str) -> None:
        """Record that the value under `key` was mutated in place."""
        self._changes[key] = self._data[key]

    # -- lifecycle ----------------------------------------------------------

    def regenerate(self) -> None:
        """Move the data to a new ID (call on login); the old ID is deleted on commit."""
        self._retire_id()
        self._changes = dict(self._data)
        self.regenerated = True

    def invalidate(self) -> None:
        """Drop all data and the stored record (call on logout).

        Keys set afterwards (e.g. a flash message) go to a fresh session under a new ID.
        """
        self._retire_id()
        self._data = {}
        self._changes = {}
        self.invalidated = True

    def _retire_id(self) -> None:
        if not self._new and self._to_delete is None:
            self._to_delete = self._sid
        self._sid = new_session_id()
        self._new = True
        self._deleted = set()

    def needs_commit(self, now: float, idle_timeout: float) -> bool:
        """True if `commit` at ``now`` would call the store (mirrors its decisions), so
        a request whose session needs nothing written skips the asynchronous save."""
        if self._to_delete is not None:
            return True
        if self._new:
            return bool(self._changes) or self._stale_cookie
        if self._changes or self._deleted:
            return True
        return touch_due(self._accessed, now, self.touch_interval, idle_timeout)

    async def commit(self, store: SessionStore) -> CookieAction:
        """Write what changed to `store`; call before headers go out.

        Saves only if modified; otherwise refreshes the idle expiry at most once
        per `touch_interval`.  Returns what to do with the cookie.  Raises
        SessionStoreError if the backend fails.
        """
        now = store.clock()
        action = CookieAction.NONE
        if self._new:
            if self._changes:
                await store.save(self._sid, self._changes, (), new=True, touch=True)
                self._new = False
                self._created = self._accessed = now
                action = CookieAction.SET
            elif self._to_delete is not None or self._stale_cookie:
                action = CookieAction.CLEAR
        elif self._changes or self._deleted:
            # The idle expiry moves at most once per touch interval, whether the
            # request reads or writes: a write in between leaves "accessed" (an
            # indexed column in SQLite) alone.
            touch = touch_due(self._accessed, now, self.touch_interval, store.idle_timeout)
            if await store.save(self._sid, self._changes, self._deleted, new=False, touch=touch):
                if touch:
                    self._accessed = now
            else:
                self._gone()
                action = CookieAction.CLEAR
        elif touch_due(self._accessed, now, self.touch_interval, store.idle_timeout):
            if await store.touch(self._sid):
                self._accessed = now
            else:
                self._gone()
                action = CookieAction.CLEAR
        if self._to_delete is not None:
            await store.delete(self._to_delete)
            self._to_delete = None
        self._changes = {}
        self._deleted = set()
        self._stale_cookie = False
        return action

    def _gone(self) -> None:
        # Deleted (logout elsewhere) or expired meanwhile: never write it back.
        self.lost = True
        self._data = {}
        self._sid = new_session_id()
        self._new = True
