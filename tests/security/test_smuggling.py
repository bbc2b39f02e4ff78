"""No request hidden behind a refusal ever runs (issue 12, section 1).

Each case sends, over one keep-alive raw socket, a request that is refused before its
body is read, with requests hidden in that body. A handler records every hit, so a
hidden request that ran is seen even though its answer went nowhere. The refused
request is tried first on the connection, after an answered keep-alive request, and
pipelined between two others. Then the rule of RFC 9112 §9.6: an answer after which
the server closes says ``Connection: close`` (and the server does close); an answer
without it leaves the connection usable for the next request.

Every case runs against each server in ``SERVERS`` (``Application.listen`` and
``tornado.httpserver.HTTPServer(app)``); another connection layer is one more entry.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import tornado.netutil
import tornado.web
from tornado.httpserver import HTTPServer

from webframe import Application, RequestHandler, UploadHandler, route
from webframe.testing import test_settings

from ._support import Conn, RawResponse, ThreadedServer

pytestmark = pytest.mark.slow

# ----------------------------------------------------------------------- servers

#: (app, server keyword arguments) -> (the started server, its port); runs in the loop.
ServerFactory = Callable[..., tuple[Any, int]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _by_listen(app: Application, **kwargs: Any) -> tuple[Any, int]:
    port = _free_port()
    return app.listen(port, "127.0.0.1", **kwargs), port


def _by_httpserver(app: Application, **kwargs: Any) -> tuple[Any, int]:
    server = HTTPServer(app, **kwargs)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    return server, int(sockets[0].getsockname()[1])


#: every way the app is served; a new connection layer adds itself here.
SERVERS: dict[str, ServerFactory] = {
    "listen": _by_listen,
    "httpserver": _by_httpserver,
}


class Served(ThreadedServer):
    """``factory(app, **kwargs)`` run in an event loop of its own thread."""

    def __init__(self, app: Application, factory: ServerFactory, **kwargs: Any) -> None:
        super().__init__(lambda: app)
        self.factory = factory
        self.kwargs = kwargs
        self.server_class = ""

    def listen(self, app: Any) -> tuple[Any, int]:
        server, port = self.factory(app, **self.kwargs)
        self.server_class = type(server).__name__
        return server, port


# --------------------------------------------------------------------- the app


@route("/probe")
class Probe(RequestHandler):
    """Records each request it runs: the side effect a smuggled request would have."""

    def get(self) -> None:
        tag = self.get_argument("tag")
        self.settings["hits"].append(tag)
        self.write("ran " + tag)

    def post(self) -> None:
        self.settings["hits"].append("post")
        self.write("posted")


@route("/small")
class Small(RequestHandler):
    max_body_size = 1024

    def post(self) -> None:
        self.settings["hits"].append("small")
        self.write(str(len(self.request.body)))


@route("/upload")
class Upload(UploadHandler):
    def post(self) -> None:
        self.settings["hits"].append("upload")
        self.write(str(len(self.uploads)))


@route("/midway")
@tornado.web.stream_request_body
class Midway(RequestHandler):
    """Answers on the first piece of its body, before the rest has arrived."""

    def check_xsrf_cookie(self) -> None:
        return None

    async def prepare(self) -> None:
        await asyncio.sleep(0.01)

    def data_received(self, chunk: bytes) -> None:
        if not self._finished:
            self.settings["hits"].append("midway")
            self.set_status(415)
            self.finish("Send this as an image.")

    def post(self) -> None:
        self.settings["hits"].append("midway-post")


@route("/put")
class Put(RequestHandler):
    def check_xsrf_cookie(self) -> None:
        return None

    def put(self) -> None:
        self.write(str(len(self.request.body)))


@route("/stream")
@tornado.web.stream_request_body
class Stream(RequestHandler):
    """Tornado's per-request override: ``set_max_body_size`` in ``prepare``."""

    received = 0

    def check_xsrf_cookie(self) -> None:
        return None

    def prepare(self) -> None:
        if "size" in self.request.arguments:
            size = int(self.get_argument("size"))
            self.request.connection.set_max_body_size(size)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)

    def put(self) -> None:
        self.write(str(self.received))


def make_app(tmp: Path, hits: list[str]) -> Application:
    (tmp / "no-templates").mkdir(exist_ok=True)
    settings = test_settings(
        instance_path=str(tmp / "instance"),
        upload_path=str(tmp / "up"),
        template_path=str(tmp / "no-templates"),  # the built-in error page
    )
    return Application([Probe, Small, Upload, Put, Stream, Midway], settings, hits=hits)


