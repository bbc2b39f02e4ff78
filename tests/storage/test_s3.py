"""S3 backend specifics, on a real SeaweedFS: multipart life cycle, faults, presigning."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import urllib.request
from typing import Any

import pytest

from tests.storage.conftest import BUCKET, S3Backend
from webframe.errors import ConfigurationError
from webframe.storage import Storage, StorageUnavailableError, from_url
from webframe.storage.s3 import S3Sink, S3Storage

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


def test_server_down_gives_503_then_recovers_without_a_new_storage(s3: S3Backend) -> None:
    server = s3.server

    async def scenario(storage: Storage) -> None:
        sink = await storage.open_sink("before.txt", content_type="text/plain")
        await sink.write(b"before")
        await sink.commit()
        pending = await storage.open_sink("during.bin", content_type="application/octet-stream")
        await pending.write(os.urandom(5 * MiB + 1))  # a multipart upload is open
        server.kill()
        try:
            began = time.monotonic()
            with pytest.raises(StorageUnavailableError) as caught:
                await storage.stat("before.txt")
            assert caught.value.status_code == 503
            assert "cannot be reached" in caught.value.message
            assert time.monotonic() - began < 10  # fast, not a hung request
            with pytest.raises(StorageUnavailableError):
                await pending.write(os.urandom(5 * MiB))
            assert pending.closed  # the failed write aborted the sink
            with pytest.raises(StorageUnavailableError):
                sink = await storage.open_sink("down.txt", content_type="text/plain")
                await sink.write(b"x")
                await sink.commit()
        finally:
            await asyncio.to_thread(server.start)
            print(f"SeaweedFS restarted in {server.start_seconds:.1f} s")
        # Same storage object, same client settings: it just works again.
        assert await (await storage.open_read("before.txt")).read_all() == b"before"
        sink = await storage.open_sink("after.txt", content_type="text/plain")
        await sink.write(b"after")
        await sink.commit()

    s3.run(scenario, max_attempts=1)
    # The upload open when the server died could not be aborted then; it was once
    # the server answered again.
    assert s3.uploads() == []
    keys = s3.objects()
    assert f"{s3.prefix}/before.txt" in keys and f"{s3.prefix}/after.txt" in keys
    assert f"{s3.prefix}/down.txt" not in keys and f"{s3.prefix}/during.bin" not in keys


def test_wrong_credentials_give_503_naming_the_cause(s3: S3Backend) -> None:
    env = {**s3.server.environ, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    storage = from_url(f"s3://{BUCKET}/{s3.prefix}", environ=env)

    async def scenario() -> None:
        try:
            with pytest.raises(StorageUnavailableError, match="credentials"):
                await storage.stat("anything")
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_presigned_url_serves_the_object_with_its_disposition(s3: S3Backend) -> None:
    async def scenario(storage: Storage) -> str:
        sink = await storage.open_sink("r/report.pdf", content_type="application/pdf")
        await sink.write(b"%PDF-1.7 report")
        await sink.commit()
        return await storage.presigned_url("r/report.pdf", 120, filename="Résumé 2026.pdf")

    url = s3.run(scenario)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=120" in url
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.read() == b"%PDF-1.7 report"
        disposition = answer.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf" in disposition
    tampered = url.replace("report.pdf", "other.pdf")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(tampered, timeout=10)
    assert caught.value.code == 403


def test_large_copy_goes_part_by_part_on_the_server(s3: S3Backend) -> None:
    data = os.urandom(12 * MiB + 3)

    async def scenario(storage: Storage) -> None:
        assert isinstance(storage, S3Storage)
        sink = await storage.open_sink("huge.bin", content_type="video/mp4")
        await sink.write(data)
        digest = (await sink.commit()).sha256
        storage.copy_object_limit = 5 * MiB  # as if the object were over 5 GiB
        calls: list[str] = []
        client: Any = await storage.connection.get("test")
        original = client.upload_part_copy

        async def counting(**kwargs: Any) -> Any:
            calls.append(kwargs["CopySourceRange"])
            return await original(**kwargs)

        client.upload_part_copy = counting
        info = await storage.copy("huge.bin", "copy/huge.bin")
        assert calls == [
            f"bytes=0-{5 * MiB - 1}",
            f"bytes={5 * MiB}-{10 * MiB - 1}",
            f"bytes={10 * MiB}-{len(data) - 1}",
        ]
        assert info.size == len(data) and info.sha256 == digest
        assert info.content_type == "video/mp4"
        assert await (await storage.open_read("copy/huge.bin")).read_all() == data

    s3.run(scenario)
    assert s3.uploads() == []


def test_from_url_reads_the_standard_aws_variables(s3: S3Backend) -> None:
    storage = from_url("s3://some-bucket/a/b/?part_size=16MiB", environ=s3.server.environ)
    assert isinstance(storage, S3Storage)
    assert storage.bucket == "some-bucket" and storage.prefix == "a/b"
    assert storage.part_size == 16 * MiB
    assert storage.endpoint_url == s3.server.endpoint_url
    assert storage.url == "s3://some-bucket/a/b"
    assert "secret" not in storage.url
    for url, problem in [
        ("s3://Bad_Bucket/x", "bucket name"),
        ("s3://ab/x", "bucket name"),
        ("s3://192.168.1.1/x", "bucket name"),
        ("s3://good-bucket/x?part_size=lots", "part_size"),
        ("s3://good-bucket/x?colour=blue", "unknown parameter"),
    ]:
        with pytest.raises(ConfigurationError, match=problem) as caught:
            from_url(url, environ=s3.server.environ)
        assert "upload_storage" in str(caught.value)
    with pytest.raises(ConfigurationError, match="both"):
        from_url("s3://good-bucket", environ={"AWS_ACCESS_KEY_ID": "only-the-id"})


def test_one_client_for_concurrent_first_calls_and_a_new_one_after_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    import webframe.storage.s3_client as module

    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = S3Storage(
        "some-bucket",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key="k",
        secret_key="s",
        max_attempts=1,
    )
    made: list[Any] = []
    create = storage.connection.session.create_client

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(create(*args, **kwargs))
        return made[-1]

    storage.connection.session.create_client = counting  # type: ignore[method-assign]
    storage.connection.retire_after = 0.05
    closed: list[Any] = []
    close_quietly = module.close_quietly

    async def recording(cm: Any) -> None:
        closed.append(cm)
        await close_quietly(cm)

    monkeypatch.setattr(module, "close_quietly", recording)

    async def scenario() -> None:
        first = await asyncio.gather(*(storage.connection.get("test") for _ in range(5)))
        assert len(made) == 1 and all(c is first[0] for c in first)
        with pytest.raises(StorageUnavailableError, match="cannot be reached"):
            await storage.stat("k")
        assert storage.connection.current is None  # retired, not handed out again
        assert len(storage.connection.retired) == 1
        await asyncio.sleep(0.2)  # the grace period passes: it is closed
        assert storage.connection.retired == {} and closed == [made[0]]
        with pytest.raises(StorageUnavailableError):
            await storage.stat("k")
        assert len(made) == 2
        await storage.close()
        assert closed == made  # the second one closed by close()

    asyncio.run(scenario())


def test_missing_aiobotocore_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "aiobotocore.session", None)  # as if not installed
    for name in (
        "webframe.storage.s3",
        "webframe.storage.s3_client",
        "webframe.storage.s3_transfer",
    ):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match=r"pip install 'webframe\[s3\]'"):
        from_url("s3://some-bucket/x", environ={})


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
