"""botocore's synchronous client awaited through worker threads (webframe.storage.s3_threads):
cancellation waits for the thread, aborts wait for the upload's running calls, bodies
stream in bounded reads, and an abandoned request body stops its request."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("botocore")

from webframe.storage.s3_threads import (
    AsyncS3,
    PartBody,
    TransferAbandoned,
    stop_retries_once_abandoned,
)


class FakeClient:
    """A synchronous client whose calls block until the test lets them go."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.release = threading.Event()
        self.started = threading.Event()

    def upload_part(self, **params: Any) -> dict[str, Any]:
        self.events.append(f"part {params['UploadId']} started")
        self.started.set()
        body = params.get("Body")
        try:
            while not self.release.wait(0.01):
                if body is not None:
                    body.read(1)  # sending, a little at a time
        except TransferAbandoned:
            self.events.append(f"part {params['UploadId']} abandoned")
            raise
        self.events.append(f"part {params['UploadId']} done")
        return {"ETag": '"e"'}

    def abort_multipart_upload(self, **params: Any) -> dict[str, Any]:
        self.events.append(f"abort {params['UploadId']}")
        return {}

    def head_object(self, **params: Any) -> dict[str, Any]:
        self.events.append("head")
        return {"ContentLength": 1}

    def get_object(self, **params: Any) -> dict[str, Any]:
        return {"Body": RecordingStream(b"x" * 1000), "ContentLength": 1000}

    def get_paginator(self, name: str) -> Any:
        events = self.events

        class Paginator:
            def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
                for n in range(3):
                    events.append(f"page {n} in {threading.current_thread().name}")
                    yield {"Contents": [{"Key": f"k{n}"}]}

        return Paginator()


class RecordingStream:
    def __init__(self, data: bytes) -> None:
        self.file = io.BytesIO(data)
        self.reads: list[int | None] = []
        self.closed = False

    def read(self, size: int | None = None) -> bytes:
        self.reads.append(size)
        return self.file.read(size)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="test-s3")
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def raw(pool: concurrent.futures.ThreadPoolExecutor) -> Iterator[FakeClient]:
    client = FakeClient()
    yield client
    client.release.set()  # a failed test leaves no thread blocked (before the pool's end)


def test_a_cancelled_call_returns_only_once_its_thread_is_done(
    pool: concurrent.futures.ThreadPoolExecutor, raw: FakeClient
) -> None:
    client = AsyncS3(raw, pool)

    async def scenario() -> None:
        task = asyncio.ensure_future(client.upload_part(UploadId="u1", PartNumber=1))
        await asyncio.to_thread(raw.started.wait, 5)
        task.cancel()
        try:
            await asyncio.sleep(0.1)
            assert not task.done()  # still waiting for the thread, though cancelled
            task.cancel()  # a second cancellation changes nothing
            await asyncio.sleep(0.05)
            assert not task.done()
        finally:
            raw.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert raw.events[-1] == "part u1 done"  # the thread ended before the caller went on

    asyncio.run(scenario())


def test_an_abandoned_body_stops_its_request(
    pool: concurrent.futures.ThreadPoolExecutor, raw: FakeClient
) -> None:
    client = AsyncS3(raw, pool)
    body = PartBody(io.BytesIO(b"x" * 1000), 1000)

    async def scenario() -> None:
        task = asyncio.ensure_future(client.upload_part(UploadId="u1", PartNumber=1, Body=body))
        await asyncio.to_thread(raw.started.wait, 5)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=1)
        raw.release.set()  # (if the thread went on sending, it ends now)
        assert done  # the thread stopped at its next read
        with pytest.raises(asyncio.CancelledError):
            await task
        assert body.abandoned and raw.events[-1] == "part u1 abandoned"

    asyncio.run(scenario())
    with pytest.raises(TransferAbandoned):
        body.read(1)
    with pytest.raises(TransferAbandoned):
        stop_retries_once_abandoned({"body": body})
    stop_retries_once_abandoned({"body": PartBody(io.BytesIO(b"y"), 1)})  # not abandoned
    stop_retries_once_abandoned({"body": b"bytes"})


def test_an_abort_waits_for_the_calls_running_on_its_upload(
    pool: concurrent.futures.ThreadPoolExecutor, raw: FakeClient
) -> None:
    client = AsyncS3(raw, pool)

    async def scenario() -> None:
        # Another task's part is on its way (e.g. a writer's part still going out).
        sending = asyncio.ensure_future(client.upload_part(UploadId="u1", PartNumber=1))
        await asyncio.to_thread(raw.started.wait, 5)
        aborting = asyncio.ensure_future(client.abort_multipart_upload(UploadId="u1"))
        try:
            other = await asyncio.wait_for(client.abort_multipart_upload(UploadId="u2"), 5)
            assert other == {} and "abort u2" in raw.events  # another upload: no wait
            await asyncio.sleep(0.1)
            assert not aborting.done() and "abort u1" not in raw.events
        finally:
            raw.release.set()
        await asyncio.wait_for(aborting, 5)
        await sending
        assert raw.events.index("part u1 done") < raw.events.index("abort u1")
        assert client._running == {}

    asyncio.run(scenario())


