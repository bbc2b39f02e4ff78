"""PostgreSQLStore reads on their own connections (not the pool's): a connection the
server ends while idle, a read that times out or is cancelled mid-statement, many
concurrent reads within max_connections, and close() with readers parked."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from webframe.sessions import SessionStoreError, new_session_id, open_store

from ..support.sessions import expect_store_error
from .postgres_server import PostgresServer

pytestmark = pytest.mark.slow

TIMEOUT = 0.5


def make_store(server: PostgresServer, name: str, **kwargs: Any) -> Any:
    """A store whose connections the server lists under application_name `name`."""
    kwargs.setdefault("timeout", TIMEOUT)
    return open_store(
        f"{server.url}?application_name={name}",
        idle_timeout=600,
        absolute_timeout=3600,
        table=f"reads_{name}",
        **kwargs,
    )


async def backends(admin: Any, name: str) -> int:
    """How many server connections the store named `name` holds."""
    count = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
    )
    return int(count)


def test_a_reader_the_server_ends_while_idle_is_replaced(
    postgres_server: PostgresServer,
) -> None:
    import asyncpg

    async def main() -> None:
        store = make_store(postgres_server, "ended")
        admin = await asyncpg.connect(postgres_server.url)
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": 1}, new=True)
            for _ in range(3):
                record = await store.load(sid)
                assert record is not None and record.data == {"a": 1}
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'ended'"
            )
            assert killed >= 1
            await asyncio.sleep(0.2)  # the store sees its sockets close
            record = await store.load(sid)
            assert record is not None and record.data == {"a": 1}
            # A reader ended mid-read (no time to notice) fails that read only.
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'ended'"
            )
            try:
                record = await store.load(sid)
            except SessionStoreError as exc:
                assert "PostgreSQL session store" in str(exc)
            else:
                assert record is not None and record.data == {"a": 1}
            record = await store.load(sid)
            assert record is not None and record.data == {"a": 1}
        finally:
            await admin.close()
            await store.close()

    asyncio.run(main())


def test_a_read_blocked_past_the_timeout_fails_and_the_next_one_works(
    postgres_server: PostgresServer,
) -> None:
    import asyncpg

    async def main() -> None:
        store = make_store(postgres_server, "blocked")
        blocker = await asyncpg.connect(postgres_server.url)
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": 1}, new=True)
            assert (await store.load(sid)) is not None  # a reader is parked
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("LOCK TABLE reads_blocked IN ACCESS EXCLUSIVE MODE")
            await expect_store_error(store.load(sid), TIMEOUT + 0.5, match="timed out")
            # The caller gives up on a read mid-statement.
            reading = asyncio.ensure_future(store.load(sid))
            await asyncio.sleep(0.1)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            await tx.rollback()
            # Neither abandoned connection answers a later read with a stale row.
            for value in (2, 3):
                assert await store.save(sid, {"a": value}, new=False)
                record = await store.load(sid)
                assert record is not None and record.data == {"a": value}
        finally:
            await blocker.close()
            await store.close()

    asyncio.run(main())


def test_concurrent_reads_stay_within_max_connections_and_close_ends_them(
    postgres_server: PostgresServer,
) -> None:
    import asyncpg

    async def main() -> None:
        store = make_store(postgres_server, "many", max_connections=4)
        admin = await asyncpg.connect(postgres_server.url)
        try:
            sids = [new_session_id() for _ in range(20)]
            for n, sid in enumerate(sids):
                assert await store.save(sid, {"n": n}, new=True)
            peak = 0

            async def watch() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, await backends(admin, "many"))
                    await asyncio.sleep(0.005)

            watcher = asyncio.ensure_future(watch())
            for _ in range(5):
                records = await asyncio.gather(*(store.load(sid) for sid in sids * 3))
                assert [r.data["n"] for r in records] == list(range(20)) * 3
                mixed = await asyncio.gather(
                    *(store.incr(f"c{n}", 60, 0) for n in range(10)),
                    *(store.save(sid, {"m": 1}, new=False) for sid in sids[:5]),
                )
                assert [count.value for count in mixed[:10]] == [0] * 10
                assert mixed[10:] == [True] * 5
            watcher.cancel()
            # Wait for it to stop: it may be inside a query on `admin`, which cannot
            # run the next one until that query is cancelled (seen once in CI).
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            assert 1 <= peak <= 4
            assert await backends(admin, "many") <= 4
            await store.close()
            with pytest.raises(SessionStoreError, match="closed"):
                await store.load(sids[0])
            for _ in range(50):  # the server notices the closed sockets
                if await backends(admin, "many") == 0:
                    break
                await asyncio.sleep(0.02)
            assert await backends(admin, "many") == 0
        finally:
            await admin.close()
            await store.close()

    asyncio.run(main())
