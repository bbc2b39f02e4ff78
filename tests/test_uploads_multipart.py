"""webframe/uploads/multipart.py: the sans-I/O decoder, bytes in, part events out.

No server, no files: a recorder stands in for the receiver, and every body is fed
over 1-byte, odd and 64 KiB chunkings, which must all give the same events.
"""

from __future__ import annotations

import builtins
import os
from typing import Any

import pytest

from webframe.errors import BadUploadError, UploadError, UploadTooLargeError, UploadTypeError
from webframe.uploads.multipart import MultipartDecoder, boundary_from_content_type

B = b"decoderBoundary7"
CHUNKINGS = [1, 7, 64 * 1024]


class Recorder:
    """A PartEvents that writes down what it is told, merging data pieces."""

    def __init__(self, refuse_field: str | None = None) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.refuse_field = refuse_field

    def field_started(self, name: str) -> None:
        if name == self.refuse_field:
            raise UploadTooLargeError(f"refused at {name}")
        self.events.append(("field", name))

    def file_started(self, name: str, raw_filename: str, content_type: str) -> None:
        self.events.append(("file", name, raw_filename, content_type))

    def part_data(self, data: bytes, start: int, end: int) -> None:
        piece = bytes(data[start:end])
        if self.events and self.events[-1][0] == "data":
            self.events[-1] = ("data", self.events[-1][1] + piece)
        else:
            self.events.append(("data", piece))

    def part_ended(self) -> None:
        self.events.append(("end",))


def part(disposition: str, data: bytes, *extra: str) -> bytes:
    headers = "".join(f"{h}\r\n" for h in (f"Content-Disposition: {disposition}", *extra))
    return b"--" + B + b"\r\n" + headers.encode() + b"\r\n" + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + B + b"--\r\n"


def decode(
    data: bytes, chunk: int, recorder: Recorder | None = None, **limits: int
) -> list[tuple[Any, ...]]:
    rec = recorder or Recorder()
    decoder = MultipartDecoder(
        B,
        rec,
        max_parts=limits.get("max_parts", 100),
        max_part_header_size=limits.get("max_part_header_size", 1024),
    )
    for i in range(0, len(data), chunk):
        decoder.feed(data[i : i + chunk])
    decoder.finish()
    return rec.events


FORM = body(
    part('form-data; name="title"', b"caf\xc3\xa9"),
    part(
        'form-data; name="doc"; filename="résumé.txt"',
        b"line one\r\n--" + B[:-2] + b"\r\nnot a boundary\r\n",
        "Content-Type: text/plain; charset=utf-8",
    ),
    part('form-data; name="empty"; filename=""', b"", "Content-Type: application/octet-stream"),
)


@pytest.mark.parametrize("chunk", CHUNKINGS)
def test_fields_and_files_come_out_as_events_in_body_order(chunk: int) -> None:
    assert decode(FORM, chunk) == [
        ("field", "title"),
        ("data", b"caf\xc3\xa9"),
        ("end",),
        ("file", "doc", "résumé.txt", "text/plain; charset=utf-8"),
        ("data", b"line one\r\n--" + B[:-2] + b"\r\nnot a boundary\r\n"),
        ("end",),
        ("file", "empty", "", "application/octet-stream"),
        ("end",),
    ]


def test_the_decoder_does_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError("the decoder opened a file")

    monkeypatch.setattr(builtins, "open", no_io)
    monkeypatch.setattr(os, "open", no_io)
    events = decode(FORM, 64 * 1024)
    assert [e[0] for e in events].count("file") == 2


def test_boundary_from_content_type() -> None:
    assert boundary_from_content_type(f"multipart/form-data; boundary={B.decode()}") == B
    with pytest.raises(UploadTypeError):
        boundary_from_content_type("application/json")
    with pytest.raises(BadUploadError, match="no boundary"):
        boundary_from_content_type("multipart/form-data")
    with pytest.raises(BadUploadError, match="characters"):
        boundary_from_content_type('multipart/form-data; boundary="a\\"b"')


@pytest.mark.parametrize("chunk", CHUNKINGS)
@pytest.mark.parametrize(
    ("data", "limits", "error", "message"),
    [
        (
            body(*[part(f'form-data; name="f{i}"', b"x") for i in range(4)]),
            {"max_parts": 3},
            UploadTooLargeError,
            "more than 3 parts",
        ),
        (
            body(part('form-data; name="a"', b"x", "X-Long: " + "v" * 300)),
            {"max_part_header_size": 256},
            UploadTooLargeError,
            "max_part_header_size",
        ),
        (
            body(part('form-data; name="a"', b"x", *[f"X-{i}: v" for i in range(20)])),
            {},
            BadUploadError,
            "more than 16 headers",
        ),
        (body(part('attachment; name="a"', b"x")), {}, BadUploadError, "not form-data"),
        (body(part("form-data", b"x")), {}, BadUploadError, "no field name"),
        (
            body(part('form-data; name="a"', b"x", 'Content-Disposition: form-data; name="b"')),
            {},
            BadUploadError,
            "two Content-Disposition",
        ),
        (body() + b"x" * 2000, {}, BadUploadError, "after the closing"),
        (b"garbage" * 400, {}, BadUploadError, "does not start with the multipart boundary"),
        (FORM[:-10], {}, BadUploadError, "ended before its closing boundary"),
        (b"", {}, BadUploadError, "empty"),
    ],
)
def test_bad_framing_is_refused_with_its_status(
    data: bytes, limits: dict[str, int], error: type[UploadError], message: str, chunk: int
) -> None:
    with pytest.raises(error, match=message) as info:
        decode(data, chunk, **limits)
    assert info.value.status == error.status


def test_an_error_raised_by_an_event_reaches_the_caller_unchanged() -> None:
    with pytest.raises(UploadTooLargeError, match="refused at title"):
        decode(FORM, 7, Recorder(refuse_field="title"))
