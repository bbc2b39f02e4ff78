"""The Sentinel and Cluster stores beyond the conformance suite: where keys live, and
what happens when the topology cannot be reached (failover itself: tests/scaleout)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from webframe.sessions import SessionStoreError, new_session_id, open_store

from ..support.sessions import expect_store_error

pytestmark = pytest.mark.slow


def test_cluster_keys_carry_the_session_id_as_hash_tag(redis_cluster: Any) -> None:
    import redis

    redis_cluster.flushall()

    async def main() -> None:
        store = open_store(redis_cluster.url)
        try:
            sids = [new_session_id() for _ in range(12)]
            for sid in sids:
                assert await store.save(sid, {"a": 1}, new=True)
            owners = set()
            for sid in sids:
                node = redis_cluster.master_of_key(f"{{{sid}}}")
                direct = redis.Redis(host=node.host, port=node.port)
                # Stored on the master that owns the hash tag's slot, under prefix{ID}.
                assert direct.exists(f"webframe:session:{{{sid}}}") == 1
                direct.close()
                owners.add(node.port)
            assert len(owners) > 1  # spread over the masters, not all in one slot
            assert await store.purge_expired() == 0
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://127.0.0.1:1,127.0.0.1:2/webframe/0", "redis+cluster://127.0.0.1:1"],
)
def test_unreachable_topology_fails_fast_with_store_error(url: str) -> None:
    async def main() -> None:
        store = open_store(url, timeout=0.5)
        try:
            sid = new_session_id()
            for op in (store.load(sid), store.save(sid, {"a": 1}, new=True)):
                await expect_store_error(op, 1.5)
        finally:
            await store.close()

    asyncio.run(main())


def test_sentinel_store_writes_to_the_master_sentinel_names(sentinel_group: Any) -> None:
    import redis

    sentinel_group.flushall()

    async def main() -> None:
        store = open_store(sentinel_group.url())
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": 1}, new=True)
        finally:
            await store.close()
        master = sentinel_group.current_master()
        direct = redis.Redis(host=master.host, port=master.port)
        assert direct.exists(f"webframe:session:{sid}") == 1
        direct.close()

    asyncio.run(main())


def test_unknown_master_name_is_a_store_error(sentinel_group: Any) -> None:
    async def main() -> None:
        url = sentinel_group.url().replace("/webframe/", "/no-such-master/")
        store = open_store(url, timeout=0.5)
        try:
            with pytest.raises(SessionStoreError, match="no-such-master"):
                await store.load(new_session_id())
        finally:
            await store.close()

    asyncio.run(main())
