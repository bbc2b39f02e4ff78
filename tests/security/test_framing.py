"""Request framing attacks (Content-Length / Transfer-Encoding / oversized heads) against
the running demo over raw sockets: each gets a 4xx/5xx with a message or, for a request
head the HTTP layer cannot parse, a closed connection -- never a hang or a 500."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado import httputil

from webframe import Application, RequestHandler, route
from webframe.testing import test_settings

from ._support import (
    RawResponse,
    ServerProcess,
    ThreadedServer,
    assert_alive,
    assert_refused,
    raw_request,
    read_response,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["httptools", "tornado"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The demo (``run.py --no-debug``) on each connection layer: the framing rules are
    the layer's for some cases and webframe's own for the others."""
    server = ServerProcess(
        tmp_path_factory.mktemp(f"framing-{request.param}"),
        env={"WEBFRAME_HTTP_IMPL": request.param},
    )
    server.start()
    yield server
    assert server.running(), "the server process died:\n" + server.log()[-3000:]
    server.kill()


@pytest.fixture(autouse=True)
def _still_up(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "live" in request.fixturenames:
        server: ServerProcess = request.getfixturevalue("live")
        assert server.running(), "the server process died:\n" + server.log()[-3000:]
        assert_alive(server.url)


BODY = b'{"text": "framed"}'


def head(*lines: str) -> bytes:
    return (
        "POST /api/notes HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        "Content-Type: application/json\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n"
    ).encode("latin-1")


FRAMING = [
    ("negative-content-length", head("Content-Length: -1") + BODY, 400, "Content-Length"),
    ("non-numeric-content-length", head("Content-Length: abc") + BODY, 400, "Content-Length"),
    ("plus-sign-content-length", head("Content-Length: +18") + BODY, 400, "Content-Length"),
    ("hex-content-length", head("Content-Length: 0x12") + BODY, 400, "Content-Length"),
    ("float-content-length", head("Content-Length: 18.0") + BODY, 400, "Content-Length"),
    ("two-numbers-in-content-length", head("Content-Length: 18 18") + BODY, 400, None),
    (
        "unequal-duplicate-content-length",
        head("Content-Length: 18", "Content-Length: 5") + BODY,
        400,
        "Content-Length",
    ),
    (
        "unequal-content-length-list",
        head("Content-Length: 18, 5") + BODY,
        400,
        "Content-Length",
    ),
    (
        "20-digit-content-length",
        head("Content-Length: 99999999999999999999") + BODY,
        400,
        "Content-Length",
    ),
    (
        "content-length-over-the-limit",
        head("Content-Length: 11000000") + b"a" * 11000000,
        413,
        "accepts at most",
    ),
    (
        "transfer-encoding-with-content-length",
        head("Content-Length: 18", "Transfer-Encoding: chunked")
        + b"12\r\n"
        + BODY
        + b"\r\n0\r\n\r\n",
        400,
        "Transfer-Encoding",
    ),
    (
        "transfer-encoding-gzip-chunked",
        head("Transfer-Encoding: gzip, chunked") + b"12\r\n" + BODY + b"\r\n0\r\n\r\n",
        501,
        "Transfer-Encoding",
    ),
    (
        "transfer-encoding-chunked-twice",
        head("Transfer-Encoding: chunked", "Transfer-Encoding: chunked")
        + b"12\r\n"
        + BODY
        + b"\r\n0\r\n\r\n",
        (400, 501),
        "Transfer-Encoding",
    ),
    (
        "transfer-encoding-identity",
        head("Transfer-Encoding: identity") + BODY,
        501,
        "Transfer-Encoding",
    ),
    (
        "chunked-over-the-limit",
        head("Transfer-Encoding: chunked")
        + b"%x\r\n" % (11 * 1024 * 1024)
        + b"a" * (11 * 1024 * 1024)
        + b"\r\n0\r\n\r\n",
        413,
        None,
    ),
]


def _assert_answer_or_closed(resp: RawResponse, statuses: tuple[int, ...]) -> None:
    if resp.status is None:
        assert resp.closed
        return
    assert resp.status in statuses, (resp.status, resp.text[:300])
    assert "Traceback" not in resp.text


@pytest.mark.parametrize(
    ("data", "status", "message"), [c[1:] for c in FRAMING], ids=[c[0] for c in FRAMING]
)
def test_framing_is_refused(
    live: ServerProcess, data: bytes, status: int | tuple[int, ...], message: str | None
) -> None:
    wanted = status if isinstance(status, tuple) else (status,)
    resp = raw_request(live.port, data, timeout=15)
    assert resp.elapsed < 10
    assert_refused(resp, status, message=message)
    if resp.headers.get("content-type", "").startswith("application/json"):
        assert json.loads(resp.body)["error"]["status"] in wanted
    # A request whose framing is refused cannot be trusted to end where it says (a 413
    # body is drained whole, so that connection may be kept).
    if 413 not in wanted:
        assert resp.headers.get("connection", "").lower() == "close" or resp.closed


def test_equal_duplicate_content_length_is_one_length(live: ServerProcess) -> None:
    resp = raw_request(live.port, head("Content-Length: 18", "Content-Length: 18") + BODY)
    # RFC 9112 6.3 lets a server accept equal duplicates (as one) or refuse them.
    if resp.status == 201:
        assert json.loads(resp.body)["text"] == "framed"
    else:
        assert_refused(resp, 400, message="Content-Length")


def test_chunked_body_is_accepted(live: ServerProcess) -> None:
    resp = raw_request(
        live.port, head("Transfer-Encoding: chunked") + b"12\r\n" + BODY + b"\r\n0\r\n\r\n"
    )
    assert resp.status == 201, resp.text


def test_malformed_chunk_size(live: ServerProcess) -> None:
    resp = raw_request(live.port, head("Transfer-Encoding: chunked") + b"zz\r\nabc\r\n0\r\n\r\n")
    assert resp.elapsed < 10
    _assert_answer_or_closed(resp, (400,))


def test_control_byte_in_a_header_value(live: ServerProcess) -> None:
    """Refused by Tornado's header parser (bare 400, closed) before webframe sees it."""
    resp = raw_request(live.port, head("Content-Length: 18", "X-Evil: a\x01b") + BODY)
    assert resp.elapsed < 10
    _assert_answer_or_closed(resp, (400,))


@pytest.mark.parametrize("size", [70 * 1024, 1024 * 1024])
def test_headers_over_the_size_limit(live: ServerProcess, size: int) -> None:
    data = b"GET /about HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    resp = raw_request(live.port, data, timeout=15)
    assert resp.elapsed < 5
    _assert_answer_or_closed(resp, (400, 431))


def test_100k_repeated_headers_over_the_limit(live: ServerProcess) -> None:
    data = b"GET /about HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 100_000 + b"\r\n"
    resp = raw_request(live.port, data, timeout=15)
    assert resp.elapsed < 5
    _assert_answer_or_closed(resp, (400, 431))


def test_request_line_never_ends(live: ServerProcess) -> None:
    """Bytes with no line end at all: refused at the head limit, not buffered forever."""
    resp = raw_request(live.port, b"GET /" + b"a" * (200 * 1024), timeout=15)
    assert resp.elapsed < 5
    _assert_answer_or_closed(resp, (400, 414, 431))


@route("/count-headers")
class CountHeaders(RequestHandler):
    def get(self) -> None:
        self.write(str(len(self.request.headers.get_list("X-A"))))


def _big_head_app() -> Application:
    return Application([CountHeaders], test_settings(max_header_size=8 * 1024 * 1024))


def test_repeated_headers_cost_is_linear(tmp_path: Path) -> None:
    """With the head limit raised to 8 MiB, 100k repeated headers cost ~10x 10k, not 100x."""

    def timed(n: int) -> float:
        best = float("inf")
        for _ in range(2):
            data = b"GET /count-headers HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * n + b"\r\n"
            resp = raw_request(server.port, data, timeout=30)
            assert resp.status == 200 and resp.body == str(n).encode()
            best = min(best, resp.elapsed)
        return best

    with ThreadedServer(_big_head_app) as server:
        small, large = timed(10_000), timed(100_000)
    assert large < max(small, 0.02) * 25, (small, large)
    assert large < 10


def test_pipelined_requests_after_a_refusal_are_not_smuggled(live: ServerProcess) -> None:
    """A refused framing closes the connection: a request hidden in the body never runs."""
    smuggled = b"GET /hello/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    data = head("Content-Length: 18", "Transfer-Encoding: chunked") + b"0\r\n\r\n" + smuggled
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(data)
        first = read_response(sock, time.monotonic() + 10)
        assert first.status == 400
        second = read_response(sock, time.monotonic() + 3)
        assert second.status is None, "a second (smuggled) request was answered"


# ------------------------------------------------ the rules, without a socket


def _headers(*lines: tuple[str, str]) -> httputil.HTTPHeaders:
    headers = httputil.HTTPHeaders()
    for name, value in lines:
        headers.add(name, value)
    return headers


@pytest.mark.parametrize(
    ("lines", "status", "reason"),
    [
        ([("Content-Length", "5")], None, None),
        ([("Content-Length", "5, 5")], None, None),
        ([("Content-Length", "5,\t5")], None, None),
        ([("Transfer-Encoding", "chunked")], None, None),
        ([("Transfer-Encoding", "Chunked")], None, None),
        ([("Content-Length", "+5")], 400, "Only integer Content-Length is allowed: +5"),
        ([("Content-Length", "1_0")], 400, "Only integer Content-Length is allowed: 1_0"),
        ([("Content-Length", "5, 6")], 400, "Multiple unequal Content-Lengths: '5, 6'"),
        # Only SP and HTAB are whitespace in a list, not what Python's strip() takes.
        ([("Content-Length", "5,\xa05")], 400, "Multiple unequal Content-Lengths"),
        (
            [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
            400,
            "Message with both Transfer-Encoding and Content-Length",
        ),
        (
            [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
            400,
            "Unsupported Transfer-Encoding chunked,chunked",
        ),
        ([("Transfer-Encoding", "gzip, chunked")], 501, "Unsupported Transfer-Encoding gzip"),
        ([("Transfer-Encoding", "identity")], 501, "Unsupported Transfer-Encoding identity"),
        # Not a token: malformed (400), not an unknown coding (501).
        ([("Transfer-Encoding", "\xa0chunked")], 400, "Unsupported Transfer-Encoding"),
        ([("Transfer-Encoding", ",chunked")], 400, "Unsupported Transfer-Encoding ,chunked"),
        ([("Content-Length", "2\xa0")], 400, "Only integer Content-Length is allowed"),
        ([("Content-Length", "2000")], 413, None),
    ],
)
def test_check_framing(
    lines: list[tuple[str, str]], status: int | None, reason: str | None
) -> None:
    """The framing rules: the answer, and Tornado's wording for its log line."""
    from webframe.server.framing import check_framing

    error, declared, malformed = check_framing(_headers(*lines), 1024)
    assert (error.status_code if error else None) == status
    if error is not None:
        assert error.message and "Traceback" not in error.message
    if reason is None:
        assert malformed is None
    else:
        assert malformed is not None and malformed.startswith(reason)
    if status in (None, 413) and "Content-Length" in dict(lines):
        assert declared == int(lines[0][1].split(",")[0])


def test_drain_or_close() -> None:
    """A refused body is read and dropped only when its end is known and near."""
    from webframe.server.framing import DRAIN, can_drain

    assert can_drain(0, False)
    assert can_drain(DRAIN, False)
    assert not can_drain(DRAIN + 1, False)
    assert not can_drain(None, False)  # chunked: the end is unknown
    assert not can_drain(10, True)  # the client waits for a 100 Continue
