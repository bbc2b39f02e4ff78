"""SQLite reads answered from the record read before while the wal-index header says
nothing was committed since (`webframe.sessions.backends.sqlite_wal`): never stale
after a write, a delete or a checkpoint from another connection or process, and
expiry still decided by the clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from webframe.sessions import SQLiteStore
from webframe.sessions.backends.sqlite_wal import HEADER_BYTES, WalIndex, is_snapshot
from webframe.sessions.store import Record, new_session_id

if TYPE_CHECKING:
    from tests.sessions.conftest import FakeClock


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def opened(path: Path, clock: FakeClock, **kwargs: Any) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(path, clock=clock, idle_timeout=600.0, absolute_timeout=3600.0, **kwargs)
    try:
        yield store
    finally:
        await store.close()


class Selects:
    """Counts the SELECTs the store's own read connection runs."""

    def __init__(self, store: SQLiteStore) -> None:
        assert store._inline is not None
        self.count = 0
        store._inline.set_trace_callback(self._seen)

    def _seen(self, sql: str) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            self.count += 1


def read(store: SQLiteStore, sid: str) -> dict[str, Any] | None:
    """What the HTTP layer's read gets (the data, or None)."""
    got = store.load_nowait(sid)
    assert got is None or isinstance(got, Record), got
    return None if got is None else got.data


