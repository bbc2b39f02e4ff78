"""What a creation POST or a PATCH asks for, checked against the limits and the
upload's state with no I/O: every refusal is an HTTP error with a message."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from webframe.errors import (
    BadRequestError,
    HTTPError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    UploadError,
)
from webframe.filenames import clean_filename
from webframe.units import format_size
from webframe.uploads.policy import UploadLimits, check_name
from webframe.uploads.policy import declared_type as _declared_type

from .protocol import OFFSET_CONTENT_TYPE, parse_checksum, parse_metadata, parse_size
from .store import UploadState

__all__ = [
    "Creation",
    "PatchRequest",
    "apply_patch",
    "default_limits",
    "read_creation",
    "read_patch",
]


@functools.lru_cache(maxsize=16)
def default_limits(size: int) -> UploadLimits:
    """The limits of a route without its own: ``size`` per file (frozen, so one is
    shared rather than built several times per request)."""
    return UploadLimits(max_body_size=size, max_file_size=size)


def too_large(size: int, limit: int) -> PayloadTooLargeError:
    """413 for an upload of ``size`` bytes where ``limit`` is allowed per file."""
    return PayloadTooLargeError(
        f"This upload is {format_size(size)}; the limit is {format_size(limit)} per file."
    )


def has_body(headers: Mapping[str, str]) -> bool:
    """True when the request carries body bytes (chunked, or a non-zero length)."""
    length = headers.get("Content-Length")
    return "Transfer-Encoding" in headers or (length is not None and length.strip() != "0")


def check_body_type(headers: Mapping[str, str]) -> None:
    """415 unless the body is sent as ``application/offset+octet-stream``."""
    ctype = headers.get("Content-Type", "")
    if ctype.split(";", 1)[0].strip().lower() != OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaTypeError(
            f"Send upload bytes with Content-Type: {OFFSET_CONTENT_TYPE}, "
            f"not {ctype[:60] or 'no type'}."
        )


@dataclass(frozen=True)
class Creation:
    """A valid creation request: the length (None: deferred), names, types, checksum."""

    length: int | None
    metadata: dict[str, str | None]
    raw_metadata: str
    filename: str
    raw_filename: str
    declared_type: str
    check_type: str
    checksum: tuple[str, bytes] | None
    #: the Content-Length of a creation-with-upload body (None: none, or chunked).
    body_size: int | None = None

    def new_state(self, upload_id: str, owner: str, now: float, lifetime: float) -> UploadState:
        """The state of the upload this creation makes, expiring ``lifetime`` s from ``now``."""
        return UploadState(
            id=upload_id,
            owner=owner,
            length=self.length,
            metadata=self.metadata,
            raw_metadata=self.raw_metadata,
            filename=self.filename,
            raw_filename=self.raw_filename,
            content_type=self.declared_type,
            check_type=self.check_type,
            created=now,
            expires=now + lifetime,
        )


def read_creation(headers: Mapping[str, str], limits: UploadLimits) -> Creation:
    """Read a creation POST's headers: 400 if malformed, 413 over the size limit,
    415 for a file name or body type the route does not take."""
    length = parse_size(headers.get("Upload-Length"), "Upload-Length")
    defer = headers.get("Upload-Defer-Length")
    if defer is not None and defer.strip() != "1":
        raise BadRequestError("Upload-Defer-Length must be 1 when it is sent.")
    if (length is None) == (defer is None):
        raise BadRequestError(
            "Send exactly one of Upload-Length (the size in bytes) or Upload-Defer-Length: 1."
        )
    if length is not None and length > limits.max_file_size:
        raise too_large(length, limits.max_file_size)
    raw_metadata = headers.get("Upload-Metadata", "")
    metadata = parse_metadata(raw_metadata)
    raw_name = metadata.get("filename") or metadata.get("name") or ""
    filename = clean_filename(raw_name)
    declared, check = _declared_type(
        metadata.get("filetype") or metadata.get("type") or "", filename
    )
    try:
        check_name(filename, limits, "Upload")
    except UploadError as exc:
        raise HTTPError(exc.message, status=exc.status) from None
    checksum = parse_checksum(headers.get("Upload-Checksum"))
    body = None
    if has_body(headers):
        check_body_type(headers)
        body = parse_size(headers.get("Content-Length"), "Content-Length")
        if length is not None and body is not None and body > length:
            raise PayloadTooLargeError(
                f"The body is {body} bytes, more than the upload's Upload-Length of {length}."
            )
    return Creation(
        length=length,
        metadata=metadata,
        raw_metadata=raw_metadata.strip(),
        filename=filename,
        raw_filename=raw_name,
        declared_type=declared,
        check_type=check,
        checksum=checksum,
        body_size=body,
    )


@dataclass(frozen=True)
class PatchRequest:
    """A PATCH's offset, the length it may declare, its checksum and body size."""

    offset: int
    length: int | None
    checksum: tuple[str, bytes] | None
    body_size: int | None


def read_patch(headers: Mapping[str, str]) -> PatchRequest:
    """Read a PATCH's headers: 415 for another body type, 400 when malformed."""
    check_body_type(headers)
    offset = parse_size(headers.get("Upload-Offset"), "Upload-Offset")
    if offset is None:
        raise BadRequestError("A PATCH needs Upload-Offset: the offset its bytes start at.")
    return PatchRequest(
        offset=offset,
        length=parse_size(headers.get("Upload-Length"), "Upload-Length"),
        checksum=parse_checksum(headers.get("Upload-Checksum")),
        body_size=parse_size(headers.get("Content-Length"), "Content-Length"),
    )


def apply_patch(request: PatchRequest, state: UploadState, max_size: int) -> None:
    """Check ``request`` against the upload (409 at another offset, 400 for a changed
    length, 413 past the length or the limit); sets a deferred length it declares."""
    if request.offset != state.offset:
        raise HTTPError(
            f"Upload-Offset is {request.offset} but the upload has {state.offset} bytes; "
            "HEAD for the offset and resume from there.",
            status=409,
            headers={"Upload-Offset": str(state.offset)},
        )
    new_length = request.length
    if new_length is not None:
        if state.length is not None and new_length != state.length:
            raise BadRequestError(f"Upload-Length is already {state.length}; it cannot change.")
        if new_length < state.offset:
            raise BadRequestError(
                f"Upload-Length {new_length} is less than the {state.offset} bytes "
                "already received."
            )
        if new_length > max_size:
            raise too_large(new_length, max_size)
        state.length = new_length
    if request.body_size is None:
        return
    end = state.offset + request.body_size
    if state.length is None and end > max_size:
        raise too_large(end, max_size)
    if state.length is not None and end > state.length:
        raise PayloadTooLargeError(
            f"The chunk ends at byte {end}, past the upload's length of {state.length}."
        )
