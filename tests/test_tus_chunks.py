"""The local chunk writer's disk work: what it writes, hashes, reserves, starts
writing back and flushes before an offset may be reported (no HTTP here)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from webframe.tus import LocalUploadStore
from webframe.tus import chunks as tus_chunks
from webframe.tus.chunks import ChunkWriter, cached_sha256, forget_all_hashes
from webframe.tus.diskio import load_reserve, load_start_writeback
from webframe.tus.store import UploadState, new_upload_id

MiB = 1024 * 1024


def open_writer(store: LocalUploadStore, state: UploadState) -> ChunkWriter:
    lock = store.try_lock(state.id)
    assert lock is not None
    return ChunkWriter(state, store.open_at(state.id, state.offset), lock, None)


@pytest.fixture
def upload(tmp_path: Path) -> tuple[LocalUploadStore, UploadState]:
    forget_all_hashes()
    store = LocalUploadStore(tmp_path)
    state = UploadState(id=new_upload_id(), owner="o" * 64, length=20 * MiB)
    store.create(state)
    return store, state


def test_pieces_of_any_size_are_written_and_hashed_whole(
    upload: tuple[LocalUploadStore, UploadState],
) -> None:
    store, state = upload
    data = os.urandom(3 * MiB + 12345)
    writer = open_writer(store, state)
    try:
        writer.write(data[:100])
        writer.write(data[100:])
        assert writer.make_durable_now() == len(data)
    finally:
        writer.close()
    assert store.data_path(state.id).read_bytes() == data
    assert cached_sha256(state.id, len(data)) == hashlib.sha256(data).hexdigest()


def test_a_large_piece_is_written_in_slices(
    upload: tuple[LocalUploadStore, UploadState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One write() per WRITE_SLICE bytes at most (a whole 2 MiB write made the
    kernel's copy dearer on a busy machine); the bytes and the hash are the same."""
    store, state = upload
    sizes: list[int] = []
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        sizes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(tus_chunks.os, "write", write)
    data = os.urandom(2 * MiB + 1000)
    writer = open_writer(store, state)
    try:
        writer.write(data)
        assert writer.make_durable_now() == len(data)
    finally:
        writer.close()
    slice_size = tus_chunks.WRITE_SLICE
    assert sizes == [slice_size] * (2 * MiB // slice_size) + [1000]
    assert store.data_path(state.id).read_bytes() == data
    assert cached_sha256(state.id, len(data)) == hashlib.sha256(data).hexdigest()


def test_writeback_starts_every_step_on_the_bytes_not_yet_started(
    upload: tuple[LocalUploadStore, UploadState], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, state = upload
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(tus_chunks, "WRITEBACK_STEP", MiB)
    monkeypatch.setattr(
        tus_chunks, "_start_writeback", lambda fd, off, n: started.append((off, n)) or True
    )
    state.offset = 5  # a later PATCH: ranges are file offsets
    store.save(state)
    with open(store.data_path(state.id), "wb") as f:
        f.write(b"x" * 5)
    writer = open_writer(store, state)
    try:
        for _ in range(5):
            writer.write(b"y" * (MiB // 2))  # 2.5 MiB in all
        assert started == [(5, MiB), (5 + MiB, MiB)]  # the last half MiB: fdatasync's
        writer.discard()
        writer.write(b"z" * MiB)  # after a discard it starts again from the offset
        assert started[-1] == (5, MiB)
    finally:
        writer.close()


def test_the_body_s_last_piece_starts_writeback_before_it_is_hashed(
    upload: tuple[LocalUploadStore, UploadState], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the Content-Length known, the last piece starts writeback whatever its
    size (the flush the client waits for finds it on its way), and every start
    comes before that piece is hashed (the disk writes while the CPU hashes)."""
    store, state = upload
    events: list[str] = []
    monkeypatch.setattr(tus_chunks, "WRITEBACK_STEP", MiB)
    monkeypatch.setattr(
        tus_chunks, "_start_writeback", lambda fd, off, n: events.append(f"wb {off} {n}") or True
    )
    writer = open_writer(store, state)
    real_hash = writer._sha256

    class Watched:
        def update(self, data: bytes) -> None:
            events.append(f"hash {len(data)}")
            real_hash.update(data)

        def copy(self) -> object:
            return real_hash.copy()

    writer._sha256 = Watched()
    try:
        writer.expect(MiB + MiB // 4)
        writer.write(b"a" * MiB)
        writer.write(b"b" * (MiB // 8))  # under the step, not the end: nothing starts
        writer.write(b"c" * (MiB // 8))  # the body's end
        assert events == [
            f"wb 0 {MiB}",
            f"hash {MiB}",
            f"hash {MiB // 8}",
            f"wb {MiB} {MiB // 4}",
            f"hash {MiB // 8}",
        ]
    finally:
        writer.close()


def test_the_offset_moves_only_after_fdatasync_of_the_data_file(
    upload: tuple[LocalUploadStore, UploadState], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, state = upload
    synced: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    writer = open_writer(store, state)
    try:
        writer.write(b"a" * 1000)
        assert writer.start == 0 and writer.received == 1000 and synced == []
        assert asyncio.run(writer.make_durable()) == 1000
        assert synced == [writer.fd] and writer.start == 1000 and writer.received == 0
    finally:
        writer.close()


def test_a_reserve_keeps_the_size_and_a_discard_cuts_back_to_the_offset(
    upload: tuple[LocalUploadStore, UploadState],
) -> None:
    store, state = upload
    if load_reserve() is None:
        pytest.skip("fallocate is not available here")
    writer = open_writer(store, state)
    path = store.data_path(state.id)
    try:
        writer.expect(16 * MiB)
        assert path.stat().st_size == 0  # nothing readable appeared
        reserved = path.stat().st_blocks * 512
        if reserved < 16 * MiB:
            pytest.skip("this filesystem does not reserve blocks past the end")
        writer.write(b"b" * MiB)
        assert writer.make_durable_now() == MiB
        writer.write(b"c" * 1000)
        writer.discard()
    finally:
        writer.close()
    assert path.stat().st_size == MiB
    assert path.read_bytes() == b"b" * MiB


def test_a_full_disk_is_an_os_error_at_expect(
    upload: tuple[LocalUploadStore, UploadState], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, state = upload

    def no_room(fd: int, offset: int, length: int) -> bool:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tus_chunks, "_reserve", no_room)
    writer = open_writer(store, state)
    try:
        with pytest.raises(OSError):
            writer.expect(8 * MiB)
        writer.expect(10)  # below RESERVE_MIN: nothing reserved, nothing raised
    finally:
        writer.close()


def test_the_linux_calls_load_and_accept_a_real_file(tmp_path: Path) -> None:
    start_writeback, reserve = load_start_writeback(), load_reserve()
    if start_writeback is None or reserve is None:
        pytest.skip("not Linux")
    with open(tmp_path / "f", "wb") as f:
        f.write(b"d" * MiB)
        f.flush()
        assert start_writeback(f.fileno(), 0, MiB)
        assert reserve(f.fileno(), MiB, MiB) in (True, False)  # False: fs cannot
    assert (tmp_path / "f").stat().st_size == MiB
