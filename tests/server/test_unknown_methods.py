"""Request methods llhttp does not know (any RFC 9110 token): they reach the
application on the httptools layer as on Tornado's (405 with ``Allow`` when the
handler does not take them, the handler when its SUPPORTED_METHODS adds them); a
method that is not a token is refused and nothing after it runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from webframe import Application, RequestHandler
from webframe.testing import test_settings

from ._support import LAYERS, exchange, feed, responses, serving


class Methods(RequestHandler):
    """Takes OTHER as well as GET and POST; records every request it runs."""

    SUPPORTED_METHODS = (*RequestHandler.SUPPORTED_METHODS, "OTHER")
    hits: list[str] = []

    def check_xsrf_cookie(self) -> None:
        pass

    def get(self) -> None:
        Methods.hits.append(f"GET {self.request.path}")
        self.write(f"GET {self.request.path}")

    def post(self) -> None:
        Methods.hits.append(f"POST {self.request.path}")
        self.write(b"POST " + self.request.body)

    def other(self) -> None:
        Methods.hits.append(f"OTHER {self.request.path}")
        self.write(b"OTHER " + self.request.body)


@pytest.fixture(autouse=True)
def _clear_hits() -> None:
    Methods.hits = []


def make_app() -> Application:
    return Application([(r"/.*", Methods)], test_settings())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def over_socket(layer: str, data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    async with serving(make_app(), layer) as (port, _):
        return responses(await exchange(port, data, timeout=2))


#: every request asks for JSON (webframe's error answers, no template).
H = b"Host: x\r\nAccept: application/json\r\n"
LAST = b"GET /last HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"


@pytest.mark.parametrize("layer", LAYERS)
def test_a_token_method_reaches_a_handler_that_takes_it(layer: str) -> None:
    data = b"OTHER /o HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc" + LAST
    out = run(over_socket(layer, data))
    assert [(status, body) for status, _, body in out] == [
        (200, b"OTHER abc"),
        (200, b"GET /last"),
    ]
    assert Methods.hits == ["OTHER /o", "GET /last"]


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("method", [b"FOO", b"get", b"PLAY", b"GETX", b"X-Y.Z~1"])
def test_a_token_method_the_handler_lacks_is_405_with_allow(layer: str, method: bytes) -> None:
    out = run(over_socket(layer, method + b" /f HTTP/1.1\r\n" + H + b"\r\n" + LAST))
    assert [status for status, _, _ in out] == [405, 200]
    assert out[0][1]["allow"] == "GET, HEAD, POST, OPTIONS, OTHER"
    assert Methods.hits == ["GET /last"]


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("method", [b"G@T", b"FOO,BAR", b"GET\tX", b"\x00"])
def test_a_method_that_is_not_a_token_is_refused_and_nothing_after_runs(
    layer: str, method: bytes
) -> None:
    out = run(over_socket(layer, method + b" /bad HTTP/1.1\r\n" + H + b"\r\n" + LAST))
    assert [status for status, _, _ in out] == [400]
    if layer == "httptools":
        assert out[0][1]["connection"] == "close"
    assert Methods.hits == []


def test_a_method_longer_than_any_is_501() -> None:
    out = run(over_socket("httptools", b"A" * 65 + b" / HTTP/1.1\r\n" + H + b"\r\n" + LAST))
    assert [status for status, _, _ in out] == [501]
    assert Methods.hits == []
    out = run(over_socket("httptools", b"A" * 64 + b" / HTTP/1.1\r\n" + H + b"\r\n" + LAST))
    assert [status for status, _, _ in out] == [405, 200]


@pytest.mark.parametrize("layer", LAYERS)
def test_head_keeps_its_meaning_after_an_unknown_method(layer: str) -> None:
    data = b"FOO /f HTTP/1.1\r\n" + H + b"\r\nHEAD /h HTTP/1.1\r\n" + H + b"\r\n" + LAST

    async def go() -> bytes:
        async with serving(make_app(), layer) as (port, _):
            return await exchange(port, data, timeout=2)

    out = run(go())
    assert out.startswith(b"HTTP/1.1 405")
    # HEAD: its answer has no body, so the next answer follows its head directly.
    head = out.index(b"HTTP/1.1 200")
    assert out.index(b"HTTP/1.1 200", head + 1) == out.index(b"\r\n\r\n", head) + 4
    assert out.endswith(b"GET /last")
    assert Methods.hits == ["GET /h", "GET /last"]


PIPELINED = (
    b"GET /one HTTP/1.1\r\n" + H + b"\r\n"
    b"OTHER /two HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi"
    b"FOO /three HTTP/1.1\r\n" + H + b"\r\n"
    b"\r\nPOST /four HTTP/1.1\r\n" + H + b"Content-Length: 1\r\n\r\nz" + LAST
)
EXPECTED = [
    (200, b"GET /one"),
    (200, b"OTHER hi"),
    (405, None),
    (200, b"POST z"),
    (200, b"GET /last"),
]


def check(out: bytes, closed: bool, where: object) -> None:
    got = [(status, body if status != 405 else None) for status, _, body in responses(out)]
    assert got == EXPECTED, where
    assert closed, where
    assert Methods.hits == ["GET /one", "OTHER /two", "POST /four", "GET /last"], where


def test_pipelined_unknown_methods_in_one_read() -> None:
    out, closed = feed(make_app, [PIPELINED])
    check(out, closed, "one read")


def test_pipelined_unknown_methods_split_at_every_byte_boundary() -> None:
    for i in range(1, len(PIPELINED)):
        Methods.hits = []
        out, closed = feed(make_app, [PIPELINED[:i], PIPELINED[i:]])
        check(out, closed, i)


def test_pipelined_unknown_methods_one_byte_a_read() -> None:
    out, closed = feed(make_app, [PIPELINED[i : i + 1] for i in range(len(PIPELINED))])
    check(out, closed, "byte by byte")


@pytest.mark.parametrize("split", [1, 2, 3, 5, 30])
def test_a_bad_method_split_anywhere_is_refused_and_nothing_after_runs(split: int) -> None:
    data = b"GET /one HTTP/1.1\r\n" + H + b"\r\nG@T /bad HTTP/1.1\r\n" + H + b"\r\n" + LAST
    start = data.index(b"G@T")
    out, closed = feed(make_app, [data[: start + split], data[start + split :]])
    assert [status for status, _, _ in responses(out)] == [200, 400]
    assert closed
    assert Methods.hits == ["GET /one"]


@pytest.mark.parametrize(
    ("body", "statuses"),
    [
        (b"Content-Length: 4\r\n\r\nabcd", [200, 405, 200]),
        # Inside a chunked body, where it ends is llhttp's alone to know: refused.
        (b"Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n", [200, 400]),
    ],
)
def test_an_unknown_method_after_a_body_that_spans_reads(body: bytes, statuses: list[int]) -> None:
    data = b"POST /p HTTP/1.1\r\n" + H + body + b"FOO /f HTTP/1.1\r\n" + H + b"\r\n" + LAST
    cut = data.index(b"abcd") + 2
    out, closed = feed(make_app, [data[:cut], data[cut:]])
    assert [status for status, _, _ in responses(out)] == statuses
    assert closed
    assert Methods.hits == ["POST /p", "GET /last"][: len(statuses) - 1]


def test_a_refused_method_is_named_in_the_answer() -> None:
    out = run(over_socket("httptools", b"G@T /bad HTTP/1.1\r\n" + H + b"\r\n" + LAST))
    assert [status for status, _, _ in out] == [400]
    assert b"not a valid token" in out[0][2], out[0][2]
