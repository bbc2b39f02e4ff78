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


# -- large chunks inside a part's data: the decoder passes the bulk on itself ----------


def _tricky_data(size: int, seed: int) -> bytes:
    """Random bytes strewn with near-delimiters (CRLF, "--", the boundary cut short)."""
    rng = __import__("random").Random(seed)
    pieces, total = [], 0
    lures = [b"\r\n", b"\r\n--", b"\r\n--" + B[:-1], b"--" + B, b"\r"]
    while total < size:
        piece = rng.randbytes(rng.randrange(1, 9000)) + rng.choice(lures)
        pieces.append(piece)
        total += len(piece)
    return b"".join(pieces)[:size]


BIG_FORM = body(
    part(
        'form-data; name="a"; filename="a.bin"',
        # the whole delimiter, but not followed by CRLF or "--": data
        _tricky_data(400_000, 1) + b"\r\n--" + B + b"x" + _tricky_data(300_000, 3),
    ),
    part('form-data; name="note"', b"x" * 70_000),
    part('form-data; name="b"; filename="b.bin"', _tricky_data(300_001, 2) + b"\r\n--" + B[:5]),
    part('form-data; name="c"; filename="c.bin"', b"\r\n--" + B + b"-\r\n" * 3),
)


def _decode_cuts(data: bytes, cuts: list[int], as_array: bool) -> list[tuple[Any, ...]]:
    rec = Recorder()
    decoder = MultipartDecoder(B, rec, max_parts=100, max_part_header_size=1024)
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        piece = data[start:end]
        decoder.feed(bytearray(piece) if as_array else piece)
    decoder.finish()
    return rec.events


@pytest.mark.parametrize("as_array", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_big_chunks_give_the_events_of_small_ones(
    as_array: bool, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    from webframe.uploads import multipart

    rng = random.Random(seed)
    delimiter = b"\r\n--" + B
    # A cut inside each delimiter (its first 1, 2, half, all but 2 or 1 bytes before
    # it), after a chunk of at least FAST_DATA: the fast path must leave its start
    # to the parser. Random cuts elsewhere.
    inside = [1, 2, len(delimiter) // 2, len(delimiter) - 2, len(delimiter) - 1][seed % 5]
    ends = []
    found = BIG_FORM.find(delimiter)
    while found >= 0:
        ends.append(found + inside)
        found = BIG_FORM.find(delimiter, found + 1)
    cuts, at = list(ends), 0
    while True:
        at += rng.choice([1, 3, 70, 65_536, 65_537, 100_000, 262_144, 1 << 20])
        if at >= len(BIG_FORM):
            break
        if not any(0 <= end - at < 70_000 for end in ends):
            cuts.append(at)
    cuts = sorted(set(cuts))
    calls: list[int] = []
    real = multipart.memmem
    if real is not None:

        def spy(haystack: bytes | bytearray, needle: bytes) -> int:
            calls.append(len(haystack))
            return real(haystack, needle)

        monkeypatch.setattr(multipart, "memmem", spy)
    fast = _decode_cuts(BIG_FORM, cuts, as_array)
    assert real is None or calls, "no chunk went through the fast path"
    monkeypatch.setattr(multipart, "FAST_DATA", 1 << 40)
    assert fast == _decode_cuts(BIG_FORM, cuts, as_array) == BIG_EVENTS


BIG_EVENTS = decode(BIG_FORM, 65_536)  # no chunk goes the fast way from the start


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_memmem_finds_the_first_occurrence_or_none(kind: type) -> None:
    from webframe.uploads.multipart import memmem

    if memmem is None:
        pytest.skip("no memmem in this C library")
    hay = kind(b"ab\r\n--x" + os.urandom(100) + b"\r\n--xyz\r\n--xyz")
    assert memmem(hay, b"\r\n--xyz") == bytes(hay).find(b"\r\n--xyz")
    assert memmem(hay, b"\r\n--xyzq") == -1
    assert memmem(kind(b"needle"), b"needle") == 0
    assert memmem(kind(b""), b"x") == -1
    if kind is bytearray:
        hay += b"resizable again"  # the view memmem took is released
