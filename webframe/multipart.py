"""Streaming multipart/form-data and raw-body receivers: bytes in, fields and files out.

This layer does no network I/O and knows nothing of Tornado: a handler feeds it
the chunks it receives and calls ``finish()`` at the end of the body. Parsing is
done by python-multipart's callback ``MultipartParser``; this module adds the
limits, the temp files, type checks and clean-up (the pieces shared with the
raw receiver -- limits, errors, sniffing, temp files, ``UploadedFile`` -- live
in :mod:`webframe.uploadfiles` and are re-exported here). File parts go straight
to temp files (constant memory); fields stay in memory, each capped in size.

On any exception raised from ``feed()`` or ``finish()`` the receiver has
already removed every temp file it created, so a caller never has to.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from webframe.filenames import clean_filename
from webframe.mediatypes import media_type_of
from webframe.sizes import format_size
from webframe.uploadfiles import (
    SNIFF_BYTES,
    BadUploadError,
    KiB,
    UploadedFile,
    UploadError,
    UploadLimits,
    UploadStorageError,
    UploadTooLargeError,
    UploadTypeError,
    _check_type,
    _declared_type,
    _TempFile,
    check_name,
    sniff_type,
)

# Re-exported: callers and tests reach it through this module.
from webframe.uploadfiles import _storage_error as _storage_error
from webframe.uploadstorage import StoredPart, StoredUpload, in_background

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

    from webframe.storage import Storage

__all__ = [
    "BadUploadError",
    "MultipartReceiver",
    "RawBodyReceiver",
    "UploadError",
    "UploadLimits",
    "UploadStorageError",
    "UploadTooLargeError",
    "UploadTypeError",
    "UploadedFile",
    "boundary_from_content_type",
    "sniff_type",
]

# RFC 2046 allows 70 characters; real clients stay well under 200.
MAX_BOUNDARY_LENGTH: Final = 200
# Only CR/LF may precede the first boundary (python-multipart refuses anything
# else); this caps how many.
MAX_PREAMBLE: Final = 1 * KiB
# Bytes tolerated after the closing boundary (clients add a CRLF or so).
MAX_EPILOGUE: Final = 1 * KiB
MAX_HEADERS_PER_PART: Final = 16
_BOUNDARY_CHARS: Final = frozenset(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)


# ------------------------------------------------------------ multipart body


class _FilePart:
    __slots__ = ("checked", "declared", "field_name", "filename", "raw_filename", "temp", "type")

    def __init__(
        self, field_name: str, raw_filename: str, content_type: str, temp: _TempFile | StoredPart
    ) -> None:
        self.field_name = field_name
        self.raw_filename = raw_filename
        self.filename = clean_filename(raw_filename)
        self.declared, self.type = _declared_type(content_type, self.filename)
        self.temp = temp
        self.checked = False


class _FieldPart:
    __slots__ = ("name", "value")

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = bytearray()


_CONTROL: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _header_text(value: bytes) -> str:
    # Browsers send UTF-8 names raw in the header (RFC 7578 §4.2); old clients latin-1.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def boundary_from_content_type(content_type: str) -> bytes:
    """Return the boundary of a ``multipart/form-data`` Content-Type header value.

    Raises ``UploadTypeError`` for another media type and ``BadUploadError`` for
    a missing, too long or invalid boundary.
    """
    media, params = parse_options_header(content_type)
    if media != b"multipart/form-data":
        raise UploadTypeError(
            f"Expected a multipart/form-data body, got {media.decode('latin-1') or 'none'!r}."
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadUploadError("The multipart Content-Type header has no boundary parameter.")
    _validate_boundary(boundary)
    return boundary


def _validate_boundary(boundary: bytes) -> None:
    if not boundary:
        raise BadUploadError("The multipart boundary is empty.")
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise BadUploadError(
            f"The multipart boundary is {len(boundary)} characters long; "
            f"at most {MAX_BOUNDARY_LENGTH} are accepted (RFC 2046 allows 70)."
        )
    if not set(boundary) <= _BOUNDARY_CHARS or boundary.endswith(b" "):
        raise BadUploadError("The multipart boundary contains characters RFC 2046 does not allow.")


def _no_key(filename: str) -> str | None:
    return None


class MultipartReceiver:
    """Receive a multipart/form-data body fed in chunks of any size.

    Call ``feed(chunk)`` for each chunk, then ``finish()`` for the fields and
    files, or ``abort()`` if the request goes away. Every limit is enforced
    while streaming; any error removes the temp files before it propagates.
    ``checksum=False`` skips hashing while streaming (about a third of the
    CPU per byte); ``UploadedFile.sha256`` is then computed on first access.
    ``body_size`` (the declared Content-Length) lets large files reserve their
    disk space ahead of the writes; the body must not be longer.
    """

    def __init__(
        self,
        boundary: bytes,
        limits: UploadLimits,
        temp_dir: str | os.PathLike[str],
        *,
        checksum: bool = True,
        body_size: int | None = None,
        storage: Storage | None = None,
        key_for: Callable[[str], str | None] | None = None,
    ) -> None:
        _validate_boundary(boundary)
        self._storage = storage
        #: the key a stored file part is written to, from its cleaned file name (None:
        #: a temporary key; ``store()`` under the planned key then needs no copy).
        self._key_for = key_for if key_for is not None else _no_key
        #: stored parts with bytes queued for the awaitable ``feed()`` returns.
        self._to_flush: list[StoredPart] = []
        self._aborting: list[asyncio.Task[None]] = []
        self._checksum = checksum
        self._body_size = body_size
        self.limits = limits
        self.temp_dir = Path(temp_dir)
        self._boundary = boundary
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        self._parser = MultipartParser(
            boundary,
            callbacks,
            max_header_count=MAX_HEADERS_PER_PART,
            max_header_size=limits.max_part_header_size,
        )
        self._received = 0
        self._chunk_start = 0
        self._parts = 0
        self._field_count = 0
        self._file_count = 0
        self._started = False
        self._ended = False
        self._epilogue = 0
        self._closed = False
        self._fields: dict[str, list[str]] = {}
        self._files: list[UploadedFile] = []
        self._temps: list[_TempFile | StoredPart] = []
        self._part: _FilePart | _FieldPart | None = None
        self._headers: dict[str, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._header_bytes = 0
        self._on_data: Callable[[bytes, int, int], None] = self._ignore_data

    @classmethod
    def from_content_type(
        cls,
        content_type: str,
        limits: UploadLimits,
        temp_dir: str | os.PathLike[str],
        *,
        checksum: bool = True,
        body_size: int | None = None,
        storage: Storage | None = None,
        key_for: Callable[[str], str | None] | None = None,
    ) -> MultipartReceiver:
        """Build a receiver from a request's Content-Type header value."""
        return cls(
            boundary_from_content_type(content_type),
            limits,
            temp_dir,
            checksum=checksum,
            body_size=body_size,
            storage=storage,
            key_for=key_for,
        )

    # public API

    def feed(self, chunk: bytes) -> Awaitable[None] | None:
        """Parse the next chunk of the body; raises ``UploadError`` subclasses.

        With a ``storage``, returns an awaitable when file bytes wait to be written to
        it: await it before the next chunk (its errors, storage ones included, have
        already aborted every part). Without one, writes are done and None is returned.
        """
        if self._closed:
            raise RuntimeError("this MultipartReceiver is finished or aborted")
        try:
            self._chunk_start = self._received
            self._received += len(chunk)
            if self._received > self.limits.max_body_size:
                raise UploadTooLargeError(
                    f"The request body is larger than {format_size(self.limits.max_body_size)} "
                    "(max_body_size)."
                )
            was_ended = self._ended
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise self._parse_error(exc) from exc
            if self._ended:
                self._count_epilogue(chunk, was_ended)
            elif not self._started and self._received > MAX_PREAMBLE + len(self._boundary) + 4:
                raise BadUploadError("The body does not start with the multipart boundary.")
        except BaseException:
            self._cleanup()
            raise
        if self._to_flush:
            return self._flush()
        return None

    async def _flush(self) -> None:
        parts, self._to_flush = self._to_flush, []
        try:
            for part in parts:
                await part.flush()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Like ``abort()``, and wait until stored parts are aborted in their storage."""
        if not self._closed:
            self._cleanup()
        aborting, self._aborting = self._aborting, []
        if aborting:
            await asyncio.gather(*aborting, return_exceptions=True)

    def finish(self) -> tuple[dict[str, list[str]], list[UploadedFile]]:
        """Check the body ended properly; return ``(fields, files)``.

        The files' temp files now belong to the caller (``discard()`` them).
        """
        if self._closed:
            raise RuntimeError("this MultipartReceiver is finished or aborted")
        try:
            if not self._ended:
                if self._received == 0:
                    raise BadUploadError("The multipart body is empty.")
                raise BadUploadError(
                    "The multipart body ended before its closing boundary (upload interrupted?)."
                )
            self._parser.finalize()
        except BaseException:
            self._cleanup()
            raise
        self._closed = True
        self._temps = []  # the files' parts now belong to the caller
        return self._fields, self._files

    def abort(self) -> None:
        """Stop receiving and delete every temp file; no-op after ``finish()``."""
        if not self._closed:
            self._cleanup()

    @property
    def stores_remotely(self) -> bool:
        """True if file parts go to a storage sink (``feed()`` may return awaitables)."""
        return self._storage is not None

    @property
    def bytes_received(self) -> int:
        """Body bytes fed so far."""
        return self._received

    # internals

    def _cleanup(self) -> None:
        self._closed = True
        self._to_flush.clear()
        for temp in self._temps:
            if isinstance(temp, StoredPart):
                task = in_background(temp.abort())
                if task is not None:
                    self._aborting.append(task)
            else:
                temp.remove()
        self._temps.clear()
        self._files.clear()
        self._part = None

    def _parse_error(self, exc: MultipartParseError) -> UploadError:
        text = str(exc)
        if text.startswith("Maximum header size"):
            return UploadTooLargeError(
                f"A part's headers are larger than {format_size(self.limits.max_part_header_size)} "
                "(max_part_header_size)."
            )
        if text.startswith("Maximum header count"):
            return BadUploadError(f"A part has more than {MAX_HEADERS_PER_PART} headers.")
        if not self._started:
            return BadUploadError("The body does not start with the multipart boundary.")
        return BadUploadError(f"The multipart body is malformed: {text}.")

    def _count_epilogue(self, chunk: bytes, was_ended: bool) -> None:
        if was_ended:
            self._epilogue += len(chunk)
        else:
            closing = b"--" + self._boundary + b"--"
            at = chunk.rfind(closing)
            # The closing boundary may straddle chunks; then it ends near the start.
            end = at + len(closing) if at >= 0 else len(closing)
            self._epilogue += max(0, len(chunk) - end)
        if self._epilogue > MAX_EPILOGUE:
            raise BadUploadError("Unexpected data after the closing multipart boundary.")

    def _on_part_begin(self) -> None:
        self._started = True
        self._parts += 1
        if self._parts > self.limits.max_parts:
            raise UploadTooLargeError(
                f"The body has more than {self.limits.max_parts} parts (max_parts)."
            )
        self._headers = {}
        self._header_bytes = 0

    def _add_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.limits.max_part_header_size:
            raise UploadTooLargeError(
                f"A part's headers are larger than {format_size(self.limits.max_part_header_size)} "
                "(max_part_header_size)."
            )

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._add_header_bytes(end - start)
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._add_header_bytes(end - start)
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if _CONTROL.search(self._header_name) or _CONTROL.search(self._header_value):
            # A bare LF or NUL inside a part header would smuggle a second header or
            # put control bytes into field and file names.
            raise BadUploadError("A part header contains control characters (CR, LF, NUL...).")
        name = self._header_name.decode("latin-1").strip().lower()
        if name == "content-disposition" and name in self._headers:
            raise BadUploadError("A part has two Content-Disposition headers.")
        self._headers[name] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition")
        if disposition is None:
            raise BadUploadError("A part of the body has no Content-Disposition header.")
        kind, params = parse_options_header(disposition)
        if kind != b"form-data":
            raise BadUploadError("A part's Content-Disposition is not form-data.")
        raw_name = params.get(b"name")
        if not raw_name:
            raise BadUploadError("A part of the body has no field name.")
        name = _header_text(raw_name)
        raw_filename = params.get(b"filename")
        if raw_filename is None:
            self._field_count += 1
            if self._field_count > self.limits.max_fields:
                raise UploadTooLargeError(
                    f"The form has more than {self.limits.max_fields} fields (max_fields); "
                    f"refused at field {name!r}."
                )
            self._part = _FieldPart(name)
            self._on_data = self._on_field_data
            return
        self._file_count += 1
        if self._file_count > self.limits.max_files:
            raise UploadTooLargeError(
                f"The form has more than {self.limits.max_files} files (max_files); "
                f"refused at field {name!r}."
            )
        content_type = _header_text(self._headers.get("content-type", b""))
        temp: _TempFile | StoredPart
        if self._storage is not None:
            planned = self._key_for(clean_filename(_header_text(raw_filename)))
            temp = StoredPart(
                self._storage, media_type_of(content_type) or "", self._room() or None, planned
            )
        else:
            temp = _TempFile(self.temp_dir, self._checksum, self._room())
        self._temps.append(temp)
        part = _FilePart(name, _header_text(raw_filename), content_type, temp)
        self._part = part
        self._on_data = self._on_file_data
        # filename="" is what browsers send for an empty file input: checks
        # wait for content, and a part with none is skipped (see _on_part_end).
        if part.raw_filename:
            self._check_extension(part)

    def _room(self) -> int:
        """The most a file part starting in the current chunk can hold (0: unknown)."""
        if self._body_size is None:
            return 0
        return max(0, min(self.limits.max_file_size, self._body_size - self._chunk_start))

    def _check_extension(self, part: _FilePart) -> None:
        check_name(part.filename, self.limits, f"Field {part.field_name!r}")

    def _check_content(self, part: _FilePart) -> None:
        part.checked = True
        _check_type(
            part.type,
            sniff_type(bytes(part.temp.head)),
            self.limits.allowed_types,
            f"Field {part.field_name!r}",
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._on_data(data, start, end)

    def _ignore_data(self, data: bytes, start: int, end: int) -> None:
        pass

    def _on_field_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert isinstance(part, _FieldPart)
        if len(part.value) + (end - start) > self.limits.max_field_size:
            raise UploadTooLargeError(
                f"Field {part.name!r} is larger than {format_size(self.limits.max_field_size)} "
                "(max_field_size)."
            )
        part.value += data[start:end]

    def _on_file_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert isinstance(part, _FilePart)
        temp = part.temp
        if temp.size == 0 and not part.raw_filename:
            self._check_extension(part)
        if temp.size + (end - start) > self.limits.max_file_size:
            raise UploadTooLargeError(
                f"File field {part.field_name!r} is larger than "
                f"{format_size(self.limits.max_file_size)} (max_file_size)."
            )
        temp.write(memoryview(data)[start:end])
        if isinstance(temp, StoredPart) and temp not in self._to_flush:
            self._to_flush.append(temp)
        if not part.checked and len(temp.head) >= SNIFF_BYTES:
            self._check_content(part)

    def _on_part_end(self) -> None:
        part, self._part = self._part, None
        self._on_data = self._ignore_data
        if isinstance(part, _FieldPart):
            try:
                value = part.value.decode("utf-8")
            except UnicodeDecodeError:
                raise BadUploadError(f"Field {part.name!r} is not valid UTF-8 text.") from None
            self._fields.setdefault(part.name, []).append(value)
        elif isinstance(part, _FilePart):
            temp = part.temp
            if not part.raw_filename and temp.size == 0:
                # No file chosen in the browser: not an upload at all.
                if isinstance(temp, StoredPart):
                    in_background(temp.abort())
                else:
                    temp.remove()
                self._temps.remove(temp)
                self._file_count -= 1
                return
            if not part.checked:
                self._check_content(part)
            if isinstance(temp, StoredPart):
                self._files.append(
                    StoredUpload(
                        part=temp,
                        field_name=part.field_name,
                        filename=part.filename,
                        raw_filename=part.raw_filename,
                        content_type=part.declared,
                        sniffed_type=sniff_type(bytes(temp.head)),
                        sha256=None,
                    )
                )
                return
            temp.close()
            self._files.append(
                UploadedFile(
                    field_name=part.field_name,
                    filename=part.filename,
                    raw_filename=part.raw_filename,
                    content_type=part.declared,
                    sniffed_type=sniff_type(bytes(temp.head)),
                    size=temp.size,
                    sha256=temp.hash.hexdigest() if temp.hash is not None else None,
                    path=temp.path,
                )
            )

    def _on_end(self) -> None:
        self._ended = True


# ------------------------------------------------------------------ raw body


class RawBodyReceiver:
    """Receive a raw request body (``PUT /files/{name}``) into one temp file.

    Size is capped by the smaller of ``max_body_size`` and ``max_file_size``;
    extension and type rules are those of multipart file parts. ``body_size``
    (the declared Content-Length) lets a large file reserve its disk space.
    """

    def __init__(
        self,
        limits: UploadLimits,
        temp_dir: str | os.PathLike[str],
        filename: str | None,
        content_type: str | None,
        *,
        field_name: str = "",
        checksum: bool = True,
        body_size: int | None = None,
        storage: Storage | None = None,
        key_for: Callable[[str], str | None] | None = None,
    ) -> None:
        self.limits = limits
        self._raw_filename = filename or ""
        self._filename = clean_filename(filename)
        self._field_name = field_name
        self._declared, self._check = _declared_type(content_type or "", self._filename)
        self._max = min(limits.max_body_size, limits.max_file_size)
        check_name(self._filename, limits, "Upload")
        room = min(body_size, self._max) if body_size is not None else 0
        self._temp: _TempFile | StoredPart | None
        if storage is not None:
            planned = key_for(self._filename) if key_for is not None else None
            self._temp = StoredPart(storage, self._declared, room or None, planned)
        else:
            self._temp = _TempFile(Path(temp_dir), checksum, room)
        self._checked = False
        self._aborting: asyncio.Task[None] | None = None
        #: True if the file goes to a storage sink (``feed()`` returns awaitables).
        self.stores_remotely = storage is not None

    def feed(self, chunk: bytes) -> Awaitable[None] | None:
        """Append the next chunk of the body to the temp file (or the storage sink:
        then an awaitable is returned, to await before the next chunk)."""
        temp = self._temp
        if temp is None:
            raise RuntimeError("this RawBodyReceiver is finished or aborted")
        try:
            if temp.size + len(chunk) > self._max:
                raise UploadTooLargeError(
                    f"The uploaded file is larger than {format_size(self._max)} "
                    "(max_file_size / max_body_size)."
                )
            temp.write(chunk)
            if not self._checked and len(temp.head) >= SNIFF_BYTES:
                self._check_content(temp)
        except BaseException:
            self.abort()
            raise
        if isinstance(temp, StoredPart):
            return self._flush(temp)
        return None

    async def _flush(self, part: StoredPart) -> None:
        try:
            await part.flush()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Like ``abort()``, and wait until a stored part is aborted in its storage."""
        self.abort()
        task, self._aborting = self._aborting, None
        if task is not None:
            await task

    def finish(self) -> UploadedFile:
        """Close the temp file and return it as an ``UploadedFile`` owned by the caller."""
        temp = self._temp
        if temp is None:
            raise RuntimeError("this RawBodyReceiver is finished or aborted")
        try:
            if not self._checked:
                self._check_content(temp)
            if not isinstance(temp, StoredPart):
                temp.close()
        except BaseException:
            self.abort()
            raise
        self._temp = None
        if isinstance(temp, StoredPart):
            return StoredUpload(
                part=temp,
                field_name=self._field_name,
                filename=self._filename,
                raw_filename=self._raw_filename,
                content_type=self._declared,
                sniffed_type=sniff_type(bytes(temp.head)),
                sha256=None,
            )
        return UploadedFile(
            field_name=self._field_name,
            filename=self._filename,
            raw_filename=self._raw_filename,
            content_type=self._declared,
            sniffed_type=sniff_type(bytes(temp.head)),
            size=temp.size,
            sha256=temp.hash.hexdigest() if temp.hash is not None else None,
            path=temp.path,
        )

    def abort(self) -> None:
        """Delete the temp file; no-op after ``finish()``."""
        temp, self._temp = self._temp, None
        if isinstance(temp, StoredPart):
            self._aborting = in_background(temp.abort())
        elif temp is not None:
            temp.remove()

    def _check_content(self, temp: _TempFile | StoredPart) -> None:
        self._checked = True
        _check_type(self._check, sniff_type(bytes(temp.head)), self.limits.allowed_types, "Upload")