class Site:
    def __init__(self, served: Served, hits: list[str]) -> None:
        self.served = served
        self.hits = hits

    @property
    def port(self) -> int:
        return self.served.port

    def ran(self, settle: float = 0.15) -> list[str]:
        """The hits so far, once anything still in flight had time to run."""
        time.sleep(settle)
        return list(self.hits)


@pytest.fixture(scope="module", params=sorted(SERVERS))
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    hits: list[str] = []
    app = make_app(tmp_path_factory.mktemp("smuggling"), hits)
    with Served(app, SERVERS[request.param]) as served:
        yield Site(served, hits)


@pytest.fixture
def fresh(site: Site) -> Site:
    site.hits.clear()
    return site


# ------------------------------------------------------------------- requests


def hidden(n: int) -> bytes:
    """``n`` requests, each of which would record a hit if it ever ran."""
    return b"".join(b"GET /probe?tag=smuggled-%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n))


def probe(tag: str) -> bytes:
    return b"GET /probe?tag=%s HTTP/1.1\r\nHost: x\r\n\r\n" % tag.encode()


def head(method: str, path: str, *lines: str) -> bytes:
    text = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{x}\r\n" for x in lines)
    return (text + "\r\n").encode("latin-1")


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)


def padded(data: bytes, size: int) -> bytes:
    return data + b"x" * (size - len(data))


