"""Resumable uploads kept in S3, so that any node sharing the bucket can resume them.

Each tus upload is one S3 multipart upload. Under ``<prefix>/_tus/<id>`` live:

- ``.state``: JSON — the :class:`UploadState` plus the multipart upload ID, the
  ETags of the parts recorded so far and the size of the tail; it is written
  last, so it only ever describes bytes already durable in S3;
- ``.tail-<k>``: the bytes past the ``k`` recorded parts (less than a part), a
  small object written before the offset that covers it is saved; named after
  ``k`` so that a tail written by a request that died before saving its state
  never replaces the one the state describes;
- ``.lock``: the writer's lease, created with ``If-None-Match: *`` (a conditional
  PUT, so two nodes cannot both take it) and taken over with ``If-Match`` once
  it is older than its term (its holder died);
- ``.data``: the finished file, once the multipart upload is completed.

A PATCH body is appended to a local spill file that never holds more than one
part (:data:`S3Storage.part_size`, 8 MiB by default); each full part goes out
with UploadPart and the spill starts again, so memory stays bounded. Parts sent
by a request that is cut before it saves its state are simply sent again (same
part numbers) by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO, Final

import botocore.exceptions

from webframe.errors import UploadStorageError
from webframe.storage.base import ObjectInfo, ObjectNotFoundError, Storage
from webframe.storage.s3 import S3Storage
from webframe.storage.s3_client import in_background
from webframe.storage.s3_transfer import TAG_SHA256
from webframe.uploads.files import UploadedFile
from webframe.uploads.policy import SNIFF_BYTES

from .base import TusLock, TusStore, TusWriter
from .chunks import record_durable, take_running_sha256
from .protocol import CHECKSUM_ALGORITHMS
from .store import UploadState, is_upload_id

__all__ = ["S3TusStore", "S3UploadedFile"]

log = logging.getLogger("webframe.tus")

#: seconds a writer's lease lasts unless renewed: it is renewed while bytes arrive
#: (every LEASE/3 s) and before each save, so a node that died frees its uploads
#: after at most this long (clients get 409 meanwhile, then resume).
LEASE: Final = 10.0
_READ: Final = 1024 * 1024


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _Upload:
    """The S3 side of one upload's state: multipart upload ID, part ETags, tail size."""

    def __init__(
        self, key: str, upload_id: str, part_size: int, parts: list[str], tail: int
    ) -> None:
        #: the object the multipart upload completes into.
        self.key = key
        self.upload_id = upload_id
        self.part_size = part_size
        self.parts = parts
        self.tail = tail


class S3Lease(TusLock):
    """The ``.lock`` object this request created; released by deleting it."""

    def __init__(self, store: S3TusStore, upload_id: str, etag: str) -> None:
        self.store = store
        self.upload_id = upload_id
        self.etag: str | None = etag
        self.renewed = time.monotonic()

    async def renew(self) -> None:
        """Push the lease's term on (only if it is still ours: ``If-Match``)."""
        if self.etag is None:
            return
        etag = await self.store._put_lease(self.upload_id, if_match=self.etag)
        if etag is None:
            raise OSError("the upload's lease was taken over by another writer")
        self.etag, self.renewed = etag, time.monotonic()

    async def arelease(self) -> None:
        """Delete the lease object (once)."""
        if self.etag is None:
            return
        self.etag = None
        await self.store._delete_names([self.store.name(self.upload_id, "lock")])

    def release(self) -> None:
        if self.etag is not None:
            in_background(self.arelease())


