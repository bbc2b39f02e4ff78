"""Finishing an S3 tus upload: its multipart upload completed into one object, that
object given to the app as an :class:`S3UploadedFile` (kept by a server-side copy),
and, when the app refuses it, the upload reopened at an earlier offset."""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from webframe.errors import UploadStorageError
from webframe.storage.base import ObjectInfo, Storage
from webframe.storage.s3_transfer import TAG_SHA256
from webframe.uploads.files import UploadedFile

from .s3objects import READ_BLOCK, S3Objects, S3Parts

__all__ = ["S3UploadedFile", "complete", "reopen", "sha256_of"]


class S3UploadedFile(UploadedFile):
    """A finished tus upload held in S3: :meth:`store` copies it server-side."""

    __slots__ = ("_objects", "_source")

    def __init__(self, *, objects: S3Objects, source: str, **kwargs: Any) -> None:
        super().__init__(path=None, **kwargs)
        self._objects = objects
        self._source = source

    async def store(self, key: str, storage: Storage | None = None) -> ObjectInfo:
        """Keep the upload as ``key``: a server-side copy within the same S3 storage."""
        target = storage if storage is not None else self.storage
        if target is not None and target is not self._objects.storage:
            return await self._stream_out(key, target)
        return await self._copy_out(key)

    def save(self, folder: str | os.PathLike[str], name: str | None = None) -> Path:
        raise UploadStorageError(
            "This upload is held in S3 storage: keep it with `await upload.store(key)`."
        )

    def _content_type(self) -> str:
        return self.sniffed_type or self.content_type or "application/octet-stream"

    async def _copy_out(self, key: str) -> ObjectInfo:
        objects = self._objects
        s3 = objects.storage
        async with objects.client.use("storing a finished upload", key) as client:
            await client.copy_object(
                Bucket=objects.bucket,
                Key=s3.object_name(key),
                CopySource={"Bucket": objects.bucket, "Key": self._source},
                MetadataDirective="REPLACE",
                ContentType=self._content_type(),
                TaggingDirective="REPLACE",
                Tagging=f"{TAG_SHA256}={self.sha256}",
            )
        info = await s3.stat(key)
        if info.sha256 is None:
            info = ObjectInfo(
                info.key, info.size, info.etag, info.content_type, info.modified, self.sha256
            )
        return info

    async def _stream_out(self, key: str, target: Storage) -> ObjectInfo:
        """Copy the upload into another storage, 1 MiB at a time."""
        objects = self._objects
        sink = await target.open_sink(key, content_type=self._content_type(), size_hint=self.size)
        async with sink:
            async with objects.client.use("reading a finished upload", key) as client:
                answer = await client.get_object(Bucket=objects.bucket, Key=self._source)
                async with answer["Body"] as body:
                    while chunk := await body.read(READ_BLOCK):
                        await sink.write(chunk)
            return await sink.commit()


async def complete(objects: S3Objects, upload_id: str, upload: S3Parts) -> str:
    """Complete the multipart upload (the tail becomes its last part, copied
    server-side); the name of the object it made."""
    data = upload.key
    async with objects.client.use("finishing an upload", upload_id) as client:
        parts = list(upload.parts)
        if upload.tail:
            answer = await client.upload_part_copy(
                Bucket=objects.bucket,
                Key=data,
                UploadId=upload.upload_id,
                PartNumber=len(parts) + 1,
                CopySource={
                    "Bucket": objects.bucket,
                    "Key": objects.name(upload_id, f"tail-{len(parts)}"),
                },
            )
            parts.append(str(answer["CopyPartResult"]["ETag"]))
        elif not parts:
            answer = await client.upload_part(
                Bucket=objects.bucket, Key=data, UploadId=upload.upload_id, PartNumber=1, Body=b""
            )
            parts.append(str(answer["ETag"]))
        await client.complete_multipart_upload(
            Bucket=objects.bucket,
            Key=data,
            UploadId=upload.upload_id,
            MultipartUpload={
                "Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(parts, 1)]
            },
        )
    return data


async def sha256_of(objects: S3Objects, name: str) -> str:
    """The hex SHA-256 of object ``name``, read 1 MiB at a time."""
    digest = hashlib.sha256()
    async with objects.client.use("reading a finished upload", name) as client:
        answer = await client.get_object(Bucket=objects.bucket, Key=name)
        async with answer["Body"] as body:
            while chunk := await body.read(READ_BLOCK):
                digest.update(chunk)
    return digest.hexdigest()


async def reopen(
    objects: S3Objects, upload_id: str, done: S3Parts, offset: int, spill_dir: str | None
) -> S3Parts:
    """A new multipart upload (under a new key) holding the first ``offset`` bytes of
    the completed object ``done.key``: whole parts copied server-side (UploadPartCopy),
    the rest saved as the tail. Aborted again if anything fails."""
    part = done.part_size
    key = objects.name(upload_id, f"data-{secrets.token_hex(4)}")
    async with objects.client.use("reopening an upload", upload_id) as client:
        started = await client.create_multipart_upload(Bucket=objects.bucket, Key=key)
    upload = S3Parts(key, str(started["UploadId"]), part, [], offset % part)
    try:
        async with objects.client.use("reopening an upload", upload_id) as client:
            for number in range(1, offset // part + 1):
                first = (number - 1) * part
                answer = await client.upload_part_copy(
                    Bucket=objects.bucket,
                    Key=key,
                    UploadId=upload.upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": objects.bucket, "Key": done.key},
                    CopySourceRange=f"bytes={first}-{first + part - 1}",
                )
                upload.parts.append(str(answer["CopyPartResult"]["ETag"]))
        if upload.tail:
            with tempfile.TemporaryFile(dir=spill_dir) as out:
                await objects.read_into(done.key, out, offset - upload.tail, upload.tail)
                out.seek(0)
                await objects.put_tail(upload_id, len(upload.parts), out, upload.tail)
    except BaseException:
        await objects.client.abort_upload(key, upload.upload_id)
        raise
    return upload
