"""The httptools connection layer over raw sockets: HTTP/1.1 as Tornado serves it,
refusals that run nothing, timeouts, flow control, TLS, WebSocket and graceful stop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tornado.httpclient
import tornado.web
import tornado.websocket
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer

from webframe import Application
from webframe.server import HTTPToolsServer, create_http_server
from webframe.testing import test_settings

from ._support import LAYERS, Recorder, exchange, responses, serving


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _clear_hits() -> None:
    Recorder.hits = []


class NoBody(tornado.web.RequestHandler):
    def get(self, code: str) -> None:
        self.set_status(int(code))


class Chunky(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write("one,")
        await self.flush()
        self.write("two")


@tornado.web.stream_request_body
class Streamed(tornado.web.RequestHandler):
    """Reads its body slowly; refuses in prepare() when asked to."""

    def prepare(self) -> None:
        self.got = bytearray()
        self.pieces = 0
        if self.request.path.endswith("/refuse"):
            raise tornado.web.HTTPError(403)

    async def data_received(self, chunk: bytes) -> None:
        self.pieces += 1
        self.got += chunk
        await asyncio.sleep(0.001)

    def put(self, *args: str) -> None:
        self.write(b"streamed %d" % len(self.got))

    post = put


class Slow(tornado.web.RequestHandler):
    async def get(self, delay: str) -> None:
        Recorder.hits.append(f"slow start {delay}")
        await asyncio.sleep(float(delay))
        Recorder.hits.append(f"slow end {delay}")
        self.write(f"slept {delay}")


class Big(tornado.web.RequestHandler):
    """Writes 32 MiB in 1 MiB pieces, waiting on each flush; records the server's
    output buffer after each."""

    buffered: list[int] = []

    async def get(self) -> None:
        piece = b"x" * (1 << 20)
        transport = getattr(self.request.connection, "_proto", None)
        for _ in range(32):
            self.write(piece)
            await self.flush()
            if transport is not None:
                Big.buffered.append(transport.transport.get_write_buffer_size())


class Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message)


def make_app() -> tornado.web.Application:
    return tornado.web.Application(
        [
            (r"/nobody/(\d+)", NoBody),
            (r"/chunky", Chunky),
            (r"/stream(/refuse)?", Streamed),
            (r"/big", Big),
            (r"/slow/([0-9.]+)", Slow),
            (r"/ws", Echo),
            (r"/(.*)", Recorder),
        ]
    )


GET = b"GET /%b HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("layer", LAYERS)
def test_keep_alive_and_pipelining_answer_in_order(layer: str) -> None:
    async def go() -> None:
        async with serving(make_app(), layer) as (port, _):
            data = (
                GET % b"a"
                + b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                + b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                + GET % b"d"
                + b"GET /e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            out = responses(await exchange(port, data))
        assert [r[0] for r in out] == [200] * 5
        assert out[0][2].startswith(b"GET /a 127.0.0.1 http")
        assert out[1][2] == b"len=5:hello"
        assert out[2][2] == b"len=5:abcde"
        assert out[4][1]["connection"] == "close"
        assert Recorder.hits == ["GET /a", "POST /b", "POST /c", "GET /d", "GET /e"]

    run(go)


@pytest.mark.parametrize("layer", LAYERS)
def test_a_slow_answer_holds_back_the_pipelined_ones(layer: str) -> None:
    async def go() -> None:
        async with serving(make_app(), layer) as (port, _):
            last = b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            data = GET % b"slow/0.3" + GET % b"slow/0.01" + last
            out = responses(await exchange(port, data, timeout=3))
        assert [r[2][:11] for r in out] == [b"slept 0.3", b"slept 0.01", b"GET /after "]
        # One at a time: the second did not start before the first ended.
        assert Recorder.hits[:4] == [
            "slow start 0.3", "slow end 0.3", "slow start 0.01", "slow end 0.01"
        ]

    run(go)


def test_pipelined_requests_split_at_every_byte_are_answered_in_order() -> None:
    async def go() -> None:
        async with serving(make_app()) as (port, _):
            data = GET % b"one" + b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
            data += b"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
            out = responses(await asyncio.wait_for(reader.read(), 5))
            writer.close()
        assert [r[2][:8] for r in out] == [b"GET /one", b"len=2:hi", b"GET /thr"]

    run(go)


@pytest.mark.parametrize("layer", LAYERS)
def test_http10_closes_unless_keep_alive_asked(layer: str) -> None:
    async def go() -> None:
        async with serving(make_app(), layer) as (port, _):
            plain = await exchange(port, b"GET /a HTTP/1.0\r\n\r\n" + GET % b"never")
            kept = await exchange(
                port,
                b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                b"GET /b HTTP/1.0\r\n\r\n",
            )
        assert len(responses(plain)) == 1
        both = responses(kept)
        assert len(both) == 2 and both[0][1]["connection"] == "Keep-Alive"
        if layer == "httptools":
            # (Tornado's own layer runs a request pipelined behind one it will close.)
            assert "GET /never" not in Recorder.hits

    run(go)


@pytest.mark.parametrize("layer", LAYERS)
def test_head_204_304_have_no_body_and_chunked_without_length(layer: str) -> None:
    async def go() -> None:
        async with serving(make_app(), layer) as (port, _):
            head = await exchange(port, b"HEAD /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = (
                GET % b"nobody/204"
                + GET % b"nobody/304"
                + b"GET /chunky HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            raw = await exchange(port, data)
        top, _, rest = head.partition(b"\r\n\r\n")
        assert top.startswith(b"HTTP/1.1 200") and rest == b""
        assert b"Content-Length: 8" in top
        out = responses(raw)
        assert [r[0] for r in out] == [204, 304, 200]
        for _, headers_, body in out[:2]:
            assert body == b"" and "transfer-encoding" not in headers_
        assert out[2][1]["transfer-encoding"] == "chunked" and out[2][2] == b"one,two"

    run(go)


@pytest.mark.parametrize("layer", LAYERS)
def test_expect_continue_is_sent_only_when_the_body_is_read(layer: str) -> None:
    async def go() -> None:
        async with serving(make_app(), layer) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"PUT /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert first.startswith(b"HTTP/1.1 100")
            writer.write(b"body")
            rest = await asyncio.wait_for(reader.readuntil(b"streamed 4"), 5)
            assert rest.startswith(b"HTTP/1.1 200")
            writer.close()
            refused = await exchange(
                port,
                b"PUT /stream/refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                b"Expect: 100-continue\r\n\r\n",
                timeout=2,
            )
        assert refused.startswith(b"HTTP/1.1 403"), refused[:80]
        assert b" 100 " not in refused

    run(go)


HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

REFUSED = {
    "cl-and-te": (b"Content-Length: 40\r\nTransfer-Encoding: chunked\r\n", 400),
    "gzip-chunked": (b"Transfer-Encoding: gzip, chunked\r\n", 501),
    "te-twice": (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400),
    # llhttp refuses the value before it can be read: chunked twice or an unknown coding.
    "chunked-chunked": (b"Transfer-Encoding: chunked, chunked\r\n", 501),
    "chunked-then-gzip": (b"Transfer-Encoding: chunked, gzip\r\n", 501),
    "no-break-space": (b"Transfer-Encoding: \xa0chunked\r\n", 400),
    "te-identity": (b"Transfer-Encoding: identity\r\n", 501),
    "cl-plus": (b"Content-Length: +36\r\n", 400),
    "cl-list": (b"Content-Length: 36, 37\r\n", 400),
    "cl-negative": (b"Content-Length: -1\r\n", 400),
    "cl-twice-unequal": (b"Content-Length: 36\r\nContent-Length: 37\r\n", 400),
    "bare-cr": (b"X-A: 1\rX-B: 2\r\n", 400),
    "obs-fold": (b"X-A: 1\r\n folded\r\n", 400),
    "bad-name": (b"X(A): 1\r\n", 400),
    "space-before-colon": (b"X-A : 1\r\n", 400),
    "control-in-value": (b"X-A: a\x01b\r\n", 400),
    "second-host": (b"Host: y\r\n", 400),
}


@pytest.mark.parametrize("name", list(REFUSED))
@pytest.mark.parametrize("position", ["first", "after-keep-alive"])
def test_refused_head_runs_no_hidden_request(name: str, position: str) -> None:
    extra, status = REFUSED[name]

    async def go() -> bytes:
        async with serving(make_app()) as (port, _):
            before = GET % b"ok" if position == "after-keep-alive" else b""
            attack = b"POST /probe HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"
            return await exchange(port, before + attack + HIDDEN + HIDDEN, timeout=3)

    out = responses(run(go))
    expected_ok = 1 if position == "after-keep-alive" else 0
    assert [r[0] for r in out] == [200] * expected_ok + [status], out
    refusal = out[-1]
    assert refusal[1]["connection"] == "close"
    assert refusal[2].strip(), "a refusal says why"
    assert "GET /smuggled" not in Recorder.hits and "POST /probe" not in Recorder.hits


def test_missing_host_on_http11_is_refused_but_http10_needs_none() -> None:
    async def go() -> tuple[bytes, bytes]:
        async with serving(make_app()) as (port, _):
            a = await exchange(port, b"GET /a HTTP/1.1\r\n\r\n" + HIDDEN)
            b = await exchange(port, b"GET /b HTTP/1.0\r\n\r\n")
            return a, b

    a, b = run(go)
    assert a.startswith(b"HTTP/1.1 400") and b"Host" in a
    assert b.startswith(b"HTTP/1.1 200")
    assert Recorder.hits == ["GET /b"]


@pytest.mark.parametrize(
    "head",
    [
        GET % (b"a" * 70_000),
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 9000 + b"\r\n",
    ],
    ids=["long-target", "big-header", "many-headers"],
)
def test_heads_over_the_limits_are_refused(head: bytes) -> None:
    async def go() -> bytes:
        async with serving(make_app(), max_header_size=64 * 1024) as (port, _):
            return await exchange(port, head + HIDDEN)

    out = run(go)
    assert out.startswith(b"HTTP/1.1 431") and b"Connection: close" in out
    assert Recorder.hits == []


def test_never_ending_request_line_is_bounded() -> None:
    async def go() -> bytes:
        async with serving(make_app(), max_header_size=8 * 1024) as (port, _):
            return await exchange(port, b"GET /" + b"a" * 300_000, timeout=3)

    assert run(go).startswith(b"HTTP/1.1 431")


def test_body_over_max_body_size_is_refused_before_it_is_read() -> None:
    async def go() -> tuple[bytes, bytes]:
        async with serving(make_app(), max_body_size=1000) as (port, _):
            declared = await exchange(
                port, b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + HIDDEN
            )
            chunked = await exchange(
                port,
                b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"800\r\n" + b"a" * 2048 + b"\r\n0\r\n\r\n" + HIDDEN,
            )
            return declared, chunked

    declared, chunked = run(go)
    assert declared.startswith(b"HTTP/1.1 400") and b"Connection: close" in declared
    assert chunked.startswith(b"HTTP/1.1 400")
    assert "GET /smuggled" not in Recorder.hits
    assert "POST /p" in Recorder.hits or Recorder.hits == []  # never with its body run


def test_a_method_that_is_not_a_token_is_refused() -> None:
    # A token llhttp does not know (BREW) is the application's: tests/server/
    # test_unknown_methods.py.
    async def go() -> bytes:
        async with serving(make_app()) as (port, _):
            return await exchange(port, b"BR@W /pot HTTP/1.1\r\nHost: x\r\n\r\n" + HIDDEN)

    assert run(go).startswith(b"HTTP/1.1 400")
    assert Recorder.hits == []


def test_refusal_answers_json_to_json_clients() -> None:
    async def go() -> bytes:
        async with serving(make_app()) as (port, _):
            return await exchange(
                port,
                b"POST /a HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
                b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            )

    [(status, headers, body)] = responses(run(go))
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert b'"status": 400' in body and b"not both" in body


def test_idle_header_and_body_timeouts_close_the_connection() -> None:
    async def go() -> list[bytes]:
        kw: dict[str, Any] = {
            "idle_connection_timeout": 0.3,
            "header_timeout": 0.3,
            "body_timeout": 0.3,
        }
        async with serving(make_app(), **kw) as (port, _):
            loop = asyncio.get_running_loop()
            outs = []
            for data in (
                GET % b"idle",
                b"GET /slow-head HTTP/1.1\r\nHost",
                b"POST /slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab",
            ):
                started = loop.time()
                outs.append(await exchange(port, data, timeout=3))
                assert loop.time() - started < 2
            return outs

    idle, head, body = run(go)
    assert idle.startswith(b"HTTP/1.1 200")
    assert head == b"" and body == b""
    assert Recorder.hits == ["GET /idle"]


def test_xheaders_apply_to_one_request_only() -> None:
    async def go() -> bytes:
        async with serving(make_app(), xheaders=True, trusted_downstream=["10.0.0.9"]) as (
            port,
            _,
        ):
            return await exchange(
                port,
                b"GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.9\r\n"
                b"X-Forwarded-Proto: https\r\n\r\n"
                b"GET /b HTTP/1.1\r\nHost: x\r\nX-Real-Ip: 198.51.100.2\r\nX-Scheme: bogus\r\n\r\n"
                b"GET /c HTTP/1.1\r\nHost: x\r\nX-Real-Ip: not-an-ip\r\nConnection: close\r\n\r\n",
            )

    out = [r[2].decode() for r in responses(run(go))]
    assert out == [
        "GET /a 203.0.113.7 https",
        "GET /b 198.51.100.2 http",
        "GET /c 127.0.0.1 http",
    ]


def test_streamed_body_is_paused_while_data_received_waits() -> None:
    async def go() -> bytes:
        async with serving(make_app()) as (port, _):
            body = b"z" * (4 << 20)
            return await exchange(
                port,
                b"PUT /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body,
                timeout=20,
            )

    out = run(go)
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"streamed %d" % (4 << 20))


def test_large_answer_to_a_slow_reader_keeps_the_buffer_flat() -> None:
    Big.buffered = []

    async def go() -> int:
        async with serving(make_app()) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
            writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            total = 0
            while True:
                piece = await asyncio.wait_for(reader.read(1 << 16), 10)
                if not piece:
                    break
                total += len(piece)
                if total < (8 << 20):
                    await asyncio.sleep(0.002)
            writer.close()
            return total

    total = run(go)
    assert total > 32 << 20
    assert len(Big.buffered) == 32
    # Each flush waits until the socket buffer drains below its high-water mark.
    assert max(Big.buffered) < 2 << 20, Big.buffered


def test_websocket_over_the_layer() -> None:
    async def go() -> list[str | bytes | None]:
        async with serving(make_app()) as (port, _):
            ws = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
            got = []
            for text in ("one", "two", "x" * 100_000):
                await ws.write_message(text)
                got.append(await ws.read_message())
            ws.close()
            # The layer still serves plain requests on other connections.
            plain = await exchange(port, GET % b"after" + GET % b"x")
            assert plain.count(b"HTTP/1.1 200") == 2
            return got

    assert run(go) == ["one", "two", "x" * 100_000]


def test_tls_requests_and_websocket() -> None:
    import tornado.test

    folder = os.path.dirname(tornado.test.__file__)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(folder, "test.crt"), os.path.join(folder, "test.key"))
    client_tls = ssl.create_default_context()
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE

    async def go() -> tuple[int, bytes, list[Any]]:
        async with serving(make_app(), ssl_options=context) as (port, _):
            r = await AsyncHTTPClient().fetch(
                f"https://127.0.0.1:{port}/tls", validate_cert=False
            )
            ws = await tornado.websocket.websocket_connect(
                tornado.httpclient.HTTPRequest(
                    f"wss://127.0.0.1:{port}/ws", ssl_options=client_tls
                )
            )
            got = []
            for text in ("over tls", "y" * 200_000):
                await ws.write_message(text)
                got.append(await ws.read_message())
            ws.close()
            return r.code, r.body, got

    code, body, got = run(go)
    assert code == 200 and body.endswith(b"https")
    assert got == ["over tls", "y" * 200_000]


class RawContinue(tornado.web.RequestHandler):
    """Writes through ``request.connection.stream`` as code for HTTP1Connection does."""

    async def get(self) -> None:
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nraw"
        await self.request.connection.stream.write(raw)
        self.request.connection.stream.close()
        Recorder.hits.append(f"closed={self.request.connection.stream.closed()}")


def test_connection_stream_writes_and_closes() -> None:
    async def go() -> bytes:
        app = tornado.web.Application([("/raw", RawContinue)])
        async with serving(app) as (port, _):
            return await exchange(port, GET % b"raw" + GET % b"never")

    assert run(go) == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nraw"
    assert Recorder.hits == ["closed=True"]


def test_drain_finishes_busy_requests_and_closes_idle_ones() -> None:
    class Slow(tornado.web.RequestHandler):
        async def get(self) -> None:
            await asyncio.sleep(0.3)
            self.write("done")

    async def go() -> tuple[bytes, bytes, int]:
        app = tornado.web.Application([("/slow", Slow), ("/(.*)", Recorder)])
        async with serving(app) as (port, server):
            assert isinstance(server, HTTPToolsServer)
            idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
            idle_w.write(GET % b"idle")
            await idle_r.readuntil(b"127.0.0.1 http")
            busy = asyncio.ensure_future(exchange(port, GET % b"slow", timeout=5))
            await asyncio.sleep(0.1)
            server.stop()
            left = await server.drain(timeout=3)
            idle_rest = await asyncio.wait_for(idle_r.read(), 2)
            return await busy, idle_rest, left

    busy, idle_rest, left = run(go)
    assert busy.startswith(b"HTTP/1.1 200") and b"Connection: close" in busy
    assert busy.endswith(b"done")
    assert idle_rest == b"" and left == 0


def test_listen_and_create_http_server_pick_the_layer() -> None:
    async def go() -> None:
        app = Application([("/", Recorder)], test_settings())
        server = app.listen(0, "127.0.0.1")
        assert isinstance(server, HTTPToolsServer)
        server.stop()
        other = app.listen(0, "127.0.0.1", http_impl="tornado")
        assert type(other) is HTTPServer
        other.stop()
        tornado_app = Application([("/", Recorder)], test_settings(http_impl="tornado"))
        third = tornado_app.listen(0, "127.0.0.1")
        assert type(third) is HTTPServer
        third.stop()
        assert isinstance(create_http_server(app, "httptools"), HTTPToolsServer)
        with pytest.raises(ValueError, match="unknown HTTP layer"):
            create_http_server(app, "h2")

    run(go)


def test_configure_puts_every_httpserver_on_the_layer() -> None:
    HTTPServer.configure(HTTPToolsServer)
    try:
        server = HTTPServer(make_app(), xheaders=True)
        assert isinstance(server, HTTPToolsServer) and server.xheaders
    finally:
        HTTPServer.configure(None)


@tornado.web.stream_request_body
class Reuser(tornado.web.RequestHandler):
    """Asks for the reused body buffer and records every piece it is given."""

    pieces: list[tuple[str, int, int]] = []

    def prepare(self) -> None:
        Reuser.pieces = []
        self.digest = hashlib.sha256()
        connection = self.request.connection
        fast = float(self.get_query_argument("fast", "0.01"))
        assert connection.reuse_body_buffer(64 * 1024, 256 * 1024, fast, 0.5)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        Reuser.pieces.append((type(chunk).__name__, len(chunk), id(chunk)))
        self.digest.update(chunk)

    def put(self) -> None:
        self.write(self.digest.hexdigest())


def test_reused_body_buffer_grows_for_a_fast_client_and_is_one_object() -> None:
    body = bytes(range(256)) * (6 * 4096 + 7)  # ~6 MiB, not a multiple of the buffer

    async def go() -> bytes:
        app = tornado.web.Application([("/reuse", Reuser)])
        async with serving(app) as (port, _):
            return await exchange(
                port,
                b"PUT /reuse?fast=1e9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body,
                timeout=20,
            )

    out = run(go)
    assert out.endswith(hashlib.sha256(body).hexdigest().encode()), out[-200:]
    sizes = [n for _, n, _ in Reuser.pieces]
    assert {kind for kind, _, _ in Reuser.pieces} == {"bytearray"}
    assert sizes[:3] == [64 * 1024, 128 * 1024, 256 * 1024], sizes[:5]
    assert set(sizes[3:-1]) == {256 * 1024} and sum(sizes) == len(body)
    assert len({ident for _, n, ident in Reuser.pieces if n == 256 * 1024}) == 1


def test_reused_body_buffer_stays_small_for_a_trickling_client() -> None:
    async def go() -> None:
        app = tornado.web.Application([("/reuse", Reuser)])
        async with serving(app) as (port, _):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PUT /reuse HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n")
            for _ in range(20):  # 8 KiB every 20 ms: each 64 KiB fill takes ~160 ms
                writer.write(b"t" * 8192)
                await writer.drain()
                await asyncio.sleep(0.02)
            writer.close()

    run(go)
    assert [n for _, n, _ in Reuser.pieces] == [64 * 1024, 64 * 1024]


@pytest.mark.parametrize("split", [1, 1000, 65536, 65537, 70000, 200_000])
def test_large_bodies_read_past_the_parser_end_exactly(split: int) -> None:
    """A body from 64 KiB on is read without the parser; the bytes after it (a
    pipelined request, small and large bodies mixed) are parsed again, split anywhere."""
    big = bytes(range(256)) * 400  # 102400 bytes
    data = (
        b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big) + big
        + b"PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nsmall"
        + b"PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big) + big
        + b"GET /d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nGET "
    )

    async def go() -> bytes:
        async with serving(make_app()) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for i in range(0, len(data), split):
                writer.write(data[i : i + split])
                await writer.drain()
            out = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return out

    out = responses(run(go))
    assert [r[2][:12] for r in out] == [
        b"len=102400:\x00", b"len=5:small", b"len=102400:\x00", b"GET /d 127.0"
    ]
    assert Recorder.hits == ["PUT /a", "PUT /b", "PUT /c", "GET /d"]


def test_on_uvloop() -> None:
    """uvloop's transports are not asyncio.Transport subclasses: the layer works the same."""
    uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (webframe[fast])")

    async def go() -> tuple[list[Any], bytes, bytes]:
        async with serving(make_app()) as (port, _):
            ws = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
            got = []
            for text in ("a", "b" * 100_000):
                await ws.write_message(text)
                got.append(await ws.read_message())
            ws.close()
            pipelined = await exchange(
                port,
                GET % b"x" + b"POST /y HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                b"Connection: close\r\n\r\nabc",
            )
            body = b"z" * (3 << 20)
            streamed = await exchange(
                port,
                b"PUT /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body,
                timeout=20,
            )
            return got, pipelined, streamed

    got, pipelined, streamed = uvloop.run(go())
    assert got == ["a", "b" * 100_000]
    assert [r[2][:8] for r in responses(pipelined)] == [b"GET /x 1", b"len=3:ab"]
    assert streamed.endswith(b"streamed %d" % (3 << 20))
