"""Fixtures for the session store conformance suite: one harness per backend."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.redis_server import RedisServer
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from redis_server import RedisServer  # type: ignore[no-redef,import-not-found,unused-ignore]
from tests.store_doubles import CountingStore, FakeClock
from webframe.sessions import MemoryStore, SQLiteStore
from webframe.sessions.base import SessionStore

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

    def __init__(self, server: RedisServer) -> None:
        self.server = server

    def make(self, clock: Callable[[], float], **kwargs: Any) -> SessionStore:
        from webframe.sessions.redis import RedisStore

        return RedisStore(self.server.url, clock=clock, **kwargs)

    async def count(self, store: SessionStore) -> int:
        from webframe.sessions.redis import RedisStore

        assert isinstance(store, RedisStore)
        return int(await store._client.dbsize())

    async def corrupt(self, store: SessionStore, sid: str, kind: str) -> None:
        from webframe.sessions.redis import RedisStore

        assert isinstance(store, RedisStore)
        key = store.key_prefix + sid
        if kind == "json":
            await store._client.hset(key, "k:broken", b"{not json\xff")
        else:
            ttl = await store._client.pttl(key)
            await store._client.set(key, b"garbage", px=ttl)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        return MemoryBackend()
    if request.param == "sqlite":
        return SQLiteBackend(tmp_path / "state" / "sessions.db")
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flushall()
    return RedisBackend(server)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock; advance it instead of sleeping."""
    return FakeClock(START)


@pytest.fixture
def counting() -> type[CountingStore]:
    """The CountingStore wrapper class (tests never import conftest directly)."""
    return CountingStore