#: refused by their framing headers: (name, request with n hidden requests, status(es))
FRAMINGS: list[tuple[str, Callable[[int], bytes], int | tuple[int, ...]]] = [
    (
        "content-length-and-transfer-encoding",
        lambda n: (
            head(
                "POST",
                "/probe",
                f"Content-Length: {len(hidden(n))}",
                "Transfer-Encoding: chunked",
            )
            + hidden(n)
        ),
        400,
    ),
    (
        # The classic CL.TE shape: an empty chunked body, then the hidden requests.
        "content-length-and-transfer-encoding-last-chunk-first",
        lambda n: (
            head(
                "POST",
                "/probe",
                f"Content-Length: {5 + len(hidden(n))}",
                "Transfer-Encoding: chunked",
            )
            + b"0\r\n\r\n"
            + hidden(n)
        ),
        400,
    ),
    (
        "transfer-encoding-gzip-chunked",
        lambda n: head("POST", "/probe", "Transfer-Encoding: gzip, chunked") + hidden(n),
        501,
    ),
    (
        "transfer-encoding-chunked-twice",
        lambda n: (
            head("POST", "/probe", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked")
            + hidden(n)
        ),
        (400, 501),  # chunked twice is malformed (400); the httptools layer says 501
    ),
    (
        "content-length-plus-sign",
        lambda n: head("POST", "/probe", f"Content-Length: +{len(hidden(n))}") + hidden(n),
        400,
    ),
    (
        "content-length-two-values",
        lambda n: head("POST", "/probe", "Content-Length: 5, 6") + hidden(n),
        400,
    ),
    (
        "413-too-big-to-drain",
        lambda n: head("POST", "/small", f"Content-Length: {64 * 1024 * 1024}") + hidden(n),
        413,
    ),
    (
        "413-expect-100-continue",
        lambda n: (
            head("POST", "/small", "Content-Length: 4096", "Expect: 100-continue")
            + padded(hidden(n), 4096)
        ),
        413,
    ),
]

_MULTIPART = "Content-Type: multipart/form-data; boundary=b0undary"

#: refused by the route before the body is read: (name, method, path, head lines, status)
REFUSALS: list[tuple[str, str, str, tuple[str, ...], int]] = [
    ("413-drainable", "POST", "/small", (), 413),
    ("upload-xsrf-403", "POST", "/upload", (_MULTIPART, "X-XSRFToken: forged"), 403),
    ("upload-415", "POST", "/upload", ("Content-Type: text/plain",), 415),
    ("upload-400-no-boundary", "POST", "/upload", ("Content-Type: multipart/form-data",), 400),
    ("upload-405", "PATCH", "/upload", (_MULTIPART,), 405),
    ("plain-xsrf-403", "POST", "/probe", ("Content-Type: text/plain",), 403),
    ("404-with-a-body", "POST", "/nowhere", ("Content-Type: text/plain",), 404),
    ("405-with-a-body", "DELETE", "/probe", ("Content-Type: text/plain",), 405),
]


def refusal(method: str, path: str, lines: tuple[str, ...], framing: str, n: int) -> bytes:
    body = padded(hidden(n), 2048)
    if framing == "chunked":
        return head(method, path, *lines, "Transfer-Encoding: chunked") + chunked(body)
    return head(method, path, *lines, f"Content-Length: {len(body)}") + body


POSITIONS = ["first", "after-keep-alive", "pipelined"]


def exchange(site: Site, data: bytes, position: str) -> tuple[RawResponse, Conn]:
    """Send the refused request ``data`` at ``position``; its answer and the connection."""
    conn = Conn(site.port)
    if position == "first":
        conn.send(data)
    elif position == "after-keep-alive":
        conn.send(probe("before"))
        before = conn.read()
        assert before is not None and before.status == 200
        conn.send(data)
    else:
        conn.send(probe("before") + data + probe("after-pipelined"))
        before = conn.read()
        assert before is not None and before.status == 200
    answer = conn.read()
    assert answer is not None, "no answer to the refused request"
    return answer, conn


def check_connection(site: Site, answer: RawResponse, conn: Conn, position: str) -> bool:
    """RFC 9112 §9.6: Connection: close means closed; otherwise the connection still
    works. Returns whether the connection was kept."""
    close = answer.headers.get("connection", "").lower() == "close"
    if close:
        assert conn.closed_by_server(), "answered Connection: close but kept the socket open"
        return False
    if position == "pipelined":
        follow = conn.read()
        assert follow is not None, "the connection was closed without Connection: close"
        assert follow.status == 200 and follow.body == b"ran after-pipelined"
    conn.send(probe("after"))
    follow = conn.read()
    assert follow is not None, "the connection was closed without Connection: close"
    assert follow.status == 200 and follow.body == b"ran after"
    return True


def expected_hits(position: str, kept: bool) -> list[str]:
    hits = [] if position == "first" else ["before"]
    if kept:
        hits += ["after-pipelined", "after"] if position == "pipelined" else ["after"]
    return hits


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize(
    ("build", "status"), [c[1:] for c in FRAMINGS], ids=[c[0] for c in FRAMINGS]
)
def test_refused_framing_runs_no_hidden_request(
    fresh: Site,
    build: Callable[[int], bytes],
    status: int | tuple[int, ...],
    n: int,
    position: str,
) -> None:
    answer, conn = exchange(fresh, build(n), position)
    with conn:
        assert answer.status in (status if isinstance(status, tuple) else (status,)), answer.raw
        assert answer.body, "the refusal carries no message"
        # The body cannot be trusted to end where it says: the connection must end.
        assert answer.headers.get("connection", "").lower() == "close"
        assert not check_connection(fresh, answer, conn, position)
    assert fresh.ran() == expected_hits(position, kept=False)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize(
    ("method", "path", "lines", "status"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS]
)
def test_refusal_runs_no_hidden_request(
    fresh: Site,
    method: str,
    path: str,
    lines: tuple[str, ...],
    status: int,
    framing: str,
    position: str,
) -> None:
    answer, conn = exchange(fresh, refusal(method, path, lines, framing, 3), position)
    with conn:
        assert answer.status == status, answer.raw[:300]
        assert answer.body, "the refusal carries no message"
        kept = check_connection(fresh, answer, conn, position)
    if framing == "content-length":
        # A small body of a known length is read and dropped: the connection stays.
        assert kept, "a 2 KiB body of known length should be drained, not closed on"
    assert fresh.ran() == expected_hits(position, kept)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_answer_in_the_middle_of_the_body(fresh: Site, framing: str) -> None:
    """A handler answers on the first piece of its body: the rest (with requests hidden
    in it) is dropped and the connection kept, or, if its end is unknown, closed."""
    rest = padded(hidden(3), 64 * 1024)
    first = b"f" * 1024
    if framing == "chunked":
        start = head("POST", "/midway", "Transfer-Encoding: chunked") + b"%x\r\n" % len(first)
        start += first + b"\r\n"
        end = chunked(rest)
    else:
        size = len(first) + len(rest)
        start = head("POST", "/midway", f"Content-Length: {size}") + first
        end = rest
    with Conn(fresh.port) as conn:
        conn.send(start)
        answer = conn.read()
        assert answer is not None and answer.status == 415
        close = answer.headers.get("connection", "").lower() == "close"
        assert close == (framing == "chunked")
        try:
            conn.send(end + probe("after"))
        except OSError:
            assert close  # the server may be gone already
        if close:
            assert conn.closed_by_server()
        else:
            follow = conn.read()
            assert follow is not None and follow.body == b"ran after"
    assert fresh.ran() == (["midway"] if close else ["midway", "after"])


def test_accepted_body_that_looks_like_requests_is_only_data(fresh: Site) -> None:
    """Control case: the same bytes in an accepted body are the body, nothing more."""
    body = padded(hidden(3), 1000)
    with Conn(fresh.port) as conn:
        conn.send(head("POST", "/small", f"Content-Length: {len(body)}") + body + probe("after"))
        first = conn.read()
        assert first is not None and first.status == 403  # XSRF: no token
        follow = conn.read()
        assert follow is not None and follow.body == b"ran after"
    assert fresh.ran() == ["after"]


def _refusals_for_session(base: str) -> list[Callable[[requests.Session], requests.Response]]:
    body = hidden(3) + b"x" * 3000
    return [
        lambda s: s.post(base + "/upload", data=body, headers={"X-XSRFToken": "forged"}),
        lambda s: s.post(base + "/upload", data=body, headers={"Content-Type": "text/plain"}),
        lambda s: s.post(base + "/nowhere", data=body),
        lambda s: s.post(base + "/small", data=body),
        lambda s: s.delete(base + "/probe", data=body),
        lambda s: s.patch(base + "/upload", data=body),
        lambda s: s.post(base + "/upload", data=iter([body]), headers={"X-XSRFToken": "x"}),
    ]


def test_keep_alive_client_gets_no_reset_after_refusals(fresh: Site) -> None:
    """60 requests through one requests.Session, a refusal every third: none fails."""
    base = fresh.served.url
    refusals = _refusals_for_session(base)
    failures: list[str] = []
    with requests.Session() as s:
        for i in range(60):
            try:
                if i % 3 == 2:
                    r = refusals[(i // 3) % len(refusals)](s)
                    assert r.status_code in (400, 403, 404, 405, 413, 415), r.status_code
                else:
                    r = s.get(base + "/probe", params={"tag": f"t{i}"}, timeout=10)
                    assert r.status_code == 200
            except requests.ConnectionError as exc:
                failures.append(f"request {i}: {exc}")
    assert failures == []
    assert fresh.ran() == [f"t{i}" for i in range(60) if i % 3 != 2]


# ------------------------------------------------------------- max_body_size


@pytest.fixture(params=sorted(SERVERS))
def capped(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """The app behind a server given max_body_size=4096 (its routes allow 10 MiB)."""
    hits: list[str] = []
    with Served(make_app(tmp_path, hits), SERVERS[request.param], max_body_size=4096) as s:
        yield Site(s, hits)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_server_max_body_size_is_honoured(capped: Site, framing: str) -> None:
    """The stricter of the server's cap (4 KiB) and the route's limit applies."""
    with Conn(capped.port) as conn:
        for size, status in ((4096, 200), (10 * 1024, 413), (100, 200)):
            body = b"p" * size
            if framing == "chunked":
                data = head("PUT", "/put", "Transfer-Encoding: chunked") + chunked(body)
            else:
                data = head("PUT", "/put", f"Content-Length: {size}") + body
            conn.send(data)
            answer = conn.read()
            assert answer is not None and answer.status == status, (size, answer)
            if status == 200:
                assert answer.body == str(size).encode()
            else:
                assert b"4 KiB" in answer.body or b"4096" in answer.body, answer.body
                assert answer.headers.get("connection", "").lower() != "close"


def test_route_limit_still_applies_under_a_larger_server_cap(capped: Site) -> None:
    body = b"s" * 2000  # /small accepts 1024 bytes, the server 4096
    with Conn(capped.port) as conn:
        conn.send(head("POST", "/small", f"Content-Length: {len(body)}") + body)
        answer = conn.read()
        assert answer is not None and answer.status == 413
        assert b"1 KiB" in answer.body or b"1024" in answer.body, answer.body


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_handler_lifts_the_server_cap_for_its_request(capped: Site, framing: str) -> None:
    """Tornado's ``connection.set_max_body_size`` in ``prepare`` replaces the server's
    cap for that request only; the next request on the connection has the cap again."""
    body = b"o" * 10240
    with Conn(capped.port) as conn:
        for path, status in (("/stream?size=20000", 200), ("/stream", 413)):
            if framing == "chunked":
                data = head("PUT", path, "Transfer-Encoding: chunked") + chunked(body)
            else:
                data = head("PUT", path, f"Content-Length: {len(body)}") + body
            conn.send(data)
            answer = conn.read()
            assert answer is not None and answer.status == status, (path, answer)
            if status == 200:
                assert answer.body == b"10240"
