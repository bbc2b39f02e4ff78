"""RedisStore under failure: server stopped, restarted, frozen (SIGSTOP) and unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from webframe.sessions import Session, SessionStoreError, new_session_id

try:
    from tests.redis_server import RedisServer, free_port
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from redis_server import RedisServer, free_port  # type: ignore[no-redef,import-not-found,unused-ignore]

from ..support.sessions import expect_store_error

pytestmark = pytest.mark.slow

TIMEOUT = 0.5


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A private server per test: these tests stop and freeze it."""
    with RedisServer() as srv:
        yield srv


def make_store(url: str) -> Any:
    from webframe.sessions.redis import RedisStore

    return RedisStore(url, timeout=TIMEOUT, idle_timeout=600, absolute_timeout=3600)


def test_stopped_server_fails_fast_and_store_recovers(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url)
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": 1}, new=True)
            assert await store.load(sid) is not None

            server.stop()
            await expect_store_error(store.load(sid), 3.0)
            await expect_store_error(store.save(sid, {"b": 2}, new=False), 3.0)
            await expect_store_error(store.save(new_session_id(), {"b": 2}, new=True), 3.0)
            await expect_store_error(store.touch(sid), 3.0)
            await expect_store_error(store.delete(sid), 3.0)
            await expect_store_error(store.purge_expired(), 3.0)

            session = Session.fresh()
            session["x"] = 1
            await expect_store_error(session.commit(store), 3.0)

            server.start()  # same port; empty (no persistence)
            assert await store.load(sid) is None
            assert await store.save(sid, {"c": 3}, new=True)
            record = await store.load(sid)
            assert record is not None and record.data == {"c": 3}
            assert await store.purge_expired() == 0
        finally:
            await store.close()

    run(main())


def test_restart_between_calls_is_invisible(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url)
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": 1}, new=True)
            # the pooled connection dies with the server; the next call must not fail
            server.stop()
            server.start()
            assert await store.load(sid) is None
            assert await store.save(sid, {"a": 2}, new=True)  # script cache was lost too
        finally:
            await store.close()

    run(main())


def test_paused_server_times_out_instead_of_hanging(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url)
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": 1}, new=True)

            server.pause()
            try:
                elapsed = await expect_store_error(store.load(sid), TIMEOUT + 0.5)
                assert elapsed >= TIMEOUT * 0.8  # it really waited for the timeout
                await expect_store_error(store.save(sid, {"b": 2}, new=False), TIMEOUT + 0.5)
            finally:
                server.resume()

            # a timed-out command may still run once Redis wakes up; either way
            # the store itself must work again
            record = await store.load(sid)
            assert record is not None and record.data["a"] == 1
            assert await store.save(sid, {"c": 3}, new=False)
            record = await store.load(sid)
            assert record is not None and record.data["c"] == 3
        finally:
            await store.close()

    run(main())


def test_paused_server_with_new_connections_times_out(server: RedisServer) -> None:
    async def main() -> None:
        server.pause()
        try:
            store = make_store(server.url)  # no connection made yet
            await expect_store_error(store.load(new_session_id()), TIMEOUT + 0.5)
        finally:
            server.resume()
        try:
            assert await store.load(new_session_id()) is None
        finally:
            await store.close()

    run(main())


def test_nothing_listening_fails_fast() -> None:
    async def main() -> None:
        store = make_store(f"redis://127.0.0.1:{free_port()}/0")
        try:
            await expect_store_error(store.load(new_session_id()), 3.0)
            await expect_store_error(store.save(new_session_id(), {"a": 1}, new=True), 3.0)
        finally:
            await store.close()

    run(main())


def test_error_message_hides_password() -> None:
    async def main() -> None:
        url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
        store = make_store(url)
        try:
            with pytest.raises(SessionStoreError) as info:
                await store.load(new_session_id())
            assert "s3cret" not in str(info.value)
        finally:
            await store.close()

    run(main())


def test_missing_redis_server_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("WEBFRAME_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install redis-server"):
        RedisServer()
    monkeypatch.setenv("WEBFRAME_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="WEBFRAME_REQUIRE_SERVICES"):
        RedisServer()
