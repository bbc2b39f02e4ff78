"""The demo's own tables (users, file records): SQLite by default, PostgreSQL to share.

One node keeps them in ``instance/demo.db`` (SQLite, WAL: safe for the processes
of one machine).  Several nodes share them in PostgreSQL: set
``DEMO_DATABASE_URL=postgresql://user:password@host:port/dbname`` on every node
(asyncpg; the tables ``demo_users`` and ``demo_files`` are created on first use).
Both answer the same async methods with plain dicts, so the handlers do not
know which one they use.  A database that cannot be reached is a 503.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from webframe import ServiceUnavailableError

__all__ = ["DemoDB", "PostgresDemoDB", "SQLiteDemoDB", "open_demo_db"]

T = TypeVar("T")
Row = dict[str, Any]


class DemoDB(ABC):
    """Users and their file records; every query about files is scoped to an owner."""

    @abstractmethod
    async def add_user(self, username: str, salt: bytes, password_hash: bytes) -> int | None:
        """Insert a user and return its id; None if the name is taken (in any case)."""

    @abstractmethod
    async def user_by_name(self, username: str) -> Row | None:
        """The user named `username` (compared case-insensitively), or None."""

    @abstractmethod
    async def user_by_id(self, user_id: int) -> Row | None:
        """The user with this id, or None."""

    @abstractmethod
    async def add_file(
        self, owner_id: int, name: str, stored_name: str, size: int, ctype: str, sha256: str
    ) -> int:
        """Record an uploaded file and return its id."""

    @abstractmethod
    async def files_of(self, owner_id: int) -> list[Row]:
        """The owner's files, newest first."""

    @abstractmethod
    async def file_of(self, owner_id: int, file_id: int) -> Row | None:
        """The file ``file_id`` if ``owner_id`` owns it (None otherwise: no leak)."""

    @abstractmethod
    async def delete_file(self, owner_id: int, file_id: int) -> bool:
        """Delete the owner's file record; False if there was none."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called when the app closes."""


def open_demo_db(url: str | None, instance_path: str | Path) -> DemoDB:
    """PostgreSQL for a ``postgresql://``/``postgres://`` `url`, else SQLite in the
    instance folder.  Any other URL stops start-up with a message."""
    if not url:
        return SQLiteDemoDB(Path(instance_path) / "demo.db")
    if url.partition("://")[0] in ("postgresql", "postgres"):
        return PostgresDemoDB(url)
    raise ValueError(
        f"DEMO_DATABASE_URL {url.partition('@')[2] or url!r}: expected "
        "postgresql://user:password@host:port/dbname (or unset it for SQLite)"
    )


# -- SQLite ------------------------------------------------------------------

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    salt BLOB NOT NULL,
    password_hash BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    stored_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_owner ON files (owner_id);
