"""In-process per-request cost of webframe on the httptools layer (no sockets, no wrk).

``python -m bench.inproc [hello|page|json|static] [--n N] [--repeat R] [--profile]``:
builds the benchmark app as ``bench/servers/webframe_app.py`` does, attaches an
``HTTPToolsProtocol`` to a fake transport and feeds it N keep-alive requests one
after another, running the loop until each answer is complete. Prints the best of
R CPU µs per request (process time; steadier than wrk on a shared machine, and
without the socket and loop I/O costs, which are the same for every step).
``--profile`` prints the top cProfile entries instead; ``--without eager|clear``
turns one of the fast paths off.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.servers import webframe_app
from bench.servers.common import COOKIE_SECRET, STATIC_NAME, TEMPLATES, write_static

REQUESTS = {
    "hello": b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    "page": b"GET /page HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    "json": None,
    "static": b"GET /static/" + STATIC_NAME.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
}


def _json_request() -> bytes:
    body = json.dumps({"name": "bench", "items": list(range(10)), "ok": True}).encode()
    head = (
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False

    def write(self, data: Any) -> None:
        self.written += 1

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


async def _run(scenario: str, n: int, repeat: int, profile: bool, static_dir: str) -> None:
    from webframe import Application, Settings
    from webframe.server.httptools_impl import HTTPToolsProtocol
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
    server = HTTPToolsServer(app)
    request = REQUESTS[scenario] or _json_request()
    proto = HTTPToolsProtocol(server)
    transport = _Transport()
    proto.connection_made(transport)

    loop = asyncio.get_running_loop()

    async def serve(count: int) -> None:
        for _ in range(count):
            # From a loop callback, as a transport delivers bytes (not inside a task).
            fed = loop.create_future()
            loop.call_soon(lambda f=fed: (proto.data_received(request), f.set_result(None)))
            await fed
            while proto._current is not None:
                await asyncio.sleep(0)
            if transport.closing:
                raise SystemExit("the server closed the connection")

    await serve(200)  # warm-up: templates compiled, caches filled
    if profile:
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        await serve(n)
        prof.disable()
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(35)
        return
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        await serve(n)
        best = min(best, (time.process_time() - start) / n)
    print(f"{scenario}: {best * 1e6:.1f} µs/request (best of {repeat} x {n})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inproc")
    p.add_argument("scenarios", nargs="*", default=["hello"])
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
    ns = p.parse_args(argv)
    from webframe.server import tornado_impl

    if "eager" in ns.without:
        tornado_impl.CAN_EXECUTE_EAGERLY = False
    if "clear" in ns.without:
        tornado_impl.CAN_CLEAR_FAST = False
    with tempfile.TemporaryDirectory() as tmp:
        write_static(Path(tmp))
        for scenario in ns.scenarios:
            asyncio.run(_run(scenario, ns.n, ns.repeat, ns.profile, tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
