"""The SQLite session store's database side: the schema, connections, the record query,
and the bookkeeping of calls run on its worker thread."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from webframe.sessions.records import Changeset, Count

__all__ = [
    "SCHEMA",
    "SELECT_RECORD",
    "Abandoned",
    "Job",
    "bump_counter",
    "open_connection",
    "path_of",
    "select_record",
    "transaction",
    "update_statement",
]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS webframe_sessions ("
    " sid TEXT PRIMARY KEY,"
    " data TEXT NOT NULL,"
    " created REAL NOT NULL,"
    " accessed REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS webframe_sessions_accessed ON webframe_sessions (accessed)",
    "CREATE INDEX IF NOT EXISTS webframe_sessions_created ON webframe_sessions (created)",
    # Counters (login throttling...): a value and the epoch time its window ends.
    "CREATE TABLE IF NOT EXISTS webframe_counters ("
    " key TEXT PRIMARY KEY,"
    " value INTEGER NOT NULL,"
    " reset REAL NOT NULL)",
)

T = TypeVar("T")

SELECT_RECORD = "SELECT data, created, accessed FROM webframe_sessions WHERE sid = ?"


def select_record(conn: sqlite3.Connection | sqlite3.Cursor, sid: str) -> tuple[Any, ...] | None:
    """The stored ``(data, created, accessed)`` of session ``sid``, or None."""
    row: tuple[Any, ...] | None = conn.execute(SELECT_RECORD, (sid,)).fetchone()
    return row


def update_statement(
    sid: str, cs: Changeset, now: float, idle_timeout: float, absolute_timeout: float
) -> tuple[str, list[Any]] | None:
    """One UPDATE applying ``cs`` to the live stored session ``sid`` (SQLite's JSON
    functions merge the keys), with its parameters; None when this way does not apply."""
    keys = [*cs.deleted, *cs.values]
    if cs.new or not keys or any('"' in k or "\\" in k for k in keys):
        return None
    expr = "data"
    params: list[Any] = []
    if cs.deleted:
        expr = f"json_remove({expr}{', ?' * len(cs.deleted)})"
        params += [f'$."{k}"' for k in cs.deleted]
    if cs.values:
        expr = f"json_set({expr}{', ?, json(?)' * len(cs.values)})"
        for key in cs.values:
            params += [f'$."{key}"', cs.encoded[key]]
    if cs.touch:  # otherwise "accessed" is not assigned, so its index is not rewritten
        expr += ", accessed = ?"
        params.append(now)
    # ``expr`` holds only fixed SQL and placeholders; every value is a parameter.
    sql = (
        f"UPDATE webframe_sessions SET data = {expr} "  # noqa: S608
        "WHERE sid = ? AND accessed >= ? AND created >= ? AND json_type(data) = 'object'"
    )
    params += [sid, now - idle_timeout, now - absolute_timeout]
    return sql, params


def bump_counter(
    conn: sqlite3.Connection,
    key: str,
    window: float,
    amount: int,
    now: float,
    as_time: Callable[[object, float], float],
) -> Count:
    """`SessionStore.incr` on ``conn`` (inside the caller's transaction); ``as_time``
    reads a stored time, or gives its default for anything else."""
    row = conn.execute(
        "SELECT value, reset FROM webframe_counters WHERE key = ?", (key,)
    ).fetchone()
    value, end = (0, now + window)
    if row is not None:
        stored_end = as_time(row[1], now)
        if stored_end > now and isinstance(row[0], int):
            value, end = row[0], stored_end
    if not amount:
        return Count(int(value), end - now)
    value += amount
    conn.execute(
        "INSERT OR REPLACE INTO webframe_counters (key, value, reset) VALUES (?, ?, ?)",
        (key, value, end),
    )
    return Count(int(value), end - now)


def path_of(url: str) -> str:
    """The database path in a ``sqlite:///path`` URL ("" if it has none)."""
    rest = url.partition("://")[2]
    return rest[1:] if rest.startswith("/") else ""


class Abandoned(Exception):
    """Raised on the worker thread for a call whose caller already timed out."""


class Job:
    """One call handed to the worker thread: abandoned by a caller that timed out,
    running while the worker executes it."""

    __slots__ = ("abandoned", "running")

    def __init__(self) -> None:
        self.abandoned = threading.Event()
        self.running = threading.Event()


def open_connection(path: str, busy_timeout: float) -> sqlite3.Connection:
    """A connection in WAL mode, tables created, waiting up to `busy_timeout` s for locks."""
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        for statement in SCHEMA:
            conn.execute(statement)
    except BaseException:
        conn.close()
        raise
    return conn


def transaction(conn: sqlite3.Connection, body: Callable[[], T], job: Job | None) -> T:
    """``body()`` in a ``BEGIN IMMEDIATE`` transaction on ``conn``, committed unless
    ``job`` (the worker-thread call running it, if any) was abandoned meanwhile."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body()
        if job is not None and job.abandoned.is_set():
            raise Abandoned
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT leaves the transaction open; never let it leak
        # into the next call on this connection.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return result
