"""S3 transfers: the sink that streams an object in part by part, and the ranged reader.

A sink holds at most one part (``part_size``), spooled to a temporary file once
it outgrows 256 KiB: an object smaller than one part is sent with a single
PutObject when committed; a larger one becomes a multipart upload whose parts
leave as they fill, and which is aborted if the sink is aborted, fails or is
cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import tempfile
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from webframe.storage.base import (
    READ_CHUNK,
    ObjectInfo,
    ObjectReader,
    Sink,
    StorageUnavailableError,
)
from webframe.storage.s3_client import CONNECTION_ERRORS, in_background
from webframe.storage.s3_models import release_freed_memory
from webframe.storage.s3_threads import PartBody

if TYPE_CHECKING:
    from webframe.storage.s3 import S3Storage

__all__ = [
    "META_SHA256",
    "TAG_SHA256",
    "EmptyReader",
    "PartBody",
    "S3Reader",
    "S3Sink",
    "parse_time",
    "total_size",
]

log = logging.getLogger("webframe.storage")

#: user metadata holding the SHA-256 of an object sent in one PutObject.
META_SHA256: Final = "sha256"
#: the tag holding it for a multipart object (known only after the last part).
TAG_SHA256: Final = "webframe-sha256"
#: the start of a part is kept in memory; a part growing past this goes to a file.
#: (1 MiB measured ~1 MiB more peak RSS: the BytesIO's regrowth at each upload's start.)
SPOOL_AFTER: Final = 256 * 1024


def parse_time(value: Any) -> datetime:
    """An aware datetime from botocore's LastModified (now, if it is missing)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


