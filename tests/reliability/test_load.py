"""500 keep-alive clients for WEBFRAME_LOAD_SECONDS (default 30) against a session
counter served by a ``--no-debug`` subprocess: no errors, no lost session writes.

Each client counts the 200s it got; afterwards its session's counter must equal that
count exactly (and every answer must be the previous one plus one)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.redis_server import RedisServer
from tests.security._support import ServerProcess

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parent / "apps" / "counter_app.py"
CLIENTS = int(os.environ.get("WEBFRAME_LOAD_CLIENTS", "500"))
SECONDS = float(os.environ.get("WEBFRAME_LOAD_SECONDS", "30"))
COOKIE = re.compile(rb"^set-cookie:\s*(session=[^;\r\n]*)", re.I | re.M)


@dataclass
class ClientStats:
    accepted: int = 0
    last_value: int = 0
    errors: list[str] = field(default_factory=list)
    cookie: bytes = b""


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"content-length:\s*(\d+)", head, re.I)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return status, head, body


async def one_client(port: int, deadline: float, stats: ClientStats, start_delay: float) -> None:
    await asyncio.sleep(start_delay)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline:
            cookie = b"Cookie: " + stats.cookie + b"\r\n" if stats.cookie else b""
            writer.write(b"GET /count HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cookie + b"\r\n")
            status, head, body = await asyncio.wait_for(read_answer(reader), 30)
            if status != 200:
                stats.errors.append(f"{status}: {body[:120]!r}")
                continue
            value = int(body)
            if value != stats.last_value + 1:
                stats.errors.append(f"counter went {stats.last_value} -> {value}")
            stats.accepted += 1
            stats.last_value = value
            m = COOKIE.search(head)
            if m:
                stats.cookie = m.group(1)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
        stats.errors.append(f"connection failed: {exc!r}")
    finally:
        writer.close()


async def peek(port: int, cookie: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /peek HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + b"\r\n\r\n")
        status, _head, body = await asyncio.wait_for(read_answer(reader), 30)
        assert status == 200, (status, body)
        return int(body)
    finally:
        writer.close()


async def run_load(port: int) -> list[ClientStats]:
    deadline = time.monotonic() + SECONDS
    stats = [ClientStats() for _ in range(CLIENTS)]
    # Connections are opened over the first second (the listen backlog is 128).
    await asyncio.gather(*(one_client(port, deadline, s, i / CLIENTS) for i, s in enumerate(stats)))
    sem = asyncio.Semaphore(50)

    async def check(s: ClientStats) -> None:
        if not s.cookie:
            return
        async with sem:
            stored = await peek(port, s.cookie)
        if stored != s.accepted:
            s.errors.append(f"session holds {stored}, client got {s.accepted} answers")

    await asyncio.gather(*(check(s) for s in stats))
    return stats


def assert_clean_load(stats: list[ClientStats]) -> None:
    errors = [e for s in stats for e in s.errors]
    total = sum(s.accepted for s in stats)
    served = sum(1 for s in stats if s.accepted > 0)
    kinds = Counter(re.sub(r"\d+", "N", e)[:80] for e in errors)
    assert not errors, f"{len(errors)} errors in {total} requests: {kinds.most_common(5)}"
    assert served == len(stats), f"only {served}/{len(stats)} clients were served"
    assert total >= len(stats) * 2, total
    print(f"load: {total} requests in {SECONDS:.0f}s from {len(stats)} clients")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server




@pytest.mark.parametrize(
    "store",
    ["sqlite", "redis"],
)
def test_500_keepalive_clients_lose_no_session_write(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # No templates: error answers are the built-in plain page (the demo's error.html
    # links to routes this app does not have). The folder exists, empty: a missing
    # template_path stops start-up.
    (tmp_path / "no-templates").mkdir()
    env = {"WEBFRAME_TEMPLATE_PATH": str(tmp_path / "no-templates")}
    if store == "redis":
        env["WEBFRAME_SESSION_STORE"] = request.getfixturevalue("redis").url
    server = ServerProcess(tmp_path / "instance", script=APP, env=env).start()
    try:
        stats = asyncio.run(run_load(server.port))
        assert server.running(), server.log()[-2000:]
        assert "Traceback" not in server.log(), server.log()[-3000:]
    finally:
        server.kill()
    assert_clean_load(stats)
