"""`SessionStore.load_nowait_checked`: the read of an ID already validated by the HTTP
layer answers what `load_nowait` answers, with the same expiry rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

from webframe.sessions import MemoryStore, SQLiteStore
from webframe.sessions.store import WOULD_BLOCK, Record, new_session_id


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class _AwaitedOnly(MemoryStore):
    """Replaces `_load`: must never be answered without awaiting."""

    async def _load(self, sid: str, now: float) -> Record | None:
        return None


def _check(store: MemoryStore | SQLiteStore, clock: _Clock) -> None:
    async def main() -> None:
        sid, unknown = new_session_id(), new_session_id()
        await store.save(sid, {"n": 1}, new=True)
        record = store.load_nowait_checked(sid)
        assert record is not WOULD_BLOCK and record is not None
        assert record.data == {"n": 1}
        assert store.load_nowait_checked(sid) == store.load_nowait(sid)
        assert store.load_nowait_checked(unknown) is None
        clock.now += store.idle_timeout + 1  # idle expiry still applies
        assert store.load_nowait_checked(sid) is None
        await store.close()

    asyncio.run(main())


def test_memory_checked_read_matches_load_nowait() -> None:
    clock = _Clock()
    _check(MemoryStore(clock=clock, idle_timeout=100, absolute_timeout=1000), clock)


def test_sqlite_checked_read_matches_load_nowait(tmp_path: Path) -> None:
    clock = _Clock()
    store = SQLiteStore(str(tmp_path / "s.db"), clock=clock, idle_timeout=100)
    _check(store, clock)


def test_absolute_expiry_applies_to_checked_read() -> None:
    clock = _Clock()
    store = MemoryStore(clock=clock, idle_timeout=100, absolute_timeout=150)

    async def main() -> None:
        sid = new_session_id()
        await store.save(sid, {"n": 1}, new=True)
        for _ in range(3):  # kept idle-fresh, but past the absolute timeout at the end
            clock.now += 60
            await store.touch(sid)
        assert store.load_nowait_checked(sid) is None

    asyncio.run(main())


def test_store_that_replaces_load_is_always_awaited() -> None:
    store = _AwaitedOnly()
    assert store.load_nowait_checked(new_session_id()) is WOULD_BLOCK