class S3Sink(Sink):
    """Buffers one part; sends PutObject for a small object, else a multipart upload.

    The part being filled stays in memory only up to ``SPOOL_AFTER`` bytes; past
    that it is spooled to an unlinked temporary file (``TMPDIR``), which is
    reused for every part and sent from there. An 8 MiB part in RAM was the
    largest single item in the process's peak memory during an upload; in the
    page cache it is not the process's memory, and a file overwritten part
    after part is rarely even written out to the disk.
    """

    def __init__(self, storage: S3Storage, key: str, content_type: str) -> None:
        super().__init__(key, content_type)
        self._storage = storage
        self._name = storage.object_name(key)
        self._part_size = storage.part_size
        #: the start of a part, until it outgrows SPOOL_AFTER.
        self._buffer = io.BytesIO()
        #: the part's file once spooled (kept for the next parts).
        self._spool: BinaryIO | None = None
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    @property
    def upload_id(self) -> str | None:
        """The multipart upload's ID once one was started (for tests and logs)."""
        return self._upload_id

    async def _write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            taken = view[: self._part_size - self._filled]
            if self._spool is None and self._filled + len(taken) > SPOOL_AFTER:
                self._spool_part()
            (self._buffer if self._spool is None else self._spool).write(taken)
            self._filled += len(taken)
            view = view[len(taken) :]
            if self._filled == self._part_size:
                await self._send_part()

    def _spool_part(self) -> None:
        """Move the part filled so far to the temporary file (made on first use)."""
        if self._spool is None:
            self._spool = tempfile.TemporaryFile(prefix="webframe-s3-part-")  # noqa: SIM115
        self._spool.seek(0)
        self._spool.write(self._buffer.getbuffer()[: self._filled])
        self._buffer = io.BytesIO()

    async def _send_part(self) -> None:
        """Upload the filled part as the next part; the next one overwrites it."""
        storage = self._storage
        async with storage.connection.use("uploading", self.key) as client:
            if self._upload_id is None:
                started = await client.create_multipart_upload(
                    Bucket=storage.bucket, Key=self._name, ContentType=self.content_type
                )
                self._upload_id = str(started["UploadId"])
            number = len(self._parts) + 1
            answer = await client.upload_part(
                Bucket=storage.bucket,
                Key=self._name,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=self._body(),
            )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})
        release_freed_memory()
        if self._spool is None:
            self._buffer = io.BytesIO()
        else:
            self._spool.seek(0)
        self._filled = 0

    def _body(self) -> PartBody:
        """The filled part as a request body: a window on the buffer or the spool file,
        read by the thread that sends it a slice at a time (never a copy of the whole
        part), and abandoned if this sink's task is cancelled meanwhile."""
        if self._spool is None:
            return PartBody(self._buffer, self._filled)
        self._spool.flush()
        return PartBody(self._spool, self._filled)

    async def _commit(self) -> ObjectInfo:
        storage = self._storage
        digest = self.sha256
        if self._upload_id is None:
            async with storage.connection.use("uploading", self.key) as client:
                answer = await client.put_object(
                    Bucket=storage.bucket,
                    Key=self._name,
                    Body=self._body(),
                    ContentType=self.content_type,
                    Metadata={META_SHA256: digest},
                )
        else:
            if self._filled:
                await self._send_part()
            async with storage.connection.use("uploading", self.key) as client:
                answer = await client.complete_multipart_upload(
                    Bucket=storage.bucket,
                    Key=self._name,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            self._upload_id = None  # complete: nothing left to abort
            await self._tag_digest(digest)
        self._release()
        # The object is published: what follows must not turn it into a failure.
        try:
            info = await storage.stat(self.key)
        except StorageUnavailableError:
            info = ObjectInfo(
                key=self.key,
                size=self.size,
                etag=str(answer.get("ETag", "")).strip('"'),
                content_type=self.content_type,
                modified=datetime.now(timezone.utc),
            )
        return dataclasses.replace(info, sha256=digest)

    async def _tag_digest(self, digest: str) -> None:
        """Record the SHA-256 of a multipart object (known only at the end) as a tag.

        Best effort: a service without tagging still gets the object, whose stat
        then reports the digest as unknown.
        """
        storage = self._storage
        try:
            async with storage.connection.use("tagging", self.key) as client:
                await client.put_object_tagging(
                    Bucket=storage.bucket,
                    Key=self._name,
                    Tagging={"TagSet": [{"Key": TAG_SHA256, "Value": digest}]},
                )
        except Exception as exc:
            log.warning("could not tag %s with its SHA-256: %s", self._name, exc)

    async def _abort(self) -> None:
        self._release()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        # Shielded: a second cancellation of the caller must not leave the parts behind.
        task = in_background(self._storage.connection.abort_upload(self._name, upload_id))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    def _release(self) -> None:
        self._buffer = io.BytesIO()
        self._filled = 0
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()

    def __del__(self) -> None:
        # Dropped while open (never committed nor aborted): abort on the loop if one runs.
        upload_id = getattr(self, "_upload_id", None)
        if getattr(self, "_state", None) != "open" or upload_id is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            log.warning("multipart upload %s of %s was abandoned", upload_id, self._name)
            return
        in_background(self._storage.connection.abort_upload(self._name, upload_id))


class S3Reader(ObjectReader):
    """Streams the body of one GetObject answer."""

    def __init__(self, body: Any, info: ObjectInfo, start: int, end: int, key: str) -> None:
        super().__init__(info, start, end)
        self._body = body
        self._key = key

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._body is None:
            return
        try:
            remaining = self.length
            while remaining > 0:
                try:
                    chunk = await self._body.read(min(READ_CHUNK, remaining))
                except CONNECTION_ERRORS as exc:
                    raise StorageUnavailableError(
                        f"The file storage stopped answering while {self._key!r} was read."
                    ) from exc
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            body.close()


class EmptyReader(ObjectReader):
    """A zero-length range: nothing to fetch."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None


def total_size(answer: Mapping[str, Any]) -> int:
    """The whole object's size from a GetObject answer (ranged or not)."""
    content_range = answer.get("ContentRange")
    if content_range:
        total = str(content_range).rpartition("/")[2]
        if total.isdigit():
            return int(total)
    return int(answer.get("ContentLength", 0))
