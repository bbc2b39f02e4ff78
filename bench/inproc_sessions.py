"""The session-read scenarios of :mod:`bench.inproc`: the app, the login, the checks.

``session-read-memory`` and ``session-read-sqlite`` build the app of
``bench/servers/webframe_app.py --scenario session-read`` with the flags
``bench/scenarios.py`` starts it with for that store (``--session-store URL
--instance-path WORKDIR/instance``, on the httptools layer), through the same
:func:`webframe.cli.parse_settings` call and defaults, and the server of
:func:`webframe.server.serve.create_server`. As ``bench/sessionload.py`` does
before a wrk run, a session is started with one GET of ``LOGIN_PATH`` on its own
connection; every measured request then carries that session's cookie.

The checks, so that a figure cannot silently measure something else: every answer
of a batch is a ``200`` with the hello body and sets or clears no cookie, and
``GET COUNTER_PATH`` with the very same ``Cookie`` header, before and after the
batches, answers the session's counter ``0`` (a cookie that does not load the session
answers ``None``). That last check is the one a bad cookie fails: the hello answer of
``GET /`` is the same bytes whether the session was found or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from bench.servers import webframe_app
from bench.servers.common import COUNTER_PATH, HELLO, LOGIN_PATH

#: scenario -> session store URL, as in bench/scenarios.py (``{workdir}`` is absolute).
STORES = {
    "session-read-memory": "memory://",
    "session-read-sqlite": "sqlite:///{workdir}/sessions.db",
}
SESSION_COOKIE = "session"
HOST = b"Host: 127.0.0.1:8080\r\n"
OK = b"HTTP/1.1 200 OK\r\n"


class SessionRunError(Exception):
    """The session app did not answer as a session read should."""


def build(scenario: str, workdir: Path) -> Any:
    """The application of the session-read server for ``scenario``'s store."""
    from webframe import Application
    from webframe.cli import parse_settings

    url = STORES[scenario].format(workdir=workdir)
    flags = ["--session-store", url, "--instance-path", f"{workdir}/instance"]
    settings = parse_settings(
        [*flags, "--http", "httptools"], defaults=webframe_app.server_defaults(None)
    )
    return Application(webframe_app.ROUTES["session-read"], settings)


def get(path: str, cookie: str | None = None) -> bytes:
    """The bytes of a keep-alive ``GET path`` (with a ``Cookie`` header if given)."""
    head = b"GET " + path.encode() + b" HTTP/1.1\r\n" + HOST
    if cookie is not None:
        head += b"Cookie: " + cookie.encode() + b"\r\n"
    return head + b"\r\n"


def split_answer(raw: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(status line, header lines, body) of one complete answer."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise SessionRunError(f"incomplete answer: {raw[:200]!r}")
    status, *headers = head.split(b"\r\n")
    return status, headers, body


def login_cookie(raw: bytes) -> str:
    """The ``Cookie`` header value carrying the session the login answer started."""
    status, headers, _ = split_answer(raw)
    cookies: SimpleCookie = SimpleCookie()
    for line in headers:
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "set-cookie":
            cookies.load(value.strip())
    if not status.startswith(b"HTTP/1.1 200 ") or SESSION_COOKIE not in cookies:
        raise SessionRunError(
            f"GET {LOGIN_PATH} answered {status!r} without a {SESSION_COOKIE!r} cookie"
        )
    # As a browser sends it back: the value exactly as set (quoted if it was).
    return f"{SESSION_COOKIE}={cookies[SESSION_COOKIE].coded_value}"


def check_counter(raw: bytes, cookie: str) -> None:
    """``GET COUNTER_PATH`` with the measured cookie must show the login's counter 0."""
    status, _, body = split_answer(raw)
    if not status.startswith(b"HTTP/1.1 200 ") or body != b"0":
        raise SessionRunError(
            f"GET {COUNTER_PATH} with Cookie {cookie!r} answered {status!r} {body[:80]!r}, "
            "not the session's counter 0: the cookie does not load the session"
        )


def check_batch(data: bytes, n: int) -> None:
    """``data`` (all a batch wrote) must be ``n`` answers ``200`` + hello, no cookie set."""
    body = b"\r\n\r\n" + HELLO.encode()
    answers = data.count(b"HTTP/1.1 ")
    if answers != n or data.count(OK) != n or data.count(body) != n:
        first = data[:300]
        raise SessionRunError(
            f"expected {n} answers 200 with {HELLO!r}, got {answers} answers: {first!r}"
        )
    if b"Set-Cookie" in data:
        raise SessionRunError("a session read set or cleared a cookie (session not loaded?)")


async def start(
    scenario: str,
    workdir: Path,
    cookie: str | None,
    exchange: Callable[[Any, bytes], Any],
) -> tuple[Any, Any, bytes, Callable[[bytes, int], None], Callable[[], Any]]:
    """(app, server, measured request, batch check, final check) for ``scenario``.

    ``exchange(server, request)`` is awaited for the bytes of one answer on a new
    connection. ``cookie`` replaces the login's (to see that a bad one fails).
    """
    from webframe.server.httptools_server import HTTPToolsServer
    from webframe.server.serve import create_server

    app = build(scenario, workdir)
    app.start_background_tasks()  # as webframe.server.serve does in each worker
    server = create_server(app, app.wf_settings)
    if not isinstance(server, HTTPToolsServer):
        raise SessionRunError("the session app is not on the httptools layer")
    sent = cookie or ""

    async def final_check() -> None:
        check_counter(await exchange(server, get(COUNTER_PATH, sent)), sent)

    try:
        login = login_cookie(await exchange(server, get(LOGIN_PATH)))
        sent = login if cookie is None else cookie
        await final_check()
    except BaseException:
        await close(app)
        raise
    return app, server, get("/", sent), check_batch, final_check


async def close(app: Any) -> None:
    await app.aclose()
    await asyncio.sleep(0)
