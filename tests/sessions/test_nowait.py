"""Session reads without awaiting: `SessionStore.load_nowait`, the record decoder's fast
path and the remembered verified cookies (`webframe.sessions.cookieids`)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from tests.support.sessions import session_id
from webframe import Application, RequestHandler
from webframe.sessions import MemoryStore, SQLiteStore
from webframe.sessions.cookieids import (
    HEADER_CACHE_SIZE,
    HEADER_MAX_LENGTH,
    VerifiedCookies,
)
from webframe.sessions.store import WOULD_BLOCK, Record, new_session_id
from webframe.testing import Client, test_settings

if TYPE_CHECKING:
    from tests.sessions.conftest import Backend, CountingStore, FakeClock


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def test_load_nowait_answers_what_load_answers(backend: Backend, clock: FakeClock) -> None:
    """Every backend: the same record as `load`, or WOULD_BLOCK (never a different one)."""

    async def main() -> None:
        async with backend.store(clock) as store:
            sid, unknown = new_session_id(), new_session_id()
            await store.save(sid, {"n": 1, "user": {"id": 7}}, new=True)
            assert await store.load(sid) is not None  # opens what the backend opens lazily
            for probe in (sid, unknown, "not-an-id"):
                got = store.load_nowait(probe)
                if got is not WOULD_BLOCK:
                    assert got == await store.load(probe), (backend.name, probe)
            clock.advance(601)  # past the idle timeout
            assert store.load_nowait(sid) in (None, WOULD_BLOCK)
            assert await store.load(sid) is None

    run(main())


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_memory_and_sqlite_answer_reads_at_once(
    kind: str, tmp_path: Path, clock: FakeClock
) -> None:
    async def main() -> None:
        store = (
            MemoryStore(clock=clock)
            if kind == "memory"
            else SQLiteStore(tmp_path / "s.db", clock=clock)
        )
        sid = new_session_id()
        await store.save(sid, {"n": 1}, new=True)
        record = store.load_nowait(sid)
        assert isinstance(record, Record) and record.data == {"n": 1}
        first = store.load_nowait(sid)
        assert isinstance(first, Record)
        first.data["n"] = 2  # each load gets its own objects
        assert store.load_nowait(sid) == record
        assert store.load_nowait(new_session_id()) is None
        assert store.load_nowait("x" * 43 + "'") is None
        await store.close()
        assert store.load_nowait(sid) in (None, WOULD_BLOCK)

    run(main())


def test_sqlite_waits_when_it_cannot_read_at_once(tmp_path: Path, clock: FakeClock) -> None:
    async def main() -> None:
        path = tmp_path / "s.db"
        store = SQLiteStore(path, clock=clock)
        sid = new_session_id()
        assert store.load_nowait(sid) is WOULD_BLOCK  # the loop's connection is not open yet
        await store.save(sid, {"n": 1}, new=True)
        assert isinstance(store.load_nowait(sid), Record)
        with sqlite3.connect(path) as other:
            other.execute("ALTER TABLE webframe_sessions RENAME TO moved")
        # An error on the loop's connection is left to the awaited path, which reports it.
        assert store.load_nowait(sid) is WOULD_BLOCK
        await store.close()

    run(main())


def test_stores_that_replace_load_are_always_awaited(
    clock: FakeClock, counting: type[CountingStore]
) -> None:
    class Slow(MemoryStore):
        async def _load(self, sid: str, now: float) -> Record | None:
            return None  # e.g. a test double or a store reading elsewhere

    async def main() -> None:
        sid = new_session_id()
        slow = Slow(clock=clock)
        await slow.save(sid, {"n": 1}, new=True)
        assert slow.load_nowait(sid) is WOULD_BLOCK
        wrapped = counting(MemoryStore(clock=clock))
        await wrapped.save(sid, {"n": 1}, new=True)
        assert wrapped.load_nowait(sid) is WOULD_BLOCK
        assert await wrapped.load(sid) is not None and wrapped.names() == ["save", "load"]

    run(main())


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        ('{"a":[1,{"b":null}],"c":"\\u00e9"}', {"a": [1, {"b": None}], "c": "é"}),
        (' {"a": 1} \n', {"a": 1}),  # not compact: still read, by json.loads
        (b'{"a":1}', {"a": 1}),
        ('{"a":1}x', {}),  # trailing garbage: corrupt
        ('{"a":1', {}),
        ("[1]", {}),
        ('"\\ud800', {}),
    ],
)
def test_records_decode_as_json_loads_does(
    blob: str | bytes, expected: dict[str, Any], clock: FakeClock
) -> None:
    store = MemoryStore(clock=clock)
    assert store._decode_data(new_session_id(), blob) == expected


def test_verified_cookies_are_good_until_the_signature_gets_too_old() -> None:
    cookies = VerifiedCookies()
    header = 'a=1; session="2|1:0|10:1700000000|7:session|sig"'
    raw = "2|1:0|10:1700000000|7:session|sig"
    assert cookies.from_header(header, 100.0) is None
    assert cookies.from_value(raw) is None
    cookies.remember(header, raw, "S" * 43, 200.0)
    assert cookies.from_header(header, 199.9) == "S" * 43
    assert cookies.from_header(header, 200.0) is None  # too old now: read and checked again
    assert cookies.from_header(header + " ", 150.0) is None  # only the exact header
    assert cookies.from_value(raw) == ("S" * 43, 200.0)


def test_only_short_headers_are_remembered_and_the_cache_is_bounded() -> None:
    cookies = VerifiedCookies()
    long_header = "x=" + "y" * HEADER_MAX_LENGTH + '; session="v"'
    cookies.remember(long_header, "v", "S" * 43, 200.0)
    assert cookies.from_header(long_header, 100.0) is None
    assert cookies.from_value("v") == ("S" * 43, 200.0)
    for i in range(HEADER_CACHE_SIZE + 1):
        cookies.remember(f'p={i}; session="v"', "v", "S" * 43, 200.0)
    assert len(cookies.by_header) <= HEADER_CACHE_SIZE


# Over HTTP: a handler with ``uses_session`` reads the session in ``prepare`` itself ------------


class ReadHandler(RequestHandler):
    uses_session = True
    #: what ``prepare`` returned on the last request (None: the session was read at once).
    prepared: ClassVar[list[object]] = []

    def prepare(self) -> Any:
        result = super().prepare()
        ReadHandler.prepared.append(result)
        return result

    def get(self) -> None:
        self.json({"n": self.session.get("n"), "sid": self.session.sid, "new": self.session.new})


class SetHandler(RequestHandler):
    def get(self) -> None:
        self.session["n"] = int(self.get_argument("n"))
        self.write("ok")


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path, io_loop: Any) -> Iterator[Any]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/s.db"
    settings = test_settings(session_store=url, instance_path=str(tmp_path / "instance"))
    application = Application([("/read", ReadHandler), ("/set", SetHandler)], settings)
    yield application
    io_loop.run_sync(application.aclose)


@pytest.mark.gen_test
async def test_a_session_read_over_http_needs_no_await(
    app: Application, webframe_client: Client
) -> None:
    await webframe_client.get("/set?n=5")
    sid = session_id(webframe_client.cookies)
    ReadHandler.prepared.clear()
    for _ in range(3):  # the second and third come from the remembered cookie
        r = await webframe_client.get("/read")
        assert json.loads(r.body) == {"n": 5, "sid": sid, "new": False}
    assert ReadHandler.prepared == [None, None, None]


@pytest.mark.gen_test
async def test_a_forged_cookie_reads_no_session(app: Application, webframe_client: Client) -> None:
    await webframe_client.get("/set?n=5")
    await webframe_client.get("/read")  # the genuine cookie is remembered now
    sid = session_id(webframe_client.cookies)
    assert sid is not None
    value = webframe_client.cookies.get("session")
    assert value is not None
    forged = value[:-1] + ("0" if value[-1] != "0" else "1")  # one signature digit changed
    forger = Client(webframe_client.http_client, webframe_client.base_url)  # an empty jar
    r = await forger.get("/read", headers={"Cookie": f"session={forged}"})
    data = json.loads(r.body)
    assert data["n"] is None and data["sid"] != sid and data["new"] is True
