"""tus 1.0.0 headers, read and written with no I/O: bytes of headers in, values or 4xx out.

Every function raises one of the framework's HTTP errors with a message a client
can act on, so a malformed header is a 400 (or 412 for the protocol version),
never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from email.utils import formatdate
from typing import Any, Final

from webframe.errors import BadRequestError, HTTPError

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "EXTENSIONS",
    "OFFSET_CONTENT_TYPE",
    "TUS_VERSION",
    "ChecksumMismatchError",
    "PreconditionFailedError",
    "check_version",
    "http_date",
    "parse_checksum",
    "parse_metadata",
    "parse_size",
]

TUS_VERSION: Final = "1.0.0"
EXTENSIONS: Final = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "checksum",
    "expiration",
)
OFFSET_CONTENT_TYPE: Final = "application/offset+octet-stream"
#: the checksum algorithms accepted in ``Upload-Checksum`` (``Tus-Checksum-Algorithm``).
CHECKSUM_ALGORITHMS: Final[dict[str, Callable[[], Any]]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}
_DIGEST_SIZES: Final = {"sha1": 20, "sha256": 32}
_DIGITS: Final = re.compile(r"[0-9]{1,19}")
_KEY: Final = re.compile(r"[!-+\--~]+")  # visible ASCII, no comma, no space
_B64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
#: the longest Upload-Metadata accepted (its keys and values arrive base64-encoded).
MAX_METADATA: Final = 4096


class PreconditionFailedError(HTTPError):
    """412: the client speaks a tus version this server does not."""

    status = 412
    default_message = f"This server speaks tus {TUS_VERSION}; send Tus-Resumable: {TUS_VERSION}."


class ChecksumMismatchError(HTTPError):
    """460: the chunk's ``Upload-Checksum`` does not match its bytes; the chunk was dropped."""

    status = 460
    default_message = (
        "The chunk's checksum does not match the bytes received; it was discarded, "
        "send it again from the same offset."
    )

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, reason="Checksum Mismatch")


def check_version(headers: Mapping[str, str]) -> None:
    """Raise 412 (with ``Tus-Version``) unless ``Tus-Resumable`` names the version spoken."""
    value = headers.get("Tus-Resumable")
    if value is None:
        raise PreconditionFailedError(
            f"The request has no Tus-Resumable header; send Tus-Resumable: {TUS_VERSION}.",
            headers={"Tus-Version": TUS_VERSION},
        )
    if value.strip() != TUS_VERSION:
        raise PreconditionFailedError(
            f"Tus-Resumable {value[:20]!r} is not spoken here; this server speaks "
            f"tus {TUS_VERSION}.",
            headers={"Tus-Version": TUS_VERSION},
        )


def parse_size(value: str | None, header: str) -> int | None:
    """A non-negative integer header (``Upload-Offset``, ``Upload-Length``); None if absent."""
    if value is None:
        return None
    text = value.strip()
    if not _DIGITS.fullmatch(text):
        raise BadRequestError(
            f"{header} must be a non-negative whole number of bytes, not {value[:30]!r}."
        )
    return int(text)


def _b64decode(text: str, what: str) -> bytes:
    if len(text) % 4 or not _B64.fullmatch(text):
        raise BadRequestError(f"{what} is not valid base64.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(f"{what} is not valid base64.") from None


def parse_metadata(value: str | None) -> dict[str, str | None]:
    """``Upload-Metadata`` (``key base64value, key2``) as a dict of text values (None: no value).

    Keys are visible ASCII without commas; values are base64 of UTF-8 text. A
    repeated key, bad base64 or a value that is not UTF-8 is a 400.
    """
    if value is None or not value.strip():
        return {}
    if len(value) > MAX_METADATA:
        raise BadRequestError(f"Upload-Metadata is longer than {MAX_METADATA} characters.")
    result: dict[str, str | None] = {}
    for pair in value.split(","):
        # "key " (a space, then nothing) is an empty value, as clients send "".
        words = pair.lstrip(" \t").split(" ")
        if len(words) > 2 or not words[0]:
            raise BadRequestError(
                f"Upload-Metadata pair {pair.strip()[:40]!r} is not 'key base64value'."
            )
        key = words[0]
        if not _KEY.fullmatch(key):
            raise BadRequestError(f"Upload-Metadata key {key[:40]!r} has invalid characters.")
        if key in result:
            raise BadRequestError(f"Upload-Metadata names {key[:40]!r} twice.")
        if len(words) == 1:
            result[key] = None
            continue
        raw = _b64decode(words[1], f"The Upload-Metadata value of {key[:40]!r}")
        try:
            result[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestError(
                f"The Upload-Metadata value of {key[:40]!r} is not UTF-8 text."
            ) from None
    return result


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum`` (``sha1 base64digest``) as (algorithm, digest); None if absent.

    An algorithm not in :data:`CHECKSUM_ALGORITHMS` is a 400 naming those that are.
    """
    if value is None:
        return None
    words = value.strip().split(" ")
    if len(words) != 2 or not words[0] or not words[1]:
        raise BadRequestError(
            f"Upload-Checksum must be 'algorithm base64digest', not {value[:60]!r}."
        )
    algorithm = words[0].lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadRequestError(
            f"Upload-Checksum algorithm {words[0][:20]!r} is not supported; use one of "
            f"{', '.join(CHECKSUM_ALGORITHMS)}."
        )
    digest = _b64decode(words[1], "The Upload-Checksum digest")
    if len(digest) != _DIGEST_SIZES[algorithm]:
        raise BadRequestError(
            f"The Upload-Checksum digest is {len(digest)} bytes; a {algorithm} digest has "
            f"{_DIGEST_SIZES[algorithm]}."
        )
    return algorithm, digest


def http_date(timestamp: float) -> str:
    """``timestamp`` as an HTTP date (``Upload-Expires``)."""
    return formatdate(timestamp, usegmt=True)
