"""Redis Sentinel session store: the Redis store on whichever server Sentinel calls master."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from webframe.sessions.backends.redis import RedisStore, split_options

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["SentinelStore", "parse_hosts", "parse_sentinel_url", "refuse_query"]

SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None


def parse_hosts(url: str, netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (``[::1]:port`` for IPv6) -> ((host, port), ...)."""
    hosts: list[tuple[str, int]] = []
    for item in netloc.split(","):
        text = item.strip()
        if not text:
            continue
        if text.startswith("["):
            host, _, after = text[1:].partition("]")
            port_text = after[1:] if after.startswith(":") else ""
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
        else:
            host, port_text = text, ""
        if not host:
            raise ValueError(f"session_store {url!r}: empty host in {text!r}")
        if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
            raise ValueError(f"session_store {url!r}: {port_text!r} is not a TCP port")
        hosts.append((host, int(port_text) if port_text else default_port))
    if not hosts:
        raise ValueError(f"session_store {url!r}: no host:port given")
    return tuple(hosts)


def refuse_query(url: str, client_url: str) -> None:
    """Raise ValueError if `client_url` (webframe's own options removed) still has a
    query: options are never ignored silently."""
    query = urlsplit(client_url).query
    if query:
        raise ValueError(
            f"session_store {url!r}: unsupported option(s) {query!r}; this store takes "
            "only wait_replicas=N (and Redis Cluster not even that)"
        )


def split_credentials(rest: str) -> tuple[str, str | None, str | None]:
    """``user:password@hosts`` -> (hosts, user, password), percent-decoded."""
    if "@" not in rest:
        return rest, None, None
    userinfo, _, hosts = rest.rpartition("@")
    user, sep, password = userinfo.partition(":")
    return hosts, unquote(user) or None, unquote(password) if sep else None


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse ``redis+sentinel://[user:password@]host:port,host:port/mastername[/db]``.

    The credentials are the master's; the sentinels are asked without them.
    Raises ValueError saying what is wrong.
    """
    client_url, _ = split_options(url)
    refuse_query(url, client_url)
    parts = urlsplit(client_url)
    hosts, username, password = split_credentials(parts.netloc)
    sentinels = parse_hosts(url, hosts, SENTINEL_PORT)
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(
            f"session_store {url!r}: expected redis+sentinel://host:port,host:port/"
            "mastername/db (the master's name as configured in sentinel.conf)"
        )
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"session_store {url!r}: database {path[1]!r} is not a number")
        db = int(path[1])
    return SentinelURL(sentinels, unquote(path[0]), db, username, password)


class SentinelStore(RedisStore):
    """Sessions on a Redis master found through Sentinel; follows its failovers.

    Each new connection asks the sentinels for the current master, so after a
    failover the store reconnects to the promoted replica by itself.  Until
    the sentinels agree on a new master, calls fail fast with SessionStoreError
    (503 to requests that need a session).  Replication is asynchronous: see
    ``wait_replicas`` (the ``session_redis_wait`` setting).
    """

    _sentinel: Any = None

    @classmethod
    def check_url(cls, url: str) -> None:
        """Refuse a URL with no sentinels, no master name or a bad port or db."""
        parse_sentinel_url(url)

    def _make_client(self, aioredis: Any, url: str, max_connections: int) -> Redis:
        from redis.asyncio.retry import Retry
        from redis.asyncio.sentinel import Sentinel
        from redis.backoff import NoBackoff

        spec = parse_sentinel_url(url)
        timeouts = {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout}
        self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(spec.sentinels), sentinel_kwargs=dict(timeouts)
        )
        client: Redis = self._sentinel.master_for(
            spec.service,
            db=spec.db,
            username=spec.username,
            password=spec.password,
            max_connections=max_connections,
            retry=Retry(NoBackoff(), 1),
            decode_responses=False,
            **timeouts,
        )
        return client

    async def _close(self) -> None:
        await super()._close()
        if self._sentinel is not None:
            await self._sentinel.aclose()
