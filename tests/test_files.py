"""send_file: ranges, conditional requests, Content-Disposition, traversal, HEAD."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import tempfile
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlencode

import pytest
import tornado.web
from hypothesis import given, settings
from hypothesis import strategies as st
from tornado.httpclient import HTTPResponse
from tornado.testing import AsyncHTTPTestCase

from webframe.files import content_disposition, send_file

CONTENT = bytes(range(256)) * 40  # 10240 bytes
SIZE = len(CONTENT)
BIG_SIZE = 8 * 1024 * 1024


class SendHandler(tornado.web.RequestHandler):
    """A plain Tornado handler: ``/send?path=...&name=...&dl=1``."""

    def initialize(self, root: str, state: dict[str, object]) -> None:
        self.root = root
        self.state = state

    async def get(self) -> None:
        self.state["started"] = True
        await send_file(
            self,
            self.get_query_argument("path"),
            root=self.root,
            filename=self.get_query_argument("name", None),
            as_attachment=bool(self.get_query_argument("dl", "")),
            content_type=self.get_query_argument("type", None),
            chunk_size=int(self.get_query_argument("chunk", str(64 * 1024))),
        )
        self.state["done"] = True

    async def head(self) -> None:
        await self.get()


class SendFileTest(AsyncHTTPTestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        base = Path(self._tmp.name)
        self.root = base / "root"
        (self.root / "sub").mkdir(parents=True)
        (self.root / "hello.txt").write_bytes(CONTENT)
        (self.root / "sub" / "data.bin").write_bytes(CONTENT)
        (self.root / "empty.txt").write_bytes(b"")
        (self.root / "big.bin").write_bytes(os.urandom(1024) * (BIG_SIZE // 1024))
        (base / "secret.txt").write_bytes(b"top secret")
        (self.root / "escape.txt").symlink_to(base / "secret.txt")
        (self.root / "escape-dir").symlink_to(base)
        (self.root / "alias.txt").symlink_to(self.root / "hello.txt")
        self.secret = base / "secret.txt"
        self.state: dict[str, object] = {}
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    def get_app(self) -> tornado.web.Application:
        return tornado.web.Application(
            [("/send", SendHandler, {"root": str(self.root), "state": self.state})]
        )

    def get(self, path: str, method: str = "GET", **headers: str) -> HTTPResponse:
        from urllib.parse import urlencode

        query = urlencode({"path": path})
        extra = headers.pop("query", "")
        return self.fetch(
            f"/send?{query}{extra}",
            method=method,
            headers={k.replace("_", "-"): v for k, v in headers.items()},
        )

    # ------------------------------------------------------------ whole file

    def test_full_file(self) -> None:
        r = self.get("hello.txt")
        assert r.code == 200
        assert r.body == CONTENT
        assert r.headers["Content-Length"] == str(SIZE)
        assert r.headers["Content-Type"] == "text/plain"
        assert r.headers["Accept-Ranges"] == "bytes"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["ETag"].startswith('"') and r.headers["ETag"].endswith('"')
        assert r.headers["Last-Modified"].endswith("GMT")
        assert r.headers["Content-Disposition"] == 'inline; filename="hello.txt"'

    def test_nested_binary_and_empty(self) -> None:
        r = self.get("sub/data.bin")
        assert r.code == 200 and r.body == CONTENT
        assert r.headers["Content-Type"] == "application/octet-stream"
        r = self.get("empty.txt")
        assert r.code == 200 and r.body == b""
        assert r.headers["Content-Length"] == "0"

    def test_big_file_in_small_chunks(self) -> None:
        r = self.get("big.bin", query="&chunk=4096")
        assert r.code == 200
        assert r.body == (self.root / "big.bin").read_bytes()

    def test_head(self) -> None:
        r = self.get("hello.txt", method="HEAD")
        assert r.code == 200
        assert r.body == b""
        assert r.headers["Content-Length"] == str(SIZE)
        assert r.headers["Accept-Ranges"] == "bytes"
        r = self.get("hello.txt", method="HEAD", Range="bytes=0-9")
        assert r.code == 206
        assert r.headers["Content-Range"] == f"bytes 0-9/{SIZE}"
        assert r.body == b""

    # ---------------------------------------------------------------- ranges

    def test_range_middle(self) -> None:
        r = self.get("hello.txt", Range="bytes=100-199")
        assert r.code == 206
        assert r.body == CONTENT[100:200]
        assert r.headers["Content-Range"] == f"bytes 100-199/{SIZE}"
        assert r.headers["Content-Length"] == "100"

    def test_range_suffix(self) -> None:
        r = self.get("hello.txt", Range="bytes=-500")
        assert r.code == 206
        assert r.body == CONTENT[-500:]
        assert r.headers["Content-Range"] == f"bytes {SIZE - 500}-{SIZE - 1}/{SIZE}"
        r = self.get("hello.txt", Range=f"bytes=-{SIZE * 2}")
        assert r.code == 206 and r.body == CONTENT

    def test_range_open_ended_and_clipped(self) -> None:
        r = self.get("hello.txt", Range="bytes=100-")
        assert r.code == 206 and r.body == CONTENT[100:]
        assert r.headers["Content-Range"] == f"bytes 100-{SIZE - 1}/{SIZE}"
        r = self.get("hello.txt", Range="bytes=10-999999")
        assert r.code == 206 and r.body == CONTENT[10:]

    def test_range_unsatisfiable(self) -> None:
        for spec in (f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"):
            r = self.get("hello.txt", Range=spec)
            assert r.code == 416, spec
            assert r.headers["Content-Range"] == f"bytes */{SIZE}"
        r = self.get("empty.txt", Range="bytes=-5")
        assert r.code == 416
        assert r.headers["Content-Range"] == "bytes */0"

    def test_ignored_ranges_send_whole_file(self) -> None:
        for spec in ("bytes=0-1,5-6", "bytes=9-3", "items=0-5", "bytes=abc", "bytes=-"):
            r = self.get("hello.txt", Range=spec)
            assert r.code == 200, spec
            assert r.body == CONTENT

    def test_if_range(self) -> None:
        full = self.get("hello.txt")
        etag, modified = full.headers["ETag"], full.headers["Last-Modified"]
        r = self.get("hello.txt", Range="bytes=0-9", If_Range=etag)
        assert r.code == 206 and r.body == CONTENT[:10]
        r = self.get("hello.txt", Range="bytes=0-9", If_Range=modified)
        assert r.code == 206
        r = self.get("hello.txt", Range="bytes=0-9", If_Range='"stale"')
        assert r.code == 200 and r.body == CONTENT
        r = self.get("hello.txt", Range="bytes=0-9", If_Range="W/" + etag)
        assert r.code == 200
        r = self.get("hello.txt", Range="bytes=0-9", If_Range="Mon, 01 Jan 2001 00:00:00 GMT")
        assert r.code == 200

    # ----------------------------------------------------------- conditional

    def test_if_none_match(self) -> None:
        etag = self.get("hello.txt").headers["ETag"]
        for value in (etag, f'"other", {etag}', "W/" + etag, "*"):
            r = self.get("hello.txt", If_None_Match=value)
            assert r.code == 304, value
            assert r.body == b""
            assert r.headers["ETag"] == etag
        r = self.get("hello.txt", If_None_Match='"other"')
        assert r.code == 200 and r.body == CONTENT

    def test_if_modified_since(self) -> None:
        modified = self.get("hello.txt").headers["Last-Modified"]
        r = self.get("hello.txt", If_Modified_Since=modified)
        assert r.code == 304
        r = self.get("hello.txt", If_Modified_Since="Wed, 01 Jan 2031 00:00:00 GMT")
        assert r.code == 304
        r = self.get("hello.txt", If_Modified_Since="Mon, 01 Jan 2001 00:00:00 GMT")
        assert r.code == 200
        r = self.get("hello.txt", If_Modified_Since="not a date")
        assert r.code == 200
        # If-None-Match wins over If-Modified-Since.
        r = self.get("hello.txt", If_None_Match='"other"', If_Modified_Since=modified)
        assert r.code == 200

    def test_unreadable_dates_are_ignored(self) -> None:
        # Found probing the demo: a huge zone offset overflowed into a 500.
        for date in (
            "Mon, 01 Jan 2020 00:00:00 +99999999999999999999",
            "Mon, 01 Jan 99999 00:00:00 GMT",
            "Mon, 32 Jan 2020 00:00:00 GMT",
        ):
            r = self.get("hello.txt", If_Modified_Since=date)
            assert r.code == 200 and r.body == CONTENT, date
            r = self.get("hello.txt", If_Range=date, Range="bytes=0-9")
            assert r.code == 200 and r.body == CONTENT, date  # If-Range fails: whole file

    def test_etag_changes_with_content(self) -> None:
        before = self.get("hello.txt").headers["ETag"]
        (self.root / "hello.txt").write_bytes(CONTENT + b"more")
        r = self.get("hello.txt", If_None_Match=before)
        assert r.code == 200
        assert r.headers["ETag"] != before

    # ------------------------------------------------------------- traversal

    def test_traversal_is_404(self) -> None:
        for path in (
            "../secret.txt",
            "sub/../../secret.txt",
            str(self.secret),
            "/etc/passwd",
            "escape.txt",
            "escape-dir/secret.txt",
            "sub",
            ".",
            "",
            "missing.txt",
            "hello.txt\x00.png",
        ):
            r = self.get(path)
            assert r.code == 404, path
            assert b"top secret" not in r.body

    def test_symlink_and_absolute_path_inside_root_are_served(self) -> None:
        assert self.get("alias.txt").body == CONTENT
        assert self.get(str(self.root / "hello.txt")).body == CONTENT
        assert self.get("sub/../hello.txt").body == CONTENT

    # --------------------------------------------------- Content-Disposition

    def test_content_disposition_ascii_attachment(self) -> None:
        r = self.get("sub/data.bin", query="&name=report.pdf&dl=1")
        assert r.headers["Content-Disposition"] == 'attachment; filename="report.pdf"'
        assert r.headers["Content-Type"] == "application/pdf"  # guessed from the name

    def test_content_disposition_non_ascii(self) -> None:
        r = self.get("hello.txt", query="&name=r%C3%A9sum%C3%A9+2024.txt&dl=1")
        assert r.headers["Content-Disposition"] == (
            "attachment; filename=\"resume 2024.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202024.txt"
        )

    def test_content_type_given_is_sent_when_well_formed(self) -> None:
        r = self.get("hello.txt", query="&type=text/csv;+charset%3Dutf-8")
        assert r.code == 200
        assert r.headers["Content-Type"] == "text/csv; charset=utf-8"

    def test_content_type_that_cannot_be_sent_falls_back_to_the_name(self) -> None:
        # A declared type stored from an upload: no header can carry it.
        for bad in ("text/日本", "text/plain, text/html", "a/b/c", "text/ plain", "/"):
            r = self.get("hello.txt", query="&" + urlencode({"type": bad, "name": "r.pdf"}))
            assert r.code == 200, (bad, r.code)
            assert r.headers["Content-Type"] == "application/pdf", bad
            assert r.body == CONTENT
            r = self.get("sub/data.bin", query="&" + urlencode({"type": bad}))
            assert r.code == 200 and r.headers["Content-Type"] == "application/octet-stream"

    # ------------------------------------------------------------ disconnect

    def test_client_disconnect_is_quiet(self) -> None:
        async def request_and_leave() -> None:
            sock = socket.create_connection(("127.0.0.1", self.get_http_port()))
            sock.sendall(b"GET /send?path=big.bin&chunk=4096 HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_recv(sock, 1024)
            sock.close()
            for _ in range(200):
                await asyncio.sleep(0.01)
                if self.state.get("done"):
                    break

        self.io_loop.run_sync(request_and_leave, timeout=10)
        assert self.state.get("started")
        assert self.state.get("done")


@pytest.mark.parametrize(
    ("name", "attachment", "expected"),
    [
        ("a.txt", False, 'inline; filename="a.txt"'),
        ("a.txt", True, 'attachment; filename="a.txt"'),
        ('say "hi".txt', True,
         "attachment; filename=\"say hi.txt\"; filename*=UTF-8''say%20%22hi%22.txt"),
        ("dir\\evil.txt", False, 'inline; filename="evil.txt"'),
        ("x\r\nSet-Cookie: a=b.txt", False, 'inline; filename="xSet-Cookie: a=b.txt"'),
        ("报告.pdf", True,
         "attachment; filename=\"download.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf"),
        ("...", True, 'attachment; filename="download"'),
        ("a\udc80b.txt", False, 'inline; filename="ab.txt"'),  # a lone surrogate is dropped
        ("100%.txt", False, "inline; filename=\"100.txt\"; filename*=UTF-8''100%25.txt"),
        ("", True, 'attachment; filename="download"'),
    ],
)  # fmt: skip
def test_content_disposition(name: str, attachment: bool, expected: str) -> None:
    assert content_disposition(name, as_attachment=attachment) == expected


_QUOTED_FALLBACK = re.compile(r'(inline|attachment); filename="([^"\\\x00-\x1f\x7f]*)"(.*)')


# Any text, with the awkward characters made frequent: controls, format characters,
# lone surrogates, and the ASCII that quoting and paths care about.
_NAME_CHARS = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(categories=["Cc", "Cf", "Cs", "Zs"]),
    st.sampled_from("\"\\/%;.' *é日"),
)


@settings(max_examples=400, deadline=None)
@given(name=st.text(_NAME_CHARS), attachment=st.booleans())
def test_content_disposition_is_sendable_and_round_trips(name: str, attachment: bool) -> None:
    value = content_disposition(name, as_attachment=attachment)
    assert value.isascii() and value.isprintable(), value
    match = _QUOTED_FALLBACK.fullmatch(value)
    assert match is not None, value
    assert match[1] == ("attachment" if attachment else "inline")
    assert match[2].strip(". ") and match[2] == match[2].strip()
    shown = "".join(
        ch
        for ch in name.replace("\\", "/").rsplit("/", 1)[-1]
        if unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    ).strip()
    rest = match[3]
    if rest:
        prefix = "; filename*=UTF-8''"
        assert rest.startswith(prefix), value
        encoded = rest[len(prefix) :]
        # RFC 5987 value-chars: attr-char or a percent-encoded octet, nothing else.
        assert re.fullmatch(r"(?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})+", encoded), value
        assert unquote(encoded, errors="strict") == shown
    else:
        assert match[2] == shown or not shown.strip(". ")