class S3ChunkWriter(TusWriter):
    """Appends a body to an S3 upload: spill file up to a part, UploadPart, repeat."""

    def __init__(
        self,
        store: S3TusStore,
        state: UploadState,
        upload: _Upload,
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
            if time.monotonic() - self.lease.renewed > LEASE / 3:
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
        etag = await self.store._upload_part(
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
                await self.store._put_tail(self.state.id, parts, self._spill, self._spilled)
                self._spill.seek(0, os.SEEK_END)
            self._tail_written = True
        # Still ours? (If-Match) Else another writer took over a lease we let lapse,
        # and this request must not record anything.
        await self.lease.renew()
        old_parts = len(self.upload.parts)
        self.upload.parts.extend(self._new_parts)
        self._new_parts = []
        old_tail_name = self.store.name(self.state.id, f"tail-{old_parts}")
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


class S3UploadedFile(UploadedFile):
    """A finished tus upload held in S3: :meth:`store` copies it server-side."""

    __slots__ = ("_source", "_tus_store")

    def __init__(self, *, tus_store: S3TusStore, source: str, **kwargs: Any) -> None:
        super().__init__(path=None, **kwargs)
        self._tus_store = tus_store
        self._source = source

    async def store(self, key: str, storage: Storage | None = None) -> ObjectInfo:
        """Keep the upload as ``key``: a server-side copy within the same S3 storage."""
        target = storage if storage is not None else self.storage
        s3 = self._tus_store.storage
        if target is not None and target is not s3:
            return await self._tus_store._stream_out(self, key, target)
        return await self._tus_store._copy_out(self, key)

    def save(self, folder: str | os.PathLike[str], name: str | None = None) -> Path:
        raise UploadStorageError(
            "This upload is held in S3 storage: keep it with `await upload.store(key)`."
        )


class S3TusStore(TusStore):
    """Uploads in progress in the app's S3 ``upload_storage`` (see the module docstring)."""

    keeps_partial_in_place = False

    def __init__(self, storage: S3Storage, spill_dir: str | None = None) -> None:
        self.storage = storage
        self.client = storage.connection
        self.bucket = storage.bucket
        self.base = f"{storage.prefix}/_tus" if storage.prefix else "_tus"
        self.where = f"s3://{self.bucket}/{self.base}"
        self.spill_dir = spill_dir
        self._uploads: dict[str, _Upload] = {}
        #: first bytes of uploads being written (type sniffing), by upload ID.
        self.heads: dict[str, bytearray] = {}
        #: tails replaced by a saved state, removed after that save.
        self.stale_tails: list[str] = []

    def name(self, upload_id: str, what: str) -> str:
        """The object holding ``what`` (state, lock, data, tail-<k>) of ``upload_id``."""
        return f"{self.base}/{upload_id}.{what}"

    # state -------------------------------------------------------------------

    async def load(self, upload_id: str) -> UploadState | None:
        if not is_upload_id(upload_id):
            return None
        try:
            async with self.client.use("reading an upload's state") as client:
                answer = await client.get_object(
                    Bucket=self.bucket, Key=self.name(upload_id, "state")
                )
                async with answer["Body"] as body:
                    raw = await body.read()
        except ObjectNotFoundError:
            return None
        try:
            data = json.loads(raw)
            state = UploadState.from_json(data["state"])
            s3 = data["s3"]
            self._uploads[upload_id] = _Upload(
                str(s3["key"]),
                str(s3["upload_id"]),
                int(s3["part_size"]),
                [str(etag) for etag in s3["parts"]],
                int(s3["tail"]),
            )
        except (ValueError, TypeError, KeyError):
            return None
        return state

    async def save(self, state: UploadState) -> None:
        upload = self._uploads[state.id]
        data = {
            "state": asdict(state),
            "s3": {
                "key": upload.key,
                "upload_id": upload.upload_id,
                "part_size": upload.part_size,
                "parts": upload.parts,
                "tail": upload.tail,
            },
        }
        body = json.dumps(data, separators=(",", ":")).encode("utf-8")
        async with self.client.use("saving an upload's state") as client:
            await client.put_object(
                Bucket=self.bucket,
                Key=self.name(state.id, "state"),
                Body=body,
                ContentType="application/json",
            )
        stale, self.stale_tails = self.stale_tails, []
        if stale:
            await self._delete_names(stale)

    async def create(self, state: UploadState) -> None:
        key = self.name(state.id, "data")
        async with self.client.use("starting an upload") as client:
            answer = await client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload = _Upload(key, str(answer["UploadId"]), self.storage.part_size, [], 0)
        self._uploads[state.id] = upload
        try:
            await self.save(state)
        except BaseException:
            await self.client.abort_upload(key, upload.upload_id)
            raise

    async def delete(self, upload_id: str) -> None:
        upload = self._uploads.get(upload_id)
        if upload is None:
            await self.load(upload_id)
            upload = self._uploads.get(upload_id)
        await self._delete_names([self.name(upload_id, "state")])
        if upload is not None:
            await self.client.abort_upload(upload.key, upload.upload_id)
        names = await self._list(f"{self.base}/{upload_id}.")
        await self._delete_names(names)
        self._uploads.pop(upload_id, None)

    async def _list(self, prefix: str) -> list[str]:
        names: list[str] = []
        async with self.client.use("listing uploads") as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                names.extend(str(item["Key"]) for item in page.get("Contents", []))
        return names

    async def _delete_names(self, names: list[str]) -> None:
        if not names:
            return
        async with self.client.use("removing upload objects") as client:
            for name in names:
                await client.delete_object(Bucket=self.bucket, Key=name)

    # the lease -----------------------------------------------------------------

    async def _put_lease(self, upload_id: str, *, if_match: str | None = None) -> str | None:
        """Write the lease object conditionally; its ETag, or None if someone else has it."""
        body = json.dumps({"until": time.time() + LEASE, "by": secrets.token_hex(8)})
        condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        async with self.client.use("taking an upload's lease") as client:
            try:
                answer = await client.put_object(
                    Bucket=self.bucket,
                    Key=self.name(upload_id, "lock"),
                    Body=body.encode(),
                    **condition,
                )
            except botocore.exceptions.ClientError as exc:
                # 412: the condition failed (held, or no longer ours); 409: a
                # concurrent conditional write won (AWS S3).
                if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return None
                raise
        return str(answer.get("ETag", ""))

    async def try_lock(self, upload_id: str) -> TusLock | None:
        etag = await self._put_lease(upload_id)
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
            etag = await self._put_lease(upload_id, if_match=current)
            if etag is None:
                return None
        return S3Lease(self, upload_id, etag)

    # bytes ---------------------------------------------------------------------

    async def open_writer(
        self, state: UploadState, lock: TusLock, checksum: tuple[str, bytes] | None
    ) -> TusWriter:
        assert isinstance(lock, S3Lease)
        try:
            upload = self._uploads[state.id]
            spill = tempfile.TemporaryFile(dir=self.spill_dir)  # noqa: SIM115 - closed by the writer
            try:
                if upload.tail:
                    await self._read_into(
                        self.name(state.id, f"tail-{len(upload.parts)}"), spill, upload.tail
                    )
            except BaseException:
                spill.close()
                raise
        except BaseException:
            await lock.arelease()
            raise
        sha256 = take_running_sha256(state.id, state.offset)
        return S3ChunkWriter(self, state, upload, lock, checksum, spill, sha256)

    async def _read_into(self, name: str, out: BinaryIO, size: int) -> None:
        """Copy the first ``size`` bytes of object ``name`` into ``out`` (1 MiB at a time)."""
        async with self.client.use("reading an upload's tail", name) as client:
            answer = await client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes=0-{size - 1}"
            )
            async with answer["Body"] as body:
                left = size
                while left > 0:
                    chunk = await body.read(min(_READ, left))
                    if not chunk:
                        raise OSError(f"{name} is shorter than the upload's saved tail")
                    out.write(chunk)
                    left -= len(chunk)

    async def _upload_part(
        self, upload_id: str, upload: _Upload, number: int, body: BinaryIO, size: int
    ) -> str:
        async with self.client.use("sending a part", upload_id) as client:
            answer = await client.upload_part(
                Bucket=self.bucket,
                Key=self.name(upload_id, "data"),
                UploadId=upload.upload_id,
                PartNumber=number,
                Body=body,
                ContentLength=size,
            )
        return str(answer["ETag"])

    async def _put_tail(self, upload_id: str, parts: int, body: BinaryIO, size: int) -> None:
        async with self.client.use("saving an upload's tail", upload_id) as client:
            await client.put_object(
                Bucket=self.bucket,
                Key=self.name(upload_id, f"tail-{parts}"),
                Body=body,
                ContentLength=size,
            )

    async def read_head(self, state: UploadState, size: int) -> bytes:
        head = self.heads.get(state.id)
        if head is not None and len(head) >= min(size, state.offset):
            return bytes(head[:size])
        upload = self._uploads[state.id]
        if upload.parts:
            # Parts of an unfinished multipart upload cannot be read back; the head
            # is taken while it passes (above), so this is only a safety net.
            raise OSError("the first bytes of the upload are no longer readable")
        want = min(size, upload.tail)
        if want <= 0:
            return b""
        with tempfile.TemporaryFile(dir=self.spill_dir) as out:
            await self._read_into(self.name(state.id, "tail-0"), out, want)
            out.seek(0)
            return out.read()

    # finishing -----------------------------------------------------------------

    async def finished_file(self, state: UploadState, sha256: str | None) -> UploadedFile:
        upload = self._uploads[state.id]
        data = upload.key
        async with self.client.use("finishing an upload", state.id) as client:
            parts = list(upload.parts)
            if upload.tail or not parts:
                answer = (
                    await client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=data,
                        UploadId=upload.upload_id,
                        PartNumber=len(parts) + 1,
                        CopySource={
                            "Bucket": self.bucket,
                            "Key": self.name(state.id, f"tail-{len(parts)}"),
                        },
                    )
                    if upload.tail
                    else await client.upload_part(
                        Bucket=self.bucket,
                        Key=data,
                        UploadId=upload.upload_id,
                        PartNumber=1,
                        Body=b"",
                    )
                )
                etag = answer["CopyPartResult"]["ETag"] if upload.tail else answer["ETag"]
                parts.append(str(etag))
            await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=data,
                UploadId=upload.upload_id,
                MultipartUpload={
                    "Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(parts, 1)]
                },
            )
        if sha256 is None:
            sha256 = await self._hash(data)
        return S3UploadedFile(
            tus_store=self,
            source=data,
            field_name="",
            filename=state.filename,
            raw_filename=state.raw_filename,
            content_type=state.content_type,
            sniffed_type=state.sniffed_type,
            size=state.offset,
            sha256=sha256,
            storage=self.storage,
        )

    async def _hash(self, name: str) -> str:
        digest = hashlib.sha256()
        async with self.client.use("reading a finished upload", name) as client:
            answer = await client.get_object(Bucket=self.bucket, Key=name)
            async with answer["Body"] as body:
                while chunk := await body.read(_READ):
                    digest.update(chunk)
        return digest.hexdigest()

    async def _copy_out(self, upload: S3UploadedFile, key: str) -> ObjectInfo:
        target = self.storage.object_name(key)
        content_type = upload.sniffed_type or upload.content_type or "application/octet-stream"
        async with self.client.use("storing a finished upload", key) as client:
            await client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": upload._source},
                MetadataDirective="REPLACE",
                ContentType=content_type,
                TaggingDirective="REPLACE",
                Tagging=f"{TAG_SHA256}={upload.sha256}",
            )
        info = await self.storage.stat(key)
        if info.sha256 is None:
            info = ObjectInfo(
                info.key, info.size, info.etag, info.content_type, info.modified, upload.sha256
            )
        return info

    async def _stream_out(self, upload: S3UploadedFile, key: str, target: Storage) -> ObjectInfo:
        """Copy a finished upload into another storage, 1 MiB at a time."""
        content_type = upload.sniffed_type or upload.content_type or "application/octet-stream"
        sink = await target.open_sink(key, content_type=content_type, size_hint=upload.size)
        async with sink:
            async with self.client.use("reading a finished upload", key) as client:
                answer = await client.get_object(Bucket=self.bucket, Key=upload._source)
                async with answer["Body"] as body:
                    while chunk := await body.read(_READ):
                        await sink.write(chunk)
            return await sink.commit()

    async def undo_completion(self, state: UploadState, offset: int) -> None:
        """Reopen the upload at ``offset`` from its completed object: a new multipart
        upload (under a new key) with whole parts copied server-side (UploadPartCopy),
        the rest saved as the tail; then the state says so and the object goes."""
        done = self._uploads[state.id]
        part = done.part_size
        key = self.name(state.id, f"data-{secrets.token_hex(4)}")
        async with self.client.use("reopening an upload", state.id) as client:
            started = await client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload = _Upload(key, str(started["UploadId"]), part, [], offset % part)
        try:
            async with self.client.use("reopening an upload", state.id) as client:
                for number in range(1, offset // part + 1):
                    first = (number - 1) * part
                    answer = await client.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload.upload_id,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": done.key},
                        CopySourceRange=f"bytes={first}-{first + part - 1}",
                    )
                    upload.parts.append(str(answer["CopyPartResult"]["ETag"]))
            if upload.tail:
                with tempfile.TemporaryFile(dir=self.spill_dir) as out:
                    first = offset - upload.tail
                    async with self.client.use("reopening an upload", state.id) as client:
                        answer = await client.get_object(
                            Bucket=self.bucket, Key=done.key, Range=f"bytes={first}-{offset - 1}"
                        )
                        async with answer["Body"] as body:
                            while chunk := await body.read(_READ):
                                out.write(chunk)
                    out.seek(0)
                    await self._put_tail(state.id, len(upload.parts), out, upload.tail)
            state.offset = offset
            self._uploads[state.id] = upload
            await self.save(state)
        except BaseException:
            self._uploads[state.id] = done
            await self.client.abort_upload(key, upload.upload_id)
            raise
        await self._delete_names([done.key])

    async def mark_finished(self, state: UploadState) -> None:
        state.finished = True
        await self.save(state)
        names = [
            n
            for n in await self._list(f"{self.base}/{state.id}.")
            if not n.endswith((".state", ".lock"))
        ]
        await self._delete_names(names)

    # expiry --------------------------------------------------------------------

    async def purge_expired(self) -> int:
        now = time.time()
        removed = 0
        for name in await self._list(f"{self.base}/"):
            if not name.endswith(".state"):
                continue
            upload_id = name[len(self.base) + 1 : -len(".state")]
            state = await self.load(upload_id)
            if state is not None and state.expires > now:
                continue
            lease = await self.try_lock(upload_id)
            if lease is None:
                continue
            await self.delete(upload_id)  # removes the lease object too
            assert isinstance(lease, S3Lease)
            lease.etag = None
            removed += 1
        return removed
