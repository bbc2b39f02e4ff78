"""The objects a tus upload keeps in S3 (see :mod:`.s3store` for the layout), the
S3 side of its state (:class:`S3Parts`) and the writer's lease (:class:`S3Lease`).

:class:`S3Objects` is every S3 call the tus store makes on them: names, reads,
conditional writes, parts, tails, listings and removals, each through the
storage's client (``client.use(action)``: errors become storage errors).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import botocore.exceptions

from webframe.storage.base import ObjectNotFoundError
from webframe.storage.s3 import S3Storage
from webframe.storage.s3_client import in_background
from webframe.storage.s3_threads import PartBody

from .base import TusLock

__all__ = ["LEASE", "S3Lease", "S3Objects", "S3Parts"]

#: seconds a writer's lease lasts unless renewed: it is renewed while bytes arrive
#: (every LEASE/3 s) and before each save, so a node that died frees its uploads
#: after at most this long (clients get 409 meanwhile, then resume).
LEASE: Final = 10.0
#: objects are read this many bytes at a time.
READ_BLOCK: Final = 1024 * 1024


def error_code(exc: botocore.exceptions.ClientError) -> str:
    """The S3 error code of ``exc`` (``PreconditionFailed``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass
class S3Parts:
    """The S3 side of one upload's state: its multipart upload, the ETags of the parts
    recorded so far and the size of the tail (the bytes past them)."""

    #: the object the multipart upload completes into.
    key: str
    upload_id: str
    part_size: int
    parts: list[str]
    tail: int

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "upload_id": self.upload_id,
            "part_size": self.part_size,
            "parts": self.parts,
            "tail": self.tail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> S3Parts:
        """Raises ValueError/TypeError/KeyError when ``data`` is not one."""
        return cls(
            str(data["key"]),
            str(data["upload_id"]),
            int(data["part_size"]),
            [str(etag) for etag in data["parts"]],
            int(data["tail"]),
        )


class S3Objects:
    """The tus objects under ``<prefix>/_tus`` in the bucket of ``storage``."""

    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self.client = storage.connection
        self.bucket = storage.bucket
        self.base = f"{storage.prefix}/_tus" if storage.prefix else "_tus"
        self.where = f"s3://{self.bucket}/{self.base}"

    def name(self, upload_id: str, what: str) -> str:
        """The object holding ``what`` (state, lock, data, tail-<k>) of ``upload_id``."""
        return f"{self.base}/{upload_id}.{what}"

    async def read(self, name: str, action: str) -> bytes | None:
        """The whole (small) object ``name``; None if there is none."""
        try:
            async with self.client.use(action) as client:
                answer = await client.get_object(Bucket=self.bucket, Key=name)
                async with answer["Body"] as body:
                    return bytes(await body.read())
        except ObjectNotFoundError:
            return None

    async def put(self, name: str, body: bytes, action: str, **extra: Any) -> str:
        """Write a small object; its ETag."""
        async with self.client.use(action) as client:
            answer = await client.put_object(Bucket=self.bucket, Key=name, Body=body, **extra)
        return str(answer.get("ETag", ""))

    async def names_under(self, prefix: str) -> list[str]:
        names: list[str] = []
        async with self.client.use("listing uploads") as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                names.extend(str(item["Key"]) for item in page.get("Contents", []))
        return names

    async def delete(self, names: list[str]) -> None:
        if not names:
            return
        async with self.client.use("removing upload objects") as client:
            for name in names:
                await client.delete_object(Bucket=self.bucket, Key=name)

    async def read_into(self, name: str, out: BinaryIO, first: int, size: int) -> None:
        """Copy ``size`` bytes of object ``name`` from byte ``first`` into ``out``."""
        async with self.client.use("reading an upload's bytes", name) as client:
            answer = await client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes={first}-{first + size - 1}"
            )
            async with answer["Body"] as body:
                left = size
                while left > 0:
                    chunk = await body.read(min(READ_BLOCK, left))
                    if not chunk:
                        raise OSError(f"{name} is shorter than the upload's saved state")
                    out.write(chunk)
                    left -= len(chunk)

    async def upload_part(
        self, upload_id: str, parts: S3Parts, number: int, body: BinaryIO, size: int
    ) -> str:
        """Send part ``number`` of the upload's multipart upload; its ETag."""
        async with self.client.use("sending a part", upload_id) as client:
            answer = await client.upload_part(
                Bucket=self.bucket,
                Key=self.name(upload_id, "data"),
                UploadId=parts.upload_id,
                PartNumber=number,
                Body=PartBody(body, size),  # read from the file by the sending thread
                ContentLength=size,
            )
        return str(answer["ETag"])

    async def put_tail(self, upload_id: str, parts: int, body: BinaryIO, size: int) -> None:
        """Write the bytes past the first ``parts`` parts as ``tail-<parts>``."""
        async with self.client.use("saving an upload's tail", upload_id) as client:
            await client.put_object(
                Bucket=self.bucket,
                Key=self.name(upload_id, f"tail-{parts}"),
                Body=PartBody(body, size),
                ContentLength=size,
            )

    # the lease -------------------------------------------------------------------

    async def put_lease(self, upload_id: str, *, if_match: str | None = None) -> str | None:
        """Write the lease object conditionally; its ETag, or None if someone else has it."""
        body = json.dumps({"until": time.time() + LEASE, "by": secrets.token_hex(8)})
        condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        async with self.client.use("taking an upload's lease") as client:
            try:  # inside use(): the S3 error is seen before it becomes a storage error
                answer = await client.put_object(
                    Bucket=self.bucket,
                    Key=self.name(upload_id, "lock"),
                    Body=body.encode(),
                    **condition,
                )
            except botocore.exceptions.ClientError as exc:
                # 412: the condition failed (held, or no longer ours); 409: a
                # concurrent conditional write won (AWS S3).
                if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return None
                raise
        return str(answer.get("ETag", ""))

    async def take_lease(self, upload_id: str) -> S3Lease | None:
        """The upload's lease: new, or taken over once its holder's term is over."""
        etag = await self.put_lease(upload_id)
        if etag is None:
            # Held: by a live writer, or by one that died (its term is over).
            try:
                async with self.client.use("reading an upload's lease") as client:
                    answer = await client.get_object(
                        Bucket=self.bucket, Key=self.name(upload_id, "lock")
                    )
                    async with answer["Body"] as body:
                        held = json.loads(await body.read())
                    current = str(answer.get("ETag", ""))
            except Exception:
                return None
            if float(held.get("until", 0)) > time.time():
                return None
            etag = await self.put_lease(upload_id, if_match=current)
            if etag is None:
                return None
        return S3Lease(self, upload_id, etag)


class S3Lease(TusLock):
    """The ``.lock`` object this request created; released by deleting it."""

    def __init__(self, objects: S3Objects, upload_id: str, etag: str) -> None:
        self.objects = objects
        self.upload_id = upload_id
        self.etag: str | None = etag
        self.renewed = time.monotonic()

    async def renew(self) -> None:
        """Push the lease's term on (only if it is still ours: ``If-Match``)."""
        if self.etag is None:
            return
        etag = await self.objects.put_lease(self.upload_id, if_match=self.etag)
        if etag is None:
            raise OSError("the upload's lease was taken over by another writer")
        self.etag, self.renewed = etag, time.monotonic()

    def due(self) -> bool:
        """True once a third of the term has passed since the last renewal."""
        return time.monotonic() - self.renewed > LEASE / 3

    def forget(self) -> None:
        """The lease object is gone already (removed with its upload)."""
        self.etag = None

    async def arelease(self) -> None:
        """Delete the lease object (once)."""
        if self.etag is None:
            return
        self.etag = None
        await self.objects.delete([self.objects.name(self.upload_id, "lock")])

    def release(self) -> None:
        if self.etag is not None:
            in_background(self.arelease())
