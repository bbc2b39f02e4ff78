"""The sans-I/O multipart and raw-body receivers: parsing, limits, clean-up, storage."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from webframe.multipart import (
    BadUploadError,
    MultipartReceiver,
    RawBodyReceiver,
    UploadedFile,
    UploadError,
    UploadLimits,
    UploadStorageError,
    UploadTooLargeError,
    UploadTypeError,
    sniff_type,
)
from webframe.uploads.tempfile import TempFile, storage_error

BOUNDARY = b"----webframe-test-7MA4YWxkTrZu0gW"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
# Data that starts like a delimiter but is not one, to exercise look-behind.
TRICKY = b"abc\r\n--" + BOUNDARY[:-3] + b"xyz\r\n-" + b"\r" * 10 + b"end"
HTML = b"  \n<!DOCTYPE html><html><script>alert(1)</script></html>"

Part = tuple[str, str | None, str | None, bytes]  # name, filename, content type, data


def encode(parts: list[Part], boundary: bytes = BOUNDARY, epilogue: bytes = b"\r\n") -> bytes:
    out = bytearray()
    for name, filename, ctype, data in parts:
        out += b"--" + boundary + b"\r\n"
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if ctype is not None:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += b"--" + boundary + b"--" + epilogue
    return bytes(out)


def content_type(boundary: bytes = BOUNDARY) -> str:
    return "multipart/form-data; boundary=" + boundary.decode()


@pytest.fixture
def temp_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


def receive(
    body: bytes,
    temp_dir: Path,
    limits: UploadLimits | None = None,
    chunk: int = 65536,
    ctype: str | None = None,
) -> tuple[dict[str, list[str]], list[UploadedFile]]:
    receiver = MultipartReceiver.from_content_type(
        ctype or content_type(), limits or UploadLimits(), temp_dir
    )
    for i in range(0, len(body), chunk):
        receiver.feed(body[i : i + chunk])
    return receiver.finish()


def summary(files: list[UploadedFile]) -> list[tuple[str, str, str, int, str]]:
    return [(f.field_name, f.filename, f.content_type, f.size, f.sha256) for f in files]


SAMPLE: list[Part] = [
    ("title", None, None, "Hello wörld".encode()),
    ("tags", None, None, b"a"),
    ("tags", None, None, b"b"),
    ("empty", None, None, b""),
    ("photo", "cat.png", "image/png", PNG),
    ("doc", "notes.txt", "text/plain", TRICKY * 50),
    ("blank", "empty.txt", "text/plain", b""),
]


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_chunkings_give_identical_results(temp_dir: Path, chunk: int) -> None:
    body = encode(SAMPLE)
    fields, files = receive(body, temp_dir, chunk=chunk)
    assert fields == {"title": ["Hello wörld"], "tags": ["a", "b"], "empty": [""]}
    assert summary(files) == [
        ("photo", "cat.png", "image/png", len(PNG), hashlib.sha256(PNG).hexdigest()),
        (
            "doc",
            "notes.txt",
            "text/plain",
            len(TRICKY) * 50,
            hashlib.sha256(TRICKY * 50).hexdigest(),
        ),
        ("blank", "empty.txt", "text/plain", 0, hashlib.sha256(b"").hexdigest()),
    ]
    assert files[0].read() == PNG
    assert files[1].read() == TRICKY * 50
    assert files[0].sniffed_type == "image/png"
    assert files[1].sniffed_type == "text/plain"
    assert files[2].sniffed_type is None
    assert all(f.path.parent == temp_dir for f in files)
    for f in files:
        f.discard()
    assert os.listdir(temp_dir) == []


def test_uploaded_file_open_and_raw_filename(temp_dir: Path) -> None:
    body = encode([("f", "../../evil<x>.png", "image/png", PNG)])
    _, [upload] = receive(body, temp_dir)
    assert upload.raw_filename == "../../evil<x>.png"
    assert upload.filename == "evil_x_.png"
    with upload.open() as fh:
        assert fh.read() == PNG
    upload.discard()
    upload.discard()  # twice is fine
    assert not upload.path.exists()


def test_utf8_field_and_file_names(temp_dir: Path) -> None:
    body = encode([("prénom", None, None, "Zoë".encode()), ("fïle", "naïve café.txt", None, b"x")])
    fields, [upload] = receive(body, temp_dir)
    assert fields == {"prénom": ["Zoë"]}
    assert upload.field_name == "fïle"
    assert upload.filename == "naïve café.txt"
    assert upload.content_type == "application/octet-stream"


def test_requests_body_parses_like_hand_built(temp_dir: Path) -> None:
    prepared = requests.Request(
        "POST",
        "http://example.invalid/",
        data={"title": "Hello wörld", "tags": ["a", "b"]},
        files={"photo": ("cat.png", PNG, "image/png"), "doc": ("notes.txt", TRICKY, "text/plain")},
    ).prepare()
    body = prepared.body
    assert isinstance(body, bytes)
    results = []
    for chunk in (1, 7, 65536):
        fields, files = receive(
            body, temp_dir, chunk=chunk, ctype=str(prepared.headers["Content-Type"])
        )
        results.append((fields, summary(files)))
    assert results[0] == results[1] == results[2]
    hand_fields, hand_files = receive(
        encode(
            [
                ("title", None, None, "Hello wörld".encode()),
                ("tags", None, None, b"a"),
                ("tags", None, None, b"b"),
                ("photo", "cat.png", "image/png", PNG),
                ("doc", "notes.txt", "text/plain", TRICKY),
            ]
        ),
        temp_dir,
    )
    assert results[0] == (hand_fields, summary(hand_files))


@pytest.fixture
def body_catcher() -> Iterator[tuple[int, Callable[[], bytes]]]:
    """A one-shot HTTP listener that records the raw request it receives."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    captured: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(rest) < length:
                rest += conn.recv(65536)
            captured.extend([head, rest])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def result() -> bytes:
        thread.join(10)
        return b"\r\n\r\n".join(captured)

    yield server.getsockname()[1], result
    server.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_body_parses_like_requests(
    temp_dir: Path, tmp_path: Path, body_catcher: tuple[int, Callable[[], bytes]]
) -> None:
    port, result = body_catcher
    (tmp_path / "cat.png").write_bytes(PNG)
    (tmp_path / "notes.txt").write_bytes(TRICKY)
    subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "10",
            "-H",
            "Expect:",
            "-F",
            "title=Hello wörld",
            "-F",
            "tags=a",
            "-F",
            "tags=b",
            "-F",
            f"photo=@{tmp_path / 'cat.png'};type=image/png",
            "-F",
            f"doc=@{tmp_path / 'notes.txt'};type=text/plain",
            f"http://127.0.0.1:{port}/",
        ],
        check=True,
        timeout=20,
    )
    head, _, body = result().partition(b"\r\n\r\n")
    ctype = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-type:")
    )
    curl_results = [
        (lambda r: (r[0], summary(r[1])))(receive(body, temp_dir, chunk=c, ctype=ctype))
        for c in (1, 7, 65536)
    ]
    prepared = requests.Request(
        "POST",
        "http://example.invalid/",
        data={"title": "Hello wörld", "tags": ["a", "b"]},
        files={"photo": ("cat.png", PNG, "image/png"), "doc": ("notes.txt", TRICKY, "text/plain")},
    ).prepare()
    assert isinstance(prepared.body, bytes)
    fields, files = receive(prepared.body, temp_dir, ctype=str(prepared.headers["Content-Type"]))
    assert curl_results[0] == curl_results[1] == curl_results[2] == (fields, summary(files))


