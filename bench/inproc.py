"""In-process per-request cost of webframe on the httptools layer (no sockets, no wrk).

``python -m bench.inproc [SCENARIO ...] [--n N] [--repeat R] [--profile]``, SCENARIO
one of hello, page, json, static, session-read-memory, session-read-sqlite:
builds the benchmark app as ``bench/servers/webframe_app.py`` does, attaches an
``HTTPToolsProtocol`` to a fake transport and feeds it N keep-alive requests one
after another, running the loop until each answer is complete. Prints the best of
R CPU µs per request (process time; steadier than wrk on a shared machine, and
without the socket and loop I/O costs, which are the same for every step).
``--profile`` prints the top cProfile entries instead; ``--without eager|clear``
turns one of the fast paths off.

``session-read-memory``/``-sqlite`` (:mod:`bench.inproc_sessions`): the app of
``webframe_app.py --scenario session-read`` with that store, set up as
``bench/scenarios.py`` starts it (``--session-store``, ``--instance-path`` in a
temporary folder); a session is started with ``GET LOGIN_PATH`` on its own
connection and every request carries its cookie, as the wrk load of
``bench/sessionload.py`` does. ``--session-cookie VALUE`` sends another ``Cookie``
header instead (a bad one makes the run fail: that is the check that the session
really is read).

Every batch is checked after it ran: N answers, all ``200`` (hello and the session
scenarios: with the hello body; sessions: no cookie set, and ``GET COUNTER_PATH``
with the same cookie answers the session's counter), else the run fails with exit
status 1 rather than timing an error page. The check costs a few ``bytes.count``
over the answers (counted in callgrind figures, the same for every scenario).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import inproc_sessions
from bench.servers import webframe_app
from bench.servers.common import COOKIE_SECRET, HELLO, STATIC_NAME, TEMPLATES, write_static

REQUESTS = {
    "hello": b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    "page": b"GET /page HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    "json": None,
    "static": b"GET /static/" + STATIC_NAME.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
}
SCENARIOS = [*REQUESTS, *inproc_sessions.STORES]


def _json_request() -> bytes:
    body = json.dumps({"name": "bench", "items": list(range(10)), "ok": True}).encode()
    head = (
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class RunFailed(Exception):
    """An answer was not the one the scenario measures."""


def check_ok(data: bytes, n: int, body: bytes | None) -> None:
    """``data`` (all a batch wrote) must hold ``n`` answers, all 200 (with ``body``)."""
    answers = data.count(b"HTTP/1.1 ")
    ok = data.count(b"HTTP/1.1 200 OK\r\n")
    if answers != n or ok != n or (body is not None and data.count(b"\r\n\r\n" + body) != n):
        raise RunFailed(f"expected {n} answers 200, got {answers} ({ok} 200): {data[:300]!r}")


class _Transport(asyncio.Transport):
    """Keeps what the server writes (``data``), until ``take()``."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closing = False

    def write(self, data: Any) -> None:
        self.data += data

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out

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
        return {"peername": ("127.0.0.1", 40000)}.get(name, default)


class _Connection:
    """One keep-alive connection of ``server`` on a fake transport."""

    def __init__(self, server: Any) -> None:
        from webframe.server.httptools_impl import HTTPToolsProtocol

        self.proto = HTTPToolsProtocol(server)
        self.transport = _Transport()
        self.proto.connection_made(self.transport)

    async def serve(self, request: bytes, count: int) -> None:
        loop = asyncio.get_running_loop()
        proto = self.proto

        def deliver(fed: asyncio.Future[None]) -> None:
            proto.data_received(request)
            fed.set_result(None)

        for _ in range(count):
            # From a loop callback, as a transport delivers bytes (not inside a task).
            fed: asyncio.Future[None] = loop.create_future()
            loop.call_soon(deliver, fed)
            await fed
            while proto._current is not None:
                await asyncio.sleep(0)
            if self.transport.closing:
                raise RunFailed("the server closed the connection")

    def close(self) -> None:
        self.transport.closing = True
        self.proto.connection_lost(None)


async def _exchange(server: Any, request: bytes) -> bytes:
    """One request on a new connection; the bytes of its answer."""
    conn = _Connection(server)
    try:
        await conn.serve(request, 1)
        return conn.transport.take()
    finally:
        conn.close()


async def _setup(
    scenario: str, static_dir: str, cookie: str | None
) -> tuple[Any, bytes, Callable[[bytes, int], None], Callable[[], Any] | None, Any]:
    """(server, request, batch check, final check, app to close) for ``scenario``."""
    if scenario in inproc_sessions.STORES:
        app, server, request, check, final = await inproc_sessions.start(
            scenario, Path(static_dir), cookie, _exchange
        )
        return server, request, check, final, app
    from webframe import Application, Settings
    from webframe.server.httptools_server import HTTPToolsServer

    settings = Settings(
        cookie_secret=COOKIE_SECRET,
        access_log=False,
        debug=False,
        xsrf=True,
        template_path=TEMPLATES,
        static_path=static_dir if scenario == "static" else "",
    )
    app = Application(webframe_app.ROUTES[scenario], settings)
    body = HELLO.encode() if scenario == "hello" else None

    def check_answers(data: bytes, n: int) -> None:
        check_ok(data, n, body)

    return HTTPToolsServer(app), REQUESTS[scenario] or _json_request(), check_answers, None, None


async def _run(
    scenario: str, n: int, repeat: int, profile: bool, static_dir: str, cookie: str | None
) -> None:
    server, request, check, final_check, app = await _setup(scenario, static_dir, cookie)
    conn = _Connection(server)

    async def serve(count: int) -> None:
        await conn.serve(request, count)
        check(conn.transport.take(), count)

    try:
        await serve(200)  # warm-up: templates compiled, caches filled
        if profile:
            prof = cProfile.Profile(time.process_time)
            prof.enable()
            await serve(n)
            prof.disable()
            stats = pstats.Stats(prof)
            stats.sort_stats("tottime").print_stats(35)
        else:
            best = float("inf")
            for _ in range(repeat):
                start = time.process_time()
                await serve(n)
                best = min(best, (time.process_time() - start) / n)
            print(f"{scenario}: {best * 1e6:.1f} µs/request (best of {repeat} x {n})")
        if final_check is not None:
            await final_check()
    finally:
        conn.close()
        if app is not None:
            await inproc_sessions.close(app)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inproc")
    p.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)} (default hello)")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument(
        "--without",
        action="append",
        default=[],
        choices=["eager", "clear"],
        help="turn a fast path off (compare a step with and without it in one run)",
    )
    p.add_argument(
        "--session-cookie",
        metavar="VALUE",
        help="session scenarios: send this Cookie header, not the login's (a bad one fails)",
    )
    ns = p.parse_args(argv)
    unknown = [name for name in ns.scenarios if name not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}")
    from webframe.server import tornado_impl

    if "eager" in ns.without:
        tornado_impl.CAN_EXECUTE_EAGERLY = False
    if "clear" in ns.without:
        tornado_impl.CAN_CLEAR_FAST = False
    for scenario in ns.scenarios or ["hello"]:
        # A folder per scenario: the static file, or the session store's instance path.
        with tempfile.TemporaryDirectory() as tmp:
            write_static(Path(tmp))
            try:
                asyncio.run(_run(scenario, ns.n, ns.repeat, ns.profile, tmp, ns.session_cookie))
            except (RunFailed, inproc_sessions.SessionRunError) as exc:
                print(f"{scenario}: run failed: {exc}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
