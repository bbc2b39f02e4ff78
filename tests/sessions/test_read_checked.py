"""`SessionStore.load_nowait_checked`: the read of an ID already validated by the HTTP
layer answers what `load_nowait` answers, with the same expiry rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

from webframe.sessions import MemoryStore, SQLiteStore
from webframe.sessions.store import WOULD_BLOCK, NowaitRecord, Record, new_session_id


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


def test_memory_reads_never_share_objects_and_see_every_write() -> None:
    """The decoded form a memory store keeps for fast reads: each read gets its own
    objects, and a write (or a corrupted record) is what the next read sees."""
    store = MemoryStore()

    async def main() -> None:
        sid = new_session_id()
        await store.save(sid, {"user": {"id": 1, "tags": ["a"]}, "t": (1, 2)}, new=True)
        first = store.load_nowait_checked(sid)
        second = store.load_nowait_checked(sid)
        assert isinstance(first, Record) and isinstance(second, Record)
        assert first.data == second.data == {"user": {"id": 1, "tags": ["a"]}, "t": [1, 2]}
        first.data["user"]["tags"].append("mutated")
        third = store.load_nowait_checked(sid)
        assert isinstance(third, Record)
        assert third.data["user"]["tags"] == ["a"]
        assert second.data["user"] is not third.data["user"]
        await store.save(sid, {"n": 2}, new=False)
        after_write = store.load_nowait_checked(sid)
        assert isinstance(after_write, Record) and after_write.data["n"] == 2
        store._records[sid].blob = "{not json"
        corrupt = store.load_nowait_checked(sid)
        assert isinstance(corrupt, Record) and corrupt.data == {}
        taken_sid = new_session_id()
        await store.save(taken_sid, {"flash": "hi", "k": 1}, new=True)
        store.load_nowait_checked(taken_sid)
        assert await store.take(taken_sid, ["flash"]) == {"flash": "hi"}
        after_take = store.load_nowait_checked(taken_sid)
        assert isinstance(after_take, Record) and after_take.data == {"k": 1}

    asyncio.run(main())


def test_memory_read_of_deeply_nested_value() -> None:
    store = MemoryStore()
    value: list[object] = []
    for _ in range(900):  # deep, yet within what json.dumps accepts
        value = [value]

    async def main() -> None:
        sid = new_session_id()
        await store.save(sid, {"deep": value}, new=True)
        for _ in range(2):
            record = store.load_nowait_checked(sid)
            assert isinstance(record, Record) and record.data == {"deep": value}

    asyncio.run(main())


def test_sqlite_reads_see_writes_from_anywhere_and_never_share_objects(tmp_path: Path) -> None:
    """The decoded data the SQLite store keeps per session is used only while the row's
    text is unchanged: a write by another connection (another process) is seen."""
    import sqlite3

    path = str(tmp_path / "s.db")
    store = SQLiteStore(path)

    async def read(sid: str) -> Record:
        record = store.load_nowait_checked(sid)
        if record is WOULD_BLOCK:
            record = await store.load(sid)
        assert isinstance(record, Record)
        return record

    async def main() -> None:
        sid = new_session_id()
        await store.save(sid, {"user": {"tags": ["a"]}}, new=True)
        first = await read(sid)
        first.data["user"]["tags"].append("mutated")
        assert (await read(sid)).data == {"user": {"tags": ["a"]}}
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("UPDATE webframe_sessions SET data = ? WHERE sid = ?", ('{"n":5}', sid))
            assert (await read(sid)).data == {"n": 5}
            other.execute("UPDATE webframe_sessions SET data = '{not json' WHERE sid = ?", (sid,))
            assert (await read(sid)).data == {}
            other.execute("DELETE FROM webframe_sessions WHERE sid = ?", (sid,))
        finally:
            other.close()
        assert store.load_nowait_checked(sid) in (None, WOULD_BLOCK)
        assert await store.load(sid) is None
        await store.close()

    asyncio.run(main())


def test_session_stored_is_the_loaded_session() -> None:
    """`Session.stored` (the HTTP layer's per-read constructor) sets every slot as
    ``Session(sid, record, touch_interval=...)`` does."""
    from webframe.sessions.session import Session

    sid = new_session_id()
    record = Record({"n": 1}, 10.0, 20.0)
    built = Session(sid, record, touch_interval=30.0)
    fast = Session.stored(sid, record, 30.0)
    assert type(fast) is Session
    for name in Session.__slots__:
        assert getattr(fast, name) == getattr(built, name), name
    assert fast.needs_commit(45.0, 1000.0) is False
    assert fast.needs_commit(50.0, 1000.0) is True  # touch due after touch_interval
    fast["k"] = 2
    assert fast.changes == {"k": 2} and built.changes == {}


def test_values_read_back_exactly_from_the_decoded_cache(tmp_path: Path) -> None:
    """Floats, big ints, non-ASCII and lone-surrogate text read back as stored, from
    the decoded form each store keeps (second and later reads)."""
    data = {"f": 0.1, "e": 1e-300, "big": 2**70, "neg": -3, "s": "é\u20ac\U0001f600", "u": "\ud800"}
    data |= {"t": True, "none": None, "l": [1.5, {"x": []}]}

    async def main(store: MemoryStore | SQLiteStore) -> None:
        sid = new_session_id()
        await store.save(sid, data, new=True)
        for _ in range(3):
            record = store.load_nowait_checked(sid)
            if record is WOULD_BLOCK:
                record = await store.load(sid)
            assert isinstance(record, Record) and record.data == data
            assert repr(record.data["f"]) == "0.1"
        await store.close()

    asyncio.run(main(MemoryStore()))
    asyncio.run(main(SQLiteStore(str(tmp_path / "s.db"))))


class _OwnReads(SQLiteStore):
    """Answers reads its own way: a checked read must go through `_load_nowait`."""

    def _load_nowait(self, sid: str, now: float) -> NowaitRecord:
        record = super()._load_nowait(sid, now)
        if isinstance(record, Record):
            record.data["own"] = True
        return record


def test_sqlite_subclass_answering_reads_itself_is_asked(tmp_path: Path) -> None:
    store = _OwnReads(str(tmp_path / "s.db"))

    async def main() -> None:
        sid = new_session_id()
        await store.save(sid, {"n": 1}, new=True)
        for _ in range(2):
            record = store.load_nowait_checked(sid)
            if record is WOULD_BLOCK:
                record = await store.load(sid)
            assert isinstance(record, Record) and record.data == {"n": 1, "own": True}
        await store.close()

    asyncio.run(main())
