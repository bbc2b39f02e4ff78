"""The local part sink: a file part streamed into a temp file on the upload volume.

Tuned for the local upload path (see README "Performance"): small pieces are
coalesced, large ones written in slices, the disk space of a large file is
reserved ahead of the writes with Linux ``fallocate`` and trimmed at the end,
and the SHA-256 and the first bytes (for sniffing) are taken as the bytes pass.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path
from typing import BinaryIO, ClassVar, Final

from webframe.errors import UploadStorageError
from webframe.storage.local import load_fallocate, open_temp_file
from webframe.units import KiB, MiB

from .files import UploadedFile
from .policy import SNIFF_BYTES, sniff_type

__all__ = ["TempFile", "storage_error"]

# Small on purpose: 64 KiB chunk writes bypass it, only slivers (split
# boundaries, 1-byte feeds) get coalesced; a big buffer only adds a memcpy.
_WRITE_BUFFER: Final = 16 * KiB
#: larger pieces are written to the temp file in slices of this size. Measured on
#: 1 GiB uploads (Linux 6.18, ext4, in a VM): 1 MiB writes made the kernel's copy into
#: the page cache cost 1.3-1.7 CPU s/GiB in all, varying with what ran before; 256 KiB
#: slices a steady 1.11-1.17 (128 KiB 1.14-1.25, 512 KiB 1.34-1.55).
WRITE_SLICE: Final = 256 * KiB
#: a temp file that may grow past this (its ``room``) gets its disk space reserved
#: ahead of the writes, PREALLOC_STEP first, then doubling, never past the room;
#: what was not used is given back when it closes. Writing into reserved space
#: spares ext4 its per-block work in write(): 0.03-0.045 CPU s/GiB of 0.21 measured
#: (1 GiB uploads, Linux 6.18, ext4); it also refuses an upload the disk cannot hold
#: (507) after one window instead of after the disk fills.
PREALLOC_MIN: Final = 1 * MiB
PREALLOC_STEP: Final = 8 * MiB


def storage_error(exc: OSError) -> UploadStorageError:
    """The 507 for an OS error met while writing an upload (a full disk says so)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UploadStorageError(
            "The server's disk is full, so the upload could not be stored; try again later."
        )
    return UploadStorageError(f"The upload could not be stored: {exc.strerror or exc}.")


#: Linux ``fallocate(fd, offset, length)`` (None elsewhere): reserves disk space ahead
#: of the writes; a test may replace it to watch or fail the reservations.
fallocate = load_fallocate()


class TempFile:
    """One file being received: a buffered temp file, running size and sha256.

    ``room`` is the most bytes the file can still receive (the rest of the
    declared body, capped by the file limit; 0 when unknown): from it, disk space
    is reserved ahead of the writes (see PREALLOC_MIN) and trimmed on ``close()``.
    """

    __slots__ = ("_allocated", "_file", "_room", "hash", "head", "path", "size")

    #: writes are done when ``write()`` returns: nothing to flush.
    asynchronous: ClassVar[bool] = False

    def __init__(self, temp_dir: Path, checksum: bool = True, room: int = 0) -> None:
        try:
            self.path, file = open_temp_file(temp_dir, "upload-", ".part", _WRITE_BUFFER)
        except OSError as exc:
            raise storage_error(exc) from exc
        self._file: BinaryIO | None = file
        self.hash = hashlib.sha256() if checksum else None
        self.head = bytearray()
        self.size = 0
        self._room = room if room >= PREALLOC_MIN and fallocate is not None else 0
        self._allocated = 0

    def write(self, data: bytes | memoryview) -> None:
        """Write ``data`` (a full disk raises ``UploadStorageError``)."""
        assert self._file is not None
        try:
            if self._room and self.size + len(data) > self._allocated:
                self._reserve(self.size + len(data))
            if len(data) > WRITE_SLICE:
                view = memoryview(data)
                for start in range(0, len(view), WRITE_SLICE):
                    self._file.write(view[start : start + WRITE_SLICE])
            else:
                self._file.write(data)
        except OSError as exc:
            raise storage_error(exc) from exc
        if self.hash is not None:
            self.hash.update(data)
        self.size += len(data)
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]

    def _reserve(self, end: int) -> None:
        """Reserve space up to at least ``end`` (within the room); raises OSError."""
        assert self._file is not None and fallocate is not None
        target = min(self._room, max(end, 2 * self._allocated, PREALLOC_STEP))
        if target <= self._allocated:  # past the room: the size limits will speak
            self._room = 0
        elif fallocate(self._file.fileno(), self._allocated, target - self._allocated):
            self._allocated = target
        else:
            self._room = 0  # this filesystem cannot: plain writes from now on

    async def flush(self) -> None:
        """Nothing waits: ``write()`` already wrote."""

    def close(self) -> None:
        """Flush, give back unused reserved space, close; a full disk may show up here."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
                try:
                    if self._allocated > self.size:
                        # The reserve extended the file: cut it back to what was written.
                        file.flush()
                        os.ftruncate(file.fileno(), self.size)
                finally:
                    file.close()
            except OSError as exc:
                raise storage_error(exc) from exc

    def finish(
        self, *, field_name: str, filename: str, raw_filename: str, content_type: str
    ) -> UploadedFile:
        """Close the file and hand it over as an ``UploadedFile`` (the caller discards it)."""
        self.close()
        return UploadedFile(
            field_name=field_name,
            filename=filename,
            raw_filename=raw_filename,
            content_type=content_type,
            sniffed_type=sniff_type(bytes(self.head)),
            size=self.size,
            sha256=self.hash.hexdigest() if self.hash is not None else None,
            path=self.path,
        )

    def drop(self) -> None:
        """Throw the part away: the file is deleted now (nothing to wait for)."""
        self.remove()

    def remove(self) -> None:
        """Close without flushing errors and delete the file."""
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()
        self.path.unlink(missing_ok=True)
