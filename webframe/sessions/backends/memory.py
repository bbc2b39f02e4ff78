"""In-process session store: a dict of JSON records, for tests and single-process apps."""

from __future__ import annotations

import contextlib
import json
import marshal
from typing import Any

from webframe.sessions.records import MARSHAL_VERSION
from webframe.sessions.store import (
    Changeset,
    Count,
    NowaitRecord,
    Record,
    SessionStore,
)

__all__ = ["MemoryStore"]


class _Entry:
    """One record. ``blob`` is the JSON object text (so readers never share objects
    with writers); ``packed`` is that object once decoded, in `marshal` form, which
    reads back faster than JSON. Setting ``blob`` drops it."""

    __slots__ = ("_blob", "accessed", "created", "packed")

    def __init__(self, blob: str, created: float, accessed: float) -> None:
        self._blob = blob
        self.packed: bytes | None = None
        self.created = created
        self.accessed = accessed

    @property
    def blob(self) -> str:
        return self._blob

    @blob.setter
    def blob(self, value: str) -> None:
        self._blob = value
        self.packed = None


class MemoryStore(SessionStore):
    """Keeps sessions in this process only; they vanish on restart and are not shared."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._records: dict[str, _Entry] = {}
        #: counter key -> [value, window end]
        self._counters: dict[str, list[float]] = {}

    async def _load(self, sid: str, now: float) -> Record | None:
        return self._read(sid, now)

    def _read(self, sid: str, now: float) -> Record | None:
        entry = self._records.get(sid)
        if entry is None:
            return None
        created = entry.created
        accessed = entry.accessed
        # is_expired(), inline: this runs on every session read.
        if now - accessed > self.idle_timeout or now - created > self.absolute_timeout:
            del self._records[sid]
            return None
        packed = entry.packed
        if packed is not None:
            # Bytes this store made from data it decoded itself, never from outside.
            return Record(marshal.loads(packed), created, accessed)  # noqa: S302
        data = self._decode_data(sid, entry.blob)
        # What JSON decoding gives (dict, list, str, int, float, bool, None) only; a
        # value nested too deep for marshal stays JSON.
        with contextlib.suppress(ValueError):
            entry.packed = marshal.dumps(data, MARSHAL_VERSION)
        return Record(data, created, accessed)

    #: nothing to wait for: `load_nowait` answers what `load` would.
    _load_nowait = _read

    def load_nowait_checked(self, sid: str) -> NowaitRecord:
        """`SessionStore.load_nowait_checked`, with `_read` inline (one call less per
        read); a subclass may answer reads its own way, so it is asked the general way."""
        if type(self) is not MemoryStore:
            return super().load_nowait_checked(sid)
        entry = self._records.get(sid)
        if entry is None:
            return None
        packed = entry.packed
        if packed is None:
            return self._read(sid, self.clock())
        now = self.clock()
        created = entry.created
        accessed = entry.accessed
        if now - accessed > self.idle_timeout or now - created > self.absolute_timeout:
            del self._records[sid]
            return None
        return Record(marshal.loads(packed), created, accessed)  # noqa: S302

    async def _save(self, sid: str, cs: Changeset, now: float) -> bool:
        # No await between read and write: atomic on the event loop.
        entry = self._records.get(sid)
        if entry is not None and self.is_expired(entry.created, entry.accessed, now):
            del self._records[sid]
            entry = None
        if entry is None:
            if not cs.new:
                return False
            entry = _Entry("{}", now, now)
            data: dict[str, Any] = {}
        else:
            data = self._decode_data(sid, entry.blob)
        for key in cs.deleted:
            data.pop(key, None)
        data.update(cs.values)
        entry.blob = json.dumps(data, allow_nan=False, separators=(",", ":"))
        if cs.touch or cs.new:
            entry.accessed = now
        self._records[sid] = entry
        return True

    async def _take(self, sid: str, keys: frozenset[str], now: float) -> dict[str, Any]:
        # No await between read and write: atomic on the event loop.
        entry = self._records.get(sid)
        if entry is None or self.is_expired(entry.created, entry.accessed, now):
            return {}
        data = self._decode_data(sid, entry.blob)
        taken = {key: data.pop(key) for key in keys if key in data}
        if taken:
            entry.blob = json.dumps(data, allow_nan=False, separators=(",", ":"))
        return taken

    async def _incr(self, key: str, window: float, amount: int, now: float) -> Count:
        # No await between read and write: atomic on the event loop.
        entry = self._counters.get(key)
        if entry is None or entry[1] <= now:
            if not amount:
                return Count(0, window)
            entry = self._counters[key] = [0, now + window]
        entry[0] += amount
        return Count(int(entry[0]), entry[1] - now)

    async def _reset_counter(self, key: str) -> None:
        self._counters.pop(key, None)

    async def _delete(self, sid: str) -> None:
        self._records.pop(sid, None)

    async def _purge(self, now: float) -> int:
        expired = [
            sid for sid, e in self._records.items() if self.is_expired(e.created, e.accessed, now)
        ]
        for sid in expired:
            del self._records[sid]
        for key in [k for k, (_, end) in self._counters.items() if end <= now]:
            del self._counters[key]
        return len(expired)

    async def _close(self) -> None:
        self._records.clear()
        self._counters.clear()
