"""PostgreSQLStore beyond the conformance suite: two nodes on one database, a server
that stops and comes back, a row lock held past the timeout, values JSONB refuses,
and the 503 a request gets while the database is down (its handler never runs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil

from webframe import Application, RequestHandler
from webframe.sessions import Session, SessionStoreError, new_session_id, open_store
from webframe.testing import test_settings

from ..support.sessions import expect_store_error
from .postgres_server import PostgresServer

pytestmark = pytest.mark.slow

TIMEOUT = 0.5


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A private server: these tests stop it."""
    with PostgresServer() as srv:
        yield srv


def make_store(url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", TIMEOUT)
    return open_store(url, idle_timeout=600, absolute_timeout=3600, **kwargs)


def test_two_nodes_share_sessions_and_merge_disjoint_writes(
    postgres_server: PostgresServer,
) -> None:
    async def main() -> None:
        a, b = make_store(postgres_server.url), make_store(postgres_server.url)
        try:
            sid = new_session_id()
            assert await a.save(sid, {"user": 1}, new=True)
            one, two = await Session.open(a, sid), await Session.open(b, sid)
            one["cart"] = ["book"]
            two["theme"] = "dark"
            del two["user"]
            await asyncio.gather(one.commit(a), two.commit(b))
            record = await b.load(sid)
            assert record is not None and record.data == {"cart": ["book"], "theme": "dark"}
            # A logout on node B is not undone by a late save on node A.
            await b.delete(sid)
            assert await a.save(sid, {"late": True}, new=False) is False
            assert await a.load(sid) is None
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_stopped_server_fails_fast_and_store_recovers(server: PostgresServer) -> None:
    async def main() -> None:
        store = make_store(server.url)
        try:
            sid = new_session_id()
            assert await store.save(sid, {"a": 1}, new=True)
            server.stop()
            for op in (
                store.load(sid),
                store.save(sid, {"b": 2}, new=False),
                store.take(sid, {"a"}),
                store.delete(sid),
                store.purge_expired(),
            ):
                await expect_store_error(op, TIMEOUT + 0.5, match="PostgreSQL session store")
            server.start()  # same data folder: the session is still there
            record = await store.load(sid)
            assert record is not None and record.data == {"a": 1}
            assert await store.save(sid, {"b": 2}, new=False)
        finally:
            await store.close()

    asyncio.run(main())


def test_row_lock_held_past_the_timeout_gives_store_error_and_no_write(
    postgres_server: PostgresServer,
) -> None:
    import asyncpg

    async def main() -> None:
        store = make_store(postgres_server.url, table="locked_sessions")
        sid = new_session_id()
        assert await store.save(sid, {"a": 1}, new=True)
        blocker = await asyncpg.connect(postgres_server.url)
        try:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT 1 FROM locked_sessions WHERE sid = $1 FOR UPDATE", sid)
            started = time.monotonic()
            with pytest.raises(SessionStoreError, match="timed out"):
                await store.save(sid, {"b": 2}, new=False)
            assert time.monotonic() - started < TIMEOUT + 0.5
            await tx.rollback()
            await asyncio.sleep(0.2)  # the cancelled statement is gone with its connection
            record = await store.load(sid)
            assert record is not None and record.data == {"a": 1}  # nothing half-written
            assert await store.save(sid, {"c": 3}, new=False)  # and the store still works
        finally:
            await blocker.close()
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize("value", ["a\x00b", ["ok", {"k": "\x00"}], {"nul\x00key": 1}])
def test_nul_character_is_a_type_error_naming_the_key(
    postgres_server: PostgresServer, value: Any
) -> None:
    async def main() -> None:
        store = make_store(postgres_server.url)
        try:
            sid = new_session_id()
            with pytest.raises(TypeError, match=r"'note'.*NUL"):
                await store.save(sid, {"ok": 1, "note": value}, new=True)
            assert await store.load(sid) is None
            # The escaped text of a backslash and "u0000" is an ordinary string.
            assert await store.save(sid, {"note": "\\u0000"}, new=True)
            record = await store.load(sid)
            assert record is not None and record.data == {"note": "\\u0000"}
        finally:
            await store.close()

    asyncio.run(main())


def test_bad_table_name_is_refused() -> None:
    with pytest.raises(ValueError, match="identifier"):
        open_store("postgresql://127.0.0.1/app", table="x; DROP TABLE users")


class CountingPage(RequestHandler):
    uses_session = True
    hits = 0

    def get(self) -> None:
        CountingPage.hits += 1
        self.session["seen"] = True
        self.write("ok")


def test_database_down_gives_503_page_and_the_handler_never_runs(
    server: PostgresServer,
) -> None:
    async def main() -> None:
        app = Application(
            [("/page", CountingPage)],
            test_settings(session_store=server.url, session_timeout=TIMEOUT),
        )
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        http = tornado.httpserver.HTTPServer(app)
        http.add_sockets(sockets)
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/page"
        client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        try:
            CountingPage.hits = 0
            ok = await client.fetch(url, raise_error=False)
            assert ok.code == 200 and CountingPage.hits == 1
            cookie = ok.headers["Set-Cookie"].split(";", 1)[0]
            server.stop()
            down = await client.fetch(url, headers={"Cookie": cookie}, raise_error=False)
            assert down.code == 503
            body = down.body.decode()
            assert "session store is unavailable" in body and "Traceback" not in body
            assert CountingPage.hits == 1  # refused before the handler ran
            server.start()
            back = await client.fetch(url, headers={"Cookie": cookie}, raise_error=False)
            assert back.code == 200 and CountingPage.hits == 2  # recovered, same session
            assert "Set-Cookie" not in back.headers or "session=" not in back.headers["Set-Cookie"]
        finally:
            client.close()
            http.stop()
            await app.aclose()

    asyncio.run(main())