def test_empty_file_input_is_skipped(temp_dir: Path) -> None:
    # What a browser sends for <input type=file> with no file chosen.
    body = encode([("avatar", "", "application/octet-stream", b""), ("name", None, None, b"x")])
    limits = UploadLimits(
        allowed_extensions=frozenset({".png"}), allowed_types=frozenset({"image/*"})
    )
    fields, files = receive(body, temp_dir, limits)
    assert fields == {"name": ["x"]}
    assert files == []
    assert os.listdir(temp_dir) == []


def test_empty_filename_with_content_is_a_file(temp_dir: Path) -> None:
    _, [upload] = receive(encode([("f", "", None, b"data")]), temp_dir)
    assert upload.filename == "upload"
    assert upload.raw_filename == ""
    assert upload.read() == b"data"


def test_empty_message_and_small_epilogue(temp_dir: Path) -> None:
    assert receive(b"--" + BOUNDARY + b"--\r\n", temp_dir) == ({}, [])
    body = b"\r\n\r\n" + encode([("a", None, None, b"1")], epilogue=b"\r\n\r\nbye\r\n")
    assert receive(body, temp_dir, chunk=3)[0] == {"a": ["1"]}


# ------------------------------------------------------------------ limits

BIG = b"x" * 5000


@pytest.mark.parametrize(
    ("limits", "parts", "error", "words"),
    [
        (
            UploadLimits(max_body_size=4000),
            [("f", "a.bin", None, BIG)],
            UploadTooLargeError,
            ["max_body_size"],
        ),
        (
            UploadLimits(max_file_size=4000),
            [("big", "a.bin", None, BIG)],
            UploadTooLargeError,
            ["'big'", "max_file_size"],
        ),
        (
            UploadLimits(max_files=1),
            [("f", "a.bin", None, BIG), ("g", "b.bin", None, BIG)],
            UploadTooLargeError,
            ["'g'", "max_files"],
        ),
        (
            UploadLimits(max_fields=2),
            [("f", "a.bin", None, BIG)] + [("n", None, None, b"1")] * 3,
            UploadTooLargeError,
            ["'n'", "max_fields"],
        ),
        (
            UploadLimits(max_field_size=100),
            [("f", "a.bin", None, BIG), ("note", None, None, BIG)],
            UploadTooLargeError,
            ["'note'", "max_field_size"],
        ),
        (
            UploadLimits(max_parts=3),
            [("f", "a.bin", None, BIG)] + [("n", None, None, b"1")] * 3,
            UploadTooLargeError,
            ["max_parts"],
        ),
        (
            UploadLimits(allowed_extensions=frozenset({".png"})),
            [("f", "a.png", None, PNG), ("g", "shell.png.php", None, b"<?php")],
            UploadTypeError,
            ["'g'", ".png"],
        ),
        (
            UploadLimits(allowed_types=frozenset({"image/png"})),
            [("f", "a.png", "image/png", PNG), ("g", "b.pdf", "application/pdf", b"%PDF-1.4")],
            UploadTypeError,
            ["'g'", "application/pdf"],
        ),
    ],
)
@pytest.mark.parametrize("chunk", [7, 65536])
def test_limits_raise_and_leave_no_file(
    temp_dir: Path,
    limits: UploadLimits,
    parts: list[Part],
    error: type[UploadError],
    words: list[str],
    chunk: int,
) -> None:
    with pytest.raises(error) as info:
        receive(encode(parts), temp_dir, limits, chunk=chunk)
    assert info.value.status == {UploadTooLargeError: 413, UploadTypeError: 415}[error]
    for word in words:
        assert word in info.value.message
    assert os.listdir(temp_dir) == []


