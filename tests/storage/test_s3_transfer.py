"""The S3 sink on a real SeaweedFS: one PutObject or a multipart upload, abort, cancel."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from typing import Any

import pytest

from tests.storage.conftest import BUCKET, S3Backend
from webframe.errors import ConfigurationError
from webframe.storage import Storage
from webframe.storage.s3 import S3Sink, S3Storage

pytestmark = pytest.mark.slow  # a real SeaweedFS

MiB = 1024 * 1024


def test_small_object_is_one_put_without_a_multipart_upload(s3: S3Backend) -> None:
    async def scenario(storage: Storage) -> None:
        sink = await storage.open_sink("small.txt", content_type="text/plain")
        assert isinstance(sink, S3Sink)
        await sink.write(os.urandom(5 * MiB - 1))  # one byte short of a part
        assert sink.upload_id is None
        assert s3.uploads() == []
        await sink.commit()

    s3.run(scenario)
    assert s3.uploads() == []
    assert s3.objects() == [f"{s3.prefix}/small.txt"]


def test_large_object_streams_as_a_multipart_upload_that_abort_removes(s3: S3Backend) -> None:
    async def scenario(storage: Storage) -> None:
        sink = await storage.open_sink("big.bin", content_type="application/zip")
        assert isinstance(sink, S3Sink)
        await sink.write(os.urandom(3 * MiB))
        assert sink.upload_id is None and s3.uploads() == []  # still buffering part 1
        await sink.write(os.urandom(3 * MiB))
        # Part 1 has left while the "body" is still arriving.
        assert sink.upload_id is not None
        assert s3.uploads() == [f"{s3.prefix}/big.bin"]
        parts = s3.client.list_parts(
            Bucket=BUCKET, Key=f"{s3.prefix}/big.bin", UploadId=sink.upload_id
        )["Parts"]
        assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB)]
        assert s3.objects() == []
        await sink.abort()

    s3.run(scenario)
    assert s3.uploads() == []
    assert s3.objects() == []


def test_part_size_is_configurable_and_bounded(s3: S3Backend) -> None:
    data = os.urandom(13 * MiB)

    async def scenario(storage: Storage) -> None:
        assert isinstance(storage, S3Storage) and storage.part_size == 6 * MiB
        sink = await storage.open_sink("six.bin", content_type="application/octet-stream")
        for start in range(0, len(data), 999_999):
            await sink.write(data[start : start + 999_999])
        assert sink.upload_id is not None
        uploaded = s3.client.list_parts(
            Bucket=BUCKET, Key=f"{s3.prefix}/six.bin", UploadId=sink.upload_id
        )["Parts"]
        assert [p["Size"] for p in uploaded] == [6 * MiB, 6 * MiB]
        info = await sink.commit()
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert info.etag.endswith("-3")  # three parts: 6 + 6 + 1 MiB

    s3.run(scenario, part_size=6 * MiB)
    for bad in (4 * MiB, 6 * 1024 * MiB):
        with pytest.raises(ConfigurationError, match="part_size"):
            s3.make(part_size=bad)


def test_cancel_during_a_part_upload_aborts_it(s3: S3Backend) -> None:
    async def scenario(storage: Storage) -> None:
        sink = await storage.open_sink("cut.bin", content_type="application/octet-stream")
        assert isinstance(sink, S3Sink)

        async def upload() -> None:
            async with sink:
                await sink.write(os.urandom(5 * MiB))
                await sink.write(os.urandom(5 * MiB))  # part 2 goes out during this write
                await sink.commit()

        task = asyncio.ensure_future(upload())
        while sink.upload_id is None:  # part 1 on its way
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sink.closed and sink.upload_id is None

    s3.run(scenario)
    assert s3.uploads() == []
    assert s3.objects() == []


def test_a_service_without_tagging_still_gets_the_object(s3: S3Backend) -> None:
    import botocore.exceptions

    data = os.urandom(5 * MiB + 7)

    async def scenario(storage: Storage) -> None:
        assert isinstance(storage, S3Storage)
        client: Any = await storage.connection.get("test")

        async def refuse(**kwargs: Any) -> Any:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "NotImplemented"}, "ResponseMetadata": {"HTTPStatusCode": 501}},
                "PutObjectTagging",
            )

        client.put_object_tagging = refuse
        sink = await storage.open_sink("untagged.bin", content_type="application/octet-stream")
        await sink.write(data)
        info = await sink.commit()
        assert info.sha256 == hashlib.sha256(data).hexdigest() and info.size == len(data)
        assert (await storage.stat("untagged.bin")).sha256 is None  # unknown, not wrong
        assert await (await storage.open_read("untagged.bin")).read_all() == data

    s3.run(scenario)
    assert s3.uploads() == []


@pytest.mark.parametrize(
    "size",
    [
        256 * 1024 - 1,  # stays in memory: one PutObject from the buffer
        3 * MiB + 5,  # spooled, still one PutObject (from the file)
        12 * MiB + 3,  # spooled parts of 5 MiB, a shorter last one
    ],
)
def test_parts_spooled_to_a_file_arrive_intact(s3: S3Backend, size: int) -> None:
    data = os.urandom(size)

    async def scenario(storage: Storage) -> bytes:
        sink = await storage.open_sink("spooled.bin", content_type="application/octet-stream")
        for start in range(0, len(data), 65_537):  # writes straddle the spool and part edges
            await sink.write(data[start : start + 65_537])
        info = await sink.commit()
        assert info.size == size and info.sha256 == hashlib.sha256(data).hexdigest()
        return await (await storage.open_read("spooled.bin")).read_all()

    assert s3.run(scenario) == data
    assert s3.uploads() == []


def test_a_sink_keeps_no_part_file_open_once_done(s3: S3Backend) -> None:
    def part_files() -> int:
        """Open unlinked files in the temporary folder (O_TMPFILE ones have no name)."""
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                name = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue  # the listing's own descriptor, closed by now
            count += name.startswith(tempfile.gettempdir()) and name.endswith("(deleted)")
        return count

    async def scenario(storage: Storage) -> None:
        before = part_files()
        for finish in ("commit", "abort"):
            sink = await storage.open_sink("f.bin", content_type="application/octet-stream")
            await sink.write(os.urandom(6 * MiB))  # part 1 sent, 1 MiB spooled of part 2
            assert part_files() == before + 1
            await getattr(sink, finish)()
            assert part_files() == before

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc")
    s3.run(scenario)
    assert s3.uploads() == []
