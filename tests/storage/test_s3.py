"""The S3 storage on a real SeaweedFS: presigned URLs, server-side copy, URL options."""

from __future__ import annotations

import os
import urllib.request
from typing import Any

import pytest

from tests.storage.conftest import S3Backend
from webframe.errors import ConfigurationError
from webframe.storage import Storage, from_url
from webframe.storage.s3 import S3Storage

pytestmark = pytest.mark.slow  # a real SeaweedFS

MiB = 1024 * 1024


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
