"""The SQLite session store's database side: the schema, connections, the record query,
and the bookkeeping of calls run on its worker thread."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

__all__ = [
    "SCHEMA",
    "SELECT_RECORD",
    "Abandoned",
    "Job",
    "open_connection",
    "path_of",
    "select_record",
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


SELECT_RECORD = "SELECT data, created, accessed FROM webframe_sessions WHERE sid = ?"


def select_record(conn: sqlite3.Connection | sqlite3.Cursor, sid: str) -> tuple[Any, ...] | None:
    """The stored ``(data, created, accessed)`` of session ``sid``, or None."""
    row: tuple[Any, ...] | None = conn.execute(SELECT_RECORD, (sid,)).fetchone()
    return row


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
