"""Fixtures for the session store conformance suite: one harness per backend."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.redis_server import RedisCluster, RedisServer, SentinelGroup
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from redis_server import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        RedisCluster,
        RedisServer,
        SentinelGroup,
    )
from tests.sessions.postgres_server import PostgresServer
from tests.store_doubles import CountingStore, FakeClock
from webframe.sessions import MemoryStore, SQLiteStore
from webframe.sessions.store import SessionStore

START = 1_700_000_000.0


# Shared with the HTTP tests; re-exported here for the store suite.
__all__ = ["CountingStore", "FakeClock"]


class Backend:
    """How the conformance tests build, inspect and damage one kind of store."""

    name = ""

    def make(self, clock: Callable[[], float], **kwargs: Any) -> SessionStore:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def store(
        self, clock: Callable[[], float] | None = None, **kwargs: Any
    ) -> AsyncIterator[SessionStore]:
        kwargs.setdefault("idle_timeout", 600.0)
        kwargs.setdefault("absolute_timeout", 3600.0)
        s = self.make(clock or FakeClock(START), **kwargs)
        try:
            yield s
        finally:
            await s.close()

    async def count(self, store: SessionStore) -> int:
        """Number of session records physically present in the backend."""
        raise NotImplementedError

    async def corrupt(self, store: SessionStore, sid: str, kind: str) -> None:
        """Overwrite a stored record with garbage: kind "json" (bad JSON) or "type"."""
        raise NotImplementedError


class MemoryBackend(Backend):
    name = "memory"

    def make(self, clock: Callable[[], float], **kwargs: Any) -> SessionStore:
        return MemoryStore(clock=clock, **kwargs)

    async def count(self, store: SessionStore) -> int:
        assert isinstance(store, MemoryStore)
        return len(store._records)

    async def corrupt(self, store: SessionStore, sid: str, kind: str) -> None:
        assert isinstance(store, MemoryStore)
        store._records[sid].blob = "{not json" if kind == "json" else "[1, 2, 3]"


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def make(self, clock: Callable[[], float], **kwargs: Any) -> SessionStore:
        return SQLiteStore(self.path, clock=clock, **kwargs)

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if not self.path.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'webframe_sessions'"
            ).fetchone()
            if not exists:
                return []
            rows = conn.execute(sql, params).fetchall()
            conn.commit()
            return rows

    async def count(self, store: SessionStore) -> int:
        rows = self._execute("SELECT count(*) FROM webframe_sessions")
        return int(rows[0][0]) if rows else 0

    async def corrupt(self, store: SessionStore, sid: str, kind: str) -> None:
        garbage = "{not json" if kind == "json" else '"just a string"'
        self._execute("UPDATE webframe_sessions SET data = ? WHERE sid = ?", (garbage, sid))


class RedisBackend(Backend):
    name = "redis"

    def __init__(self, url: str) -> None:
        self.url = url

    def make(self, clock: Callable[[], float], **kwargs: Any) -> SessionStore:
        from webframe.sessions import open_store

        return open_store(self.url, clock=clock, **kwargs)

    async def count(self, store: SessionStore) -> int:
        from webframe.sessions.cluster import ClusterStore
        from webframe.sessions.redis import RedisStore

        assert isinstance(store, RedisStore)
        if isinstance(store, ClusterStore):
            total = 0
            for node in store._client.get_primaries():
                total += int(await store._client.dbsize(target_nodes=node))
            return total
        return int(await store._client.dbsize())

    async def corrupt(self, store: SessionStore, sid: str, kind: str) -> None:
        from webframe.sessions.redis import RedisStore

        assert isinstance(store, RedisStore)
        key = store._key(sid)
        if kind == "json":
            await store._client.hset(key, "k:broken", b"{not json\xff")
        else:
            ttl = await store._client.pttl(key)
            await store._client.set(key, b"garbage", px=ttl)


class PostgresBackend(Backend):
    """Each test gets its own table, so no test sees another's rows."""

    name = "postgresql"
    _tables = 0

    def __init__(self, url: str) -> None:
        self.url = url
        PostgresBackend._tables += 1
        self.table = f"sessions_{os.getpid()}_{PostgresBackend._tables}"

    def make(self, clock: Callable[[], float], **kwargs: Any) -> SessionStore:
        from webframe.sessions import open_store

        return open_store(self.url, clock=clock, table=self.table, **kwargs)

    async def _fetch(self, store: SessionStore, sql: str, *args: Any) -> Any:
        from webframe.sessions.postgresql import PostgreSQLStore

        assert isinstance(store, PostgreSQLStore)
        return await store._call(lambda conn: conn.fetchval(sql, *args))

    async def count(self, store: SessionStore) -> int:
        return int(await self._fetch(store, f"SELECT count(*) FROM {self.table}"))

    async def corrupt(self, store: SessionStore, sid: str, kind: str) -> None:
        # A JSONB column only holds valid JSON: what a careless writer can leave is
        # text stored as a JSON string, or a value that is not an object.
        garbage = '"{not json"' if kind == "json" else "[1, 2, 3]"
        sql = f"UPDATE {self.table} SET data = $2::jsonb WHERE sid = $1"
        await store._call(lambda conn: conn.execute(sql, sid, garbage))  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[SentinelGroup]:
    """A master, a replica and three sentinels, shared by the whole test session."""
    with SentinelGroup(replicas=1, sentinels=3) as group:
        yield group


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A three-master Redis Cluster, shared by the whole test session."""
    with RedisCluster(masters=3) as cluster:
        yield cluster


@pytest.fixture(params=["memory", "sqlite", "redis", "sentinel", "cluster", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return MemoryBackend()
    if request.param == "sqlite":
        return SQLiteBackend(tmp_path / "state" / "sessions.db")
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return PostgresBackend(server.url)
    if request.param == "sentinel":
        group: SentinelGroup = request.getfixturevalue("sentinel_group")
        group.flushall()
        return RedisBackend(group.url())
    if request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        return RedisBackend(cluster.url)
    redis: RedisServer = request.getfixturevalue("redis_server")
    redis.flushall()
    return RedisBackend(redis.url)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock; advance it instead of sleeping."""
    return FakeClock(START)


@pytest.fixture
def counting() -> type[CountingStore]:
    """The CountingStore wrapper class (tests never import conftest directly)."""
    return CountingStore