def test_part_header_size_limit(temp_dir: Path) -> None:
    huge = (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="x"\r\n'
        b"X-Padding: " + b"p" * 9000 + b"\r\n\r\nv\r\n--" + BOUNDARY + b"--\r\n"
    )
    body = encode([("f", "a.bin", None, BIG)]).rsplit(b"--" + BOUNDARY + b"--", 1)[0] + huge
    for chunk in (1000, 65536):
        with pytest.raises(UploadTooLargeError, match="max_part_header_size"):
            receive(body, temp_dir, chunk=chunk)
        assert os.listdir(temp_dir) == []


def test_many_headerless_parts_are_refused(temp_dir: Path) -> None:
    body = b"--" + BOUNDARY + (b"\r\n\r\nx\r\n--" + BOUNDARY) * 20000 + b"--\r\n"
    with pytest.raises(UploadError):
        receive(body, temp_dir)
    with pytest.raises(UploadError):
        receive(body, temp_dir, UploadLimits(max_parts=5))


def test_limits_validation_and_replace() -> None:
    limits = UploadLimits(
        allowed_extensions=frozenset({"PNG", ".Jpg"}), allowed_types=frozenset({"Image/*"})
    )
    assert limits.allowed_extensions == frozenset({".png", ".jpg"})
    assert limits.allowed_types == frozenset({"image/*"})
    assert limits.replace(max_files=3).max_files == 3
    assert limits.replace(max_files=3).allowed_types == frozenset({"image/*"})
    with pytest.raises(ValueError, match="max_files"):
        UploadLimits(max_files=-1)
    with pytest.raises(ValueError, match="allowed_types"):
        UploadLimits(allowed_types=frozenset({"image"}))