def other_write(path: Path, sql: str, params: tuple[Any, ...]) -> None:
    """``sql`` run and committed on a connection of its own (as another worker would)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(sql, params)


async def started(store: SQLiteStore, data: dict[str, Any]) -> str:
    sid = new_session_id()
    await store.save(sid, data, new=True)
    assert read(store, sid) == data  # the read that is remembered
    return sid


def test_unchanged_database_is_read_without_a_query(tmp_path: Path, clock: FakeClock) -> None:
    async def main() -> None:
        async with opened(tmp_path / "s.db", clock) as store:
            sid = await started(store, {"n": 1, "user": {"id": 7}})
            assert store._wal is not None  # the fast way is in use on this file
            selects = Selects(store)
            first = read(store, sid)
            second = read(store, sid)
            assert first == second == {"n": 1, "user": {"id": 7}}
            assert first is not second and first["user"] is not second["user"]  # type: ignore[index]
            assert selects.count == 0
            assert read(store, new_session_id()) is None  # unknown: asked each time
            assert selects.count == 1

    run(main())


def test_a_write_from_another_connection_is_read(tmp_path: Path, clock: FakeClock) -> None:
    async def main() -> None:
        path = tmp_path / "s.db"
        async with opened(path, clock) as store:
            sid = await started(store, {"n": 1})
            for n in range(2, 6):
                other_write(path, "UPDATE webframe_sessions SET data = ? WHERE sid = ?",
                            (json.dumps({"n": n}), sid))  # fmt: skip
                assert read(store, sid) == {"n": n}
                assert read(store, sid) == {"n": n}

    run(main())


def test_a_save_through_another_store_is_read(tmp_path: Path, clock: FakeClock) -> None:
    async def main() -> None:
        path = tmp_path / "s.db"
        async with opened(path, clock) as store, opened(path, clock) as other:
            sid = await started(store, {"n": 1})
            await other.save(sid, {"n": 2}, new=False)
            assert read(store, sid) == {"n": 2}
            await other.save(sid, {}, ["n"], new=False)
            assert read(store, sid) == {}
            # The same store's own write (its worker thread's connection).
            await store.save(sid, {"n": 3}, new=False)
            assert read(store, sid) == {"n": 3}

    run(main())


def test_a_delete_is_read(tmp_path: Path, clock: FakeClock) -> None:
    async def main() -> None:
        path = tmp_path / "s.db"
        async with opened(path, clock) as store, opened(path, clock) as other:
            sid = await started(store, {"n": 1})
            keep = await started(store, {"n": 2})
            await other.delete(sid)
            assert read(store, sid) is None
            other_write(path, "DELETE FROM webframe_sessions WHERE sid = ?", (keep,))
            assert read(store, keep) is None

    run(main())


def test_expiry_is_decided_by_the_clock_without_a_write(tmp_path: Path, clock: FakeClock) -> None:
    async def main() -> None:
        async with opened(tmp_path / "s.db", clock) as store:
            idle = await started(store, {"n": 1})
            selects = Selects(store)
            clock.advance(599)
            assert read(store, idle) == {"n": 1}
            clock.advance(2)  # 601 s idle
            assert read(store, idle) is None
            assert selects.count == 0  # decided from the remembered times
            # The absolute timeout, with touches keeping it from going idle.
            old = await started(store, {"n": 2})
            for _ in range(7):
                clock.advance(500)
                assert await store.touch(old)
                assert read(store, old) == {"n": 2}
            clock.advance(99)
            assert read(store, old) == {"n": 2}
            selects.count = 0
            clock.advance(2)  # 3601 s after it was created, 101 s idle
            assert read(store, old) is None
            assert selects.count == 0

    run(main())


def test_a_write_from_another_process_is_read(tmp_path: Path, clock: FakeClock) -> None:
    """A worker process writing while this one reads: every read is at least as new as
    the last write that ended before it, and the last one is seen."""
    writer = (
        "import json, sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n"
        "for n in range(1, 301):\n"
        "    conn.execute('UPDATE webframe_sessions SET data = ? WHERE sid = ?',"
        " (json.dumps({'n': n}), sys.argv[2]))\n"
        "    if n % 100 == 0:\n"
        "        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')\n"
        "    print(n, flush=True)\n"
    )

    async def main() -> None:
        path = tmp_path / "s.db"
        async with opened(path, clock) as store:
            sid = await started(store, {"n": 0})
            proc = subprocess.Popen(
                [sys.executable, "-c", writer, str(path), sid],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            seen = 0
            for line in proc.stdout:
                written = int(line)  # committed before this read starts
                data = read(store, sid)
                assert data is not None
                # Never older than a write that ended before it, nor than an earlier read.
                assert data["n"] >= max(written, seen), (data, written, seen)
                seen = data["n"]
            assert proc.wait(timeout=30) == 0
            assert read(store, sid) == {"n": 300}

    run(main())


def test_a_reset_wal_with_the_same_frame_count_is_read(tmp_path: Path, clock: FakeClock) -> None:
    """After a checkpoint truncates the WAL, a write brings the frame count back to
    what it was: the salts and change counter still tell it apart."""

    async def main() -> None:
        path = tmp_path / "s.db"
        async with opened(path, clock) as store:
            sid = await started(store, {"n": 1})
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
                for n in (2, 3):
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    conn.execute(
                        "UPDATE webframe_sessions SET data = ? WHERE sid = ?",
                        (json.dumps({"n": n}), sid),
                    )
                    assert read(store, sid) == {"n": n}

    run(main())


def test_a_header_whose_copies_differ_is_not_trusted(tmp_path: Path, clock: FakeClock) -> None:
    class Torn:
        def read(self) -> bytes:
            return bytes(HEADER_BYTES - 1) + b"\x01"

        def close(self) -> None:
            pass

    async def main() -> None:
        async with opened(tmp_path / "s.db", clock) as store:
            sid = await started(store, {"n": 1})
            store._wal = Torn()  # type: ignore[assignment]
            selects = Selects(store)
            assert read(store, sid) == {"n": 1}
            assert read(store, sid) == {"n": 1}
            assert selects.count == 2
            assert store._wal_seen is None and not store._fresh

    assert not is_snapshot(bytes(HEADER_BYTES))
    run(main())


def test_through_a_symlink_the_real_files_are_watched(tmp_path: Path, clock: FakeClock) -> None:
    async def main() -> None:
        real = tmp_path / "data" / "s.db"
        real.parent.mkdir()
        link = tmp_path / "link.db"
        async with opened(real, clock) as first:
            await first.save(new_session_id(), {}, new=True)  # creates the database
            link.symlink_to(real)
            async with opened(link, clock) as store:
                sid = await started(store, {"n": 1})
                assert store._wal is not None
                other_write(real, "UPDATE webframe_sessions SET data = ? WHERE sid = ?",
                            ('{"n":2}', sid))  # fmt: skip
                assert read(store, sid) == {"n": 2}

    run(main())


def test_leaving_wal_mode_is_refused_while_a_store_reads(tmp_path: Path, clock: FakeClock) -> None:
    """What the mapping relies on: another connection cannot take the database out of
    WAL mode (which would stop the header from changing) while the store has it open."""

    async def main() -> None:
        path = tmp_path / "s.db"
        async with opened(path, clock) as store:
            sid = await started(store, {"n": 1})
            with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=0)) as c:
                with contextlib.suppress(sqlite3.OperationalError):
                    c.execute("PRAGMA journal_mode = DELETE").fetchall()
                assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
                c.execute("UPDATE webframe_sessions SET data = '{\"n\":2}' WHERE sid = ?", (sid,))
            assert read(store, sid) == {"n": 2}

    run(main())


def test_no_mapping_without_a_wal_index(tmp_path: Path) -> None:
    assert WalIndex.open(":memory:") is None
    assert WalIndex.open(str(tmp_path / "missing.db")) is None
    (tmp_path / "short.db-shm").write_bytes(bytes(100))
    assert WalIndex.open(str(tmp_path / "short.db")) is None


def test_closing_the_store_unmaps(tmp_path: Path, clock: FakeClock) -> None:
    async def main() -> None:
        store = SQLiteStore(tmp_path / "s.db", clock=clock)
        sid = new_session_id()
        await store.save(sid, {"n": 1}, new=True)
        assert read(store, sid) == {"n": 1}
        wal = store._wal
        assert wal is not None
        await store.close()
        assert store._wal is None and not store._fresh
        wal.close()  # idempotent

    run(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_mapping_sees_the_header_change(tmp_path: Path) -> None:
    """The mapped bytes themselves: a commit changes them, a read does not."""
    path = tmp_path / "s.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        wal = WalIndex.open(str(path))
        assert wal is not None
        try:
            before = wal.snapshot()
            assert before is not None
            conn.execute("SELECT * FROM t").fetchall()
            assert wal.read() == before
            conn.execute("INSERT INTO t VALUES (1)")
            assert wal.read() != before and wal.snapshot() is not None
        finally:
            wal.close()