def test_a_call_cancelled_before_its_turn_never_runs() -> None:
    raw = FakeClient()
    one = concurrent.futures.ThreadPoolExecutor(1)
    client = AsyncS3(raw, one)

    async def scenario() -> None:
        busy = asyncio.ensure_future(client.upload_part(UploadId="u1", PartNumber=1))
        await asyncio.to_thread(raw.started.wait, 5)
        queued = asyncio.ensure_future(client.head_object(Bucket="b", Key="k"))
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(queued, 1)  # no wait: its thread never started
        raw.release.set()
        await busy

    try:
        asyncio.run(scenario())
    finally:
        raw.release.set()
        one.shutdown(wait=True)
    assert "head" not in raw.events


def test_bodies_are_read_in_bounded_chunks_and_pages_one_by_one(
    pool: concurrent.futures.ThreadPoolExecutor, raw: FakeClient
) -> None:
    client = AsyncS3(raw, pool)

    async def scenario() -> None:
        answer = await client.get_object(Bucket="b", Key="k")
        stream = answer["Body"].raw
        async with answer["Body"] as body:
            chunks = [c async for c in _chunks(body, 300)]
        assert [len(c) for c in chunks] == [300, 300, 300, 100]
        assert stream.reads == [300] * 5 and stream.closed
        keys = []
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket="b"):
            keys += [item["Key"] for item in page["Contents"]]
            assert len([e for e in raw.events if e.startswith("page")]) == len(keys)
        assert keys == ["k0", "k1", "k2"]
        assert all("test-s3" in e for e in raw.events if e.startswith("page"))

    asyncio.run(scenario())


async def _chunks(body: Any, size: int) -> Any:
    while chunk := await body.read(size):
        yield chunk


def test_errors_come_out_of_the_call_unchanged(pool: concurrent.futures.ThreadPoolExecutor) -> None:
    class Failing:
        def head_object(self, **params: Any) -> Any:
            raise OSError(5, "no route")

    async def scenario() -> None:
        with pytest.raises(OSError, match="no route"):
            await AsyncS3(Failing(), pool).head_object(Bucket="b", Key="k")

    asyncio.run(scenario())


def test_part_body_reads_a_window_of_the_file_in_slices() -> None:
    data = os.urandom(PartBody.SLICE * 2 + 10)
    file = io.BytesIO(data + b"stale bytes of a longer earlier part")
    body = PartBody(file, len(data))
    assert body.seek(0, io.SEEK_END) == len(data) and body.tell() == len(data)
    body.seek(0)
    assert len(body.read(1024 * 1024)) == PartBody.SLICE  # never more than a slice
    assert body.read() == data[PartBody.SLICE : 2 * PartBody.SLICE]
    assert body.read() == data[-10:] and body.read() == b""
    body.seek(0)  # botocore rewinds before a retry
    assert b"".join(iter(lambda: body.read(16384), b"")) == data
    body.close()
    assert not file.closed  # the file is the caller's


def test_botocore_does_not_resend_a_part_whose_caller_was_cancelled(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real botocore client (the storage's): the part's caller is cancelled while the
    body is being sent; the request stops and is not retried (no back-off, one
    connection only)."""
    import socket

    import botocore.endpoint

    from webframe.storage.s3 import S3Storage

    backoffs: list[float] = []
    sleep = time.sleep

    def recording_sleep(seconds: float) -> None:
        if threading.current_thread().name.startswith("webframe-s3"):
            backoffs.append(seconds)  # botocore waiting before a retry
        sleep(seconds)

    monkeypatch.setattr(botocore.endpoint.time, "sleep", recording_sleep)

    connections: list[int] = []
    got_body = threading.Event()
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)

    def serve() -> None:  # reads a request slowly and never answers
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            connections.append(1)
            with conn:
                conn.settimeout(0.1)
                head = b""
                while b"\r\n\r\n" not in head and not stop.is_set():
                    try:
                        head += conn.recv(65536)
                    except TimeoutError:
                        continue
                if b"100-continue" in head.lower():
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                while not stop.is_set():
                    try:
                        if not conn.recv(4096):
                            break
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    got_body.set()
                    time.sleep(0.01)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    port = listener.getsockname()[1]
    storage = S3Storage(
        "some-bucket",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key="k",
        secret_key="s",
        max_attempts=3,
        read_timeout=30,
    )
    part = tmp_path / "part"
    part.write_bytes(os.urandom(8 * 1024 * 1024))

    async def scenario() -> None:
        client = await storage.connection.get("test")
        with part.open("rb") as file:
            body = PartBody(file, 8 * 1024 * 1024)
            task = asyncio.ensure_future(
                client.upload_part(
                    Bucket="some-bucket", Key="k", UploadId="u", PartNumber=1, Body=body
                )
            )
            assert await asyncio.to_thread(got_body.wait, 10)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=2)
            if not done:  # the thread goes on sending: hang up on it, so the test ends
                stop.set()
                listener.close()
            assert done  # stopped, not sent whole nor retried
            with pytest.raises(asyncio.CancelledError):
                await task
        assert body.abandoned
        await storage.close()

    try:
        asyncio.run(scenario())
    finally:
        stop.set()
        server.join(5)
        listener.close()
    assert len(connections) == 1 and backoffs == []
