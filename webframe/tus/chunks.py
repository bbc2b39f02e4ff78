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
from .protocol import CHECKSUM_ALGORITHMS
from .store import UploadLock, UploadState

__all__ = ["ChunkWriter", "cached_sha256", "forget_hash", "record_durable"]

#: running SHA-256 states of uploads written by this process: id -> (offset, hash).
_HASHES: OrderedDict[str, tuple[int, Any]] = OrderedDict()
_MAX_HASHES: Final = 1024
#: every this many bytes written, writeback to disk starts in a thread (flush-behind),
#: so the fsync that must precede a reported offset has little left to wait for.
FLUSH_BEHIND: Final = 8 * 1024 * 1024


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


def forget_hash(upload_id: str) -> None:
    """Drop the running hash of ``upload_id`` (finished or removed)."""
    _HASHES.pop(upload_id, None)


class ChunkWriter(TusWriter):
    """Appends one request's body at the upload's offset, holding its lock.

    Bytes go to the data file as they arrive but count only once
    :meth:`make_durable` has fsynced them; until then :meth:`discard` cuts them off.
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
        cached = _HASHES.pop(state.id, None)
        self._sha256 = cached[1] if cached is not None and cached[0] == state.offset else None
        if self._sha256 is None and state.offset == 0:
            self._sha256 = hashlib.sha256()
        self._unflushed = 0
        #: the flush-behind running in a thread, if any (the fd stays open until it ends).
        self._flushing: asyncio.Future[None] | None = None
        self._close_when_flushed: int | None = None

    @property
    def open(self) -> bool:
        """False once closed."""
        return self.fd is not None

    def write(self, data: bytes) -> None:
        """Append ``data``; raises OSError when the disk refuses it."""
        assert self.fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        if self._chunk_hash is not None:
            self._chunk_hash.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        self.received += len(data)
        self._unflushed += len(data)
        if self._unflushed >= FLUSH_BEHIND and self._flushing is None:
            self._flush_behind()

    def _flush_behind(self) -> None:
        """Start ``fdatasync`` in a thread without waiting for it (overlaps the disk
        with the network); errors show up again at :meth:`make_durable`'s fsync."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._unflushed = 0
        future = loop.run_in_executor(None, os.fdatasync, self.fd)  # type: ignore[arg-type]
        self._flushing = future
        future.add_done_callback(self._flushed)

    def _flushed(self, future: asyncio.Future[None]) -> None:
        self._flushing = None
        if not future.cancelled():
            future.exception()  # retrieved: the final fsync reports a failing disk
        fd, self._close_when_flushed = self._close_when_flushed, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

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
        self._sha256 = None  # it has seen the dropped bytes

    async def make_durable(self) -> int:
        """fsync what arrived (in a thread) and return the offset it now reaches.

        The caller saves that offset in the state afterwards, so no offset is ever
        reported for bytes that are not on disk.
        """
        assert self.fd is not None
        if self._flushing is not None:
            await asyncio.wait([self._flushing])
        await asyncio.get_running_loop().run_in_executor(None, os.fsync, self.fd)
        return self._advance()

    def make_durable_now(self) -> int:
        """:meth:`make_durable` without a thread (for clean-up when the loop cannot wait)."""
        assert self.fd is not None
        os.fsync(self.fd)
        return self._advance()

    def _advance(self) -> int:
        return record_durable(self, self._sha256)

    def close(self) -> None:
        """Close the data file and release the upload's lock; safe to call twice."""
        fd, self.fd = self.fd, None
        if fd is not None:
            if self._flushing is not None:
                # A thread is syncing this fd: closing it now could let the number be
                # reused under it. It is closed when the thread is done.
                self._close_when_flushed = fd
            else:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.lock.release()
