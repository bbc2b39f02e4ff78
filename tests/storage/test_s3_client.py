"""The S3 connection: outage and recovery, refused credentials, client reuse, the extra."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from tests.storage.conftest import BUCKET, S3Backend
from webframe.storage import Storage, StorageUnavailableError, from_url
from webframe.storage.s3 import S3Storage

pytestmark = pytest.mark.slow  # a real SeaweedFS

MiB = 1024 * 1024


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


def test_missing_botocore_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "botocore.session", None)  # as if not installed
    for name in (
        "webframe.storage.s3",
        "webframe.storage.s3_client",
        "webframe.storage.s3_transfer",
        "webframe.storage.s3_models",
    ):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match=r"pip install 'webframe\[s3\]'"):
        from_url("s3://some-bucket/x", environ={})


def test_the_s3_storage_loads_no_second_http_stack() -> None:
    """botocore's own client (urllib3): neither aiohttp nor aiobotocore is imported."""
    import subprocess
    import sys

    code = (
        "import sys, webframe.storage.s3, webframe.tus.s3store; "
        "print(sorted(m for m in ('aiohttp', 'aiobotocore') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
