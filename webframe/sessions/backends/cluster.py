"""Redis Cluster session store: the Redis store with hash-tagged keys on RedisCluster."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from webframe.sessions.backends.redis import RedisStore, glob_escape, split_options
from webframe.sessions.backends.redis_lua import SAVE_LUA
from webframe.sessions.backends.sentinel import parse_hosts, refuse_query, split_credentials

__all__ = ["ClusterStore", "parse_cluster_url"]

T = TypeVar("T")

CLUSTER_PORT = 6379


@dataclass(frozen=True)
class ClusterURL:
    """A parsed ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None


def parse_cluster_url(url: str) -> ClusterURL:
    """Parse ``redis+cluster://[user:password@]host:port,host:port``: any reachable
    nodes of the cluster (the client learns the rest).  Raises ValueError."""
    client_url, _ = split_options(url)
    refuse_query(url, client_url)
    parts = urlsplit(client_url)
    hosts, username, password = split_credentials(parts.netloc)
    nodes = parse_hosts(url, hosts, CLUSTER_PORT)
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(
            f"session_store {url!r}: Redis Cluster has only database 0; "
            "use redis+cluster://host:port,host:port"
        )
    return ClusterURL(nodes, username, password)


class ClusterStore(RedisStore):
    """Sessions spread over a Redis Cluster by session ID.

    A session's key carries its ID as a hash tag (``prefix{ID}``), so whatever
    else is ever kept for one session lands in the same slot and one Lua
    script can update it atomically.  When a master fails, the sessions in its
    slots get SessionStoreError (503) until a replica is promoted; the others
    keep working.  With ``wait_replicas`` each write and its WAIT go to the
    slot's master on one connection.
    """

    @classmethod
    def check_url(cls, url: str) -> None:
        """Refuse a URL with no nodes, a bad port or a database."""
        parse_cluster_url(url)

    def __init__(self, url: str = "redis+cluster://127.0.0.1:6379", **kwargs: Any) -> None:
        self.check_url(url)
        super().__init__(url, **kwargs)
        from redis.exceptions import RedisClusterException

        # Raised (not a RedisError) when no startup node can be reached.
        self._redis_errors = (*self._redis_errors, RedisClusterException)
        self._initializing: asyncio.Future[None] | None = None

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        # Concurrent first calls on a client that has not read the slot map yet
        # each start initialising it and trip over one another (half-open
        # connections, AttributeError from redis-py): one call reads it, the
        # others wait for that same attempt and share its outcome.
        if not self._client.get_nodes():
            if self._initializing is None or self._initializing.done():
                self._initializing = asyncio.ensure_future(
                    RedisStore._call(self, self._client.initialize)
                )
            await asyncio.shield(self._initializing)
        return await super()._call(make)

    async def _save_and_wait(self, key: str, args: list[str]) -> bool:
        """The save script and WAIT, pipelined to the master of `key`'s slot.

        redis-py's cluster pipeline would send WAIT to every master on other
        connections, so the two commands go through the node's own pipeline.
        """
        from redis.asyncio.cluster import PipelineCommand

        client = self._client

        async def write_and_wait() -> list[Any]:
            try:
                node = client.get_node_from_key(key)
                commands = [
                    PipelineCommand(0, "EVAL", SAVE_LUA, 1, key, *args),
                    PipelineCommand(1, "WAIT", self.wait_replicas, self.wait_timeout_ms),
                ]
                await node.execute_pipeline(commands)
                for command in commands:
                    if isinstance(command.result, BaseException):
                        raise command.result
            except BaseException:
                # Let the client's own path notice a moved slot or a dead node and
                # refresh its slot map, so the next call goes to the right master.
                with contextlib.suppress(*self._redis_errors):
                    await client.exists(key)
                raise
            return [command.result for command in commands]

        async def first_use() -> None:
            if not client.get_nodes():
                await client.initialize()

        await self._call(first_use)
        written, acked = await self._call(write_and_wait)
        return self._check_acked(written, acked)

    async def _hgetall(self, key: str) -> Any:
        # The cluster client routes each key to its slot's node: no single pool to borrow from.
        return await self._client.hgetall(key)

    def _key(self, sid: str) -> str:
        # Session IDs are base64url: they never contain the braces of a hash tag.
        return f"{self.key_prefix}{{{sid}}}"

    def _make_client(self, aioredis: Any, url: str, max_connections: int) -> Any:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        spec = parse_cluster_url(url)
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in spec.nodes],
            username=spec.username,
            password=spec.password,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            max_connections=max_connections,
            # One immediate retry after a connection error re-reads the slot map,
            # which is what finds a promoted replica; _call's deadline bounds all.
            retry=Retry(NoBackoff(), 1),
            # Serve the slots of live masters while another one is down.
            require_full_coverage=False,
            decode_responses=False,
        )

    async def _purge(self, now: float) -> int:
        # One script call per key: keys of different sessions live in different slots.
        pattern = glob_escape(self.key_prefix) + "*"
        args = [repr(now), repr(self.idle_timeout), repr(self.absolute_timeout)]
        client = self._client

        async def primaries() -> list[Any]:
            await client.initialize()
            nodes: list[Any] = client.get_primaries()
            return nodes

        removed = 0
        for node in await self._call(primaries):
            cursor = 0
            while True:

                async def scan(node: Any = node, cursor: int = cursor) -> tuple[int, list[Any]]:
                    cursors, keys = await client.scan(
                        cursor, match=pattern, count=500, target_nodes=node
                    )
                    return int(cursors[node.name]), list(keys)

                cursor, keys = await self._call(scan)
                if keys:

                    async def purge_batch(keys: list[Any] = keys) -> int:
                        results = await asyncio.gather(
                            *(self._purge_script(keys=[key], args=args) for key in keys)
                        )
                        return sum(int(r) for r in results)

                    removed += await self._call(purge_batch)
                if not cursor:
                    break
        return removed
