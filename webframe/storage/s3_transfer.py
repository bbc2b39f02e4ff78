"""S3 transfers: the sink that streams an object in part by part, and the ranged reader.

A sink holds at most one part in memory (``part_size``): an object smaller than
one part is sent with a single PutObject when committed; a larger one becomes a
multipart upload whose parts leave as they fill, and which is aborted if the
sink is aborted, fails or is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final

from webframe.storage.base import (
    READ_CHUNK,
    ObjectInfo,
    ObjectReader,
    Sink,
    StorageUnavailableError,
)
from webframe.storage.s3_client import CONNECTION_ERRORS, in_background

if TYPE_CHECKING:
    from webframe.storage.s3 import S3Storage

__all__ = [
    "META_SHA256",
    "TAG_SHA256",
    "EmptyReader",
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
#: a part buffer grows with the writes up to this size, then takes a whole part.
GROW_LIMIT: Final = 1024 * 1024


def parse_time(value: Any) -> datetime:
    """An aware datetime from botocore's LastModified (now, if it is missing)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


class S3Sink(Sink):
    """Buffers one part; sends PutObject for a small object, else a multipart upload."""

    def __init__(self, storage: S3Storage, key: str, content_type: str) -> None:
        super().__init__(key, content_type)
        self._storage = storage
        self._name = storage.object_name(key)
        self._part_size = storage.part_size
        self._buffer = io.BytesIO()
        self._filled = 0
        #: the buffer holds a whole part (see _reserve).
        self._reserved = False
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
            if not self._reserved and self._filled + len(taken) > GROW_LIMIT:
                self._reserve()
            self._buffer.write(taken)
            self._filled += len(taken)
            view = view[len(taken) :]
            if self._filled == self._part_size:
                await self._send_part()

    def _reserve(self) -> None:
        """Size the buffer to a whole part at once.

        Grown write by write, a BytesIO is reallocated ever larger, and a move
        briefly holds the old and the new copy: the process's peak memory grows
        by most of a part. Sized once, and reused for every part, it does not.
        """
        self._buffer.seek(self._part_size - 1)
        self._buffer.write(b"\0")
        self._buffer.seek(self._filled)
        self._reserved = True

    async def _send_part(self) -> None:
        """Upload the buffered bytes as the next part, then reuse the buffer."""
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
        self._buffer.seek(0)  # the next part overwrites this one
        self._filled = 0

    def _body(self) -> io.BytesIO:
        """The buffered part (its first ``_filled`` bytes) as a request body, rewound.

        A file object rather than bytes: aiohttp sends a BytesIO in 256 KiB slices,
        where a bytes body is first sliced and then joined to the headers -- two
        more whole copies of the part (measured: 28 MiB peak for 8 MiB parts).
        """
        if self._buffer.seek(0, io.SEEK_END) != self._filled:
            self._buffer.truncate(self._filled)  # a reserved buffer's last, shorter part
        self._buffer.seek(0)
        return self._buffer

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
        self._reserved = False

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
