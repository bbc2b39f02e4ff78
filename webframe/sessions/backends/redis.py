"""Redis session store: one hash per session, atomic Lua updates, native TTL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from webframe.sessions.backends.redis_lua import (
    ACCESSED_FIELD,
    CREATED_FIELD,
    INCR_LUA,
    PURGE_LUA,
    SAVE_LUA,
    TAKE_LUA,
    VALUE_PREFIX,
)
from webframe.sessions.store import Changeset, Count, Record, SessionStore, SessionStoreError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisStore", "glob_escape", "split_options"]

T = TypeVar("T")

_deadline: Any = getattr(asyncio, "timeout", None)


def _import_redis() -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Redis session store needs the redis package: pip install webframe[redis]"
        ) from exc
    return aioredis


class RedisStore(SessionStore):
    """Stores each session as a Redis hash with a native TTL.

    Saves run as one Lua script, so disjoint key updates merge and a session
    deleted or expired meanwhile is never recreated by a late ``new=False`` save.
    Connection failures and timeouts raise SessionStoreError; the pool
    reconnects on the next call once Redis is back.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        key_prefix: str = "webframe:session:",
        counter_prefix: str = "webframe:counter:",
        max_connections: int = 1000,
        wait_replicas: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        aioredis = _import_redis()
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError, ResponseError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        client_url, options = split_options(url)
        self.url = url
        self.key_prefix = key_prefix
        if counter_prefix.startswith(key_prefix):
            raise ValueError("counter_prefix must not start with key_prefix (purge scans it)")
        self.counter_prefix = counter_prefix
        #: replicas that must acknowledge each write (Redis WAIT); 0: do not wait.
        if wait_replicas is None:
            wait_replicas = options.get("wait_replicas", 0)
        self.wait_replicas = wait_replicas
        if self.wait_replicas < 0:
            raise ValueError(f"wait_replicas must be >= 0, got {self.wait_replicas}")
        # WAIT gets half the call's deadline, so a missing replica is reported as
        # such (not as a time-out) and the request still gets its 503 in time.
        self.wait_timeout_ms = max(1, int(self.timeout * 500))
        self._client: Any = self._make_client(aioredis, client_url, max_connections)
        #: what a failing Redis raises here; a subclass's client may add its own.
        errors: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
        self._redis_errors = errors
        #: what makes `_hgetall` replace its connection once / keep it after an error reply.
        self._conn_errors: tuple[type[BaseException], ...] = (RedisConnectionError, OSError)
        self._conn_errors += (RedisTimeoutError,)
        self._reply_errors: tuple[type[BaseException], ...] = (ResponseError,)
        #: idle connections of the read fast path (see `_hgetall`), and how many it holds.
        self._idle: list[Any] = []
        self._fast_open = 0
        self._max_fast = max_connections
        self._save_script = self._client.register_script(SAVE_LUA)
        self._purge_script = self._client.register_script(PURGE_LUA)
        self._take_script = self._client.register_script(TAKE_LUA)
        self._incr_script = self._client.register_script(INCR_LUA)

    @classmethod
    def check_url(cls, url: str) -> None:
        """Refuse a malformed ``wait_replicas`` option."""
        split_options(url)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        """The URL is redis-py's, plus the option ``?wait_replicas=N``."""
        return cls(url, **kwargs)

    def _make_client(self, aioredis: Any, url: str, max_connections: int) -> Redis:
        """Called once by ``__init__``: the client every command goes through."""
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # A plain pool: the blocking one's wait machinery cost more per call than
        # the command itself, and with up to `max_connections` (1000) per process a
        # request never waits for a connection. One immediate retry replaces a pooled
        # connection that died while Redis restarted; _call's deadline bounds all.
        pool = aioredis.ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1),
            decode_responses=False,
        )
        client: Redis = aioredis.Redis.from_pool(pool)
        return client

    def _key(self, sid: str) -> str:
        return self.key_prefix + sid

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        try:
            # socket timeouts bound each read; this bounds the whole call, retries included
            if _deadline is not None:
                # Python 3.11+: a deadline without wrapping the call in a new Task.
                async with _deadline(self.timeout):
                    return await make()
            return await asyncio.wait_for(make(), self.timeout)
        except self._redis_errors as exc:
            what = "timed out" if isinstance(exc, asyncio.TimeoutError) else "failed"
            raise SessionStoreError(
                f"Redis session store {self._safe_url()} {what}: {exc!r}"
            ) from exc

    def _safe_url(self) -> str:
        # Never log a password embedded in the URL.
        scheme, sep, rest = self.url.partition("://")
        if "@" in rest:
            rest = "***@" + rest.rpartition("@")[2]
        return scheme + sep + rest

    # -- hooks --------------------------------------------------------------

    async def _load(self, sid: str, now: float) -> Record | None:
        from redis.exceptions import ResponseError

        key = self._key(sid)

        async def fetch() -> dict[bytes, bytes] | None:
            """Return the hash ({} if absent), or None if the key is not a hash."""
            try:
                return _as_fields(await self._hgetall(key))
            except ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                return None

        fields = await self._call(fetch)
        if fields is None:
            self._report_corrupt(sid, "not a Redis hash")
            return Record({}, now, now)
        if not fields:
            return None
        created_raw, accessed_raw = fields.get(_CREATED), fields.get(_ACCESSED)
        created = _as_time(created_raw, now)
        accessed = _as_time(accessed_raw, now)
        if self.is_expired(created, accessed, now):
            return None
        data: dict[str, Any] = {}
        try:
            for name, value in fields.items():
                text = name.decode("utf-8")
                if text.startswith(VALUE_PREFIX):
                    data[text[_PREFIX_LEN:]] = json.loads(value)
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError
            self._report_corrupt(sid, f"invalid value: {exc}")
            data = {}
        if created_raw is None or accessed_raw is None:
            self._report_corrupt(sid, "missing timestamps")
        return Record(data, created, accessed)

    async def _hgetall(self, key: str) -> Any:
        """HGETALL `key` on the store's own idle connections, skipping the client's pool
        lock, retry wrapper and metrics (RESP2: a flat list, RESP3: a dict).  Like the client,
        a connection that fails (Redis restarted) is replaced once; `_call` bounds it all."""
        idle = self._idle
        if idle:
            conn = idle.pop()
        elif self._fast_open < self._max_fast:
            conn = self._client.connection_pool.make_connection()
            # No socket timeout (a wait_for Task per write, a timer per read): _call bounds it.
            conn.socket_timeout = conn.orig_socket_timeout = None
            self._fast_open += 1
        else:  # every fast connection is busy: the client's pool queues nothing either
            return await self._client.execute_command("HGETALL", key)
        try:
            name = conn.encoder.encode(key)  # packed here: redis-py's pack_command is general
            packed = b"*2\r\n$7\r\nHGETALL\r\n$%d\r\n%b\r\n" % (len(name), name)
            try:
                if not conn.is_connected:
                    await conn.connect()
                await conn.send_packed_command(packed)
                raw = await conn.read_response()
            except self._conn_errors:
                await _drop(conn)
                await conn.connect()
                await conn.send_packed_command(packed)
                raw = await conn.read_response()
        except self._reply_errors:
            idle.append(conn)  # an error reply leaves the connection in step
            raise
        except BaseException:
            # Timed out or cancelled mid-reply, or still failing: never reuse it.
            self._fast_open -= 1
            await _drop(conn)
            raise
        idle.append(conn)
        return raw

    async def _save(self, sid: str, cs: Changeset, now: float) -> bool:
        args: list[str] = [
            repr(now),
            repr(self.idle_timeout),
            repr(self.absolute_timeout),
            "1" if cs.new else "0",
            "1" if cs.touch else "0",
            str(len(cs.deleted)),
        ]
        args.extend(VALUE_PREFIX + key for key in cs.deleted)
        for key, value in cs.encoded.items():
            args.append(VALUE_PREFIX + key)
            args.append(value)
        key = self._key(sid)
        if self.wait_replicas:
            return await self._save_and_wait(key, args)
        result = await self._call(lambda: self._save_script(keys=[key], args=args))
        return bool(result)

    async def _save_and_wait(self, key: str, args: list[str]) -> bool:
        """Run the save script, then WAIT on the same connection (one pipeline):
        WAIT counts the replicas that have this connection's writes."""

        async def write_and_wait() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            pipe.execute_command("EVAL", SAVE_LUA, 1, key, *args)
            pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            replies: list[Any] = await pipe.execute()
            return replies

        written, acked = await self._call(write_and_wait)
        return self._check_acked(written, acked)

    def _check_acked(self, written: Any, acked: Any) -> bool:
        """The result of a save followed by WAIT: SessionStoreError if too few replicas
        have it (the write stands, but it was not made as safe as promised)."""
        if written and int(acked) < self.wait_replicas:
            raise SessionStoreError(
                f"Redis session store {self._safe_url()}: the write reached {int(acked)} of "
                f"{self.wait_replicas} replicas within {self.wait_timeout_ms} ms "
                "(session_redis_wait); it may be lost if the master fails now"
            )
        return bool(written)

    async def _take(self, sid: str, keys: frozenset[str], now: float) -> dict[str, Any]:
        args = [repr(now), repr(self.idle_timeout), repr(self.absolute_timeout)]
        args.extend(VALUE_PREFIX + k for k in sorted(keys))
        key = self._key(sid)
        raw = await self._call(lambda: self._take_script(keys=[key], args=args))
        flat = list(raw or [])
        taken: dict[str, Any] = {}
        for i in range(0, len(flat) - 1, 2):
            name = _b(flat[i]).decode("utf-8")[len(VALUE_PREFIX) :]
            try:
                taken[name] = json.loads(_b(flat[i + 1]))
            except ValueError as exc:  # cjson accepted what Python's json does not
                self._report_corrupt(sid, f"invalid value: {exc}")
        return taken

    def _counter_key(self, key: str) -> str:
        return self.counter_prefix + key

    async def _incr(self, key: str, window: float, amount: int, now: float) -> Count:
        name = self._counter_key(key)
        args = [repr(now), repr(window), str(amount)]
        raw = await self._call(lambda: self._incr_script(keys=[name], args=args))
        value, end = (_b(item) for item in raw)
        return Count(int(value), float(end) - now)

    async def _reset_counter(self, key: str) -> None:
        name = self._counter_key(key)
        await self._call(lambda: self._client.delete(name))

    async def _delete(self, sid: str) -> None:
        key = self._key(sid)
        await self._call(lambda: self._client.delete(key))

    async def _purge(self, now: float) -> int:
        pattern = glob_escape(self.key_prefix) + "*"
        args = [repr(now), repr(self.idle_timeout), repr(self.absolute_timeout)]
        removed = 0
        cursor = 0

        async def scan() -> tuple[int, list[Any]]:
            found: tuple[int, list[Any]] = await self._client.scan(cursor, match=pattern, count=500)
            return found

        while True:
            # Each batch gets its own deadline: a big keyspace may take a while.
            cursor, keys = await self._call(scan)
            if keys:
                batch = list(keys)

                async def purge_batch(batch: list[Any] = batch) -> Any:
                    return await self._purge_script(keys=batch, args=args)

                removed += int(await self._call(purge_batch))
            if not cursor:
                return removed

    async def _close(self) -> None:
        idle, self._idle = self._idle, []
        self._fast_open -= len(idle)
        for conn in idle:
            await _drop(conn)
        await self._client.aclose()


