"""tus header parsing with no server: every value either parses or is a 4xx with a message."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webframe.errors import BadRequestError, HTTPError
from webframe.tus.protocol import (
    ChecksumMismatchError,
    PreconditionFailedError,
    check_version,
    parse_checksum,
    parse_metadata,
    parse_size,
)

KEYS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=","),
    min_size=1,
    max_size=20,
)
VALUES = st.none() | st.text(max_size=60)


def encode(metadata: dict[str, str | None]) -> str:
    pairs = []
    for key, value in metadata.items():
        if value is None:
            pairs.append(key)
        else:
            pairs.append(f"{key} {base64.b64encode(value.encode()).decode()}")
    return ",".join(pairs)


@given(st.dictionaries(KEYS, VALUES, max_size=8))
@settings(deadline=None)
def test_metadata_round_trips(metadata: dict[str, str | None]) -> None:
    assert parse_metadata(encode(metadata)) == metadata


@given(st.text(max_size=200))
@settings(deadline=None)
def test_any_metadata_header_parses_or_is_a_400(value: str) -> None:
    try:
        result = parse_metadata(value)
    except BadRequestError as exc:
        assert exc.status_code == 400 and exc.message
    else:
        assert all(isinstance(k, str) and k for k in result)


@given(st.text(max_size=80))
@settings(deadline=None)
def test_any_checksum_header_parses_or_is_a_400(value: str) -> None:
    try:
        result = parse_checksum(value)
    except BadRequestError as exc:
        assert exc.message
    else:
        assert result is not None and result[0] in ("sha1", "sha256")


def test_checksums_of_both_algorithms() -> None:
    for name in ("sha1", "sha256"):
        digest = hashlib.new(name, b"abc").digest()
        assert parse_checksum(f"{name} {base64.b64encode(digest).decode()}") == (name, digest)
    assert parse_checksum(None) is None
    with pytest.raises(BadRequestError, match="sha1, sha256"):
        parse_checksum("md5 " + base64.b64encode(b"x" * 16).decode())
    assert ChecksumMismatchError().status_code == 460


@pytest.mark.parametrize("value", ["1", " 42 ", "0", "9" * 19])
def test_sizes(value: str) -> None:
    assert parse_size(value, "Upload-Offset") == int(value)


@pytest.mark.parametrize("value", ["", "-1", "+1", "1.0", "0x10", "1e3", "9" * 20, "١٢"])
def test_bad_sizes_are_400_naming_the_header(value: str) -> None:
    with pytest.raises(BadRequestError, match="Upload-Length"):
        parse_size(value, "Upload-Length")


def test_version() -> None:
    check_version({"Tus-Resumable": "1.0.0"})
    for headers in ({}, {"Tus-Resumable": "0.2.2"}, {"Tus-Resumable": "1.0"}):
        with pytest.raises(PreconditionFailedError) as info:
            check_version(headers)
        error: HTTPError = info.value
        assert error.status_code == 412
        assert error.headers["Tus-Version"] == "1.0.0"