# --------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    "ctype",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=" + "a" * 201,
        "multipart/form-data; boundary=bad\x01boundary",
        'multipart/form-data; boundary="ends with space "',
    ],
)
def test_bad_boundary(temp_dir: Path, ctype: str) -> None:
    with pytest.raises(BadUploadError):
        MultipartReceiver.from_content_type(ctype, UploadLimits(), temp_dir)


def test_long_but_legal_boundary_and_quoted_boundary(temp_dir: Path) -> None:
    boundary = b"b" * 200
    body = encode([("a", None, None, b"1")], boundary=boundary)
    assert receive(body, temp_dir, ctype=content_type(boundary))[0] == {"a": ["1"]}
    ctype = 'multipart/form-data; boundary="' + BOUNDARY.decode() + '"'
    assert receive(encode([("a", None, None, b"1")]), temp_dir, ctype=ctype)[0] == {"a": ["1"]}


def test_not_multipart_is_415(temp_dir: Path) -> None:
    with pytest.raises(UploadTypeError):
        MultipartReceiver.from_content_type("application/json", UploadLimits(), temp_dir)


FILE_PART = (
    b"--"
    + BOUNDARY
    + b'\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n'
    + BIG
    + b"\r\n"
)


@pytest.mark.parametrize(
    "body",
    [
        FILE_PART
        + b"--"
        + BOUNDARY
        + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--"
        + BOUNDARY
        + b"--\r\n",  # no Content-Disposition
        FILE_PART
        + b"--"
        + BOUNDARY
        + b'\r\nContent-Disposition: form-data; filename="x"\r\n\r\n'
        + b"x\r\n--"
        + BOUNDARY
        + b"--\r\n",  # no name
        FILE_PART
        + b"--"
        + BOUNDARY
        + b'\r\nContent-Disposition: attachment; name="x"\r\n\r\n'
        + b"x\r\n--"
        + BOUNDARY
        + b"--\r\n",  # not form-data
        FILE_PART + b"--" + BOUNDARY + b"\r\nno colon here\r\n\r\nx\r\n--" + BOUNDARY + b"--\r\n",
        b"this is not multipart at all",
        b"--wrong-boundary\r\n\r\n",
        b"\r\n" * 2000 + FILE_PART,  # preamble over the cap
        FILE_PART + b"--" + BOUNDARY + b"--\r\n" + b"junk" * 1000,  # epilogue over the allowance
        FILE_PART
        + b"--"
        + BOUNDARY
        + b'\r\nContent-Disposition: form-data; name="t"\r\n\r\n'
        + b"\xff\xfe\r\n--"
        + BOUNDARY
        + b"--\r\n",  # field not UTF-8
    ],
)
@pytest.mark.parametrize("chunk", [1, 64, 65536])
def test_malformed_bodies(temp_dir: Path, body: bytes, chunk: int) -> None:
    with pytest.raises(BadUploadError) as info:
        receive(body, temp_dir, chunk=chunk)
    assert info.value.status == 400
    assert os.listdir(temp_dir) == []


@pytest.mark.parametrize("body", [b"", FILE_PART, FILE_PART[:-1000], FILE_PART + b"--" + BOUNDARY])
def test_unterminated_body_fails_at_finish(temp_dir: Path, body: bytes) -> None:
    receiver = MultipartReceiver(BOUNDARY, UploadLimits(), temp_dir)
    receiver.feed(body)
    with pytest.raises(BadUploadError):
        receiver.finish()
    assert os.listdir(temp_dir) == []


def test_abort_removes_temp_files(temp_dir: Path) -> None:
    body = encode([("f", "a.bin", None, BIG), ("g", "b.bin", None, BIG)])
    receiver = MultipartReceiver(BOUNDARY, UploadLimits(), temp_dir)
    receiver.feed(body[: len(body) - 100])
    assert len(os.listdir(temp_dir)) == 2
    receiver.abort()
    assert os.listdir(temp_dir) == []
    receiver.abort()
    with pytest.raises(RuntimeError):
        receiver.feed(b"more")


def test_abort_after_finish_leaves_files_to_caller(temp_dir: Path) -> None:
    receiver = MultipartReceiver(BOUNDARY, UploadLimits(), temp_dir)
    receiver.feed(encode([("f", "a.bin", None, BIG)]))
    _, [upload] = receiver.finish()
    receiver.abort()
    assert upload.path.exists()
    assert receiver.bytes_received > len(BIG)
    with pytest.raises(RuntimeError):
        receiver.finish()


