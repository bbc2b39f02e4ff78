"""PostgreSQL session store on asyncpg: one table, each change one atomic statement."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from webframe.sessions.backends.postgresql_readers import (
    ReadConnections,
    ReadConnectionsClosedError,
)
from webframe.sessions.store import Changeset, Count, Record, SessionStore, SessionStoreError

__all__ = ["PostgreSQLStore"]

T = TypeVar("T")

_TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TABLE = "webframe_sessions"  # replaced by the store's `table`, a checked identifier

# "Live" means neither timeout has passed: accessed >= now - idle, created >= now - absolute.
# A stored value that is not a JSON object is a corrupt record: it loads as {} and
# the next write starts again from {} (as the SQLite and Redis stores do).
_STATEMENTS = {
    "schema": (
        "CREATE TABLE IF NOT EXISTS webframe_sessions ("
        " sid TEXT PRIMARY KEY,"
        " data JSONB NOT NULL,"
        " created DOUBLE PRECISION NOT NULL,"
        " accessed DOUBLE PRECISION NOT NULL);"
        " CREATE INDEX IF NOT EXISTS webframe_sessions_accessed ON webframe_sessions (accessed);"
        " CREATE INDEX IF NOT EXISTS webframe_sessions_created ON webframe_sessions (created);"
        # Counters (login throttling...): a value and the epoch time its window ends.
        " CREATE TABLE IF NOT EXISTS webframe_sessions_counters ("
        " key TEXT PRIMARY KEY,"
        " value BIGINT NOT NULL,"
        " reset DOUBLE PRECISION NOT NULL)"
    ),
    # $1 key, $2 amount (> 0), $3 now, $4 window.  One statement: the row lock of
    # the upsert serialises concurrent increments from every node.
    "incr": (
        "INSERT INTO webframe_sessions_counters AS c (key, value, reset)"
        " VALUES ($1, $2::bigint, $3::float8 + $4::float8)"
        " ON CONFLICT (key) DO UPDATE SET"
        " value = CASE WHEN c.reset > $3::float8 THEN c.value + $2::bigint ELSE $2::bigint END,"
        " reset = CASE WHEN c.reset > $3::float8 THEN c.reset ELSE $3::float8 + $4::float8 END"
        " RETURNING value, reset"
    ),
    "counter": (
        "SELECT value, reset FROM webframe_sessions_counters WHERE key = $1 AND reset > $2"
    ),
    "reset_counter": "DELETE FROM webframe_sessions_counters WHERE key = $1",
    "purge_counters": "DELETE FROM webframe_sessions_counters WHERE reset <= $1",
    "load": "SELECT data::text, created, accessed FROM webframe_sessions WHERE sid = $1",
    # $1 sid, $2 deleted keys, $3 changed keys (a JSON object), $4 touch, $5 now,
    # $6 now - idle, $7 now - absolute.  Only a live record is changed.
    "update": (
        "UPDATE webframe_sessions AS s SET"
        " data = (CASE WHEN jsonb_typeof(s.data) = 'object' THEN s.data ELSE '{}'::jsonb END"
        "  - $2::text[]) || $3::jsonb,"
        " accessed = CASE WHEN $4::boolean THEN $5::float8 ELSE s.accessed END"
        " WHERE sid = $1 AND accessed >= $6 AND created >= $7"
    ),
    # $1 sid, $2 deleted keys, $3 changed keys, $4 now, $5 now - idle,
    # $6 now - absolute.  Creates the record, or merges into a live one, or
    # replaces an expired one (new times, only the given keys).
    "upsert": (
        "INSERT INTO webframe_sessions AS s (sid, data, created, accessed)"
        " VALUES ($1, $3::jsonb, $4::float8, $4::float8)"
        " ON CONFLICT (sid) DO UPDATE SET"
        " data = CASE WHEN s.accessed >= $5 AND s.created >= $6"
        "  THEN (CASE WHEN jsonb_typeof(s.data) = 'object' THEN s.data ELSE '{}'::jsonb END"
        "   - $2::text[]) || $3::jsonb"
        "  ELSE $3::jsonb END,"
        " created = CASE WHEN s.accessed >= $5 AND s.created >= $6"
        "  THEN s.created ELSE $4::float8 END,"
        " accessed = $4::float8"
    ),
    # $1 sid, $2 keys, $3 now - idle, $4 now - absolute.  The row lock makes
    # concurrent takes of one key queue; the later one re-reads the row without it.
    "take": (
        "WITH old AS (SELECT sid, data FROM webframe_sessions WHERE sid = $1"
        " AND accessed >= $3 AND created >= $4 AND jsonb_typeof(data) = 'object'"
        " FOR UPDATE),"
        " upd AS (UPDATE webframe_sessions AS s SET data = s.data - $2::text[] FROM old"
        "  WHERE s.sid = old.sid AND old.data ?| $2::text[])"
        " SELECT jsonb_object_agg(e.key, e.value)::text"
        " FROM old, jsonb_each(old.data) AS e WHERE e.key = ANY($2::text[])"
    ),
    "delete": "DELETE FROM webframe_sessions WHERE sid = $1",
    "purge": "DELETE FROM webframe_sessions WHERE accessed < $1 OR created < $2",
}


def _refuse_nul(key: str, encoded: str) -> None:
    """Raise TypeError naming `key` if it or its value holds U+0000, which JSONB refuses."""

    def has_nul(value: Any) -> bool:
        if isinstance(value, str):
            return "\x00" in value
        if isinstance(value, list):
            return any(has_nul(v) for v in value)
        if isinstance(value, dict):
            return any(has_nul(k) or has_nul(v) for k, v in value.items())
        return False

    if "\x00" in key or ("\\u0000" in encoded and has_nul(json.loads(encoded))):
        raise TypeError(
            f"session value for key {key!r} contains the NUL character (U+0000), "
            "which PostgreSQL's JSONB cannot store"
        )


async def _keep_session_state(conn: Any) -> None:
    """The pool's reset on release.  asyncpg's default sends ``RESET ALL; UNLISTEN *;
    CLOSE ALL; pg_advisory_unlock_all()``: one more round trip per operation, for
    state these single statements never leave (an open transaction is still rolled
    back by the pool before this runs)."""


class PostgreSQLStore(SessionStore):
    """Stores sessions in a PostgreSQL table (``JSONB`` data), shared by every node.

    Each save is one statement that merges the changed keys into the stored
    object (``data - deleted || changes``), so concurrent requests changing
    different keys both survive, and it only touches a record that is still
    live, so a deleted or expired session is never written back.  The table is
    created on first use.  Failures and calls over `timeout` raise
    SessionStoreError; the pool reconnects once the server is back.  Reads
    (`load`, reading a counter) run on up to ``max_connections // 2`` connections
    kept for them (`ReadConnections`), the pool has the rest.
    """

    def __init__(
        self,
        url: str = "postgresql://localhost/webframe",
        *,
        table: str = "webframe_sessions",
        max_connections: int = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            import asyncpg  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the PostgreSQL session store needs asyncpg: pip install 'webframe[postgresql]'"
            ) from exc
        if not _TABLE_RE.fullmatch(table):
            raise ValueError(f"session table name {table!r} is not a plain SQL identifier")
        self.url = url
        self.table = table
        self.max_connections = max_connections
        self._asyncpg = asyncpg
        self._sql = {name: sql.replace(_TABLE, table) for name, sql in _STATEMENTS.items()}
        self._pool: Any = None
        self._pool_lock: asyncio.Lock | None = None
        self._closed = False
        # Reads run on connections of their own, up to half of max_connections;
        # the pool has the rest for everything else.
        self._readers = ReadConnections(self._connect_reader, max_connections // 2, self.timeout)
        self._failures: tuple[type[BaseException], ...] = (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            # e.g. a pooled connection left mid-operation by a server that went away
            asyncpg.exceptions.InternalClientError,
            OSError,
            asyncio.TimeoutError,
        )

    @classmethod
    def check_url(cls, url: str) -> None:
        """Refuse a URL with no host or database part."""
        rest = url.partition("://")[2]
        if not rest or rest == "/":
            raise ValueError(
                f"session_store {url!r}: expected postgresql://user:password@host:port/dbname"
            )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PostgreSQLStore:
        """The URL is libpq's (``postgresql://``/``postgres://``), as asyncpg reads it."""
        return cls(url, **kwargs)

    # -- plumbing -----------------------------------------------------------

    def _safe_url(self) -> str:
        scheme, sep, rest = self.url.partition("://")
        authority, slash, path = rest.partition("/")
        if "@" in authority:
            authority = "***@" + authority.rpartition("@")[2]
        return scheme + sep + authority + slash + path.partition("?")[0]

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        if self._pool_lock is None:
            self._pool_lock = asyncio.Lock()
        async with self._pool_lock:
            if self._pool is None:
                pool = await self._asyncpg.create_pool(
                    self.url,
                    min_size=0,
                    max_size=max(1, self.max_connections - self._readers.size),
                    timeout=self.timeout,
                    command_timeout=self.timeout,
                    reset=_keep_session_state,
                )
                try:
                    async with pool.acquire() as conn:
                        await conn.execute(self._sql["schema"])
                except self._asyncpg.UniqueViolationError:
                    pass  # another process created the table at the same moment
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
        return self._pool

    def _failure(self, exc: BaseException) -> SessionStoreError:
        what = "timed out" if isinstance(exc, asyncio.TimeoutError) else "failed"
        return SessionStoreError(f"PostgreSQL session store {self._safe_url()} {what}: {exc!r}")

    async def _call(self, run: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``run(connection)`` on a pooled connection, bounded by `timeout`."""
        if self._closed:
            raise SessionStoreError("the PostgreSQL session store is closed")

        async def attempt() -> T:
            pool = await self._get_pool()
            async with pool.acquire() as conn:
                return await run(conn)

        try:
            return await asyncio.wait_for(attempt(), self.timeout)
        except self._failures as exc:
            raise self._failure(exc) from exc

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        """Run one single-statement read on the connections kept for reads."""
        if self._closed or not self._readers.size:
            return await self._call(lambda conn: conn.fetchrow(sql, *args))
        try:
            return await self._readers.fetchrow(sql, args)
        except self._failures as exc:
            raise self._failure(exc) from exc
        except ReadConnectionsClosedError:
            raise SessionStoreError("the PostgreSQL session store is closed") from None

    async def _connect_reader(self) -> Any:
        await self._get_pool()  # the table exists before the first read
        return await self._asyncpg.connect(
            self.url, timeout=self.timeout, command_timeout=self.timeout
        )

    # -- hooks --------------------------------------------------------------

    async def _load(self, sid: str, now: float) -> Record | None:
        row = await self._fetchrow(self._sql["load"], sid)
        if row is None:
            return None
        created, accessed = float(row[1]), float(row[2])
        if self.is_expired(created, accessed, now):
            return None
        return Record(self._decode_data(sid, row[0]), created, accessed)

    async def _save(self, sid: str, cs: Changeset, now: float) -> bool:
        for key, value in cs.encoded.items():
            _refuse_nul(key, value)
        changes = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in cs.encoded.items()) + "}"
        limits = (now - self.idle_timeout, now - self.absolute_timeout)
        if cs.new:
            sql = self._sql["upsert"]
            args: tuple[Any, ...] = (sid, sorted(cs.deleted), changes, now, *limits)
        else:
            sql = self._sql["update"]
            args = (sid, sorted(cs.deleted), changes, cs.touch, now, *limits)
        status: str = await self._call(lambda conn: conn.execute(sql, *args))
        return status.rsplit(" ", 1)[-1] != "0"

    async def _take(self, sid: str, keys: frozenset[str], now: float) -> dict[str, Any]:
        sql = self._sql["take"]
        args = (sid, sorted(keys), now - self.idle_timeout, now - self.absolute_timeout)
        blob = await self._call(lambda conn: conn.fetchval(sql, *args))
        return self._decode_data(sid, blob) if blob is not None else {}

    async def _incr(self, key: str, window: float, amount: int, now: float) -> Count:
        if amount:
            sql = self._sql["incr"]
            row = await self._call(lambda conn: conn.fetchrow(sql, key, amount, now, window))
        else:
            row = await self._fetchrow(self._sql["counter"], key, now)
        if row is None:
            return Count(0, window)
        return Count(int(row[0]), float(row[1]) - now)

    async def _reset_counter(self, key: str) -> None:
        sql = self._sql["reset_counter"]
        await self._call(lambda conn: conn.execute(sql, key))

    async def _delete(self, sid: str) -> None:
        sql = self._sql["delete"]
        await self._call(lambda conn: conn.execute(sql, sid))

    async def _purge(self, now: float) -> int:
        sql = self._sql["purge"]
        args = (now - self.idle_timeout, now - self.absolute_timeout)
        status: str = await self._call(lambda conn: conn.execute(sql, *args))
        counters = self._sql["purge_counters"]
        await self._call(lambda conn: conn.execute(counters, now))
        return int(status.rsplit(" ", 1)[-1])

    async def _close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        closing = [self._readers.close()]
        if pool is not None:
            closing.append(asyncio.wait_for(pool.close(), self.timeout))
        results = await asyncio.gather(*closing, return_exceptions=True)
        if pool is not None and isinstance(results[-1], BaseException):
            pool.terminate()
