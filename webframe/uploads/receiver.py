"""The multipart receiver: a form body becomes fields and files held in part sinks.

:class:`MultipartReceiver` takes the events of a :class:`~.multipart.MultipartDecoder`
and enforces the route's :class:`~.policy.UploadLimits` on them: counts, sizes, names
and types. A file part's bytes go to the part sink its :class:`~.sinks.SinkFactory`
opens (see :mod:`webframe.uploads.sinks`); writing, hashing and keeping the bytes to
sniff are the sink's job. (A raw body is :mod:`webframe.uploads.raw`'s.)

On any exception raised from ``feed()`` or ``finish()`` the receiver has already
dropped every sink it opened, so a caller never has to.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from webframe.errors import BadUploadError, UploadTooLargeError
from webframe.filenames import clean_filename
from webframe.mediatypes import media_type_of
from webframe.units import format_size

from .multipart import MultipartDecoder, boundary_from_content_type
from .policy import SNIFF_BYTES, UploadLimits, check_name, check_type, declared_type, sniff_type
from .sinks import PartSink, SinkFactory

if TYPE_CHECKING:
    from typing_extensions import Unpack  # in typing from Python 3.11

    from webframe.storage import Storage

    from .files import UploadedFile

__all__ = ["MultipartReceiver", "ReceiverOptions"]


class ReceiverOptions(TypedDict, total=False):
    """The keyword options of :class:`MultipartReceiver` (see its docstring)."""

    checksum: bool
    body_size: int | None
    storage: Storage | None
    key_for: Callable[[str], str | None] | None


class _FilePart:
    __slots__ = ("checked", "declared", "field_name", "filename", "raw_filename", "sink", "type")

    def __init__(
        self, field_name: str, raw_filename: str, filename: str, content_type: str, sink: PartSink
    ) -> None:
        self.field_name = field_name
        self.raw_filename = raw_filename
        self.filename = filename
        self.declared, self.type = declared_type(content_type, filename)
        self.sink = sink
        self.checked = False


class _FieldPart:
    __slots__ = ("name", "value")

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = bytearray()


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
        self._decoder = MultipartDecoder(
            boundary,
            self,
            max_parts=limits.max_parts,
            max_part_header_size=limits.max_part_header_size,
        )
        self._sinks = SinkFactory(temp_dir, checksum=checksum, storage=storage, key_for=key_for)
        #: sinks with bytes queued for the awaitable ``feed()`` returns.
        self._to_flush: list[PartSink] = []
        self._aborting: list[asyncio.Task[None]] = []
        self._body_size = body_size
        self.limits = limits
        self.temp_dir = Path(temp_dir)
        self._received = 0
        self._chunk_start = 0
        self._field_count = 0
        self._file_count = 0
        self._closed = False
        self._fields: dict[str, list[str]] = {}
        self._files: list[UploadedFile] = []
        self._open: list[PartSink] = []
        self._part: _FilePart | _FieldPart | None = None
        self._on_data: Callable[[bytes, int, int], None] = self._ignore_data

    @classmethod
    def from_content_type(
        cls,
        content_type: str,
        limits: UploadLimits,
        temp_dir: str | os.PathLike[str],
        **options: Unpack[ReceiverOptions],
    ) -> MultipartReceiver:
        """Build a receiver from a request's Content-Type header value (``options``:
        the keyword arguments of the constructor)."""
        return cls(boundary_from_content_type(content_type), limits, temp_dir, **options)

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
            self._decoder.feed(chunk)
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
            self._decoder.finish()
        except BaseException:
            self._cleanup()
            raise
        self._closed = True
        self._open = []  # the files' sinks now belong to the caller
        return self._fields, self._files

    def abort(self) -> None:
        """Stop receiving and delete every temp file; no-op after ``finish()``."""
        if not self._closed:
            self._cleanup()

    @property
    def stores_remotely(self) -> bool:
        """True if file parts go to a storage sink (``feed()`` may return awaitables)."""
        return self._sinks.storage is not None

    @property
    def bytes_received(self) -> int:
        """Body bytes fed so far."""
        return self._received

    # internals

    def _cleanup(self) -> None:
        self._closed = True
        self._to_flush.clear()
        for sink in self._open:
            task = sink.drop()
            if task is not None:
                self._aborting.append(task)
        self._open.clear()
        self._files.clear()
        self._part = None

    def _room(self) -> int:
        """The most a file part starting in the current chunk can hold (0: unknown)."""
        if self._body_size is None:
            return 0
        return max(0, min(self.limits.max_file_size, self._body_size - self._chunk_start))

    def _check_content(self, part: _FilePart) -> None:
        part.checked = True
        check_type(
            part.type,
            sniff_type(bytes(part.sink.head)),
            self.limits.allowed_types,
            f"Field {part.field_name!r}",
        )

    # PartEvents: called by the decoder

    def field_started(self, name: str) -> None:
        """A form field begins: counted against ``max_fields``."""
        self._field_count += 1
        if self._field_count > self.limits.max_fields:
            raise UploadTooLargeError(
                f"The form has more than {self.limits.max_fields} fields (max_fields); "
                f"refused at field {name!r}."
            )
        self._part = _FieldPart(name)
        self._on_data = self._on_field_data

    def file_started(self, name: str, raw_filename: str, content_type: str) -> None:
        """A file part begins: counted against ``max_files``, its sink opened."""
        self._file_count += 1
        if self._file_count > self.limits.max_files:
            raise UploadTooLargeError(
                f"The form has more than {self.limits.max_files} files (max_files); "
                f"refused at field {name!r}."
            )
        filename = clean_filename(raw_filename)
        sink = self._sinks.open(media_type_of(content_type) or "", filename, self._room())
        self._open.append(sink)
        part = _FilePart(name, raw_filename, filename, content_type, sink)
        self._part = part
        self._on_data = self._on_file_data
        # filename="" is what browsers send for an empty file input: checks
        # wait for content, and a part with none is skipped (see part_ended).
        if part.raw_filename:
            check_name(part.filename, self.limits, f"Field {part.field_name!r}")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        """The next piece of the current part."""
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
        sink = part.sink
        if sink.size == 0 and not part.raw_filename:
            check_name(part.filename, self.limits, f"Field {part.field_name!r}")
        if sink.size + (end - start) > self.limits.max_file_size:
            raise UploadTooLargeError(
                f"File field {part.field_name!r} is larger than "
                f"{format_size(self.limits.max_file_size)} (max_file_size)."
            )
        sink.write(memoryview(data)[start:end])
        if sink.asynchronous and sink not in self._to_flush:
            self._to_flush.append(sink)
        if not part.checked and len(sink.head) >= SNIFF_BYTES:
            self._check_content(part)

    def part_ended(self) -> None:
        """The current part is complete: a field is decoded, a file handed over."""
        part, self._part = self._part, None
        self._on_data = self._ignore_data
        if isinstance(part, _FieldPart):
            try:
                value = part.value.decode("utf-8")
            except UnicodeDecodeError:
                raise BadUploadError(f"Field {part.name!r} is not valid UTF-8 text.") from None
            self._fields.setdefault(part.name, []).append(value)
        elif isinstance(part, _FilePart):
            sink = part.sink
            if not part.raw_filename and sink.size == 0:
                # No file chosen in the browser: not an upload at all.
                sink.drop()
                self._open.remove(sink)
                self._file_count -= 1
                return
            if not part.checked:
                self._check_content(part)
            self._files.append(
                sink.finish(
                    field_name=part.field_name,
                    filename=part.filename,
                    raw_filename=part.raw_filename,
                    content_type=part.declared,
                )
            )