# ------------------------------------------------------------------ types


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        (b"\x1f\x8b\x08\x00", "application/gzip"),
        (HTML, "text/html"),
        (b"\xef\xbb\xbf<HTML><body>", "text/html"),
        (b"\t <svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "text/html"),
        (b"<ScRiPt>alert(1)</sCrIpT>", "text/html"),
        (b"hello, world\nline two\n", "text/plain"),
        ("naïve café".encode() + "é".encode()[:1], "text/plain"),  # cut mid-character
        (b"\x00\x01\x02\x03binary", "application/octet-stream"),
        (b"\xff\xfe\xfd not utf-8", "application/octet-stream"),
        (b"", None),
    ],
)
def test_sniff_type(data: bytes, expected: str | None) -> None:
    assert sniff_type(data) == expected


IMAGES = UploadLimits(allowed_types=frozenset({"image/*"}))


@pytest.mark.parametrize(
    ("part", "ok"),
    [
        (("f", "cat.png", "image/png", PNG), True),
        (("f", "cat.png", None, PNG), True),  # no declared type: bytes decide
        (("f", "cat.png", "image/png", HTML), False),  # .png whose bytes are HTML
        (("f", "cat.png", None, HTML), False),
        (("f", "cat.png", "image/png", b"just text"), False),  # declared png, is not png
        (("f", "cat.png", "text/html", PNG), False),  # declared type not allowed
        (("f", "a.bin", "application/octet-stream", b"\x00\x01"), False),
        (("f", "cat.png", "image/png", b""), True),  # empty file of an allowed declared type
        (("f", "x", None, b""), False),  # empty and unknown
    ],
)
def test_allowed_types_check_declared_and_sniffed(temp_dir: Path, part: Part, ok: bool) -> None:
    body = encode([part])
    if ok:
        receive(body, temp_dir, IMAGES)
    else:
        with pytest.raises(UploadTypeError):
            receive(body, temp_dir, IMAGES)
        assert os.listdir(temp_dir) == []


def test_type_rules_for_text_and_containers(temp_dir: Path) -> None:
    csv = UploadLimits(allowed_types=frozenset({"text/csv"}))
    receive(encode([("f", "data.csv", None, b"a,b\n1,2\n")]), temp_dir, csv)
    with pytest.raises(UploadTypeError):
        receive(encode([("f", "data.csv", None, b"<script>x</script>")]), temp_dir, csv)
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    office = UploadLimits(allowed_types=frozenset({docx}))
    receive(encode([("f", "a.docx", docx, b"PK\x03\x04" + BIG)]), temp_dir, office)
    with pytest.raises(UploadTypeError):
        receive(encode([("f", "a.docx", docx, PNG)]), temp_dir, office)
    html_ok = UploadLimits(allowed_types=frozenset({"text/*"}))
    receive(encode([("f", "page.html", "text/html", HTML)]), temp_dir, html_ok)


