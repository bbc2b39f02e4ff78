"""The storage contract, run over every backend (local disk and a real S3 server)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from tests.storage.conftest import Backend
from webframe.errors import HTTPError
from webframe.storage import (
    InvalidKeyError,
    ObjectNotFoundError,
    RangeNotSatisfiableError,
    Storage,
    StorageUnavailableError,
)

MiB = 1024 * 1024


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


async def put(storage: Storage, key: str, data: bytes, chunk: int = 65536, ctype: str = "") -> str:
    sink = await storage.open_sink(key, content_type=ctype or "application/octet-stream")
    async with sink:
        for piece in chunked(data, chunk):
            await sink.write(piece)
        info = await sink.commit()
    assert info.sha256 is not None
    return info.sha256


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, 1),
        (1, 1),
        (1000, 1),  # one byte at a time
        (100_003, 4093),  # odd chunks
        (5 * MiB + 1, 65537),  # one byte past a part: a multipart upload on S3
        (10 * MiB, 3 * MiB + 7),  # exactly two parts, chunks across the boundary
        (6 * MiB, 6 * MiB),  # one write larger than a part
    ],
)
def test_stream_in_and_read_back(backend: Backend, size: int, chunk: int) -> None:
    data = os.urandom(size)

    async def scenario(storage: Storage) -> None:
        digest = await put(storage, "dir/sub/file.bin", data, chunk, "image/png")
        assert digest == hashlib.sha256(data).hexdigest()
        info = await storage.stat("dir/sub/file.bin")
        assert info.size == size
        assert info.content_type == "image/png"
        assert info.sha256 == digest
        assert info.etag and '"' not in info.etag
        assert info.key == "dir/sub/file.bin"
        async with await storage.open_read("dir/sub/file.bin") as reader:
            assert reader.info.size == size
            assert reader.length == size
            assert await reader.read_all() == data

    backend.run(scenario)
    assert backend.leftovers() != []  # the object, and nothing else
    assert len(backend.leftovers()) == 1


def test_ranges(backend: Backend) -> None:
    data = os.urandom(5 * MiB + 300_000)  # multipart on S3: ranges cross a part boundary
    boundary = 5 * MiB

    async def read(storage: Storage, start: int, end: int | None) -> bytes:
        async with await storage.open_read("r.bin", start, end) as reader:
            got = await reader.read_all()
            assert reader.info.size == len(data)
            assert len(got) == reader.length
            return got

    async def scenario(storage: Storage) -> None:
        await put(storage, "r.bin", data, 1_000_003)
        assert await read(storage, 0, 1) == data[:1]
        assert await read(storage, 10, 20) == data[10:20]
        assert await read(storage, boundary - 5, boundary + 5) == data[boundary - 5 : boundary + 5]
        assert await read(storage, len(data) - 1, None) == data[-1:]
        assert await read(storage, 100, None) == data[100:]
        assert await read(storage, len(data) - 10, len(data) + 1000) == data[-10:]  # clamped
        assert await read(storage, 7, 7) == b""
        for start, end in [(len(data), None), (len(data) + 5, len(data) + 9), (9, 3), (-1, 4)]:
            with pytest.raises(RangeNotSatisfiableError) as caught:
                await storage.open_read("r.bin", start, end)
            assert caught.value.status_code == 416
            assert caught.value.message

    backend.run(scenario)


def test_empty_object_ranges(backend: Backend) -> None:
    async def scenario(storage: Storage) -> None:
        await put(storage, "empty", b"")
        assert await (await storage.open_read("empty")).read_all() == b""
        with pytest.raises(RangeNotSatisfiableError):
            await storage.open_read("empty", 0, 10)

    backend.run(scenario)


def test_object_is_invisible_until_commit_and_overwrite_is_atomic(backend: Backend) -> None:
    old, new = b"old content", os.urandom(6 * MiB)

    async def scenario(storage: Storage) -> None:
        await put(storage, "doc.txt", old, ctype="text/plain")
        sink = await storage.open_sink("doc.txt", content_type="application/pdf")
        await sink.write(new[: 5 * MiB + 1])
        assert await (await storage.open_read("doc.txt")).read_all() == old
        sink2 = await storage.open_sink("fresh", content_type="text/plain")
        await sink2.write(b"x")
        assert not await storage.exists("fresh")
        await sink.write(new[5 * MiB + 1 :])
        info = await sink.commit()
        assert info.size == len(new) and info.content_type == "application/pdf"
        assert await (await storage.open_read("doc.txt")).read_all() == new
        await sink2.abort()

    backend.run(scenario)
    assert len(backend.leftovers()) == 1


@pytest.mark.parametrize("size", [10, 5 * MiB + 10, 11 * MiB])
def test_abort_leaves_nothing(backend: Backend, size: int) -> None:
    async def scenario(storage: Storage) -> None:
        sink = await storage.open_sink("gone/file", content_type="text/plain")
        for piece in chunked(os.urandom(size), 1_000_000):
            await sink.write(piece)
        await sink.abort()
        await sink.abort()  # twice is fine
        assert sink.closed
        with pytest.raises(ObjectNotFoundError):
            await storage.stat("gone/file")
        with pytest.raises(RuntimeError):
            await sink.write(b"more")

    backend.run(scenario)
    assert backend.leftovers() == []


def test_error_inside_block_aborts(backend: Backend) -> None:
    async def scenario(storage: Storage) -> None:
        with pytest.raises(ValueError, match="client went away"):
            async with await storage.open_sink("half", content_type="text/plain") as sink:
                await sink.write(os.urandom(5 * MiB + 1))
                raise ValueError("client went away")

        # A block that forgets to commit does not publish half a file either.
        async with await storage.open_sink("forgotten", content_type="text/plain") as sink:
            await sink.write(b"abc")
        assert not await storage.exists("forgotten")

    backend.run(scenario)
    assert backend.leftovers() == []


def test_cancelled_upload_leaves_nothing(backend: Backend) -> None:
    async def scenario(storage: Storage) -> None:
        written = asyncio.Event()

        async def upload() -> None:
            async with await storage.open_sink("cancelled", content_type="text/plain") as sink:
                for _ in range(11):  # two full parts leave on S3
                    await sink.write(os.urandom(MiB))
                written.set()
                await asyncio.Event().wait()  # the client stalls; the server gives up
                await sink.commit()

        task = asyncio.ensure_future(upload())
        await written.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not await storage.exists("cancelled")

    backend.run(scenario)
    assert backend.leftovers() == []


def test_copy(backend: Backend) -> None:
    data = os.urandom(123_457)

    async def scenario(storage: Storage) -> None:
        digest = await put(storage, "a/src.bin", data, ctype="image/jpeg")
        info = await storage.copy("a/src.bin", "b/dst.bin")
        assert info.key == "b/dst.bin" and info.size == len(data)
        assert info.sha256 == digest
        assert (await storage.stat("b/dst.bin")).content_type == "image/jpeg"
        assert await (await storage.open_read("b/dst.bin")).read_all() == data
        assert await (await storage.open_read("a/src.bin")).read_all() == data
        with pytest.raises(ObjectNotFoundError):
            await storage.copy("a/missing", "b/other")
        same = await storage.copy("a/src.bin", "a/src.bin")
        assert same.size == len(data) and same.sha256 == digest

    backend.run(scenario)
    assert len(backend.leftovers()) == 2


def test_delete_and_missing_keys(backend: Backend) -> None:
    async def scenario(storage: Storage) -> None:
        await put(storage, "x/y/z.txt", b"bye")
        assert await storage.exists("x/y/z.txt")
        await storage.delete("x/y/z.txt")
        await storage.delete("x/y/z.txt")  # deleting a missing key is fine
        assert not await storage.exists("x/y/z.txt")
        for call in (storage.stat, storage.open_read):
            with pytest.raises(ObjectNotFoundError) as caught:
                await call("x/y/z.txt")
            assert caught.value.status_code == 404
            assert "x/y/z.txt" in caught.value.message

    backend.run(scenario)
    assert backend.leftovers() == []


@pytest.mark.parametrize(
    "key",
    ["", "../etc/passwd", "/abs", "a//b", "a/./b", "a/../../b", "a\\b", "nul\x00", "a/", "é" * 600],
)
def test_invalid_keys_are_refused(backend: Backend, key: str) -> None:
    async def scenario(storage: Storage) -> None:
        with pytest.raises(InvalidKeyError) as caught:
            await storage.open_sink(key, content_type="text/plain")
        assert caught.value.status_code == 400 and caught.value.message
        for call in (storage.stat, storage.open_read, storage.delete):
            with pytest.raises(InvalidKeyError):
                await call(key)
        with pytest.raises(InvalidKeyError):
            await storage.copy("ok", key)

    backend.run(scenario)
    assert backend.leftovers() == []


def test_unavailable_place_gives_503_with_a_message(backend: Backend) -> None:
    storage = backend.make_unavailable()

    async def scenario() -> None:
        try:
            calls = [
                storage.check(),
                storage.stat("k"),
                storage.open_read("k"),
                storage.delete("k"),
                storage.copy("k", "l"),
            ]
            for call in calls:
                with pytest.raises(StorageUnavailableError) as caught:
                    await call
                assert caught.value.status_code == 503
                assert isinstance(caught.value, HTTPError)
                assert "exist" in caught.value.message
            with pytest.raises(StorageUnavailableError):
                sink = await storage.open_sink("k", content_type="text/plain")
                await sink.write(b"data")
                await sink.commit()
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_check_passes_on_a_usable_storage(backend: Backend) -> None:
    async def scenario(storage: Storage) -> None:
        await storage.check()

    backend.run(scenario)


def test_presigned_urls_where_supported(backend: Backend) -> None:
    async def scenario(storage: Storage) -> None:
        await put(storage, "p.txt", b"signed")
        if storage.supports_presigned_urls:
            url = await storage.presigned_url("p.txt", 60, filename="p.txt")
            assert url.startswith("http")
        else:
            with pytest.raises(NotImplementedError, match="presigned"):
                await storage.presigned_url("p.txt", 60)

    backend.run(scenario)
