"""The per-request fast paths on the httptools layer behave as Tornado's slow ones.

A synchronous handler answers within the call that delivered its request (no Task,
no loop turn); a handler that suspends goes on in a Task; failures are answered and
logged as Tornado does; debug mode (template/static caches off) keeps Tornado's path.
Driven in process through a fake transport, so what runs when is observable.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import tornado
import tornado.web
from tornado import httputil

from webframe import Application, RequestHandler, Settings
from webframe.server.httptools_impl import HTTPToolsProtocol
from webframe.server.httptools_server import HTTPToolsServer

from ._support import FakeTransport, receive

HOST = b"Host: t\r\n"


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


class Defaults(RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("X-Default", "yes")

    def get(self) -> None:
        self.set_header("X-Before", "1")
        self.set_status(201)
        if self.get_argument("fail", None):
            raise RuntimeError("fails after setting a header")
        self.write("defaults")


USER: contextvars.ContextVar[str] = contextvars.ContextVar("fast_path_user", default="nobody")
own_tasks: list[Any] = []


class SetUser(RequestHandler):
    def get(self) -> None:
        USER.set("alice")
        self.write("set")


class ReadUser(RequestHandler):
    def get(self) -> None:
        self.write(USER.get())


class CancelOwnTask(RequestHandler):
    async def get(self) -> None:
        task = asyncio.current_task()
        own_tasks.append(task)
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)
        hits.append("not cancelled")


class TimesOut(RequestHandler):
    async def get(self) -> None:
        # asyncio.timeout keeps current_task() from before the first suspension.
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(5)
        except TimeoutError:
            self.write("timed out")


def connect(debug: bool = False) -> tuple[HTTPToolsProtocol, FakeTransport]:
    routes = [("/sync", Sync), ("/suspends", Suspends), ("/fails", FailsLater),
              ("/prepare", AsyncPrepare), ("/defaults", Defaults),
              ("/set", SetUser), ("/read", ReadUser), ("/cancel", CancelOwnTask),
              ("/timeout", TimesOut)]
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


async def feed(proto: HTTPToolsProtocol, data: bytes) -> tuple[list[str], bytes]:
    """``data`` read from a loop callback, as the transport reads (not from
    inside a task); returns the hits and the output as they were when it returned."""
    done: asyncio.Future[tuple[list[str], bytes]] = asyncio.get_running_loop().create_future()

    def deliver() -> None:
        receive(proto, data)
        transport = proto.transport
        assert isinstance(transport, FakeTransport)
        done.set_result((list(hits), bytes(transport.out)))

    asyncio.get_running_loop().call_soon(deliver)
    return await done


@pytest.fixture(autouse=True)
def _clear() -> None:
    hits.clear()


@in_loop
async def test_a_synchronous_handler_answers_before_data_received_returns() -> None:
    proto, _transport = connect()
    tasks = len(asyncio.all_tasks())
    seen, out = await feed(proto, b"GET /sync HTTP/1.1\r\n" + HOST + b"\r\n")
    assert seen == ["sync"]
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith(b"\r\n\r\nsync")
    assert len(asyncio.all_tasks()) == tasks  # no Task was made for the request


@in_loop
async def test_pipelined_synchronous_requests_answer_in_order() -> None:
    proto, transport = connect()
    await feed(
        proto,
        b"GET /sync HTTP/1.1\r\n" + HOST + b"\r\n" + b"GET /sync?2 HTTP/1.1\r\n" + HOST + b"\r\n"
    )
    await answered(transport, 2)
    assert hits == ["sync", "sync"]
    assert bytes(transport.out).count(b"HTTP/1.1 200 OK") == 2


@in_loop
async def test_a_handler_that_suspends_goes_on_in_a_task() -> None:
    proto, transport = connect()
    seen, early = await feed(proto, b"GET /suspends HTTP/1.1\r\n" + HOST + b"\r\n")
    assert seen == ["before"] and not early
    out = await answered(transport)
    assert hits == ["before", "after"]
    assert out.endswith(b"slept")
    # The next request on the connection is served once this one is answered.
    await feed(proto, b"GET /prepare HTTP/1.1\r\n" + HOST + b"\r\n")
    out = await answered(transport, 2)
    assert hits[-1] == "prepared" and out.endswith(b"prepared")


@in_loop
async def test_a_failure_after_suspending_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    proto, transport = connect()
    with caplog.at_level(logging.ERROR, logger="tornado.application"):
        await feed(proto, b"GET /fails HTTP/1.1\r\n" + HOST + b"\r\n")
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
    await feed(proto, b"GET /sync HTTP/1.1\r\n" + HOST + b"\r\n")
    for _ in range(20):
        await asyncio.sleep(0)
    assert [type(c.get("exception")) for c in seen] == [KeyError]
    assert hits == []


@in_loop
async def test_debug_mode_keeps_tornados_task_per_request() -> None:
    # debug turns the template and static caches off; Tornado's execute resets them.
    proto, transport = connect(debug=True)
    seen, early = await feed(proto, b"GET /sync HTTP/1.1\r\n" + HOST + b"\r\n")
    assert seen == [] and not early
    out = await answered(transport)
    assert hits == ["sync"] and out.endswith(b"sync")


@in_loop
async def test_cleared_responses_carry_tornados_default_headers() -> None:
    proto, transport = connect()
    await feed(proto, b"GET /defaults HTTP/1.1\r\n" + HOST + b"\r\n")
    head = bytes(transport.out).split(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 201 Created"
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Server"] == f"TornadoServer/{tornado.version}"
    assert fields["Content-Type"] == "text/html; charset=UTF-8"
    assert fields["Date"] == httputil.format_timestamp(time.time()) or fields["Date"].endswith(
        " GMT"
    )
    assert fields["X-Default"] == "yes" and fields["X-Before"] == "1"


@in_loop
async def test_an_error_page_starts_from_cleared_headers(caplog: pytest.LogCaptureFixture) -> None:
    proto, transport = connect()
    with caplog.at_level(logging.CRITICAL, logger="tornado.application"):
        await feed(proto, b"GET /defaults?fail=1 HTTP/1.1\r\n" + HOST + b"\r\n")
        out = await answered(transport)
    head = out.split(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 500 ")
    assert b"X-Default: yes" in head  # set_default_headers ran again
    assert b"X-Before" not in head  # what the handler set before failing is gone


@in_loop
async def test_a_context_var_set_before_suspending_ends_with_the_request() -> None:
    proto, transport = connect()
    await feed(proto, b"GET /set HTTP/1.1\r\n" + HOST + b"\r\n")
    await feed(proto, b"GET /read HTTP/1.1\r\n" + HOST + b"\r\n")
    out = await answered(transport, 2)
    assert out.endswith(b"nobody")
    assert USER.get() == "nobody"


@pytest.mark.skipif(
    tornado.version_info < (6, 6),
    reason="Tornado 6.6 answers a cancelled handler with 500; 6.5 leaves it unanswered",
)
@in_loop
async def test_cancelling_current_task_before_suspending_cancels_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proto, transport = connect()
    await feed(proto, b"GET /cancel HTTP/1.1\r\n" + HOST + b"\r\n")
    out = await answered(transport)
    assert out.startswith(b"HTTP/1.1 500 ")
    await asyncio.sleep(0.01)
    (task,) = own_tasks
    assert task.cancelled() and task.done()
    assert hits == []
    await feed(proto, b"GET /read HTTP/1.1\r\n" + HOST + b"\r\n")  # the connection goes on
    assert (await answered(transport, 2)).endswith(b"nobody")


@in_loop
async def test_asyncio_timeout_entered_before_suspending_works() -> None:
    proto, transport = connect()
    await feed(proto, b"GET /timeout HTTP/1.1\r\n" + HOST + b"\r\n")
    out = await answered(transport)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"timed out")
