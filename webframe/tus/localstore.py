""":class:`LocalTusStore`: the :class:`~.base.TusStore` of uploads on the local upload
volume — :class:`~.store.LocalUploadStore` with its blocking calls run in threads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from webframe.uploads.files import UploadedFile

from .base import TusLock, TusStore, TusWriter
from .chunks import ChunkWriter
from .slots import checkpoint_due, forget_checkpoint
from .store import LocalUploadStore, UploadLock, UploadState

if TYPE_CHECKING:
    from webframe.storage import Storage

__all__ = ["LocalTusStore"]


class LocalTusStore(TusStore):
    """State, data and ``flock`` locks in one folder (see :mod:`.store`)."""

    keeps_partial_in_place = True

    def __init__(self, folder: str | Path, storage: Storage | None = None) -> None:
        self.files = LocalUploadStore(folder)
        self.where = str(folder)
        #: the app's upload storage, handed to finished files for ``store(key)``.
        self.storage = storage

    async def load(self, upload_id: str) -> UploadState | None:
        return self.files.load(upload_id)  # one small read: not worth a thread

    async def create(self, state: UploadState) -> None:
        await asyncio.to_thread(self.files.create, state)

    async def save(self, state: UploadState) -> None:
        """Record progress: in the page cache at once (a restart reads it; the bytes
        were flushed first), flushed in a thread only when a checkpoint is due
        (see :mod:`.slots`: a machine crash may only leave an older offset)."""
        if checkpoint_due(state.id, state.offset):
            await asyncio.to_thread(self.files.save, state)
        else:
            self.files.save(state, durable=False)

    def save_now(self, state: UploadState) -> None:
        """:meth:`save` without a thread (clean-up when the loop cannot wait)."""
        self.files.save(state)

    async def delete(self, upload_id: str) -> None:
        self.files.delete(upload_id)

    async def try_lock(self, upload_id: str) -> TusLock | None:
        return self.files.try_lock(upload_id)

    async def open_writer(
        self, state: UploadState, lock: TusLock, checksum: tuple[str, bytes] | None
    ) -> TusWriter:
        assert isinstance(lock, UploadLock)
        try:
            fd = self.files.open_at(state.id, state.offset)
        except BaseException:
            lock.release()
            raise
        return ChunkWriter(state, fd, lock, checksum)

    async def read_head(self, state: UploadState, size: int) -> bytes:
        return await asyncio.to_thread(self.files.read_head, state.id, size)

    async def finished_file(self, state: UploadState, sha256: str | None) -> UploadedFile:
        if sha256 is None:
            sha256 = await asyncio.to_thread(self.files.sha256_of, state.id, state.offset)
        return UploadedFile(
            **state.file_fields(),
            sha256=sha256,
            path=self.files.data_path(state.id),
            # upload.store(key) keeps it in the app's upload storage, as for multipart.
            storage=self.storage,
        )

    async def undo_completion(self, state: UploadState, offset: int) -> None:
        state.offset = offset
        self.files.truncate(state.id, offset)

    async def mark_finished(self, state: UploadState) -> None:
        state.finished = True
        # A checkpoint: a crash must not bring back an unfinished upload whose
        # data is gone (the app has the file).
        await asyncio.to_thread(self.files.save, state)
        forget_checkpoint(state.id)
        self.files.drop_data(state.id)

    async def purge_expired(self) -> int:
        return await asyncio.to_thread(self.files.purge_expired)
