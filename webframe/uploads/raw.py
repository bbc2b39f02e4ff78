"""The raw-body receiver: a request body (``PUT /files/{name}``) becomes one file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from webframe.errors import UploadTooLargeError
from webframe.filenames import clean_filename
from webframe.units import format_size

from .policy import SNIFF_BYTES, UploadLimits, check_name, check_type, declared_type, sniff_type
from .sinks import PartSink, SinkFactory

if TYPE_CHECKING:
    from webframe.storage import Storage

    from .files import UploadedFile

__all__ = ["RawBodyReceiver"]


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
        self._declared, self._check = declared_type(content_type or "", self._filename)
        self._max = min(limits.max_body_size, limits.max_file_size)
        check_name(self._filename, limits, "Upload")
        room = min(body_size, self._max) if body_size is not None else 0
        sinks = SinkFactory(temp_dir, checksum=checksum, storage=storage, key_for=key_for)
        self._sink: PartSink | None = sinks.open(self._declared, self._filename, room)
        self._checked = False
        self._aborting: asyncio.Task[None] | None = None
        #: True if the file goes to a storage sink (``feed()`` returns awaitables).
        self.stores_remotely = storage is not None

    def feed(self, chunk: bytes) -> Awaitable[None] | None:
        """Append the next chunk of the body to the temp file (or the storage sink:
        then an awaitable is returned, to await before the next chunk)."""
        sink = self._sink
        if sink is None:
            raise RuntimeError("this RawBodyReceiver is finished or aborted")
        try:
            if sink.size + len(chunk) > self._max:
                raise UploadTooLargeError(
                    f"The uploaded file is larger than {format_size(self._max)} "
                    "(max_file_size / max_body_size)."
                )
            sink.write(chunk)
            if not self._checked and len(sink.head) >= SNIFF_BYTES:
                self._check_content(sink)
        except BaseException:
            self.abort()
            raise
        if sink.asynchronous:
            return self._flush(sink)
        return None

    async def _flush(self, sink: PartSink) -> None:
        try:
            await sink.flush()
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
        sink = self._sink
        if sink is None:
            raise RuntimeError("this RawBodyReceiver is finished or aborted")
        try:
            if not self._checked:
                self._check_content(sink)
            upload = sink.finish(
                field_name=self._field_name,
                filename=self._filename,
                raw_filename=self._raw_filename,
                content_type=self._declared,
            )
        except BaseException:
            self.abort()
            raise
        self._sink = None
        return upload

    def abort(self) -> None:
        """Delete the temp file; no-op after ``finish()``."""
        sink, self._sink = self._sink, None
        if sink is not None:
            self._aborting = sink.drop()

    def _check_content(self, sink: PartSink) -> None:
        self._checked = True
        check_type(self._check, sniff_type(bytes(sink.head)), self.limits.allowed_types, "Upload")