"""


def _dict(row: sqlite3.Row | None) -> Row | None:
    return dict(row) if row is not None else None


class SQLiteDemoDB(DemoDB):
    """One SQLite file (WAL, safe across the processes of one machine).

    Each query is a local, indexed lookup of well under a millisecond, so it
    runs on the event loop, as the demo always did.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(SQLITE_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def _one(self, sql: str, params: tuple[Any, ...]) -> Row | None:
        try:
            return _dict(self._conn().execute(sql, params).fetchone())
        except sqlite3.OperationalError as exc:
            raise _unavailable(exc) from None

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            with self._conn() as conn:
                return conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise _unavailable(exc) from None

    async def add_user(self, username: str, salt: bytes, password_hash: bytes) -> int | None:
        try:
            cur = self._write(
                "INSERT INTO users (username, salt, password_hash, created) VALUES (?,?,?,?)",
                (username, salt, password_hash, time.time()),
            )
        except sqlite3.IntegrityError:
            return None
        return cur.lastrowid

    async def user_by_name(self, username: str) -> Row | None:
        return self._one("SELECT * FROM users WHERE username = ?", (username,))

    async def user_by_id(self, user_id: int) -> Row | None:
        return self._one("SELECT * FROM users WHERE id = ?", (user_id,))

    async def add_file(
        self, owner_id: int, name: str, stored_name: str, size: int, ctype: str, sha256: str
    ) -> int:
        cur = self._write(
            "INSERT INTO files (owner_id, name, stored_name, size, content_type, sha256,"
            " uploaded) VALUES (?,?,?,?,?,?,?)",
            (owner_id, name, stored_name, size, ctype, sha256, time.time()),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def files_of(self, owner_id: int) -> list[Row]:
        try:
            rows = self._conn().execute(
                "SELECT * FROM files WHERE owner_id = ? ORDER BY uploaded DESC, id DESC",
                (owner_id,),
            )
            return [dict(row) for row in rows]
        except sqlite3.OperationalError as exc:
            raise _unavailable(exc) from None

    async def file_of(self, owner_id: int, file_id: int) -> Row | None:
        return self._one("SELECT * FROM files WHERE id = ? AND owner_id = ?", (file_id, owner_id))

    async def delete_file(self, owner_id: int, file_id: int) -> bool:
        cur = self._write("DELETE FROM files WHERE id = ? AND owner_id = ?", (file_id, owner_id))
        return cur.rowcount > 0


# -- PostgreSQL --------------------------------------------------------------

POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS demo_users (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL,
    salt BYTEA NOT NULL,
    password_hash BYTEA NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS demo_users_name ON demo_users (lower(username));
CREATE TABLE IF NOT EXISTS demo_files (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES demo_users(id),
    name TEXT NOT NULL,
    stored_name TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS demo_files_owner ON demo_files (owner_id);
"""
# Nodes starting together would race on CREATE TABLE IF NOT EXISTS: one at a time.
_SCHEMA_LOCK = 0x64656D6F  # "demo"
TIMEOUT = 5.0


class PostgresDemoDB(DemoDB):
    """The demo's tables in PostgreSQL (asyncpg pool, opened on first use), shared
    by every node given the same URL."""

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        try:
            import asyncpg  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("DEMO_DATABASE_URL is a PostgreSQL URL: pip install asyncpg") from exc
        self.url = url
        self.max_connections = max_connections
        self._asyncpg = asyncpg
        self._pool: Any = None
        self._lock: asyncio.Lock | None = None

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._pool is None:
                pool = await self._asyncpg.create_pool(
                    self.url,
                    min_size=0,
                    max_size=self.max_connections,
                    timeout=TIMEOUT,
                    command_timeout=TIMEOUT,
                )
                try:
                    async with pool.acquire() as conn, conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                        await conn.execute(POSTGRES_SCHEMA)
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
        return self._pool

    async def _call(self, run: Callable[[Any], Awaitable[T]]) -> T:
        async def attempt() -> T:
            pool = await self._get_pool()
            async with pool.acquire() as conn:
                return await run(conn)

        try:
            return await asyncio.wait_for(attempt(), TIMEOUT)
        except self._asyncpg.UniqueViolationError:
            raise
        except (
            self._asyncpg.PostgresError,
            self._asyncpg.InterfaceError,
            self._asyncpg.exceptions.InternalClientError,
            OSError,
            asyncio.TimeoutError,
        ) as exc:
            raise _unavailable(exc) from None

    async def _one(self, sql: str, *args: Any) -> Row | None:
        row = await self._call(lambda conn: conn.fetchrow(sql, *args))
        return dict(row) if row is not None else None

    async def add_user(self, username: str, salt: bytes, password_hash: bytes) -> int | None:
        sql = (
            "INSERT INTO demo_users (username, salt, password_hash, created)"
            " VALUES ($1, $2, $3, $4) RETURNING id"
        )
        try:
            user_id = await self._call(
                lambda conn: conn.fetchval(sql, username, salt, password_hash, time.time())
            )
        except self._asyncpg.UniqueViolationError:
            return None
        return int(user_id)

    async def user_by_name(self, username: str) -> Row | None:
        return await self._one(
            "SELECT * FROM demo_users WHERE lower(username) = lower($1)", username
        )

    async def user_by_id(self, user_id: int) -> Row | None:
        return await self._one("SELECT * FROM demo_users WHERE id = $1", user_id)

    async def add_file(
        self, owner_id: int, name: str, stored_name: str, size: int, ctype: str, sha256: str
    ) -> int:
        sql = (
            "INSERT INTO demo_files (owner_id, name, stored_name, size, content_type, sha256,"
            " uploaded) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
        )
        args = (owner_id, name, stored_name, size, ctype, sha256, time.time())
        return int(await self._call(lambda conn: conn.fetchval(sql, *args)))

    async def files_of(self, owner_id: int) -> list[Row]:
        sql = "SELECT * FROM demo_files WHERE owner_id = $1 ORDER BY uploaded DESC, id DESC"
        rows = await self._call(lambda conn: conn.fetch(sql, owner_id))
        return [dict(row) for row in rows]

    async def file_of(self, owner_id: int, file_id: int) -> Row | None:
        return await self._one(
            "SELECT * FROM demo_files WHERE id = $1 AND owner_id = $2", file_id, owner_id
        )

    async def delete_file(self, owner_id: int, file_id: int) -> bool:
        sql = "DELETE FROM demo_files WHERE id = $1 AND owner_id = $2"
        status: str = await self._call(lambda conn: conn.execute(sql, file_id, owner_id))
        return status.rsplit(" ", 1)[-1] != "0"

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), TIMEOUT)
            except (asyncio.TimeoutError, OSError, self._asyncpg.InterfaceError):
                pool.terminate()


def _unavailable(exc: BaseException) -> ServiceUnavailableError:
    # The cause goes to the log with the request's warning, never to the client.
    error = ServiceUnavailableError(
        "The accounts database is unavailable right now; try again in a moment.",
        headers={"Retry-After": "5"},
    )
    error.__cause__ = exc
    return error
