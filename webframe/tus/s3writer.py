"""Part buffering of the S3 tus store: a request's body goes to a local spill file
that never holds more than one part; each full part goes out with UploadPart and
the spill starts again, so memory stays bounded. The bytes past the last part
(the tail) are written as their own object before the offset covering them is
saved. Parts sent by a request that is cut before it saves its state are simply
sent again (same part numbers) by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, BinaryIO

from webframe.uploads.policy import SNIFF_BYTES

from .base import TusWriter
from .chunks import record_durable
from .protocol import CHECKSUM_ALGORITHMS
from .s3objects import S3Lease, S3Parts
from .store import UploadState

if TYPE_CHECKING:
    from .s3store import S3TusStore

__all__ = ["S3ChunkWriter"]


class S3ChunkWriter(TusWriter):
    """Appends a body to an S3 upload: spill file up to a part, UploadPart, repeat."""

    def __init__(
        self,
        store: S3TusStore,
        state: UploadState,
        upload: S3Parts,
        lease: S3Lease,
        checksum: tuple[str, bytes] | None,
        spill: BinaryIO,
        sha256: Any,
    ) -> None:
        self.store = store
        self.state = state
        self.upload = upload
        self.lease = lease
        self.checksum = checksum
        self.start = state.offset
        self.received = 0
        self._spill: BinaryIO | None = spill
        #: bytes in the spill file (the tail of the recorded parts, then new bytes).
        self._spilled = upload.tail
        #: ETags of parts sent by this request, not yet in the saved state.
        self._new_parts: list[str] = []
        self._overflow: list[bytes] = []
        self._chunk_hash = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        self._sha256 = sha256
        self._tail_written = True
        self._busy: asyncio.Future[None] | None = None
        #: the first bytes of the upload (for type sniffing), while they are seen.
        self._head = store.heads.setdefault(state.id, bytearray())
        if not upload.parts and len(self._head) < min(SNIFF_BYTES, upload.tail):
            spill.seek(0)
            self._head[:] = spill.read(min(SNIFF_BYTES, upload.tail))
            spill.seek(0, os.SEEK_END)

    @property
    def open(self) -> bool:
        return self._spill is not None

    def write(self, data: bytes) -> Awaitable[None] | None:
        assert self._spill is not None
        if self._chunk_hash is not None:
            self._chunk_hash.update(data)
        if self._sha256 is not None:
            self._sha256.update(data)
        if len(self._head) < SNIFF_BYTES and self.start + self.received == len(self._head):
            self._head += data[: SNIFF_BYTES - len(self._head)]
        self.received += len(data)
        self._tail_written = False
        room = self.upload.part_size - self._spilled
        if len(data) < room:
            self._spill.write(data)
            self._spilled += len(data)
            if self.lease.due():
                self._busy = asyncio.ensure_future(self.lease.renew())
                return self._busy
            return None
        # A part is full: the rest of this piece waits (copied: the caller's buffer
        # is reused) until the part is sent; Tornado reads nothing meanwhile.
        self._spill.write(memoryview(data)[:room])
        self._spilled += room
        self._overflow.append(bytes(memoryview(data)[room:]))
        self._busy = asyncio.ensure_future(self._send_parts())
        return self._busy

    async def _send_parts(self) -> None:
        while self._spilled >= self.upload.part_size:
            await self._send_part()
            self._spilled = 0
            assert self._spill is not None
            self._spill.seek(0)
            self._spill.truncate()
            pending, self._overflow = b"".join(self._overflow), []
            room = self.upload.part_size
            self._spill.write(pending[:room])
            self._spilled = min(len(pending), room)
            if len(pending) > room:
                self._overflow.append(pending[room:])

    async def _send_part(self) -> None:
        assert self._spill is not None
        self._spill.flush()
        self._spill.seek(0)
        number = len(self.upload.parts) + len(self._new_parts) + 1
        etag = await self.store.objects.upload_part(
            self.state.id, self.upload, number, self._spill, self._spilled
        )
        self._new_parts.append(etag)
        await self.lease.renew()

    def checksum_matches(self) -> bool:
        if self.checksum is None or self._chunk_hash is None:
            return True
        return hmac.compare_digest(self._chunk_hash.digest(), self.checksum[1])

    def discard(self) -> None:
        # Parts sent by this request are not recorded: the next one sends them again.
        self._new_parts = []
        self._overflow = []
        self.received = 0
        self._sha256 = None
        self.close()

    async def make_durable(self) -> int:
        """Write the tail (bytes past the last part) as its own object, then return the
        offset the next saved state will report."""
        busy, self._busy = self._busy, None
        if busy is not None:
            await busy  # a part still going out (the connection was cut meanwhile)
        assert self._spill is not None
        if self._overflow:
            await self._send_parts()
        if not self._tail_written:
            parts = len(self.upload.parts) + len(self._new_parts)
            if self._spilled:
                self._spill.flush()
                self._spill.seek(0)
                await self.store.objects.put_tail(self.state.id, parts, self._spill, self._spilled)
                self._spill.seek(0, os.SEEK_END)
            self._tail_written = True
        # Still ours? (If-Match) Else another writer took over a lease we let lapse,
        # and this request must not record anything.
        await self.lease.renew()
        old_parts = len(self.upload.parts)
        self.upload.parts.extend(self._new_parts)
        self._new_parts = []
        old_tail_name = self.store.objects.name(self.state.id, f"tail-{old_parts}")
        if len(self.upload.parts) != old_parts:
            self.store.stale_tails.append(old_tail_name)
        self.upload.tail = self._spilled
        return record_durable(self, self._sha256)

    def close(self) -> None:
        spill, self._spill = self._spill, None
        if spill is not None:
            with contextlib.suppress(OSError):
                spill.close()
        self.lease.release()

    async def aclose(self) -> None:
        """:meth:`close`, waiting until the lease is gone (the client may go on at once)."""
        spill, self._spill = self._spill, None
        if spill is not None:
            with contextlib.suppress(OSError):
                spill.close()
        await self.lease.arelease()
