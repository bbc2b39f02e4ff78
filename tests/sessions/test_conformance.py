"""The SessionStore / Session contract, run against every store (memory, sqlite, redis,
Redis Sentinel, Redis Cluster, PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from webframe.sessions import (
    CookieAction,
    MemoryStore,
    Session,
    SessionStoreError,
    SQLiteStore,
    is_valid_session_id,
    new_session_id,
    open_store,
)

if TYPE_CHECKING:
    from tests.sessions.conftest import Backend, CountingStore, FakeClock


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


BAD_IDS = [
    "",
    "abc",
    "x" * 10240,
    "' OR '1'='1' --",
    "'; DROP TABLE webframe_sessions; --",
    "a" * 42 + "!",
    "a" * 42 + "/",
    "a" * 42 + "=",
    "a" * 44,
    "a" * 42 + "é",
    "a" * 42 + "\n",
    "../../../../etc/passwd",
    "*",
]


# -- IDs --------------------------------------------------------------------


def test_new_session_ids_are_256_bit_urlsafe_and_unique() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    for sid in ids:
        assert len(sid) == 43  # 32 bytes, base64url, unpadded
        assert is_valid_session_id(sid)


@pytest.mark.parametrize("sid", [*BAD_IDS, None, 12, b"a" * 43])
def test_malformed_ids_are_rejected(sid: Any) -> None:
    assert not is_valid_session_id(sid)


# -- round trip ---------------------------------------------------------------


def test_round_trip(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            value = {"name": "Zoë", "n": 3, "f": 1.5, "ok": True, "none": None, "l": [1, "a"]}
            assert await store.save(sid, {"user": value, "x": 1}, new=True, touch=True)
            record = await store.load(sid)
            assert record is not None
            assert record.data == {"user": value, "x": 1}
            assert record.created == clock.now
            assert record.accessed == clock.now
            assert await backend.count(store) == 1

    run(main())


def test_session_commit_round_trip(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            session = await Session.open(store, None)
            assert session.new and not session.modified and len(session) == 0
            session["user_id"] = 42
            session["cart"] = ["apple"]
            assert session.modified
            assert await session.commit(store) is CookieAction.SET
            assert not session.new and not session.modified

            again = await Session.open(store, session.sid)
            assert not again.new
            assert dict(again) == {"user_id": 42, "cart": ["apple"]}
            assert again["cart"] == ["apple"]
            assert again.created == clock.now
            again["cart"].append("pear")
            again.mark_changed("cart")
            del again["user_id"]
            assert await again.commit(store) is CookieAction.NONE

            record = await store.load(session.sid)
            assert record is not None and record.data == {"cart": ["apple", "pear"]}

    run(main())


def test_deleted_key_is_removed(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"a": 1, "b": 2}, new=True)
            assert await store.save(sid, {"c": 3}, {"a"}, new=False)
            record = await store.load(sid)
            assert record is not None and record.data == {"b": 2, "c": 3}

    run(main())


# -- IDs the server did not issue -----------------------------------------------


@pytest.mark.parametrize("sid", [*BAD_IDS, "VALID"])
def test_unknown_or_forged_ids_load_nothing_and_write_nothing(
    backend: Backend, clock: FakeClock, counting: type[CountingStore], sid: str
) -> None:
    if sid == "VALID":
        sid = new_session_id()  # well-formed but never issued

    async def main() -> None:
        async with backend.store(clock) as inner:
            store = counting(inner)
            assert await store.load(sid) is None
            assert await store.touch(sid) is False
            await store.delete(sid)

            session = await Session.open(store, sid)
            assert session.new and session.sid != sid and len(session) == 0
            # drop the stale cookie ("" counts as no cookie at all)
            expected = CookieAction.CLEAR if sid else CookieAction.NONE
            assert await session.commit(store) is expected
            assert store.writes == ["touch", "delete"]  # only the explicit calls above
            assert await backend.count(inner) == 0

            if not is_valid_session_id(sid):
                with pytest.raises(ValueError):
                    await store.save(sid, {"a": 1}, new=True)
                assert await backend.count(inner) == 0

    run(main())


def test_fresh_session_is_not_stored_until_modified(
    backend: Backend, clock: FakeClock, counting: type[CountingStore]
) -> None:
    async def main() -> None:
        async with backend.store(clock) as inner:
            store = counting(inner)
            session = await Session.open(store, None)
            assert "anything" not in session
            assert await session.commit(store) is CookieAction.NONE
            assert store.writes == []
            assert await backend.count(inner) == 0

    run(main())


# -- save only if changed ---------------------------------------------------------


def test_unmodified_session_commit_writes_nothing(
    backend: Backend, clock: FakeClock, counting: type[CountingStore]
) -> None:
    async def main() -> None:
        async with backend.store(clock) as inner:
            sid = new_session_id()
            await inner.save(sid, {"user_id": 7}, new=True)
            store = counting(inner)
            clock.advance(5)  # well inside touch_interval

            session = await Session.open(store, sid, touch_interval=60)
            assert session["user_id"] == 7
            assert session.get("missing") is None
            assert await session.commit(store) is CookieAction.NONE
            assert store.writes == []

            record = await inner.load(sid)
            assert record is not None
            assert record.accessed == clock.now - 5  # untouched in the backend too

    run(main())


def test_commit_sends_only_changed_keys(
    backend: Backend, clock: FakeClock, counting: type[CountingStore]
) -> None:
    async def main() -> None:
        async with backend.store(clock) as inner:
            sid = new_session_id()
            await inner.save(sid, {"a": 1, "b": 2, "c": 3}, new=True)
            store = counting(inner)
            session = await Session.open(store, sid)
            session["b"] = 20
            del session["c"]
            assert session.changes == {"b": 20}
            assert session.deleted_keys == {"c"}
            await session.commit(store)
            assert store.writes == ["save"]
            # a second commit with nothing new writes nothing
            await session.commit(store)
            assert store.writes == ["save"]

    run(main())


# -- regenerate / invalidate ----------------------------------------------------------


def test_regenerate_moves_data_to_new_id(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            first = await Session.open(store, None)
            first["cart"] = [1, 2]
            await first.commit(store)
            old_sid = first.sid

            session = await Session.open(store, old_sid)
            session["user_id"] = 9
            session.regenerate()
            assert session.sid != old_sid and is_valid_session_id(session.sid)
            assert dict(session) == {"cart": [1, 2], "user_id": 9}
            assert await session.commit(store) is CookieAction.SET

            assert await store.load(old_sid) is None
            record = await store.load(session.sid)
            assert record is not None
            assert record.data == {"cart": [1, 2], "user_id": 9}
            assert await backend.count(store) == 1

    run(main())


def test_invalidate_deletes_record(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"user_id": 1}, new=True)
            session = await Session.open(store, sid)
            session.invalidate()
            assert len(session) == 0 and session.sid != sid
            assert await session.commit(store) is CookieAction.CLEAR
            assert await store.load(sid) is None
            assert await backend.count(store) == 0

    run(main())


def test_invalidate_then_write_starts_fresh_session(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"user_id": 1}, new=True)
            session = await Session.open(store, sid)
            session.invalidate()
            session["flash"] = ["logged out"]
            assert await session.commit(store) is CookieAction.SET
            assert session.sid != sid
            assert await store.load(sid) is None
            record = await store.load(session.sid)
            assert record is not None and record.data == {"flash": ["logged out"]}

    run(main())


# -- expiry (fake clock; never sleeps) ----------------------------------------------------


def test_idle_expiry(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock, idle_timeout=100, absolute_timeout=1000) as store:
            sid = new_session_id()
            await store.save(sid, {"a": 1}, new=True)
            clock.advance(100)
            assert await store.load(sid) is not None  # exactly at the limit: still live
            clock.advance(1)
            assert await store.load(sid) is None
            assert await store.touch(sid) is False
            assert await store.save(sid, {"b": 2}, new=False) is False
            assert await store.load(sid) is None

    run(main())


def test_activity_keeps_session_alive_until_absolute_expiry(
    backend: Backend, clock: FakeClock
) -> None:
    async def main() -> None:
        async with backend.store(clock, idle_timeout=100, absolute_timeout=250) as store:
            session = await Session.open(store, None, touch_interval=10)
            session["a"] = 1
            await session.commit(store)
            sid = session.sid
            for _ in range(3):  # t = 80, 160, 240: each request touches
                clock.advance(80)
                s = await Session.open(store, sid, touch_interval=10)
                assert not s.new
                await s.commit(store)
            clock.advance(11)  # t = 251: idle fine, absolute exceeded
            assert await store.load(sid) is None
            s = await Session.open(store, sid)
            assert s.new
            assert await s.commit(store) is CookieAction.CLEAR

    run(main())


def test_touch_is_throttled_to_touch_interval(
    backend: Backend, clock: FakeClock, counting: type[CountingStore]
) -> None:
    async def main() -> None:
        async with backend.store(clock) as inner:
            sid = new_session_id()
            await inner.save(sid, {"a": 1}, new=True)
            store = counting(inner)

            for _ in range(5):  # five requests within the minute: no writes
                clock.advance(10)
                await (await Session.open(store, sid, touch_interval=60)).commit(store)
            assert store.writes == []

            clock.advance(11)  # 61 s since the last refresh
            await (await Session.open(store, sid, touch_interval=60)).commit(store)
            assert store.writes == ["touch"]
            record = await inner.load(sid)
            assert record is not None and record.accessed == clock.now

            clock.advance(1)
            await (await Session.open(store, sid, touch_interval=60)).commit(store)
            assert store.writes == ["touch"]

    run(main())


def test_writes_move_the_idle_expiry_only_once_per_touch_interval(
    backend: Backend, clock: FakeClock
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"n": 0}, new=True)
            saved_at = clock.now

            for n in range(1, 6):  # five writes within the minute: "accessed" stays put
                clock.advance(10)
                session = await Session.open(store, sid, touch_interval=60)
                session["n"] = n
                assert await session.commit(store) is CookieAction.NONE
                record = await store.load(sid)
                assert record is not None
                assert record.data == {"n": n}
                assert record.accessed == saved_at

            clock.advance(11)  # 61 s since the last refresh: this write moves it
            session = await Session.open(store, sid, touch_interval=60)
            session["n"] = 6
            await session.commit(store)
            record = await store.load(sid)
            assert record is not None
            assert record.data == {"n": 6} and record.accessed == clock.now

            # The idle timeout (600 s here) runs from the last refresh, as for reads: a
            # write 30 s later does not move it, so 601 s after the refresh it is over.
            touched_at = clock.now
            clock.advance(30)
            session = await Session.open(store, sid, touch_interval=60)
            session["n"] = 7
            await session.commit(store)
            record = await store.load(sid)
            assert record is not None and record.accessed == touched_at
            clock.advance(571)
            assert await store.load(sid) is None

    run(main())


def test_touch_interval_is_capped_by_idle_timeout(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock, idle_timeout=30) as store:
            session = await Session.open(store, None, touch_interval=60)
            session["a"] = 1
            await session.commit(store)
            for _ in range(5):  # a request every 20 s keeps a 30 s idle session alive
                clock.advance(20)
                s = await Session.open(store, session.sid, touch_interval=60)
                assert not s.new
                await s.commit(store)

    run(main())


def test_purge_expired_removes_only_expired(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock, idle_timeout=100, absolute_timeout=1000) as store:
            old, idle, live = new_session_id(), new_session_id(), new_session_id()
            await store.save(old, {"k": "old"}, new=True)
            for _ in range(10):  # kept active, but past the absolute limit at the end
                clock.advance(99)
                assert await store.touch(old)
            await store.save(idle, {"k": "idle"}, new=True)
            clock.advance(50)
            await store.save(live, {"k": "live"}, new=True)
            clock.advance(51)  # idle: 101 s idle; old: 1001 s old, 51 s idle; live: 51 s
            assert await store.purge_expired() == 2
            assert await backend.count(store) == 1
            record = await store.load(live)
            assert record is not None and record.data == {"k": "live"}
            assert await store.purge_expired() == 0

    run(main())


# -- concurrency -----------------------------------------------------------------------------


def test_disjoint_concurrent_updates_both_survive(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"shared": 0}, new=True)
            one = await Session.open(store, sid)
            two = await Session.open(store, sid)
            one["cart"] = ["book"]
            two["theme"] = "dark"
            del two["shared"]
            await asyncio.gather(one.commit(store), two.commit(store))
            record = await store.load(sid)
            assert record is not None
            assert record.data == {"cart": ["book"], "theme": "dark"}

    run(main())


def test_many_concurrent_disjoint_saves(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {}, new=True)
            await asyncio.gather(*(store.save(sid, {f"k{i}": i}, new=False) for i in range(40)))
            record = await store.load(sid)
            assert record is not None
            assert record.data == {f"k{i}": i for i in range(40)}

    run(main())


def test_deleted_session_is_not_resurrected_by_late_save(
    backend: Backend, clock: FakeClock
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"user_id": 1}, new=True)
            slow = await Session.open(store, sid)  # a slow request still in flight...
            logout = await Session.open(store, sid)
            logout.invalidate()
            await logout.commit(store)  # ...while another request logs out

            slow["last_page"] = "/reports"
            assert await slow.commit(store) is CookieAction.CLEAR
            assert slow.lost
            assert await store.load(sid) is None
            assert await store.save(sid, {"x": 1}, {"user_id"}, new=False) is False
            assert await store.touch(sid) is False
            assert await store.load(sid) is None
            assert await backend.count(store) == 0

    run(main())


def test_late_touch_does_not_resurrect(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"a": 1}, new=True)
            session = await Session.open(store, sid, touch_interval=1)
            await store.delete(sid)
            clock.advance(2)
            assert await session.commit(store) is CookieAction.CLEAR
            assert await backend.count(store) == 0

    run(main())


# -- bad data ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["json", "type"])
def test_corrupt_record_loads_empty_and_logs_once(
    backend: Backend, clock: FakeClock, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"a": 1}, new=True)
            await backend.corrupt(store, sid, kind)
            with caplog.at_level(logging.WARNING, logger="webframe.sessions"):
                record = await store.load(sid)
                assert record is not None and record.data == {}
                assert await store.load(sid) is not None
            messages = [r for r in caplog.records if r.name == "webframe.sessions"]
            assert len(messages) == 1
            assert "corrupt" in messages[0].getMessage()
            assert sid not in messages[0].getMessage()  # the ID is a credential

            # the next write repairs it
            session = await Session.open(store, sid)
            session["b"] = 2
            await session.commit(store)
            record = await store.load(sid)
            assert record is not None and record.data == {"b": 2}

    run(main())


@pytest.mark.parametrize(
    "value", [object(), {1, 2}, b"bytes", float("nan"), math.inf, {"nested": object()}]
)
def test_non_json_value_raises_type_error_naming_key(
    backend: Backend, clock: FakeClock, value: Any
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            with pytest.raises(TypeError, match="'avatar'"):
                await store.save(sid, {"ok": 1, "avatar": value}, new=True)
            assert await backend.count(store) == 0

            session = await Session.open(store, None)
            with pytest.raises(TypeError, match="'avatar'"):
                session["avatar"] = value
            assert "avatar" not in session and not session.modified

    run(main())


def test_non_string_key_is_rejected(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            session = await Session.open(store, None)
            with pytest.raises(TypeError):
                session[1] = "x"  # type: ignore[index]

    run(main())


def test_values_are_json_round_tripped(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            value: dict[str, tuple[int, ...]] = {"t": (1, 2)}
            await store.save(sid, {"v": value}, new=True)
            value["t"] = (3,)  # later mutation of the caller's object is not stored
            record = await store.load(sid)
            assert record is not None and record.data == {"v": {"t": [1, 2]}}

    run(main())


def test_store_errors_reach_the_caller_of_commit(clock: FakeClock) -> None:
    class Broken(MemoryStore):
        async def _save(self, sid: str, cs: Any, now: float) -> bool:
            raise SessionStoreError("backend down")

    async def main() -> None:
        store = Broken(clock=clock)
        session = await Session.open(store, None)
        session["a"] = 1
        with pytest.raises(SessionStoreError):
            await session.commit(store)

    run(main())


# -- open_store ------------------------------------------------------------------------------


def test_open_store_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        store = open_store("memory://", idle_timeout=5)
        assert isinstance(store, MemoryStore) and store.idle_timeout == 5
        await store.close()

        absolute = tmp_path / "abs" / "s.db"
        store = open_store(f"sqlite:///{absolute}")  # "sqlite:///" + "/tmp/..."
        assert isinstance(store, SQLiteStore) and store.path == str(absolute)
        await store.close()

        monkeypatch.chdir(tmp_path)
        store = open_store("sqlite:///rel/s.db")
        assert isinstance(store, SQLiteStore) and store.path == "rel/s.db"
        await store.save(new_session_id(), {"a": 1}, new=True)
        await store.close()
        assert (tmp_path / "rel" / "s.db").exists()

    run(main())


def test_open_store_redis_url(redis_server: Any) -> None:
    from webframe.sessions.redis import RedisStore

    async def main() -> None:
        store = open_store(redis_server.url, timeout=1.0)
        assert isinstance(store, RedisStore)
        sid = new_session_id()
        assert await store.save(sid, {"a": 1}, new=True)
        await store.delete(sid)
        await store.close()
        tls = open_store("rediss://127.0.0.1:1/0")
        assert isinstance(tls, RedisStore)
        await tls.close()

    run(main())


@pytest.mark.parametrize("url", ["mysql://db/x", "memory", "", "sqlite://", "file:///x.db"])
def test_open_store_rejects_unknown_urls(url: str) -> None:
    with pytest.raises(ValueError, match="session_store") as info:
        open_store(url)
    if not url.startswith("sqlite"):
        assert "memory://" in str(info.value) and "redis://" in str(info.value)


def test_store_rejects_bad_timeouts() -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        MemoryStore(idle_timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        MemoryStore(timeout=-1)


# -- SQLite specifics ------------------------------------------------------------------------


def test_sqlite_two_stores_on_one_file_share_sessions(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "deep" / "dir" / "sessions.db"

    async def main() -> None:
        a = SQLiteStore(path, clock=clock)
        b = SQLiteStore(path, clock=clock)
        try:
            sid = new_session_id()
            await a.save(sid, {"from_a": 1}, new=True)
            record = await b.load(sid)
            assert record is not None and record.data == {"from_a": 1}

            # disjoint concurrent updates through both "processes"
            await asyncio.gather(
                *(a.save(sid, {f"a{i}": i}, new=False) for i in range(25)),
                *(b.save(sid, {f"b{i}": i}, new=False) for i in range(25)),
            )
            record = await a.load(sid)
            assert record is not None
            assert set(record.data) == {"from_a"} | {f"a{i}" for i in range(25)} | {
                f"b{i}" for i in range(25)
            }

            await b.delete(sid)
            assert await a.load(sid) is None
            assert await a.save(sid, {"late": 1}, new=False) is False
        finally:
            await a.close()
            await b.close()

        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    run(main())


def test_sqlite_locked_database_raises_store_error_within_timeout(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "sessions.db"

    async def main() -> None:
        store = SQLiteStore(path, clock=clock, timeout=0.3)
        sid = new_session_id()
        await store.save(sid, {"a": 1}, new=True)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            with pytest.raises(SessionStoreError, match="locked"):
                await store.save(sid, {"b": 2}, new=False)
            assert time.monotonic() - started < 2.0
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        # the lock is gone: the same store works again
        assert await store.save(sid, {"b": 2}, new=False)
        record = await store.load(sid)
        assert record is not None and record.data == {"a": 1, "b": 2}
        await store.close()

    run(main())


def test_sqlite_calls_queued_behind_a_lock_are_bounded(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "sessions.db"

    async def main() -> None:
        store = SQLiteStore(path, clock=clock, timeout=0.2)
        sid = new_session_id()
        await store.save(sid, {"a": 1}, new=True)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            results = await asyncio.gather(
                *(store.save(sid, {f"k{i}": i}, new=False) for i in range(10)),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - started
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert all(isinstance(r, SessionStoreError) for r in results), results
        assert elapsed < 1.5  # not 10 x the lock timeout
        assert await store.save(sid, {"b": 2}, new=False)
        record = await store.load(sid)
        assert record is not None and record.data == {"a": 1, "b": 2}
        await store.close()

    run(main())


def test_sqlite_unusable_path_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "a_directory.db").mkdir()

    async def main() -> None:
        store = SQLiteStore(tmp_path / "a_directory.db")
        with pytest.raises(SessionStoreError):
            await store.load(new_session_id())
        await store.close()

    run(main())


def test_periodic_purger_runs_and_stops_on_close(tmp_path: Path, clock: FakeClock) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "s.db", clock=clock, idle_timeout=10)
        sid = new_session_id()
        await store.save(sid, {"a": 1}, new=True)
        clock.advance(11)
        task = store.start_purger(0.01)
        for _ in range(200):
            await asyncio.sleep(0.01)
            with sqlite3.connect(tmp_path / "s.db") as conn:
                if conn.execute("SELECT count(*) FROM webframe_sessions").fetchone()[0] == 0:
                    break
        else:
            raise AssertionError("the purger never removed the expired session")
        await store.close()
        assert task.done()
        with pytest.raises(SessionStoreError):
            await store.load(sid)

    run(main())


# -- Redis specifics ----------------------------------------------------------------------------


def test_redis_uses_native_ttl_and_hash_fields(redis_server: Any, clock: FakeClock) -> None:
    from webframe.sessions.redis import RedisStore

    async def main() -> None:
        redis_server.flushall()
        store = RedisStore(redis_server.url, clock=clock, idle_timeout=100, absolute_timeout=150)
        try:
            sid = new_session_id()
            await store.save(sid, {"a": {"x": 1}}, new=True)
            key = store.key_prefix + sid
            pttl = await store._client.pttl(key)
            assert 99_000 < pttl <= 100_000
            fields = await store._client.hgetall(key)
            assert fields[b"k:a"] == b'{"x":1}'
            assert set(fields) == {b"k:a", b"m:created", b"m:accessed"}

            clock.advance(90)  # absolute limit (150) now nearer than idle (100)
            assert await store.touch(sid)
            pttl = await store._client.pttl(key)
            assert 59_000 < pttl <= 60_000
        finally:
            await store.close()

    run(main())


# -- take / forget (read-once data such as flash messages) -------------------------------------


def test_take_removes_and_returns_only_the_named_existing_keys(
    backend: Backend, clock: FakeClock
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            data = {"flash": ["saved", "done"], "none": None, "zero": 0, "user_id": 7, "x": [1]}
            await store.save(sid, data, new=True)
            taken = await store.take(sid, ["flash", "none", "zero", "missing"])
            assert taken == {"flash": ["saved", "done"], "none": None, "zero": 0}
            record = await store.load(sid)
            assert record is not None and record.data == {"user_id": 7, "x": [1]}

            assert await store.take(sid, ["flash"]) == {}  # already taken
            assert await store.take(sid, {"none", "zero", "missing"}) == {}
            assert await store.take(sid, []) == {}
            record = await store.load(sid)
            assert record is not None and record.data == {"user_id": 7, "x": [1]}

            assert await store.take(sid, ("user_id", "x")) == {"user_id": 7, "x": [1]}
            record = await store.load(sid)  # an emptied session still exists
            assert record is not None and record.data == {}
            assert await backend.count(store) == 1

    run(main())


def test_take_rejects_a_single_string_or_non_string_keys(
    backend: Backend, clock: FakeClock
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"flash": 1, "f": 2}, new=True)
            with pytest.raises(TypeError):
                await store.take(sid, "flash")
            with pytest.raises(TypeError):
                await store.take(sid, [1])  # type: ignore[list-item]
            record = await store.load(sid)
            assert record is not None and record.data == {"flash": 1, "f": 2}

    run(main())


def test_take_does_not_refresh_idle_expiry(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock, idle_timeout=100, absolute_timeout=1000) as store:
            sid = new_session_id()
            await store.save(sid, {"flash": ["hi"], "a": 1}, new=True)
            saved_at = clock.now
            clock.advance(90)
            assert await store.take(sid, ["flash"]) == {"flash": ["hi"]}
            record = await store.load(sid)
            assert record is not None
            assert record.accessed == saved_at and record.created == saved_at
            clock.advance(11)  # 101 s after the last real activity
            assert await store.load(sid) is None
            assert await store.take(sid, ["a"]) == {}  # expired: nothing to take

    run(main())


def test_concurrent_takes_of_one_key_have_exactly_one_winner(
    backend: Backend, clock: FakeClock
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            for round_ in range(3):
                await store.save(sid, {"flash": [round_], "keep": "me"}, new=True)
                results = await asyncio.gather(*(store.take(sid, ["flash"]) for _ in range(20)))
                winners = [r for r in results if r]
                assert winners == [{"flash": [round_]}], results
                record = await store.load(sid)
                assert record is not None and record.data == {"keep": "me"}

    run(main())


def test_concurrent_takes_and_saves_of_other_keys_all_survive(
    backend: Backend, clock: FakeClock
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {f"f{i}": i for i in range(10)}, new=True)
            results = await asyncio.gather(
                *(store.take(sid, [f"f{i}"]) for i in range(10)),
                *(store.save(sid, {f"k{i}": i}, new=False) for i in range(10)),
            )
            assert results[:10] == [{f"f{i}": i} for i in range(10)]
            assert results[10:] == [True] * 10
            record = await store.load(sid)
            assert record is not None and record.data == {f"k{i}": i for i in range(10)}

    run(main())


@pytest.mark.parametrize("sid", [*BAD_IDS, "VALID"])
def test_take_on_unknown_or_forged_ids_returns_nothing_and_writes_nothing(
    backend: Backend, clock: FakeClock, sid: str
) -> None:
    if sid == "VALID":
        sid = new_session_id()  # well-formed but never issued

    async def main() -> None:
        async with backend.store(clock) as store:
            assert await store.take(sid, ["flash", "user_id"]) == {}
            assert await backend.count(store) == 0
            if is_valid_session_id(sid):
                assert await store.load(sid) is None

    run(main())


def test_take_does_not_resurrect_a_deleted_session(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"flash": ["bye"], "user_id": 1}, new=True)
            reader = await Session.open(store, sid)  # a request about to show flashes...
            logout = await Session.open(store, sid)
            logout.invalidate()
            await logout.commit(store)  # ...while another logs out
            assert "flash" in reader
            assert await store.take(reader.sid, ["flash"]) == {}
            reader.forget("flash")
            assert await store.load(sid) is None
            assert await backend.count(store) == 0
            assert await reader.commit(store) is CookieAction.NONE  # nothing to write
            assert await backend.count(store) == 0

    run(main())


@pytest.mark.parametrize("kind", ["json", "type"])
def test_take_from_a_corrupt_record_returns_nothing(
    backend: Backend, clock: FakeClock, kind: str
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"flash": ["x"]}, new=True)
            await backend.corrupt(store, sid, kind)
            assert await store.take(sid, ["flash", "broken"]) == {}  # it loads as empty too
            record = await store.load(sid)
            assert record is not None and record.data == {}

    run(main())


def test_forget_after_take_makes_commit_write_nothing_for_the_key(
    backend: Backend, clock: FakeClock, counting: type[CountingStore]
) -> None:
    async def main() -> None:
        async with backend.store(clock) as inner:
            sid = new_session_id()
            await inner.save(sid, {"flash": ["saved"], "user_id": 7}, new=True)
            store = counting(inner)
            clock.advance(5)  # inside touch_interval: an unmodified commit writes nothing

            session = await Session.open(store, sid, touch_interval=60)
            taken = await store.take(session.sid, ["flash"])
            assert taken == {"flash": ["saved"]}
            session.forget("flash")
            assert "flash" not in session and dict(session) == {"user_id": 7}
            assert not session.modified
            assert session.changes == {} and session.deleted_keys == set()
            assert await session.commit(store) is CookieAction.NONE
            assert store.writes == ["take"]
            record = await inner.load(sid)
            assert record is not None and record.data == {"user_id": 7}

    run(main())


def test_forget_does_not_delete_a_value_stored_meanwhile(
    backend: Backend, clock: FakeClock, counting: type[CountingStore]
) -> None:
    async def main() -> None:
        async with backend.store(clock) as inner:
            sid = new_session_id()
            await inner.save(sid, {"flash": ["old"], "a": 1}, new=True)
            store = counting(inner)
            session = await Session.open(store, sid)
            assert await store.take(sid, ["flash"]) == {"flash": ["old"]}
            session.forget("flash")
            session["a"] = 2
            # a parallel request of the same session flashes a new message
            assert await inner.save(sid, {"flash": ["new"]}, new=False)
            await session.commit(store)
            assert store.writes == ["take", "save"]
            record = await inner.load(sid)
            assert record is not None and record.data == {"a": 2, "flash": ["new"]}

    run(main())


def test_forget_drops_pending_changes_and_deletions(
    backend: Backend, clock: FakeClock, counting: type[CountingStore]
) -> None:
    async def main() -> None:
        async with backend.store(clock) as inner:
            sid = new_session_id()
            await inner.save(sid, {"a": 1, "b": 2}, new=True)
            store = counting(inner)
            clock.advance(5)
            session = await Session.open(store, sid, touch_interval=60)
            session["flash"] = ["set in this request"]
            del session["b"]
            session.forget("flash")
            session.forget("b")
            session.forget("never-there")  # no error
            assert "flash" not in session and "b" not in session
            assert not session.modified
            assert session.changes == {} and session.deleted_keys == set()
            assert await session.commit(store) is CookieAction.NONE
            assert store.writes == []
            record = await inner.load(sid)
            assert record is not None and record.data == {"a": 1, "b": 2}

            # on a session not stored yet, a forgotten key is simply never written
            fresh = await Session.open(store, None)
            fresh["flash"] = ["x"]
            fresh.forget("flash")
            assert not fresh.modified
            assert await fresh.commit(store) is CookieAction.NONE
            assert store.writes == []

    run(main())


def test_sqlite_take_across_two_stores_on_one_file(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "sessions.db"

    async def main() -> None:
        a = SQLiteStore(path, clock=clock)
        b = SQLiteStore(path, clock=clock)
        try:
            sid = new_session_id()
            for round_ in range(5):
                await a.save(sid, {"flash": [round_], "keep": 1}, new=True)
                results = await asyncio.gather(
                    *(a.take(sid, ["flash"]) for _ in range(10)),
                    *(b.take(sid, ["flash"]) for _ in range(10)),
                )
                winners = [r for r in results if r]
                assert winners == [{"flash": [round_]}], results
                record = await b.load(sid)
                assert record is not None and record.data == {"keep": 1}
            await b.delete(sid)
            assert await a.take(sid, ["keep"]) == {}
            assert await a.load(sid) is None
        finally:
            await a.close()
            await b.close()

    run(main())


def test_sqlite_take_bounded_by_timeout_and_takes_nothing_on_failure(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "sessions.db"

    async def main() -> None:
        store = SQLiteStore(path, clock=clock, timeout=0.3)
        sid = new_session_id()
        await store.save(sid, {"flash": ["x"]}, new=True)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            with pytest.raises(SessionStoreError):
                await store.take(sid, ["flash"])
            assert time.monotonic() - started < 2.0
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert await store.take(sid, ["flash"]) == {"flash": ["x"]}  # it was not lost
        await store.close()

    run(main())


def test_redis_take_keeps_ttl_and_hash_layout(redis_server: Any, clock: FakeClock) -> None:
    from webframe.sessions.redis import RedisStore

    async def main() -> None:
        redis_server.flushall()
        store = RedisStore(redis_server.url, clock=clock, idle_timeout=100, absolute_timeout=150)
        try:
            sid = new_session_id()
            await store.save(sid, {"flash": ["hi"], "a": 1}, new=True)
            key = store.key_prefix + sid
            before = await store._client.hgetall(key)
            clock.advance(50)
            assert await store.take(sid, ["flash"]) == {"flash": ["hi"]}
            fields = await store._client.hgetall(key)
            assert set(fields) == {b"k:a", b"m:created", b"m:accessed"}
            assert fields[b"m:accessed"] == before[b"m:accessed"]
            pttl = await store._client.pttl(key)
            assert 0 < pttl <= 100_000  # not extended by the take

            await store.delete(sid)
            assert await store.take(sid, ["a"]) == {}
            assert await store._client.exists(key) == 0
        finally:
            await store.close()

    run(main())


def test_redis_take_unreachable_raises_store_error(clock: FakeClock) -> None:
    from webframe.sessions.redis import RedisStore

    async def main() -> None:
        store = RedisStore("redis://127.0.0.1:1/0", clock=clock, timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(SessionStoreError):
                await store.take(new_session_id(), ["flash"])
            assert time.monotonic() - started < 2.0
        finally:
            await store.close()

    run(main())


# -- counters (login throttling): incr / reset_counter ------------------------


def test_counter_counts_within_its_window_then_starts_again(
    backend: Backend, clock: FakeClock
) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            first = await store.incr("login:alice", 60)
            assert first.value == 1 and first.reset_in == pytest.approx(60)
            clock.advance(20)
            second = await store.incr("login:alice", 60)
            assert second.value == 2 and second.reset_in == pytest.approx(40)
            assert (await store.incr("login:alice", 60, amount=3)).value == 5
            assert (await store.incr("login:bob", 60)).value == 1  # one counter per key
            clock.advance(40)  # the window (from the first increment) has ended
            fresh = await store.incr("login:alice", 60)
            assert fresh.value == 1 and fresh.reset_in == pytest.approx(60)

    run(main())


def test_counter_read_with_amount_zero_creates_nothing(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            assert await store.incr("ip:192.0.2.1", 30, amount=0) == (0, pytest.approx(30))
            assert await store.incr("ip:192.0.2.1", 30, amount=0) == (0, pytest.approx(30))
            clock.advance(10)
            assert (await store.incr("ip:192.0.2.1", 30)).value == 1
            clock.advance(10)
            assert await store.incr("ip:192.0.2.1", 30, amount=0) == (1, pytest.approx(20))

    run(main())


def test_counter_reset_and_separation_from_sessions(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            sid = new_session_id()
            await store.save(sid, {"user": 1}, new=True)
            await store.incr("login:alice", 60)
            await store.incr("login:alice", 60)
            await store.reset_counter("login:alice")
            await store.reset_counter("login:never-counted")
            assert (await store.incr("login:alice", 60)).value == 1
            record = await store.load(sid)
            assert record is not None and record.data == {"user": 1}
            # Purging counts expired sessions only; an ended counter goes too.
            clock.advance(61)
            assert await store.purge_expired() == 0
            assert (await store.incr("login:alice", 60, amount=0)).value == 0
            await store.delete(sid)
            assert (await store.incr("login:alice", 60)).value == 1

    run(main())


def test_concurrent_increments_are_never_lost(backend: Backend, clock: FakeClock) -> None:
    async def main() -> None:
        async with backend.store(clock) as store:
            if backend.name == "memory":
                others = [store]
            else:  # a second store on the same backend: another process or node
                others = [store, backend.make(clock, idle_timeout=600.0, absolute_timeout=3600.0)]
            try:
                results = await asyncio.gather(
                    *(others[i % len(others)].incr("ip:2001:db8::1", 60) for i in range(40))
                )
                assert sorted(r.value for r in results) == list(range(1, 41))
            finally:
                for other in others[1:]:
                    await other.close()

    run(main())


@pytest.mark.parametrize(
    ("key", "window", "amount"),
    [
        ("", 60, 1),
        ("has space", 60, 1),
        ("x" * 201, 60, 1),
        ("nul\x00", 60, 1),
        ("é", 60, 1),
        ("ok", 0, 1),
        ("ok", -1, 1),
        ("ok", float("inf"), 1),
        ("ok", float("nan"), 1),
        ("ok", 60, -1),
        ("ok", 60, 1.5),
        ("ok", 60, True),
    ],
)
def test_counter_arguments_are_checked(
    key: str, window: float, amount: int, counting: type[CountingStore]
) -> None:
    async def main() -> None:
        inner = MemoryStore()
        try:
            with pytest.raises(ValueError):
                await inner.incr(key, window, amount)
            assert inner._counters == {}
        finally:
            await inner.close()

    run(main())


def test_counter_backend_failure_is_a_store_error(clock: FakeClock) -> None:
    from webframe.sessions.redis import RedisStore

    async def main() -> None:
        store = RedisStore("redis://127.0.0.1:1/0", clock=clock, timeout=0.5)
        try:
            with pytest.raises(SessionStoreError):
                await store.incr("login:alice", 60)
        finally:
            await store.close()

    run(main())
