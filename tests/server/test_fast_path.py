"""The per-request fast paths on the httptools layer behave as Tornado's slow ones.

A synchronous handler answers within the call that delivered its request (no Task,
no loop turn); a handler that suspends goes on in a Task; failures are answered and
logged as Tornado does; debug mode (template/static caches off) keeps Tornado's path.
Driven in process through a fake transport, so what runs when is observable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import tornado.web

from webframe import Application, RequestHandler, Settings
from webframe.server.httptools_impl import HTTPToolsProtocol
from webframe.server.httptools_server import HTTPToolsServer

HOST = b"Host: t\r\n"


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closing = False

    def write(self, data: Any) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000)}.get(name, default)


hits: list[str] = []


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function on a fresh asyncio loop."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class Sync(RequestHandler):
    def get(self) -> None:
        hits.append("sync")
        self.write("sync")


class Suspends(RequestHandler):
    async def get(self) -> None:
        hits.append("before")
        await asyncio.sleep(0.01)
        hits.append("after")
        self.write("slept")


class FailsLater(RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0)
        hits.append("fails")
        raise RuntimeError("boom")


class AsyncPrepare(RequestHandler):
    async def prepare(self) -> None:
        await asyncio.sleep(0)
        hits.append("prepared")

    def get(self) -> None:
        self.write("prepared")


def connect(debug: bool = False) -> tuple[HTTPToolsProtocol, FakeTransport]:
    routes = [("/sync", Sync), ("/suspends", Suspends), ("/fails", FailsLater),
              ("/prepare", AsyncPrepare)]
    app = Application(routes, Settings(cookie_secret="x" * 40, debug=debug, access_log=False))
    proto = HTTPToolsProtocol(HTTPToolsServer(app))
    transport = FakeTransport()
    proto.connection_made(transport)
    return proto, transport


async def answered(transport: FakeTransport, count: int = 1) -> bytes:
    for _ in range(500):
        if bytes(transport.out).count(b"HTTP/1.1 ") >= count:
            await asyncio.sleep(0.005)  # the body, if written apart
            return bytes(transport.out)
        await asyncio.sleep(0.005)
    raise AssertionError(f"no answer: {bytes(transport.out)!r}")


@pytest.fixture(autouse=True)
def _clear() -> None:
    hits.clear()


@in_loop
async def test_a_synchronous_handler_answers_before_data_received_returns() -> None:
    proto, transport = connect()
    tasks = len(asyncio.all_tasks())
    proto.data_received(b"GET /sync HTTP/1.1\r\n" + HOST + b"\r\n")
    assert hits == ["sync"]
    assert transport.out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.out.endswith(b"\r\n\r\nsync")
    assert len(asyncio.all_tasks()) == tasks  # no Task was made for the request


@in_loop
async def test_pipelined_synchronous_requests_answer_in_order() -> None:
    proto, transport = connect()
    proto.data_received(
        b"GET /sync HTTP/1.1\r\n" + HOST + b"\r\n" + b"GET /sync?2 HTTP/1.1\r\n" + HOST + b"\r\n"
    )
    await answered(transport, 2)
    assert hits == ["sync", "sync"]
    assert bytes(transport.out).count(b"HTTP/1.1 200 OK") == 2


@in_loop
async def test_a_handler_that_suspends_goes_on_in_a_task() -> None:
    proto, transport = connect()
    proto.data_received(b"GET /suspends HTTP/1.1\r\n" + HOST + b"\r\n")
    assert hits == ["before"] and not transport.out
    out = await answered(transport)
    assert hits == ["before", "after"]
    assert out.endswith(b"slept")
    # The next request on the connection is served once this one is answered.
    proto.data_received(b"GET /prepare HTTP/1.1\r\n" + HOST + b"\r\n")
    out = await answered(transport, 2)
    assert hits[-1] == "prepared" and out.endswith(b"prepared")


@in_loop
async def test_a_failure_after_suspending_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    proto, transport = connect()
    with caplog.at_level(logging.ERROR, logger="tornado.application"):
        proto.data_received(b"GET /fails HTTP/1.1\r\n" + HOST + b"\r\n")
        out = await answered(transport)
    assert out.startswith(b"HTTP/1.1 500 ")
    assert hits == ["fails"]
    assert any("boom" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


@in_loop
async def test_an_exception_escaping_the_handler_reaches_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: seen.append(ctx))

    async def broken(self: Any, *args: Any, **kwargs: Any) -> None:
        raise KeyError("escaped")

    monkeypatch.setattr(tornado.web.RequestHandler, "_execute", broken)
    proto, _transport = connect()
    proto.data_received(b"GET /sync HTTP/1.1\r\n" + HOST + b"\r\n")
    for _ in range(20):
        await asyncio.sleep(0)
    assert [type(c.get("exception")) for c in seen] == [KeyError]
    assert hits == []


@in_loop
async def test_debug_mode_keeps_tornados_task_per_request() -> None:
    # debug turns the template and static caches off; Tornado's execute resets them.
    proto, transport = connect(debug=True)
    proto.data_received(b"GET /sync HTTP/1.1\r\n" + HOST + b"\r\n")
    assert hits == [] and not transport.out
    out = await answered(transport)
    assert hits == ["sync"] and out.endswith(b"sync")
