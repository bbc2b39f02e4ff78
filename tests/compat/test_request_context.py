"""Each request runs in its own task and context, as on Tornado.

Tornado runs every handler in a Task of its own, which copies the context: a
``ContextVar`` a handler sets (the current user, a request id for logging) ends with the
request, and ``asyncio.current_task()`` in a handler is that request's task. Tornado's own
suite checks the second (``CancellationTest.test_cancelled_task``); these tests check
both over one keep-alive connection, on both connection layers.
"""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path

import pytest
import tornado.netutil
import tornado.web

from webframe import Application, RequestHandler, Settings
from webframe.server import create_http_server

USER: contextvars.ContextVar[str] = contextvars.ContextVar("compat_user", default="nobody")


class SetUser(RequestHandler):
    def get(self) -> None:
        USER.set(self.get_argument("name"))
        self.write("set")


class SetUserLater(RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0)
        USER.set(self.get_argument("name"))
        self.write("set")


class ReadUser(RequestHandler):
    def get(self) -> None:
        self.write(USER.get())


class CancelOwnTask(RequestHandler):
    async def get(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)


def make_app(tmp_path: Path) -> Application:
    settings = Settings(
        cookie_secret="compat-request-context-secret-0123456789",
        xsrf=False,
        session_store="memory://",
        instance_path=str(tmp_path),
    )
    return Application(
        [
            tornado.web.url("/set", SetUser),
            tornado.web.url("/set-later", SetUserLater),
            tornado.web.url("/read", ReadUser),
            tornado.web.url("/cancel", CancelOwnTask),
        ],
        settings,
        template_path=str(tmp_path),
    )


async def exchange(impl: str, tmp_path: Path, paths: list[str]) -> list[tuple[int, bytes]]:
    """Send ``paths`` one after the other on one keep-alive connection; (status, body)s."""
    server = create_http_server(make_app(tmp_path), impl=impl)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    answers: list[tuple[int, bytes]] = []
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in paths:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            lines = head.decode("latin-1").split("\r\n")
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length:")
            )
            body = await asyncio.wait_for(reader.readexactly(length), 5)
            answers.append((int(lines[0].split()[1]), body))
    finally:
        writer.close()
        server.stop()
        await server.close_all_connections()
    return answers


@pytest.mark.parametrize(
    ("impl", "setter"),
    [
        # Set before the handler first suspends (webframe runs it then without a Task).
        ("tornado", "/set"),
        ("httptools", "/set"),
        # Set after a suspension: the handler is then in a Task of its own.
        ("tornado", "/set-later"),
        ("httptools", "/set-later"),
    ],
)
def test_a_context_var_set_by_a_request_ends_with_it(
    impl: str, setter: str, tmp_path: Path
) -> None:
    answers = asyncio.run(exchange(impl, tmp_path, [f"{setter}?name=alice", "/read"]))
    assert answers == [(200, b"set"), (200, b"nobody")]


@pytest.mark.parametrize("impl", ["tornado", "httptools"])
def test_a_handler_cancelling_its_own_task_gets_a_500_and_the_connection_goes_on(
    impl: str, tmp_path: Path
) -> None:
    answers = asyncio.run(exchange(impl, tmp_path, ["/cancel", "/read"]))
    assert [status for status, _ in answers] == [500, 200]
