"""Property tests (hypothesis): the multipart receiver is chunking-invariant and fails only
with UploadError; cookie and session-ID handling never fail on arbitrary headers."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tornado.web import create_signed_value

from webframe.multipart import MultipartReceiver, UploadError, UploadLimits
from webframe.sessions import is_valid_session_id
from webframe.testing import TEST_SECRET, CookieJar, test_settings

from ._support import ThreadedServer, raw_request, request_bytes

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
B = b"fuzz-boundary-Zq9"
LIMITS = UploadLimits(max_body_size=1 << 20, max_file_size=1 << 19, max_files=5, max_fields=20)
# Bytes that stress the boundary search: pieces of the delimiter, CR/LF, dashes.
TRICKY = st.sampled_from(
    [b"\r", b"\n", b"\r\n", b"-", b"--", b"--" + B[:5], b"\r\n--" + B[:-1], b"\x00", b"\xff"]
)
DATA = st.lists(st.one_of(TRICKY, st.binary(max_size=40)), max_size=12).map(b"".join)
NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'),
    min_size=1,
    max_size=20,
)


@pytest.fixture
def temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def encode(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> bytes:
    out = bytearray()
    for name, value in fields:
        out += (
            b"--" + B + b'\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
        )
        out += value.encode() + b"\r\n"
    for name, filename, data in files:
        out += b"--" + B + b'\r\nContent-Disposition: form-data; name="' + name.encode()
        out += (
            b'"; filename="'
            + filename.encode()
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        out += data + b"\r\n"
    out += b"--" + B + b"--\r\n"
    return bytes(out)


def receive(body: bytes, cuts: list[int], temp: Path) -> Any:
    receiver = MultipartReceiver(B, LIMITS, temp)
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    try:
        for start, end in itertools.pairwise(points):
            receiver.feed(body[start:end])
        fields, files = receiver.finish()
    except UploadError as exc:
        return ("error", exc.status)
    result = (
        "ok",
        fields,
        [(f.field_name, f.filename, f.size, f.read()) for f in files],
    )
    for f in files:
        f.discard()
    return result


@FUZZ
@given(
    fields=st.lists(st.tuples(NAME, st.text(max_size=30)), max_size=4),
    files=st.lists(st.tuples(NAME, NAME, DATA), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
)
def test_chunking_never_changes_the_result(
    fields: list[tuple[str, str]],
    files: list[tuple[str, str, bytes]],
    cuts: list[int],
    temp_dir: Path,
) -> None:
    body = encode(fields, files)
    whole = receive(body, [], temp_dir)
    assert whole[0] == "ok", whole
    assert receive(body, cuts, temp_dir) == whole
    assert receive(body, list(range(0, len(body), 7)), temp_dir) == whole
    assert not list(temp_dir.iterdir())


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.lists(
            st.one_of(TRICKY, st.binary(max_size=30), st.just(b"--" + B), st.just(b"\r\n\r\n")),
            max_size=30,
        ).map(b"".join),
        st.binary(max_size=300).map(lambda b: b"--" + B + b"\r\n" + b),
    ),
    chunk=st.integers(min_value=1, max_value=700),
)
def test_arbitrary_bytes_only_raise_upload_errors(body: bytes, chunk: int, temp_dir: Path) -> None:
    receiver = MultipartReceiver(B, LIMITS, temp_dir)
    try:
        for i in range(0, len(body), chunk):
            receiver.feed(body[i : i + chunk])
        _fields, files = receiver.finish()
    except UploadError as exc:
        assert exc.status in (400, 413, 415) and exc.message
    else:
        for f in files:
            f.discard()
    assert not list(temp_dir.iterdir())


# ---------------------------------------------------------------- cookies


@FUZZ
@given(st.lists(st.text(max_size=200), max_size=5), st.text(max_size=100))
def test_cookie_jar_never_raises(headers: list[str], path: str) -> None:
    jar = CookieJar()
    jar.update("http://127.0.0.1/" + path, headers)
    jar.header_for("http://127.0.0.1/" + path)
    jar.header_for("http://127.0.0.1/")
    len(jar)


@FUZZ
@given(st.text(max_size=100))
def test_session_id_check_never_raises(value: str) -> None:
    assert is_valid_session_id(value) in (True, False)


@pytest.fixture(scope="module")
def demo_in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    from handlers import DEMO_DEFAULTS, make_app

    instance = tmp_path_factory.mktemp("fuzz-instance")

    def make() -> Any:
        return make_app(test_settings(**{**DEMO_DEFAULTS, "instance_path": str(instance)}))

    with ThreadedServer(make) as server:
        yield server


# Header values as bytes a client could send: anything but CR/LF (which end the header).
HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=300,
)


@FUZZ
@given(
    cookie=st.one_of(
        HEADER_TEXT,
        st.lists(
            st.sampled_from(['"', "\\", ";", "=", " ", "session", ",", "\\0"]), max_size=60
        ).map("".join),
    )
)
def test_arbitrary_cookie_headers_never_500(demo_in_process: ThreadedServer, cookie: str) -> None:
    for path in ("/about", "/profile"):
        data = request_bytes("GET", path, {"Cookie": cookie})
        resp = raw_request(demo_in_process.port, data, timeout=10)
        assert resp.status is not None and resp.status < 500, (cookie, resp.status)


@FUZZ
@given(sid=st.text(max_size=200))
def test_arbitrary_signed_session_ids_never_500(demo_in_process: ThreadedServer, sid: str) -> None:
    value = create_signed_value(
        TEST_SECRET, "session", sid.encode("utf-8", "surrogatepass")
    ).decode()
    data = request_bytes("GET", "/profile", {"Cookie": f"session={value}"})
    resp = raw_request(demo_in_process.port, data, timeout=10)
    assert resp.status in (302, 200), resp.status
