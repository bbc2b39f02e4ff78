"""session_redis_wait (Redis WAIT) on a real master + replica: what asynchronous
replication loses without it, and that with it such a write is refused (503), not lost;
then the same on a Redis Cluster with a replica per master."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from webframe.sessions import SessionStoreError, new_session_id, open_store

try:
    from tests.redis_server import RedisServer
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from redis_server import RedisServer  # type: ignore[no-redef,import-not-found,unused-ignore]

pytestmark = pytest.mark.slow

TIMEOUT = 0.6


def replicate(replica: RedisServer, master: RedisServer | None) -> None:
    """Point `replica` at `master` and wait until it is in sync; None: detach it
    (``REPLICAOF NO ONE``: it keeps its data and stops receiving writes)."""
    import redis

    client = redis.Redis(host=replica.host, port=replica.port)
    try:
        if master is None:
            client.execute_command("REPLICAOF", "NO", "ONE")
            return
        client.execute_command("REPLICAOF", master.host, str(master.port))
        # In sync once a write on the master is acknowledged by the replica.
        writer = redis.Redis(host=master.host, port=master.port)
        deadline = time.monotonic() + 10
        try:
            while True:
                pipe = writer.pipeline(transaction=False)
                pipe.set("test:sync", "1")
                pipe.execute_command("WAIT", 1, 200)
                if pipe.execute()[1] >= 1:
                    writer.delete("test:sync")
                    break
                assert time.monotonic() < deadline, "the replica never synced"
        finally:
            writer.close()
    finally:
        client.close()


@pytest.fixture
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and its replica, in sync; private to the test (it kills and detaches them)."""
    with RedisServer() as master, RedisServer() as replica:
        replicate(replica, master)
        yield master, replica


def make_store(url: str, wait: int, timeout: float = TIMEOUT) -> Any:
    return open_store(url, timeout=timeout, wait_replicas=wait)


def test_without_wait_an_acknowledged_write_is_lost_in_a_failover(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = pair

    async def main() -> None:
        store = make_store(master.url, wait=0)
        replica_store = make_store(replica.url, wait=0)
        sid = new_session_id()
        try:
            assert await store.save(sid, {"cart": ["book"]}, new=True)
            while not await replica_store.load(sid):  # replicated (bounded by the test timeout)
                await asyncio.sleep(0.02)
            replicate(replica, None)  # the link breaks (a network split, a busy host)...
            assert await store.save(sid, {"paid": True}, new=False)  # ...acknowledged anyway
        finally:
            await store.close()
            await replica_store.close()

    asyncio.run(main())
    master.kill()  # the master dies before the replica caught up; it is promoted

    async def after() -> None:
        store = make_store(replica.url, wait=0)
        try:
            records = await store._client.keys("webframe:session:*")
            assert len(records) == 1
            fields = await store._client.hgetall(records[0])
            assert b"k:cart" in fields
            assert b"k:paid" not in fields  # the acknowledged write is gone
        finally:
            await store.close()

    asyncio.run(after())


def test_with_wait_that_write_is_refused_instead_of_lost(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = pair

    async def main() -> None:
        store = make_store(master.url, wait=1)
        sid = new_session_id()
        try:
            assert await store.save(sid, {"cart": ["book"]}, new=True)
            replicate(replica, None)
            started = time.monotonic()
            with pytest.raises(SessionStoreError, match="0 of 1 replicas") as info:
                await store.save(sid, {"paid": True}, new=False)
            assert time.monotonic() - started < TIMEOUT + 0.5
            assert "session_redis_wait" in str(info.value)
            replicate(replica, master)
            # The replica is back: the next write is acknowledged by it before save returns.
            assert await store.save(sid, {"shipped": True}, new=False)
        finally:
            await store.close()

    asyncio.run(main())
    master.kill()
    replicate(replica, None)  # promoted

    async def after() -> None:
        store = make_store(replica.url, wait=0)
        try:
            keys = await store._client.keys("webframe:session:*")
            fields = await store._client.hgetall(keys[0])
            # Everything acknowledged survived; the refused write was never promised.
            assert b"k:cart" in fields and b"k:shipped" in fields
        finally:
            await store.close()

    asyncio.run(after())


def test_wait_counts_replicas_without_waiting_when_they_are_in_sync(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = pair

    async def main() -> None:
        store = make_store(master.url, wait=1)
        other = make_store(replica.url, wait=0)
        try:
            assert await store.load(new_session_id()) is None  # connect before timing
            took = []
            for n in range(20):
                sid = new_session_id()
                started = time.monotonic()
                assert await store.save(sid, {"n": n}, new=True)
                took.append(time.monotonic() - started)
                # Acknowledged by the replica: readable there at once.
                record = await other.load(sid)
                assert record is not None and record.data == {"n": n}
            # Not the WAIT timeout (300 ms here): the median save, so that one stall
            # of a loaded machine does not fail the test.
            assert sorted(took)[len(took) // 2] < 0.15, took
        finally:
            await store.close()
            await other.close()

    asyncio.run(main())


def test_wait_for_more_replicas_than_exist_fails_every_write(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    master, _replica = pair

    async def main() -> None:
        store = make_store(master.url, wait=2)
        try:
            with pytest.raises(SessionStoreError, match="1 of 2 replicas"):
                await store.save(new_session_id(), {"a": 1}, new=True)
        finally:
            await store.close()

    asyncio.run(main())


# -- Redis Cluster: the write and its WAIT go to the slot's master on one connection ------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Three masters with a replica each, private to this module (a test freezes one)."""
    try:
        from tests.redis_server import RedisCluster
    except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
        from redis_server import RedisCluster  # type: ignore[no-redef,import-not-found,unused-ignore]

    with RedisCluster(masters=3, replicas=1) as topology:
        yield topology


def on_replica(node: RedisServer, key: str) -> dict[bytes, bytes]:
    """The hash at `key` as the cluster replica `node` has it."""
    import redis

    client = redis.Redis(host=node.host, port=node.port, single_connection_client=True)
    try:
        client.execute_command("READONLY")  # a cluster replica answers reads only after this
        fields: dict[bytes, bytes] = client.hgetall(key)
        return fields
    finally:
        client.close()


def test_cluster_wait_makes_each_write_reach_the_slots_replica(cluster: Any) -> None:
    async def main() -> None:
        # A roomy deadline: the first call also discovers the cluster's slots, and a
        # loaded machine must not turn that into a 503. A save that returns (and does
        # not raise SessionStoreError) had its WAIT acknowledged by the replica.
        store = make_store(cluster.url, wait=1, timeout=5.0)
        try:
            for n in range(12):
                sid = new_session_id()
                assert await store.save(sid, {"n": n}, new=True)
                key = f"webframe:session:{{{sid}}}"
                _master, replica = cluster.holders_of_key(key)
                assert on_replica(replica, key).get(b"k:n") == str(n).encode()
        finally:
            await store.close()

    asyncio.run(main())


def test_cluster_wait_refuses_a_write_its_replica_does_not_acknowledge(cluster: Any) -> None:
    async def main() -> None:
        store = make_store(cluster.url, wait=1)
        sid = new_session_id()
        key = f"webframe:session:{{{sid}}}"
        try:
            assert await store.save(sid, {"cart": ["book"]}, new=True)
            _master, replica = cluster.holders_of_key(key)
            replica.pause()
            try:
                with pytest.raises(SessionStoreError, match="0 of 1 replicas"):
                    await store.save(sid, {"paid": True}, new=False)
            finally:
                replica.resume()
            assert await store.save(sid, {"shipped": True}, new=False)
        finally:
            await store.close()

    asyncio.run(main())