# ---------------------------------------------------------------- storage


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("size", [10, 200_000])
def test_disk_full_while_writing(
    temp_dir: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    real_mkstemp = tempfile.mkstemp

    def full_mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name  # every write fails with ENOSPC

    monkeypatch.setattr(tempfile, "mkstemp", full_mkstemp)
    with pytest.raises(UploadStorageError, match="disk is full") as info:
        receive(encode([("f", "a.bin", None, b"x" * size)]), temp_dir)
    assert info.value.status == 507
    assert os.listdir(temp_dir) == []


def test_disk_full_creating_temp_file(temp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", no_space)
    with pytest.raises(UploadStorageError, match="disk is full"):
        receive(encode([("a", None, None, b"1"), ("f", "a.bin", None, BIG)]), temp_dir)


def test_write_error_from_file_object(temp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = TempFile.write

    def failing_write(self: TempFile, data: bytes | memoryview) -> None:
        if self.size > 1000:
            raise storage_error(OSError(errno.EIO, "Input/output error"))
        real_write(self, data)

    monkeypatch.setattr(TempFile, "write", failing_write)
    with pytest.raises(UploadStorageError, match="Input/output error"):
        receive(encode([("f", "a.bin", None, BIG)]), temp_dir, chunk=512)
    assert os.listdir(temp_dir) == []


def make_upload(temp_dir: Path, name: str = "report.txt", data: bytes = b"content") -> UploadedFile:
    _, [upload] = receive(encode([("f", name, "text/plain", data)]), temp_dir)
    return upload


def test_save_never_overwrites(temp_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "uploads"
    dest.mkdir()
    (dest / "report.txt").write_bytes(b"existing")
    first = make_upload(temp_dir, data=b"one")
    second = make_upload(temp_dir, data=b"two")
    p1 = first.save(dest)
    p2 = second.save(dest)
    p3 = first.save(dest)
    assert len({p1, p2, p3}) == 3
    assert (dest / "report.txt").read_bytes() == b"existing"
    assert (p1.name, p2.name, p3.name) == ("report-1.txt", "report-2.txt", "report-3.txt")
    assert p1.read_bytes() == b"one" and p2.read_bytes() == b"two" and p3.read_bytes() == b"one"
    first.discard()
    second.discard()
    assert p1.read_bytes() == b"one"  # saved copies outlive the temp file
    assert os.listdir(temp_dir) == []


def test_save_with_custom_name_is_cleaned(temp_dir: Path, tmp_path: Path) -> None:
    upload = make_upload(temp_dir)
    saved = upload.save(tmp_path, name="../../etc/passwd")
    assert saved == tmp_path / "passwd"


def test_save_across_filesystems_copies_atomically(
    temp_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = make_upload(temp_dir, data=BIG)
    real_link = os.link

    def link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == upload.path:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    dest = tmp_path / "other"
    dest.mkdir()
    saved = [upload.save(dest), upload.save(dest)]
    assert [p.name for p in saved] == ["report.txt", "report-1.txt"]
    assert all(p.read_bytes() == BIG for p in saved)
    assert sorted(os.listdir(dest)) == ["report-1.txt", "report.txt"]  # no staging leftovers


def test_save_without_hard_links(
    temp_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = make_upload(temp_dir, data=BIG)

    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    (tmp_path / "report.txt").write_bytes(b"keep")
    saved = upload.save(tmp_path)
    assert saved.name == "report-1.txt"
    assert saved.read_bytes() == BIG
    assert (tmp_path / "report.txt").read_bytes() == b"keep"
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".saving-")]


def test_save_creates_the_folder_and_its_parents(temp_dir: Path, tmp_path: Path) -> None:
    upload = make_upload(temp_dir)
    saved = upload.save(tmp_path / "media" / "avatars")
    assert saved == tmp_path / "media" / "avatars" / "report.txt"
    assert saved.read_bytes() == b"content"
    assert upload.save(str(tmp_path / "media" / "avatars")).name == "report-1.txt"


def test_save_names_the_folder_that_cannot_be_made(temp_dir: Path, tmp_path: Path) -> None:
    upload = make_upload(temp_dir)
    (tmp_path / "taken").write_bytes(b"a file, not a folder")
    folder = tmp_path / "taken" / "sub"
    with pytest.raises(UploadStorageError) as caught:
        upload.save(folder)
    assert caught.value.status == 507
    assert caught.value.message.startswith(f"The upload folder {str(folder)!r} could not be ")
    assert str(upload.path) not in caught.value.message
    assert sorted(os.listdir(tmp_path)) == ["taken", "tmp"]
    assert upload.path.exists()  # the temp file is still the caller's to save or discard


def test_save_into_a_full_disk_names_the_folder(
    temp_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = make_upload(temp_dir)

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))

    monkeypatch.setattr(os, "link", full)
    with pytest.raises(UploadStorageError) as caught:
        upload.save(tmp_path / "dest")
    folder = str(tmp_path / "dest")
    assert caught.value.message == (
        f"The upload folder {folder!r} could not take 'report.txt': the disk is full."
    )
    assert os.listdir(tmp_path / "dest") == []


def test_save_after_discard_says_so(temp_dir: Path, tmp_path: Path) -> None:
    upload = make_upload(temp_dir)
    upload.discard()
    with pytest.raises(UploadStorageError, match="already discarded"):
        upload.save(tmp_path)


DECLARED_TYPES = [
    ("text/plain", "text/plain"),
    ("TEXT/Plain; charset=UTF-8", "text/plain"),
    ('text/plain;charset="utf-8";;', "text/plain"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("image/jpg", "image/jpeg"),  # the usual alias
    ("text/日本", "application/octet-stream"),
    ("text/\xe6\x97\xa5", "application/octet-stream"),  # the same bytes read as Latin-1
    ("text/ plain", "application/octet-stream"),
    ("a/b/c", "application/octet-stream"),
    ("text", "application/octet-stream"),
    ("text/*", "application/octet-stream"),
    ("text/plain; charset", "application/octet-stream"),
    ("text/plain; charset=é", "application/octet-stream"),
    ("text/plain, text/html", "application/octet-stream"),
    ("x/" + "y" * 200, "application/octet-stream"),  # RFC 6838: 127 characters at most
    ("", "application/octet-stream"),
]


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_declared_types_are_checked(temp_dir: Path, chunk: int) -> None:
    parts: list[Part] = [
        ("f", f"{i}.dat", ctype or None, b"") for i, (ctype, _) in enumerate(DECLARED_TYPES)
    ]
    limits = UploadLimits(max_files=len(parts))
    body = encode(parts)  # header values as UTF-8, as browsers send them
    _, files = receive(body, temp_dir, limits, chunk=chunk)
    assert [f.content_type for f in files] == [want for _, want in DECLARED_TYPES]


@pytest.mark.parametrize(("ctype", "want"), DECLARED_TYPES)
def test_raw_body_declared_types_are_checked(temp_dir: Path, ctype: str, want: str) -> None:
    receiver = RawBodyReceiver(UploadLimits(), temp_dir, "a.dat", ctype or None)
    receiver.feed(b"\x00\x01")
    assert receiver.finish().content_type == want


# ---------------------------------------------------------------- raw body


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_raw_body(temp_dir: Path, chunk: int) -> None:
    receiver = RawBodyReceiver(UploadLimits(), temp_dir, "../photo.PNG", "image/png")
    for i in range(0, len(PNG), chunk):
        receiver.feed(PNG[i : i + chunk])
    upload = receiver.finish()
    assert (upload.filename, upload.raw_filename) == ("photo.PNG", "../photo.PNG")
    assert upload.sha256 == hashlib.sha256(PNG).hexdigest()
    assert upload.size == len(PNG)
    assert upload.sniffed_type == "image/png"
    assert upload.read() == PNG
    receiver.abort()  # no-op after finish
    assert upload.path.exists()


def test_raw_body_limits_and_abort(temp_dir: Path) -> None:
    receiver = RawBodyReceiver(UploadLimits(max_file_size=100), temp_dir, "a.bin", None)
    receiver.feed(b"x" * 100)
    with pytest.raises(UploadTooLargeError):
        receiver.feed(b"x")
    assert os.listdir(temp_dir) == []
    with pytest.raises(RuntimeError):
        receiver.feed(b"x")

    receiver = RawBodyReceiver(UploadLimits(), temp_dir, "a.bin", None)
    receiver.feed(b"partial")
    receiver.abort()
    assert os.listdir(temp_dir) == []


def test_raw_body_type_checks(temp_dir: Path) -> None:
    with pytest.raises(UploadTypeError):
        RawBodyReceiver(
            IMAGES.replace(allowed_extensions=frozenset({".png"})), temp_dir, "a.php", None
        )
    assert os.listdir(temp_dir) == []
    receiver = RawBodyReceiver(IMAGES, temp_dir, "a.png", "image/png")
    receiver.feed(HTML)
    with pytest.raises(UploadTypeError):
        receiver.finish()
    assert os.listdir(temp_dir) == []
    receiver = RawBodyReceiver(IMAGES, temp_dir, "a.png", "image/png")
    with pytest.raises(UploadTypeError):
        receiver.feed(HTML + b" " * 2000)  # refused as soon as enough bytes are in
    assert os.listdir(temp_dir) == []


def test_checksum_off_computes_sha256_on_demand(temp_dir: Path) -> None:
    receiver = MultipartReceiver(BOUNDARY, UploadLimits(), temp_dir, checksum=False)
    receiver.feed(encode([("f", "a.png", "image/png", PNG)]))
    _, [upload] = receiver.finish()
    assert upload.sha256 == hashlib.sha256(PNG).hexdigest()
    raw = RawBodyReceiver(UploadLimits(), temp_dir, "b.png", None, checksum=False)
    raw.feed(PNG)
    assert raw.finish().sha256 == hashlib.sha256(PNG).hexdigest()


# ------------------------------------------------- file parts into a storage sink


class RecordingStorage:
    """A dict-backed storage double that records sink calls (no I/O, any chunking)."""

    def __new__(cls) -> Any:
        from datetime import datetime, timezone

        from webframe.storage import ObjectInfo, ObjectNotFoundError, Sink, Storage

        class MemSink(Sink):
            def __init__(self, store: Any, key: str, content_type: str) -> None:
                super().__init__(key, content_type)
                self.store, self.data = store, bytearray()

            async def _write(self, data: Any) -> None:
                self.store.log.append(("write", self.key, len(data)))
                self.data += data

            async def _commit(self) -> Any:
                self.store.log.append(("commit", self.key))
                self.store.objects[self.key] = bytes(self.data)
                return await self.store.stat(self.key)

            async def _abort(self) -> None:
                self.store.log.append(("abort", self.key))

        class Mem(Storage):
            def __init__(self) -> None:
                self.objects: dict[str, bytes] = {}
                self.log: list[tuple[Any, ...]] = []

            async def open_sink(self, key: str, *, content_type: str, size_hint: Any = None) -> Any:
                self.log.append(("open", key))
                return MemSink(self, key, content_type)

            async def open_read(self, key: str, start: int = 0, end: Any = None) -> Any:
                raise NotImplementedError

            async def stat(self, key: str) -> Any:
                if key not in self.objects:
                    raise ObjectNotFoundError(key)
                data = self.objects[key]
                return ObjectInfo(
                    key,
                    len(data),
                    "e",
                    "application/octet-stream",
                    datetime.now(timezone.utc),
                    hashlib.sha256(data).hexdigest(),
                )

            async def delete(self, key: str) -> None:
                self.log.append(("delete", key))
                self.objects.pop(key, None)

            async def copy(self, src: str, dst: str) -> Any:
                self.log.append(("copy", src, dst))
                self.objects[dst] = self.objects[src]
                return await self.stat(dst)

        return Mem()


async def stream_into(storage: Any, body: bytes, chunk: int, limits: UploadLimits) -> Any:
    receiver = MultipartReceiver.from_content_type(
        content_type(), limits, "/nonexistent", storage=storage
    )
    for i in range(0, len(body), chunk):
        pending = receiver.feed(body[i : i + chunk])
        if pending is not None:
            await pending
    return receiver.finish()


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_file_parts_stream_into_storage_sinks(chunk: int) -> None:
    import asyncio

    storage = RecordingStorage()
    data = TRICKY * 300

    async def main() -> None:
        fields, files = await stream_into(
            storage,
            encode([*SAMPLE[:2], ("doc", "n.txt", "text/plain", data)]),
            chunk,
            UploadLimits(),
        )
        assert fields == {"title": ["Hello wörld"], "tags": ["a"]}
        [upload] = files
        assert (upload.size, upload.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert upload.path is None  # nothing on the local disk
        info = await upload.store("kept/n.txt")
        assert storage.objects["kept/n.txt"] == data and info.size == len(data)
        upload.discard()
        await asyncio.sleep(0.01)  # the temporary object goes in the background

    asyncio.run(main())
    assert set(storage.objects) == {"kept/n.txt"}
    writes = [e for e in storage.log if e[0] == "write"]
    assert sum(e[2] for e in writes) == len(data)


def test_a_refused_part_is_aborted_in_the_storage() -> None:
    import asyncio

    storage = RecordingStorage()
    body = encode([("f", "big.bin", None, b"x" * 5000)])

    async def main() -> None:
        with pytest.raises(UploadTooLargeError):
            await stream_into(storage, body, 1000, UploadLimits(max_file_size=3000))
        await asyncio.sleep(0.01)

    asyncio.run(main())
    [opened] = [e[1] for e in storage.log if e[0] == "open"]
    assert ("abort", opened) in storage.log
    assert storage.objects == {}


def test_without_storage_feed_writes_at_once(temp_dir: Path) -> None:
    receiver = MultipartReceiver.from_content_type(content_type(), UploadLimits(), temp_dir)
    assert receiver.feed(encode(SAMPLE)) is None  # the local fast path is synchronous
    _, files = receiver.finish()
    assert [f.size for f in files] == [len(PNG), len(TRICKY * 50), 0]
    for f in files:
        f.discard()
