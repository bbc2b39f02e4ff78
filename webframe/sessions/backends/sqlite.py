"""SQLite session store: one table, WAL mode, safe for several processes on one file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import marshal
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from webframe.sessions.backends.sqlite_db import (
    SELECT_RECORD,
    Abandoned,
    Job,
    bump_counter,
    open_connection,
    path_of,
    select_record,
    transaction,
    update_statement,
)
from webframe.sessions.backends.sqlite_wal import WalIndex, is_snapshot
from webframe.sessions.records import MARSHAL_VERSION
from webframe.sessions.store import (
    WOULD_BLOCK,
    Changeset,
    Count,
    NowaitRecord,
    Record,
    SessionStore,
    SessionStoreError,
)

__all__ = ["SQLiteStore"]

#: sessions whose decoded data `_record` keeps (all dropped when full).
DECODED_CACHE_SIZE = 10_000

T = TypeVar("T")


class SQLiteStore(SessionStore):
    """Stores sessions in an SQLite file; all I/O runs on one worker thread.

    Each save is one ``BEGIN IMMEDIATE`` transaction (read, merge, write), so
    disjoint updates from several processes sharing the file all survive.  A
    lock held longer than `timeout` raises SessionStoreError.
    """

    def __init__(self, path: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = os.fspath(path)
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webframe-sqlite")
        self._conn: sqlite3.Connection | None = None
        # The job of the call running on *this* thread (the worker's; never the loop's).
        self._local = threading.local()
        self._inline: sqlite3.Connection | None = None
        #: a cursor of ``_inline`` kept for `_load_nowait` (one object less per read).
        self._reader: sqlite3.Cursor | None = None
        #: session ID -> (data text last read, its decoded object in marshal form).
        self._decoded: dict[str, tuple[str, bytes]] = {}
        #: the database's wal-index header, mapped (None: not in WAL mode, or no file).
        self._wal: WalIndex | None = None
        #: the header read before the SELECTs whose records `_fresh` holds.
        self._wal_seen: bytes | None = None
        #: session ID -> (created, accessed, data in marshal form) as stored while the
        #: wal-index header is still `_wal_seen` (nothing committed since).
        self._fresh: dict[str, tuple[float, float, bytes]] = {}
        self._closed = False

    @classmethod
    def check_url(cls, url: str) -> None:
        """Refuse a ``sqlite://`` URL with no database path."""
        if not path_of(url):
            raise ValueError(
                f"session_store {url!r}: missing database path; use "
                "sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SQLiteStore:
        """``sqlite:///rel/s.db`` is relative to the working directory, ``sqlite:////abs`` not."""
        cls.check_url(url)
        return cls(path_of(url), **kwargs)

    # -- plumbing -----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Runs on the worker thread.
        if self._conn is None:
            self._conn = self._open_connection(self.timeout)
        return self._conn

    def _open_connection(self, busy_timeout: float) -> sqlite3.Connection:
        """A connection in WAL mode, tables created, waiting up to `busy_timeout` s for locks."""
        return open_connection(self.path, busy_timeout)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise SessionStoreError("the SQLite session store is closed")
        job = Job()

        def call() -> T:
            if job.abandoned.is_set():
                raise Abandoned
            job.running.set()
            self._local.job = job
            try:
                return fn(self._connect())
            finally:
                self._local.job = None
                job.running.clear()

        future = asyncio.get_running_loop().run_in_executor(self._executor, call)
        try:
            # busy_timeout ends lock waits after `timeout`; this deadline also
            # bounds time spent queued behind other calls on the worker thread.
            return await asyncio.wait_for(future, self.timeout * 2)
        except sqlite3.Error as exc:
            raise SessionStoreError(f"SQLite session store {self.path!r}: {exc}") from exc
        except asyncio.TimeoutError as exc:
            # The caller is told it failed, so it must not half-succeed later:
            # a queued job never starts, a running one rolls back instead of
            # committing (see _transaction) and is interrupted if mid-query.
            job.abandoned.set()
            if job.running.is_set() and self._conn is not None:
                self._conn.interrupt()
            raise SessionStoreError(
                f"SQLite session store {self.path!r} timed out after {self.timeout * 2:g}s"
            ) from exc

    async def _fast(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the event loop's own connection if it needs no lock wait.

        Its busy timeout is 0: a read in WAL mode never waits, and a write that would
        wait for another writer (another process, or the worker thread) fails at once
        and is handed to the worker thread, which waits up to ``timeout``. Skipping the
        thread hop is what makes a session read about as cheap as the request itself.
        """
        if self._closed:
            raise SessionStoreError("the SQLite session store is closed")
        try:
            conn = self._inline
            if conn is None:
                # Tables created here too, so a burst of first requests does not
                # queue on the worker.
                conn = self._inline = self._open_connection(0)
                self._reader = conn.cursor()
                self._wal = WalIndex.of(conn, self.path)
            return fn(conn)
        except sqlite3.OperationalError:
            # Busy, locked, or no table yet (the worker creates it): the slow path
            # decides, with its timeout, and reports real failures.
            return await self._run(fn)

    def _transaction(self, conn: sqlite3.Connection, body: Callable[[], T]) -> T:
        return transaction(conn, body, getattr(self._local, "job", None))

    # -- hooks --------------------------------------------------------------

    async def _load(self, sid: str, now: float) -> Record | None:
        return self._record(sid, await self._fast(lambda conn: select_record(conn, sid)), now)

    def load_nowait_checked(self, sid: str) -> NowaitRecord:
        """`SessionStore.load_nowait_checked`; `_load_nowait`'s answer from a record read
        while nothing was committed since, inline (a subclass is asked the general way)."""
        if type(self) is not SQLiteStore:
            return super().load_nowait_checked(sid)
        now = self.clock()
        wal = self._wal
        if wal is not None and wal.read() == self._wal_seen:
            fresh = self._fresh.get(sid)
            if fresh is not None:
                created, accessed, packed = fresh
                if now - accessed > self.idle_timeout or now - created > self.absolute_timeout:
                    return None
                return Record(marshal.loads(packed), created, accessed)  # noqa: S302
        return self._load_nowait(sid, now)

    def _load_nowait(self, sid: str, now: float) -> NowaitRecord:
        # A read in WAL mode takes no lock to wait for: answered on the loop's connection
        # with no coroutine; anything unusual goes the awaited way (`_fast`), which
        # retries it and reports failures as `_load` always did.
        reader = self._reader
        if reader is None or self._closed:
            return WOULD_BLOCK
        wal = self._wal
        head = None
        if wal is not None:
            # Nothing committed since the header seen before an earlier SELECT: the row
            # it read is still the stored one (see sqlite_wal); only the clock moved.
            head = wal.read()
            if head == self._wal_seen:
                fresh = self._fresh.get(sid)
                if fresh is not None:
                    created, accessed, packed = fresh  # expired as `_record` decides it
                    if now - accessed > self.idle_timeout or now - created > self.absolute_timeout:
                        return None
                    return Record(marshal.loads(packed), created, accessed)  # noqa: S302
            else:
                self._fresh.clear()
                self._wal_seen = head if is_snapshot(head) else None
        try:
            # select_record(), inline: this runs on every session read.
            row = reader.execute(SELECT_RECORD, (sid,)).fetchone()
        except sqlite3.Error:
            return WOULD_BLOCK
        record = self._record(sid, row, now)
        if record is not None and head is not None and head == self._wal_seen:
            known = self._decoded.get(sid)
            if known is not None and known[0] == row[0]:
                if len(self._fresh) >= DECODED_CACHE_SIZE:
                    self._fresh.clear()
                self._fresh[sid] = (record.created, record.accessed, known[1])
        return record

    def _record(self, sid: str, row: tuple[Any, ...] | None, now: float) -> Record | None:
        """The live record in a selected row, or None."""
        if row is None:
            return None
        # Stored by this class as REAL; anything else is checked the slow way.
        created = row[1] if type(row[1]) is float else self._as_time(row[1], now)
        accessed = row[2] if type(row[2]) is float else self._as_time(row[2], now)
        # is_expired(), inline: this runs on every session read.
        if now - accessed > self.idle_timeout or now - created > self.absolute_timeout:
            return None
        blob = row[0]
        if type(blob) is not str:
            return Record(
                self._decode_data(sid, blob if type(blob) is bytes else None), created, accessed
            )
        # The last data read per session, decoded, in marshal form (reads back faster
        # than JSON): used only while the stored text is still exactly the same.
        known = self._decoded.get(sid)
        if known is not None and known[0] == blob:
            # Bytes this store made from data it decoded itself, never from outside.
            return Record(marshal.loads(known[1]), created, accessed)  # noqa: S302
        data = self._decode_data(sid, blob)
        if data or blob == "{}":  # not a corrupt record (_decode_data reports those)
            with contextlib.suppress(ValueError):  # nested too deep for marshal
                if len(self._decoded) >= DECODED_CACHE_SIZE:
                    self._decoded.clear()
                self._decoded[sid] = (blob, marshal.dumps(data, MARSHAL_VERSION))
        return Record(data, created, accessed)

    def _update_in_place(
        self, conn: sqlite3.Connection, sid: str, cs: Changeset, now: float
    ) -> bool | None:
        """Apply ``cs`` to a live stored session with one UPDATE (SQLite's JSON
        functions merge the keys); None when this fast way does not apply."""
        statement = update_statement(sid, cs, now, self.idle_timeout, self.absolute_timeout)
        if statement is None:
            return None
        sql, params = statement
        try:
            if getattr(self._local, "job", None) is None:
                # On the loop's connection, no deadline: one autocommitted statement.
                done = bool(conn.execute(sql, params).rowcount)
            else:
                # On the worker: inside a transaction, so a timed-out call rolls back.
                done = self._transaction(conn, lambda: bool(conn.execute(sql, params).rowcount))
        except sqlite3.OperationalError as exc:
            if "JSON" in str(exc):
                return None  # a corrupt record: the general path rewrites it
            raise
        # Nothing matched: gone, expired or corrupt; the general path tells which.
        return True if done else None

    async def _save(self, sid: str, cs: Changeset, now: float) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            fast = self._update_in_place(conn, sid, cs, now)
            if fast is not None:
                return fast

            def body() -> bool:
                row = select_record(conn, sid)
                data: dict[str, Any] = {}
                created = accessed = now
                if row is not None:
                    created = self._as_time(row[1], now)
                    accessed = self._as_time(row[2], now)
                    if self.is_expired(created, accessed, now):
                        conn.execute("DELETE FROM webframe_sessions WHERE sid = ?", (sid,))
                        row = None
                        created = accessed = now
                    else:
                        blob = row[0] if isinstance(row[0], (str, bytes)) else None
                        data = self._decode_data(sid, blob)
                if row is None and not cs.new:
                    return False
                for key in cs.deleted:
                    data.pop(key, None)
                data.update(cs.values)
                if cs.touch or cs.new:
                    accessed = now
                conn.execute(
                    "INSERT OR REPLACE INTO webframe_sessions (sid, data, created, accessed)"
                    " VALUES (?, ?, ?, ?)",
                    (
                        sid,
                        json.dumps(data, allow_nan=False, separators=(",", ":")),
                        created,
                        accessed,
                    ),
                )
                return True

            return self._transaction(conn, body)

        return await self._fast(write)

    async def _take(self, sid: str, keys: frozenset[str], now: float) -> dict[str, Any]:
        def take(conn: sqlite3.Connection) -> dict[str, Any]:
            def body() -> dict[str, Any]:
                row = select_record(conn, sid)
                if row is None:
                    return {}
                created = self._as_time(row[1], now)
                accessed = self._as_time(row[2], now)
                if self.is_expired(created, accessed, now):
                    return {}
                blob = row[0] if isinstance(row[0], (str, bytes)) else None
                data = self._decode_data(sid, blob)
                taken = {key: data.pop(key) for key in keys if key in data}
                if taken:
                    # UPDATE, never INSERT: the timestamps (idle expiry) stay as they are.
                    conn.execute(
                        "UPDATE webframe_sessions SET data = ? WHERE sid = ?",
                        (json.dumps(data, allow_nan=False, separators=(",", ":")), sid),
                    )
                return taken

            return self._transaction(conn, body)

        return await self._fast(take)

    async def _incr(self, key: str, window: float, amount: int, now: float) -> Count:
        def bump(conn: sqlite3.Connection) -> Count:
            return self._transaction(
                conn, lambda: bump_counter(conn, key, window, amount, now, self._as_time)
            )

        return await self._fast(bump)

    async def _reset_counter(self, key: str) -> None:
        def remove(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM webframe_counters WHERE key = ?", (key,))

        await self._run(remove)

    async def _delete(self, sid: str) -> None:
        def remove(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM webframe_sessions WHERE sid = ?", (sid,))

        await self._run(remove)

    async def _purge(self, now: float) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM webframe_sessions WHERE accessed < ? OR created < ?",
                (now - self.idle_timeout, now - self.absolute_timeout),
            )
            removed = cursor.rowcount
            conn.execute("DELETE FROM webframe_counters WHERE reset <= ?", (now,))
            return removed

        return await self._run(purge)

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._decoded.clear()
        self._fresh.clear()
        if self._wal is not None:  # before the connection that keeps the file valid
            self._wal.close()
            self._wal = None

        if self._inline is not None:
            self._reader = None
            self._inline.close()
            self._inline = None

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=False)
