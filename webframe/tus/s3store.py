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

A PATCH body goes out part by part (:mod:`.s3writer`, at most one part of
:data:`S3Storage.part_size` spilled locally); the S3 calls are in
:mod:`.s3objects`, finishing and reopening in :mod:`.s3finish`.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict

from webframe.storage.s3 import S3Storage
from webframe.uploads.files import UploadedFile

from .base import TusLock, TusStore, TusWriter
from .chunks import take_running_sha256
from .s3finish import S3UploadedFile, complete, reopen, sha256_of
from .s3objects import S3Lease, S3Objects, S3Parts
from .s3writer import S3ChunkWriter
from .store import UploadState, is_upload_id

__all__ = ["S3TusStore", "S3UploadedFile"]


class S3TusStore(TusStore):
    """Uploads in progress in the app's S3 ``upload_storage`` (see the module docstring)."""

    keeps_partial_in_place = False

    def __init__(self, storage: S3Storage, spill_dir: str | None = None) -> None:
        self.storage = storage
        self.objects = S3Objects(storage)
        self.where = self.objects.where
        self.spill_dir = spill_dir
        self._uploads: dict[str, S3Parts] = {}
        #: first bytes of uploads being written (type sniffing), by upload ID.
        self.heads: dict[str, bytearray] = {}
        #: tails replaced by a saved state, removed after that save.
        self.stale_tails: list[str] = []

    def name(self, upload_id: str, what: str) -> str:
        """The object holding ``what`` (state, lock, data, tail-<k>) of ``upload_id``."""
        return self.objects.name(upload_id, what)

    # state -------------------------------------------------------------------

    async def load(self, upload_id: str) -> UploadState | None:
        if not is_upload_id(upload_id):
            return None
        raw = await self.objects.read(self.name(upload_id, "state"), "reading an upload's state")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            state = UploadState.from_json(data["state"])
            self._uploads[upload_id] = S3Parts.from_json(data["s3"])
        except (ValueError, TypeError, KeyError):
            return None
        return state

    async def save(self, state: UploadState) -> None:
        upload = self._uploads[state.id]
        data = {"state": asdict(state), "s3": upload.to_json()}
        body = json.dumps(data, separators=(",", ":")).encode("utf-8")
        await self.objects.put(
            self.name(state.id, "state"),
            body,
            "saving an upload's state",
            ContentType="application/json",
        )
        stale, self.stale_tails = self.stale_tails, []
        await self.objects.delete(stale)

    async def create(self, state: UploadState) -> None:
        key = self.name(state.id, "data")
        async with self.objects.client.use("starting an upload") as client:
            answer = await client.create_multipart_upload(Bucket=self.objects.bucket, Key=key)
        upload = S3Parts(key, str(answer["UploadId"]), self.storage.part_size, [], 0)
        self._uploads[state.id] = upload
        try:
            await self.save(state)
        except BaseException:
            await self.objects.client.abort_upload(key, upload.upload_id)
            raise

    async def delete(self, upload_id: str) -> None:
        upload = self._uploads.get(upload_id)
        if upload is None:
            await self.load(upload_id)
            upload = self._uploads.get(upload_id)
        await self.objects.delete([self.name(upload_id, "state")])
        if upload is not None:
            await self.objects.client.abort_upload(upload.key, upload.upload_id)
        names = await self.objects.names_under(f"{self.objects.base}/{upload_id}.")
        await self.objects.delete(names)
        self._uploads.pop(upload_id, None)

    async def try_lock(self, upload_id: str) -> TusLock | None:
        return await self.objects.take_lease(upload_id)

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
                    tail = self.name(state.id, f"tail-{len(upload.parts)}")
                    await self.objects.read_into(tail, spill, 0, upload.tail)
            except BaseException:
                spill.close()
                raise
        except BaseException:
            await lock.arelease()
            raise
        sha256 = take_running_sha256(state.id, state.offset)
        return S3ChunkWriter(self, state, upload, lock, checksum, spill, sha256)

    async def read_head(self, state: UploadState, size: int) -> bytes:
        head = self.heads.get(state.id)
        if head is not None and len(head) >= min(size, state.offset):
            return bytes(head[:size])
        upload = self._uploads[state.id]
        if upload.parts:
            # Parts of an unfinished multipart upload cannot be read back; the head
            # is taken while it passes (s3writer), so this is only a safety net.
            raise OSError("the first bytes of the upload are no longer readable")
        want = min(size, upload.tail)
        if want <= 0:
            return b""
        with tempfile.TemporaryFile(dir=self.spill_dir) as out:
            await self.objects.read_into(self.name(state.id, "tail-0"), out, 0, want)
            out.seek(0)
            return out.read()

    # finishing -----------------------------------------------------------------

    async def finished_file(self, state: UploadState, sha256: str | None) -> UploadedFile:
        data = await complete(self.objects, state.id, self._uploads[state.id])
        if sha256 is None:
            sha256 = await sha256_of(self.objects, data)
        return S3UploadedFile(
            objects=self.objects,
            source=data,
            **state.file_fields(),
            sha256=sha256,
            storage=self.storage,
        )

    async def undo_completion(self, state: UploadState, offset: int) -> None:
        """Reopen the upload at ``offset`` from its completed object (see
        :func:`.s3finish.reopen`); then the state says so and the object goes."""
        done = self._uploads[state.id]
        upload = await reopen(self.objects, state.id, done, offset, self.spill_dir)
        try:
            state.offset = offset
            self._uploads[state.id] = upload
            await self.save(state)
        except BaseException:
            self._uploads[state.id] = done
            await self.objects.client.abort_upload(upload.key, upload.upload_id)
            raise
        await self.objects.delete([done.key])

    async def mark_finished(self, state: UploadState) -> None:
        state.finished = True
        await self.save(state)
        names = await self.objects.names_under(f"{self.objects.base}/{state.id}.")
        await self.objects.delete([n for n in names if not n.endswith((".state", ".lock"))])

    # expiry --------------------------------------------------------------------

    async def purge_expired(self) -> int:
        now = time.time()
        removed = 0
        base = self.objects.base
        for name in await self.objects.names_under(f"{base}/"):
            if not name.endswith(".state"):
                continue
            upload_id = name[len(base) + 1 : -len(".state")]
            state = await self.load(upload_id)
            if state is not None and state.expires > now:
                continue
            lease = await self.try_lock(upload_id)
            if lease is None:
                continue
            await self.delete(upload_id)  # removes the lease object too
            assert isinstance(lease, S3Lease)
            lease.forget()
            removed += 1
        return removed
