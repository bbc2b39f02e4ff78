"""Local-disk specifics: temp file beside the target, atomic rename, reserve, escapes."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from webframe.errors import ConfigurationError
from webframe.storage import (
    InvalidKeyError,
    Storage,
    StorageFullError,
    UnsupportedOperationError,
    from_url,
)
from webframe.storage.local import LocalSink, LocalStorage

MiB = 1024 * 1024


def run(storage: Storage, coro: Any) -> Any:
    async def main() -> Any:
        try:
            return await coro
        finally:
            await storage.close()

    return asyncio.run(main())


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_bytes_go_to_a_hidden_temp_file_in_the_target_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    async def scenario() -> None:
        sink = await storage.open_sink("photos/2026/cat.jpg", content_type="image/jpeg")
        assert isinstance(sink, LocalSink)
        await sink.write(b"\xff\xd8 partial")
        assert sink.temp_path.parent == tmp_path / "photos" / "2026"
        assert sink.temp_path.name.startswith(".upload-")
        assert sink.temp_path.name.endswith(".part")
        assert not (tmp_path / "photos/2026/cat.jpg").exists()
        await sink.write(b" rest")
        info = await sink.commit()
        assert not sink.temp_path.exists()
        assert info.size == len(b"\xff\xd8 partial rest")

    run(storage, scenario())
    assert files(tmp_path) == ["photos/2026/cat.jpg"]
    assert (tmp_path / "photos/2026/cat.jpg").read_bytes() == b"\xff\xd8 partial rest"


def test_metadata_survives_a_new_storage_object(tmp_path: Path) -> None:
    async def write() -> str:
        storage = from_url(tmp_path.as_uri())
        sink = await storage.open_sink("notes.bin", content_type="text/markdown")
        await sink.write(b"# hi")
        return (await sink.commit()).sha256 or ""

    digest = asyncio.run(write())
    info = asyncio.run(from_url(tmp_path.as_uri()).stat("notes.bin"))
    try:
        os.getxattr(tmp_path / "notes.bin", "user.webframe.sha256")
    except OSError:
        pytest.skip("this filesystem has no user extended attributes")
    assert info.content_type == "text/markdown" and info.sha256 == digest


def test_reserved_space_is_given_back(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    async def scenario() -> None:
        sink = await storage.open_sink("r.bin", content_type="x/y", size_hint=64 * MiB)
        await sink.write(os.urandom(MiB))
        info = await sink.commit()
        assert info.size == MiB

    run(storage, scenario())
    st = os.stat(tmp_path / "r.bin")
    assert st.st_size == MiB
    assert st.st_blocks * 512 < 8 * MiB  # not 64 MiB of reserved blocks


def test_full_disk_gives_507_and_leaves_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    class FullFile:
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            pass

    async def scenario() -> None:
        sink = await storage.open_sink("big.bin", content_type="x/y")
        await sink.write(b"first")
        real, sink._file = sink._file, FullFile()  # type: ignore[assignment]
        assert real is not None
        real.close()
        with pytest.raises(StorageFullError) as caught:
            await sink.write(b"second")
        assert caught.value.status_code == 507
        assert "full" in caught.value.message
        assert sink.closed

    run(storage, scenario())
    assert files(tmp_path) == []


def test_symlinked_folder_cannot_lead_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link").symlink_to(outside)
    storage = LocalStorage(root)

    async def scenario() -> None:
        with pytest.raises(InvalidKeyError, match="outside"):
            await storage.open_read("link/secret.txt")
        with pytest.raises(InvalidKeyError):
            await storage.open_sink("link/new.txt", content_type="text/plain")
        with pytest.raises(InvalidKeyError):
            await storage.delete("link/secret.txt")

    run(storage, scenario())
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_delete_prunes_empty_folders_but_never_the_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")

    async def scenario() -> None:
        for key in ("a/b/c/one.txt", "a/two.txt"):
            sink = await storage.open_sink(key, content_type="text/plain")
            await sink.write(b"x")
            await sink.commit()
        await storage.delete("a/b/c/one.txt")
        assert not (tmp_path / "root/a/b").exists()
        assert (tmp_path / "root/a/two.txt").exists()
        await storage.delete("a/two.txt")

    run(storage, scenario())
    assert (tmp_path / "root").is_dir()
    assert list((tmp_path / "root").iterdir()) == []


def test_dropped_sink_removes_its_temp_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    async def scenario() -> Path:
        sink = await storage.open_sink("dropped", content_type="x/y")
        await sink.write(b"abandoned")
        path = sink.temp_path
        assert path.exists()
        del sink
        return path

    path = run(storage, scenario())
    assert not path.exists()
    assert files(tmp_path) == []


def test_no_presigned_urls(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert not storage.supports_presigned_urls
    with pytest.raises(UnsupportedOperationError, match="serve the file through"):
        run(storage, storage.presigned_url("x"))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file://relative/path", "three slashes"),
        ("file:relative", "absolute"),
        ("file:///srv/x?mode=fast", "no parameters"),
        ("ftp://host/x", "unknown storage scheme"),
        ("/srv/uploads", "unknown storage scheme"),
    ],
)
def test_bad_file_urls_name_the_setting(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as caught:
        from_url(url)
    assert caught.value.setting == "upload_storage"


def test_file_url_creates_the_folder(tmp_path: Path) -> None:
    storage = from_url((tmp_path / "new" / "uploads").as_uri())
    assert isinstance(storage, LocalStorage)
    assert (tmp_path / "new/uploads").is_dir()
    assert storage.url == (tmp_path / "new/uploads").as_uri()
