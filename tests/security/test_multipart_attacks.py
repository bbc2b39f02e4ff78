"""Hostile multipart bodies: against the running demo (``run.py --no-debug``, POST /files)
and fed straight to ``MultipartReceiver`` in 1-byte, 7-byte and 64 KiB chunks.

Each refusal must be a 4xx with a message (never a 500 or a traceback), arrive in
bounded time, leave no temp file, and leave the server answering.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from webframe.multipart import MultipartReceiver, UploadError, UploadLimits

from ._support import (
    DemoUser,
    ServerProcess,
    assert_no_temp_files,
    assert_refused,
    closing,
    multipart_head,
    part,
    raw_request,
    read_response,
    request_bytes,
)

B = b"hardening-7MA4YWxkTrZu0gW"
KiB = 1024
MiB = 1024 * KiB
#: what the demo's /files route runs with (UploadHandler defaults, 100 MiB uploads).
DEMO_LIMITS = UploadLimits(max_body_size=100 * MiB + 64 * KiB, max_file_size=100 * MiB)
END = closing(B)


@dataclass(frozen=True)
class Case:
    id: str
    body: Callable[[], bytes]
    #: expected status; None: a well-formed body that may be accepted (2xx) or refused (4xx)
    status: int | None
    message: str | None = None
    boundary: bytes = B
    #: feeding 1 byte at a time stays cheap (small body, or refused in the first bytes)
    one_byte: bool = True
    xfail: str | None = None


def field(name: str, value: bytes = b"v") -> bytes:
    return part(B, name, value)


def raw_part(headers: bytes, data: bytes = b"x") -> bytes:
    return b"--" + B + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"


CASES = [
    Case(
        "30000-headerless-parts",
        lambda: (b"--" + B + b"\r\n\r\nx\r\n") * 30000 + END,
        400,
        "Content-Disposition",
    ),
    Case("101-fields", lambda: b"".join(field(f"f{i}") for i in range(101)) + END, 413, "fields"),
    Case(
        "11-files",
        lambda: b"".join(part(B, f"f{i}", b"v", "a.txt", "text/plain") for i in range(11)) + END,
        413,
        "files",
    ),
    Case(
        "1001-empty-file-parts",
        # Empty file inputs do not count as files, but they are parts.
        lambda: b"".join(part(B, f"f{i}", b"", "") for i in range(1001)) + END,
        413,
        "parts",
    ),
    Case(
        "20000-parts",
        lambda: b"".join(part(B, "f", b"", "") for i in range(20000)) + END,
        413,
        "parts",
    ),
    Case(
        "part-header-over-limit",
        lambda: raw_part(b'Content-Disposition: form-data; name="' + b"a" * 9000 + b'"') + END,
        413,
        "header",
    ),
    Case(
        "part-header-value-1mb",
        lambda: (
            raw_part(b"X-Long: " + b"a" * MiB + b"\r\nContent-Disposition: form-data; name=a") + END
        ),
        413,
        "header",
    ),
    Case(
        "17-part-headers",
        lambda: (
            raw_part(
                b"".join(b"X-%d: y\r\n" % i for i in range(17))
                + b"Content-Disposition: form-data; name=a"
            )
            + END
        ),
        400,
        "headers",
    ),
    Case(
        "quoted-disposition-10k-semicolons",
        lambda: raw_part(b'Content-Disposition: form-data; name="a' + b";" * 10000 + b'"') + END,
        413,
        "header",
    ),
    Case(
        "cr-in-part-header",
        lambda: raw_part(b"Content-Disposition: form-data; name=a\rb") + END,
        400,
        "malformed",
    ),
    Case(
        "nul-in-part-header-name",
        lambda: raw_part(b"X\x00: y\r\nContent-Disposition: form-data; name=a") + END,
        400,
        "malformed",
    ),
    Case(
        "lf-in-part-header-value",
        lambda: raw_part(b"Content-Disposition: form-data; name=a\nX-Injected: y") + END,
        400,
    ),
    Case(
        "nul-and-controls-in-field-name",
        lambda: raw_part(b'Content-Disposition: form-data; name="a\x00b\x1b\x7f"') + END,
        400,
    ),
    Case(
        "two-content-dispositions",
        lambda: (
            raw_part(
                b"Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b"
            )
            + END
        ),
        400,
        "Content-Disposition",
    ),
    Case(
        "disposition-not-form-data",
        lambda: raw_part(b"Content-Disposition: attachment; name=a") + END,
        400,
        "form-data",
    ),
    Case("part-without-name", lambda: raw_part(b"Content-Disposition: form-data") + END, 400),
    Case("field-not-utf8", lambda: field("a", b"\xff\xfe\xfa") + END, 400, "UTF-8"),
    Case("field-over-64k", lambda: field("a", b"x" * (64 * KiB + 1)) + END, 413, "Field"),
    Case(
        "no-closing-boundary",
        lambda: part(B, "f", b"data", "a.txt", "text/plain"),
        400,
        "closing boundary",
    ),
    Case(
        "megabytes-of-crlf-before-first-boundary",
        lambda: b"\r\n" * (2 * MiB) + field("a") + END,
        400,
        "boundary",
    ),
    Case(
        "megabytes-of-dashes-after-last-boundary",
        lambda: field("a") + END + b"-" * (4 * MiB),
        400,
        "closing multipart boundary",
    ),
    Case(
        "preamble-never-contains-boundary",
        lambda: b"x" * (2 * MiB),
        400,
        "boundary",
    ),
    Case(
        "boundary-of-300-characters",
        lambda: b"--" + b"b" * 300 + b"--\r\n",
        400,
        "boundary",
        boundary=b"b" * 300,
    ),
    Case(
        "boundary-with-forbidden-characters",
        lambda: b"--a{b}--\r\n",
        400,
        "boundary",
        boundary=b"a{b}",
    ),
    Case("empty-body", lambda: b"", 400, "empty"),
    # Well-formed or harmless: may be accepted, must never break anything.
    Case("only-closing-boundary", lambda: END, None),
    Case("closing-boundary-without-crlf", lambda: b"--" + B + b"--", None),
]
IDS = [c.id for c in CASES]


def _param(c: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
    return pytest.param(c, id=c.id, marks=marks)


PARAMS = [_param(c) for c in CASES]


# --------------------------------------------------------------------- receiver


def feed_all(
    body: bytes, chunk: int, temp: Path, boundary: bytes = B, limits: UploadLimits = DEMO_LIMITS
) -> tuple[dict[str, list[str]], list[object]]:
    receiver = MultipartReceiver(boundary, limits, temp)
    for i in range(0, len(body), chunk):
        receiver.feed(body[i : i + chunk])
    fields, files = receiver.finish()
    return fields, list(files)


@pytest.mark.parametrize("chunk", [1, 7, 64 * KiB], ids=["1B", "7B", "64KiB"])
@pytest.mark.parametrize("case", PARAMS)
def test_receiver(case: Case, chunk: int, tmp_path: Path) -> None:
    body = case.body()
    if chunk == 1 and not case.one_byte and len(body) > 256 * KiB:
        pytest.skip("1-byte chunks only for small bodies")
    started = time.monotonic()
    if case.status is None:
        try:
            _fields, files = feed_all(body, chunk, tmp_path, case.boundary)
        except UploadError as exc:
            assert 400 <= exc.status < 500 and exc.message
        else:
            for f in files:
                f.discard()  # type: ignore[attr-defined]
    else:
        with pytest.raises(UploadError) as info:
            feed_all(body, chunk, tmp_path, case.boundary)
        assert info.value.status == case.status, info.value.message
        assert info.value.message
        if case.message:
            assert case.message.lower() in info.value.message.lower()
    assert time.monotonic() - started < 20
    assert_no_temp_files(tmp_path, wait=0)


# ----------------------------------------------------------------------- server


def post_files(
    demo: ServerProcess,
    user: DemoUser,
    body: bytes,
    boundary: bytes = B,
    extra: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> object:
    headers = {
        **user.auth_headers(),
        "Accept": "application/json",
        "Content-Type": multipart_head(boundary.decode("latin-1")),
        **(extra or {}),
    }
    return raw_request(demo.port, request_bytes("POST", "/files", headers, body), timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("case", PARAMS)
def test_server(case: Case, live: ServerProcess, demo_user: DemoUser) -> None:
    resp = post_files(live, demo_user, case.body(), case.boundary)
    assert resp.elapsed < 15, f"took {resp.elapsed:.1f}s"  # type: ignore[attr-defined]
    if case.status is None:
        assert resp.status in (200, 201, 302, 400), resp.status  # type: ignore[attr-defined]
        if resp.status == 201:  # type: ignore[attr-defined]
            assert json.loads(resp.body) == {"files": []}  # type: ignore[attr-defined]
        else:
            assert_refused(resp, (200, 302, 400))  # type: ignore[arg-type]
    else:
        assert_refused(resp, case.status, message=case.message)  # type: ignore[arg-type]
        data = json.loads(resp.body)  # type: ignore[attr-defined]
        assert data["error"]["status"] == case.status and data["error"]["message"]


@pytest.mark.slow
def test_server_html_refusal_is_a_page(live: ServerProcess, demo_user: DemoUser) -> None:
    headers = {
        **demo_user.auth_headers(),
        "Content-Type": multipart_head(B.decode()),
        "Accept": "text/html",
    }
    body = b"".join(field(f"f{i}") for i in range(101)) + END
    resp = raw_request(live.port, request_bytes("POST", "/files", headers, body))
    assert_refused(resp, 413, message="max_fields")
    assert "<html" in resp.text.lower() or "<!doctype" in resp.text.lower()


# ------------------------------------------------------------- linear or bounded


def _receiver_time(body: bytes, tmp: Path, limits: UploadLimits) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        try:
            _f, files = feed_all(body, 64 * KiB, tmp, B, limits)
            for f in files:
                f.discard()  # type: ignore[attr-defined]
        except UploadError:
            pass
        best = min(best, time.perf_counter() - started)
    return best


def semicolon_body(n: int) -> bytes:
    return raw_part(b'Content-Disposition: form-data; name="a' + b";" * n + b'"') + END


def test_quoted_semicolons_are_linear_in_the_receiver(tmp_path: Path) -> None:
    limits = DEMO_LIMITS.replace(max_part_header_size=4 * MiB)
    small = _receiver_time(semicolon_body(1_000), tmp_path, limits)
    large = _receiver_time(semicolon_body(10_000), tmp_path, limits)
    huge = _receiver_time(semicolon_body(100_000), tmp_path, limits)
    # 10x the input may cost ~10x; quadratic would be 100x. Floors absorb timer noise.
    assert large < max(small, 0.001) * 30, (small, large)
    assert huge < max(large, 0.002) * 30, (large, huge)
    assert huge < 1.0


@pytest.mark.slow
def test_quoted_semicolons_are_linear_on_the_server(
    live: ServerProcess, demo_user: DemoUser
) -> None:
    def timed(n: int) -> float:
        best = float("inf")
        for _ in range(3):
            resp = post_files(live, demo_user, semicolon_body(n))
            assert resp.status == 201, resp.text[:300]  # type: ignore[attr-defined]
            best = min(best, resp.elapsed)  # type: ignore[attr-defined]
        return best

    small, large = timed(1_000), timed(7_500)
    assert large < max(small, 0.02) * 10, (small, large)
    resp = post_files(live, demo_user, semicolon_body(10_000))
    assert_refused(resp, 413, message="header")  # type: ignore[arg-type]


def cr_file_body(size: int) -> bytes:
    half = b"a" * (size // 2)
    return part(B, "file", half + b"\r" + half, "big.bin", "application/octet-stream") + END


def test_single_cr_file_is_linear_in_the_receiver(tmp_path: Path) -> None:
    small = _receiver_time(cr_file_body(2 * MiB), tmp_path, DEMO_LIMITS)
    large = _receiver_time(cr_file_body(20 * MiB), tmp_path, DEMO_LIMITS)
    assert large < max(small, 0.005) * 25, (small, large)
    allcr = part(B, "file", b"\r" * (20 * MiB), "cr.bin") + END
    assert _receiver_time(allcr, tmp_path, DEMO_LIMITS) < max(large, 0.05) * 4
    assert_no_temp_files(tmp_path, wait=0)


@pytest.mark.slow
def test_20mb_file_with_single_cr_on_the_server(live: ServerProcess, demo_user: DemoUser) -> None:
    small_body, large_body = cr_file_body(2 * MiB), cr_file_body(20 * MiB)
    small = post_files(live, demo_user, small_body)
    large = post_files(live, demo_user, large_body, timeout=60)
    assert small.status == 201 and large.status == 201, large.text[:300]  # type: ignore[attr-defined]
    stored = json.loads(large.body)["files"][0]  # type: ignore[attr-defined]
    content = b"a" * (10 * MiB) + b"\r" + b"a" * (10 * MiB)
    assert stored["size"] == len(content)
    assert stored["sha256"] == hashlib.sha256(content).hexdigest()
    assert large.elapsed < max(small.elapsed, 0.05) * 25, (small.elapsed, large.elapsed)  # type: ignore[attr-defined]
    assert large.elapsed < 30  # type: ignore[attr-defined]


@pytest.mark.slow
def test_unfinished_body_held_open_costs_no_cpu(live: ServerProcess, demo_user: DemoUser) -> None:
    """A body without its closing boundary, the connection held open: the server waits
    (no spin), and once the client goes the temp file is removed."""
    body = part(B, "file", b"x" * 100_000, "held.txt", "text/plain")
    headers = {
        **demo_user.auth_headers(),
        "Accept": "application/json",
        "Content-Type": multipart_head(B.decode()),
        "Content-Length": str(len(body) + 10_000),
    }
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(request_bytes("POST", "/files", headers, body))
        time.sleep(0.3)
        assert any(live.temp_dir.iterdir()), "the partial file should be streaming to disk"
        before = live.cpu_seconds()
        time.sleep(2.0)
        used = live.cpu_seconds() - before
        assert used < 0.3, f"server used {used:.2f}s of CPU while waiting for the body"
        # Still answering others meanwhile.
        other = raw_request(live.port, request_bytes("GET", "/about", {}, b""), timeout=5)
        assert other.status == 200
    assert_no_temp_files(live.temp_dir)


@pytest.mark.slow
def test_body_shorter_than_content_length_then_eof(
    live: ServerProcess, demo_user: DemoUser
) -> None:
    """The client half-closes after sending less than it declared: no answer is owed,
    but the connection must end promptly and the temp file go."""
    body = part(B, "file", b"y" * 50_000, "short.txt", "text/plain")
    headers = {
        **demo_user.auth_headers(),
        "Content-Type": multipart_head(B.decode()),
        "Content-Length": str(len(body) * 2),
    }
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(request_bytes("POST", "/files", headers, body))
        sock.shutdown(socket.SHUT_WR)
        resp = read_response(sock, time.monotonic() + 10)
        assert resp.status is None or resp.status >= 400
    assert_no_temp_files(live.temp_dir)
