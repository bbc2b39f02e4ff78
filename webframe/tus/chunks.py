"""The bytes of one POST/PATCH being appended to an upload's data file, and the
running SHA-256 of uploads this process is writing.

Python cannot save a ``hashlib`` state to disk, so the running hash lives in this
process only, keyed by upload and offset; when a PATCH starts at an offset the
cache does not know (after a restart, on another worker, after a cut connection
whose tail was kept by another process) the finished upload is hashed again from
its file, 1 MiB at a time (:meth:`LocalUploadStore.sha256_of`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
from collections import OrderedDict
from typing import Any, Final

from .base import TusWriter
from .diskio import load_reserve, load_start_writeback
from .protocol import CHECKSUM_ALGORITHMS
from .store import UploadLock, UploadState

__all__ = [
    "ChunkWriter",
    "cached_sha256",
    "forget_all_hashes",
    "forget_hash",
    "record_durable",
    "take_running_sha256",
]

#: running SHA-256 states of uploads written by this process: id -> (offset, hash).
_HASHES: OrderedDict[str, tuple[int, Any]] = OrderedDict()
_MAX_HASHES: Final = 1024
#: every this many bytes received, writeback of them starts (``sync_file_range``),
#: so the ``fdatasync`` that must precede a reported offset has little left to do.
WRITEBACK_STEP: Final = 2 * 1024 * 1024
#: a body piece is written in slices of at most this size, as the multipart path's
#: temp files are (uploads/tempfile.py): one write() of a whole 2 MiB piece made the
#: kernel's copy into the page cache cost up to twice as much when the machine was
#: busy (1 GiB in 16 MiB PATCHes, alternating: server CPU 1.39 against 1.10 s/GiB,
#: system 0.72 against 0.41, wall 1.85 against 1.50 s; 128 KiB slices: CPU 0.99
#: against 0.96 for 256 KiB).
WRITE_SLICE: Final = 256 * 1024
#: bodies announcing at least this many bytes get their disk space reserved first.
RESERVE_MIN: Final = 1024 * 1024

_start_writeback = load_start_writeback()
_reserve = load_reserve()


def _remember(upload_id: str, offset: int, digest: Any) -> None:
    _HASHES[upload_id] = (offset, digest)
    _HASHES.move_to_end(upload_id)
    while len(_HASHES) > _MAX_HASHES:
        _HASHES.popitem(last=False)


def record_durable(writer: TusWriter, sha256: Any) -> int:
    """Move ``writer.start`` past the bytes just made durable, remember the running
    SHA-256 (if any) at that offset, and return the new offset."""
    writer.start += writer.received
    writer.received = 0
    if sha256 is not None:
        _remember(writer.state.id, writer.start, sha256.copy())
    return writer.start


def cached_sha256(upload_id: str, offset: int) -> str | None:
    """The hex SHA-256 of the first ``offset`` bytes if this process hashed them, else None."""
    cached = _HASHES.get(upload_id)
    return cached[1].hexdigest() if cached is not None and cached[0] == offset else None


def take_running_sha256(upload_id: str, offset: int) -> Any:
    """The running SHA-256 of the first ``offset`` bytes of ``upload_id`` for a writer
    going on from there (taken out of the cache: it will see new bytes); a fresh one
    at offset 0; None when this process does not have it."""
    cached = _HASHES.pop(upload_id, None)
    if cached is not None and cached[0] == offset:
        return cached[1]
    return hashlib.sha256() if offset == 0 else None


def forget_hash(upload_id: str) -> None:
    """Drop the running hash of ``upload_id`` (finished or removed)."""
    _HASHES.pop(upload_id, None)


def forget_all_hashes() -> None:
    """Drop every running hash (as a restart would)."""
    _HASHES.clear()


class ChunkWriter(TusWriter):
    """Appends one request's body at the upload's offset, holding its lock.

    Bytes go to the data file as they arrive but count only once
    :meth:`make_durable` has ``fdatasync``ed them; until then :meth:`discard` cuts
    them off. While they arrive, the disk space of the whole body is reserved
    (:meth:`expect`) and writeback starts every :data:`WRITEBACK_STEP` bytes, so
    the ``fdatasync`` the client waits for has little left to do.
    """

    def __init__(
        self,
        state: UploadState,
        fd: int,
        lock: UploadLock,
        checksum: tuple[str, bytes] | None,
    ) -> None:
        self.state = state
        self.fd: int | None = fd
        self.lock = lock
        self.start = state.offset
        self.received = 0
        self.checksum = checksum
        self._chunk_hash = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        self._sha256 = take_running_sha256(state.id, state.offset)
        #: the file offset up to which writeback has been started.
        self._written_back = state.offset
        #: where the request's body ends in the file (its Content-Length), if known.
        self._body_end: int | None = None

    @property
    def open(self) -> bool:
        """False once closed."""
        return self.fd is not None

    def expect(self, size: int) -> None:
        """Reserve disk space for the ``size`` bytes the request announces (its
        Content-Length); a full disk raises OSError here, before any byte is read."""
        self._body_end = self.start + self.received + size
        if self.fd is not None and _reserve is not None and size >= RESERVE_MIN:
            _reserve(self.fd, self.start + self.received, size)

    def write(self, data: bytes) -> None:
        """Append ``data`` (in slices of :data:`WRITE_SLICE`); raises OSError when the
        disk refuses it."""
        fd = self.fd
        assert fd is not None
        view = memoryview(data)
        size = len(view)
        for start in range(0, size, WRITE_SLICE):
            left = view[start : start + WRITE_SLICE]
            while left:
                left = left[os.write(fd, left) :]
        self.received += size
        end = self.start + self.received
        # Writeback starts before the hashing, so the disk writes while the CPU
        # hashes; the body's last piece starts it whatever its size: the flush the
        # client waits for then finds it written or on its way.
        waiting = end - self._written_back
        due = waiting >= WRITEBACK_STEP or (waiting > 0 and end == self._body_end)
        if due and _start_writeback is not None:
            _start_writeback(fd, self._written_back, waiting)
            self._written_back = end
        if self._chunk_hash is not None:
            self._chunk_hash.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)

    def checksum_matches(self) -> bool:
        """True unless the request's ``Upload-Checksum`` disagrees with its bytes."""
        if self.checksum is None or self._chunk_hash is None:
            return True
        return hmac.compare_digest(self._chunk_hash.digest(), self.checksum[1])

    def discard(self) -> None:
        """Cut off the bytes not yet made durable (the offset stays); raises OSError."""
        if self.fd is not None and self.received:
            os.ftruncate(self.fd, self.start)
        self.received = 0
        self._written_back = self.start
        self._sha256 = None  # it has seen the dropped bytes

    async def make_durable(self) -> int:
        """``fdatasync`` what arrived (in a thread) and return the offset it now reaches.

        The caller saves that offset in the state afterwards, so no offset is ever
        reported for bytes that are not on disk. (``fdatasync``, not ``fsync``: the
        size is flushed with the data; only times would be left behind.)
        """
        assert self.fd is not None
        await asyncio.get_running_loop().run_in_executor(None, os.fdatasync, self.fd)
        return self._advance()

    def make_durable_now(self) -> int:
        """:meth:`make_durable` without a thread (for clean-up when the loop cannot wait)."""
        assert self.fd is not None
        os.fdatasync(self.fd)
        return self._advance()

    def _advance(self) -> int:
        return record_durable(self, self._sha256)

    def close(self) -> None:
        """Close the data file and release the upload's lock; safe to call twice."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.lock.release()
