"""Uploads on a :class:`~webframe.storage.Storage`: file parts streamed into sinks, saved by key.

The receivers in :mod:`webframe.uploads.receiver` hand a file part's bytes to a
*part sink*. The local default is the performance-tuned temp file of
:mod:`webframe.uploads.tempfile` (synchronous writes, reserved disk space). With
another storage (S3), each file part streams into a storage :class:`Sink`
through :class:`StoredPart`: the parser's callbacks queue the part's bytes and
the receiver's ``feed()`` returns an awaitable that writes them (an S3 part
upload when a part's worth is buffered), so a slow storage slows the client down.

A part is committed under a temporary key (``.incoming/<random>``) when its last
byte is in; :meth:`StoredUpload.store` then copies it inside the storage to its
final key (a server-side copy, never a download and re-upload) and the temporary
object is deleted when the request ends. Anything that fails, is refused or is
abandoned is aborted: no temporary object, no unfinished multipart upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Final

from webframe.errors import UploadStorageError
from webframe.storage import ObjectInfo, Sink, Storage, check_key
from webframe.storage.local import LocalStorage

from .files import NO_LINK_ERRNOS, UploadedFile
from .policy import SNIFF_BYTES, sniff_type

__all__ = [
    "INCOMING_PREFIX",
    "StoredPart",
    "StoredUpload",
    "in_background",
    "incoming_key",
    "store_file",
    "wait_background",
]

log = logging.getLogger(__name__)

#: where parts wait, committed, until the handler stores them under their final key.
INCOMING_PREFIX: Final = ".incoming"
_COPY_CHUNK: Final = 1024 * 1024
# The metadata LocalStorage keeps in extended attributes (see webframe.storage.local).
_XATTR_TYPE: Final = "user.webframe.content_type"
_XATTR_SHA256: Final = "user.webframe.sha256"

#: clean-up tasks started where nothing can await them (a disconnect, on_finish).
_background: set[asyncio.Task[None]] = set()


def incoming_key() -> str:
    """A fresh temporary key for one file part."""
    return f"{INCOMING_PREFIX}/{secrets.token_hex(16)}"


def in_background(work: Awaitable[None]) -> asyncio.Task[None] | None:
    """Run ``work`` (a clean-up) on the running loop, keeping a reference until it ends."""

    async def run() -> None:
        try:
            await work
        except Exception:
            log.exception("upload clean-up failed")

    try:
        task = asyncio.get_running_loop().create_task(run())
    except RuntimeError:  # no loop (a test feeding by hand): nothing was stored remotely
        if asyncio.iscoroutine(work):
            work.close()
        return None
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def wait_background() -> None:
    """Wait for every pending clean-up (for tests and shutdown)."""
    while _background:
        await asyncio.gather(*list(_background), return_exceptions=True)


class StoredPart:
    """One file part on its way into a storage sink: bytes queued, then written.

    ``write()`` is called from the parser's callbacks (synchronous): it only
    copies the bytes (the body buffer is reused) and counts them; :meth:`flush`
    opens the sink (under a fresh temporary key) on first use and writes what is
    queued. The sink computes the SHA-256; the receiver sniffs ``head``.
    """

    __slots__ = (
        "_aborted", "_queue", "content_type", "head", "info", "kept", "key", "sink", "size",
        "size_hint", "storage",
    )  # fmt: skip

    #: ``write()`` only queues: the receiver awaits :meth:`flush` before the next chunk.
    asynchronous: ClassVar[bool] = True

    def __init__(
        self,
        storage: Storage,
        content_type: str,
        size_hint: int | None,
        key: str | None = None,
    ) -> None:
        self.storage = storage
        #: where the sink writes: the handler's planned key, else a temporary one.
        self.key = check_key(key) if key is not None else incoming_key()
        #: True once committed under a key the caller keeps (abort leaves it alone).
        self.kept = False
        self._aborted = False
        self.content_type = content_type or "application/octet-stream"
        self.size_hint = size_hint
        self.sink: Sink | None = None
        self._queue: list[bytes] = []
        self.head = bytearray()
        self.size = 0
        self.info: ObjectInfo | None = None

    def write(self, data: bytes | memoryview) -> None:
        self._queue.append(bytes(data))
        self.size += len(data)
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]

    async def flush(self) -> None:
        """Open the sink if needed and write the queued bytes (back-pressure lives here)."""
        if self.sink is None:
            sink = await self.storage.open_sink(
                self.key, content_type=self.content_type, size_hint=self.size_hint
            )
            self.sink = sink
            if self._aborted:  # abandoned (a disconnect) while the sink was opening
                await sink.abort()
        queue, self._queue = self._queue, []
        for data in queue:
            if self._aborted:
                # abort() ran while an earlier write waited (a disconnect): stop quietly,
                # the body is moot and the sink is gone.
                return
            await self.sink.write(data)

    async def commit(self) -> ObjectInfo:
        """Write the rest and commit under the temporary key."""
        await self.flush()
        assert self.sink is not None
        self.info = await self.sink.commit()
        return self.info

    async def abort(self) -> None:
        """Throw the part away: abort the sink, or delete the committed temporary object."""
        self._queue.clear()
        self._aborted = True
        sink = self.sink
        if sink is None or self.kept:
            return
        if not sink.closed:
            await sink.abort()
        elif self.info is not None:
            # Committed, but the request failed before the caller got it.
            await self.storage.delete(sink.key)

    def finish(
        self, *, field_name: str, filename: str, raw_filename: str, content_type: str
    ) -> StoredUpload:
        """Hand the part over as a :class:`StoredUpload` (committed when it is stored)."""
        return StoredUpload(
            part=self,
            field_name=field_name,
            filename=filename,
            raw_filename=raw_filename,
            content_type=content_type,
            sniffed_type=sniff_type(bytes(self.head)),
            sha256=None,
        )

    def drop(self) -> asyncio.Task[None] | None:
        """Throw the part away in the background; the task to await, if a loop runs."""
        return in_background(self.abort())


class StoredUpload(UploadedFile):
    """An upload received into a storage sink (S3): every byte is written, not committed.

    :meth:`store` commits it under a temporary key and copies it to the final key
    inside the storage (server-side); ``discard()`` -- called for every upload when
    the request ends -- aborts the sink or deletes the temporary object. ``path``
    is None: there is no local file.
    """

    __slots__ = ("_discarded", "_stored", "part")

    def __init__(self, *, part: StoredPart, **fields: Any) -> None:
        super().__init__(path=None, storage=part.storage, size=part.size, **fields)
        self.part = part
        self._discarded = False
        self._stored = False

    @property
    def key(self) -> str:
        """The key the bytes are being written to (see ``UploadHandler.upload_key``)."""
        return self.part.key

    @property
    def sha256(self) -> str:
        sink = self.part.sink
        return sink.sha256 if sink is not None else hashlib.sha256().hexdigest()

    def open(self) -> BinaryIO:
        raise UploadStorageError(
            f"The upload {self.filename!r} is in {self._where()}, not on this disk: "
            "use 'await upload.store(key)', then read the stored object."
        )

    def read(self) -> bytes:
        return self.open().read()

    def _where(self) -> str:
        return self.part.storage.url or "the upload storage"

    def save(self, folder: str | os.PathLike[str], name: str | None = None) -> Path:
        raise UploadStorageError(
            f"The upload {self.filename!r} is in {self._where()}; "
            "use 'await upload.store(key)' to keep it."
        )

    async def store(self, key: str, storage: Storage | None = None) -> ObjectInfo:
        """Keep the upload as ``key`` (a copy inside its storage, no download); return it."""
        check_key(key)
        if self._discarded:
            raise UploadStorageError(
                f"The upload {self.filename!r} was already discarded; store it before "
                "the request ends."
            )
        part = self.part
        target = storage if storage is not None else part.storage
        if key == part.key and target is part.storage:
            # Planned by the handler: the upload is committed where it already is.
            if part.info is None:
                await part.commit()
            part.kept = True
            assert part.info is not None
            return part.info
        if part.info is None:
            await part.commit()
        assert part.info is not None
        if target is part.storage:
            return await target.copy(part.info.key, key)
        # Another storage: the bytes must move anyway.
        reader = await part.storage.open_read(part.info.key)
        sink = await target.open_sink(key, content_type=part.info.content_type)
        async with reader, sink:
            async for chunk in reader:
                await sink.write(chunk)
            return await sink.commit()

    def discard(self) -> None:
        """Abort the upload or delete its temporary object (in the background)."""
        if self._discarded:
            return
        self._discarded = True
        self.part.drop()


async def store_file(upload: UploadedFile, storage: Storage, key: str) -> ObjectInfo:
    """Store a temp-file upload under ``key``: a hard link on the same local volume
    (atomic, no copy), else the bytes streamed through a sink of ``storage``."""
    if upload.path is None:
        raise UploadStorageError(f"The upload {upload.filename!r} has no local file.")
    content_type = upload.sniffed_type or upload.content_type or "application/octet-stream"
    if isinstance(storage, LocalStorage):
        target = storage.path_for(key)
        storage.check_root()
        try:
            linked = await asyncio.to_thread(
                link_into, upload.path, target, content_type, upload.sha256
            )
        except FileNotFoundError as exc:
            if not upload.path.exists():
                raise UploadStorageError(
                    f"The upload {upload.filename!r} was already discarded; store it before "
                    "the request ends."
                ) from exc
            raise UploadStorageError(f"The upload could not be stored: {exc.strerror}.") from exc
        except OSError as exc:
            raise UploadStorageError(
                f"The upload could not be stored under {key!r}: {exc.strerror or exc}."
            ) from exc
        if linked:
            return storage.info_for(key, target, sha256=upload.sha256)
    try:
        file = upload.open()
    except OSError as exc:
        raise UploadStorageError(
            f"The upload {upload.filename!r} was already discarded; store it before "
            "the request ends."
        ) from exc
    with file:
        sink = await storage.open_sink(key, content_type=content_type, size_hint=upload.size)
        async with sink:
            while block := await asyncio.to_thread(file.read, _COPY_CHUNK):
                await sink.write(block)
            return await sink.commit()


def link_into(source: Path, target: Path, content_type: str, sha256: str) -> bool:
    """Hard-link ``source`` to ``target`` atomically (replacing it); False if links fail."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for name, value in ((_XATTR_TYPE, content_type), (_XATTR_SHA256, sha256)):
        with contextlib.suppress(OSError, AttributeError):
            os.setxattr(source, name, value.encode("utf-8"))
    staged = target.parent / f".upload-{secrets.token_hex(8)}.part"
    try:
        os.link(source, staged)
    except OSError as exc:
        if exc.errno in NO_LINK_ERRNOS:
            return False
        raise
    try:
        os.replace(staged, target)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return True