def split_options(url: str) -> tuple[str, dict[str, int]]:
    """Return `url` without webframe's own query options, and those options.

    ``wait_replicas=N`` (the ``session_redis_wait`` setting) is read here, so the
    rest of the query is left to redis-py.
    """
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    options: dict[str, int] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "wait_replicas":
            if not value.isdigit():
                raise ValueError(
                    f"session_store: wait_replicas={value!r} is not a whole number of replicas"
                )
            options[name] = int(value)
        else:
            kept.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), options


_CREATED = CREATED_FIELD.encode()
_ACCESSED = ACCESSED_FIELD.encode()
_PREFIX_LEN = len(VALUE_PREFIX)


def _as_fields(raw: Any) -> dict[bytes, bytes]:
    """An HGETALL reply (flat RESP2 list or RESP3 dict) as {bytes: bytes}."""
    if not isinstance(raw, list):
        return {_b(name): _b(value) for name, value in raw.items()}
    items = iter(raw)
    if raw and type(raw[0]) is bytes:  # decode_responses off (the store's setting): as is
        return dict(zip(items, items, strict=False))
    return {_b(name): _b(value) for name, value in zip(items, items, strict=False)}


def _as_time(value: bytes | None, default: float) -> float:
    """A stored timestamp (ASCII bytes) as a float, or `default` if it is not one."""
    if value is None:
        return default
    try:
        result = float(value)
    except ValueError:
        return default
    return result if math.isfinite(result) else default


async def _drop(conn: Any) -> None:
    """Close `conn` without waiting on the peer (it may be hung)."""
    with contextlib.suppress(Exception):  # a broken socket is being thrown away anyway
        await conn.disconnect(nowait=True)


def _b(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def glob_escape(text: str) -> str:
    """`text` with the SCAN MATCH pattern characters escaped, to match it literally."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
