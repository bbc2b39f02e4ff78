"""RedisStore's read fast path (`_hgetall`): its own idle connections stay in step."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from webframe.sessions import SessionStoreError, new_session_id

try:
    from tests.redis_server import RedisServer
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from redis_server import RedisServer  # type: ignore[no-redef,import-not-found,unused-ignore]

pytestmark = pytest.mark.slow

TIMEOUT = 0.5


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


def make_store(url: str, **kwargs: Any) -> Any:
    from webframe.sessions.redis import RedisStore

    return RedisStore(url, timeout=TIMEOUT, idle_timeout=600, absolute_timeout=3600, **kwargs)


def test_reads_reuse_one_connection(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url)
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": 1, "b": "x"}, new=True)
            for _ in range(3):
                record = await store.load(sid)
                assert record is not None and record.data == {"a": 1, "b": "x"}
            assert len(store._idle) == 1 and store._fast_open == 1
            assert store._idle[0].socket_timeout is None  # _call alone bounds a read
        finally:
            await store.close()
        assert store._idle == [] and store._fast_open == 0

    run(main())


def test_wrong_type_reply_keeps_the_connection(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url)
        try:
            sid = new_session_id()
            await store._client.set(store._key(sid), b"not a hash")
            record = await store.load(sid)
            assert record is not None and record.data == {}
            assert len(store._idle) == 1  # the error reply left it in step
            other = new_session_id()
            assert await store.save(other, {"k": [1, 2]}, new=True)
            record = await store.load(other)
            assert record is not None and record.data == {"k": [1, 2]}
        finally:
            await store.close()

    run(main())


def test_timed_out_read_drops_its_connection(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url)
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": 1}, new=True)
            assert await store.load(sid) is not None
            server.pause()
            try:
                with pytest.raises(SessionStoreError):
                    await store.load(sid)
            finally:
                server.resume()
            # the late reply must not be read by the next call: the connection went
            assert store._idle == [] and store._fast_open == 0
            other = new_session_id()
            assert await store.save(other, {"b": 2}, new=True)
            record = await store.load(other)
            assert record is not None and record.data == {"b": 2}
        finally:
            await store.close()

    run(main())


def test_resp3_reply_reads_the_same(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url + "?protocol=3")
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": {"n": 1}}, new=True)
            record = await store.load(sid)
            assert record is not None and record.data == {"a": {"n": 1}}
            assert await store.load(new_session_id()) is None
        finally:
            await store.close()

    run(main())


def test_more_readers_than_connections_fall_back_to_the_pool(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url, max_connections=2)
        try:
            sids = [new_session_id() for _ in range(6)]
            for i, sid in enumerate(sids):
                assert await store.save(sid, {"i": i}, new=True)
            records = await asyncio.gather(*(store.load(sid) for sid in sids[:4]))
            assert [r.data["i"] for r in records] == [0, 1, 2, 3]  # 2 fast, 2 through the pool
            assert store._fast_open <= 2
        finally:
            await store.close()

    run(main())


def test_non_ascii_key_prefix_is_packed_by_bytes(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url, key_prefix="sessión:é:")
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": "ü"}, new=True)
            assert await store._client.exists(store._key(sid).encode("utf-8")) == 1
            record = await store.load(sid)
            assert record is not None and record.data == {"a": "ü"}
            assert len(store._idle) == 1  # the reply matched the request
        finally:
            await store.close()

    run(main())


def test_decoded_replies_read_the_same(server: RedisServer) -> None:
    async def main() -> None:
        store = make_store(server.url + "?decode_responses=true")
        try:
            assert store._client.connection_pool.connection_kwargs["decode_responses"]
            sid = new_session_id()
            assert await store.save(sid, {"a": [1, "é"]}, new=True)
            record = await store.load(sid)
            assert record is not None and record.data == {"a": [1, "é"]}
        finally:
            await store.close()

    run(main())
