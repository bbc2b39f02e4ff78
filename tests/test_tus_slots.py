"""The state file's two slots when progress saves are not flushed: the checkpoint
slot is never written over by them, so whatever a machine crash leaves of the other
slot (an older version, a torn one, nothing), a load finds an intact state whose
offset is one the server reported (never past the last one), and a restart without
a crash reads the newest (no HTTP here)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
from pathlib import Path

import pytest

from webframe.tus import LocalUploadStore
from webframe.tus import slots as tus_slots
from webframe.tus import store as tus_store
from webframe.tus.localstore import LocalTusStore
from webframe.tus.slots import pack_slot, read_slots, target_slot
from webframe.tus.store import UploadState, new_upload_id

MiB = 1024 * 1024


@pytest.fixture
def created(tmp_path: Path) -> tuple[LocalUploadStore, UploadState]:
    store = LocalUploadStore(tmp_path)
    state = UploadState(id=new_upload_id(), owner="o" * 64, length=10_000)
    store.create(state)
    return store, state


def slot_bytes(raw: bytes, position: int) -> bytes:
    size = len(raw) // 2
    return raw[position * size : (position + 1) * size]


def count_flushes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    flushed: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        flushed.append(fd)
        real(fd)

    monkeypatch.setattr(tus_store.os, "fdatasync", fdatasync)
    return flushed


def test_progress_saves_leave_the_checkpoint_slot_alone_and_a_restart_reads_the_newest(
    created: tuple[LocalUploadStore, UploadState], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, state = created
    state.offset = 100
    store.save(state)  # a checkpoint (flushed)
    path = store.state_path(state.id)
    raw = path.read_bytes()
    [anchor] = [s for s in read_slots(raw) if s.synced and b'"offset":100' in s.data]
    kept = slot_bytes(raw, anchor.position)
    flushed = count_flushes(monkeypatch)
    for offset in range(200, 1200, 100):
        state.offset = offset
        store.save(state, durable=False)
        assert slot_bytes(path.read_bytes(), anchor.position) == kept
    assert flushed == []
    # A killed server restarts on the page cache: the newest progress is there.
    again = LocalUploadStore(store.folder).load(state.id)
    assert again is not None and again.offset == 1100
    # The next checkpoint goes into the other slot too, then becomes the anchor.
    state.offset = 1200
    store.save(state)
    assert len(flushed) == 1
    raw = path.read_bytes()
    assert slot_bytes(raw, anchor.position) == kept
    assert target_slot(read_slots(raw)) == anchor.position
    state.offset = 1300
    store.save(state, durable=False)
    newer = 1 - anchor.position
    assert slot_bytes(path.read_bytes(), newer) == slot_bytes(raw, newer)


def test_whatever_a_crash_leaves_of_the_unflushed_slot_a_reported_offset_loads(
    created: tuple[LocalUploadStore, UploadState],
) -> None:
    """Every disk image a machine crash can leave: the checkpoint slot as flushed, the
    other slot as it was before, as any progress save wrote it, torn between two of
    them (at every 512-byte sector and inside the JSON), or zeros. A load always
    finds a state, at the checkpoint's offset or a later reported one."""
    store, state = created
    state.offset = 1000
    store.save(state)
    path = store.state_path(state.id)
    raw = path.read_bytes()
    size = len(raw) // 2
    other = target_slot(read_slots(raw))
    versions = [slot_bytes(raw, other)]  # before: the creation's padding
    reported = {1000}
    for offset in (2000, 3000, 4000):
        state.offset = offset
        store.save(state, durable=False)
        reported.add(offset)
        versions.append(slot_bytes(path.read_bytes(), other))
    images = [*versions, bytes(size)]
    for old, new in itertools.pairwise(versions):
        for cut in (*range(512, size, 512), 20, 40):
            images.append(new[:cut] + old[cut:])
            images.append(old[:cut] + new[cut:])
    anchor = slot_bytes(raw, 1 - other)
    loaded_offsets = set()
    for image in images:
        disk = anchor + image if other == 1 else image + anchor
        path.write_bytes(disk)
        loaded = store.load(state.id)
        assert loaded is not None, "a crash must never leave no state"
        assert loaded.offset in reported
        loaded_offsets.add(loaded.offset)
    assert loaded_offsets == reported  # intact versions are read, torn ones are not


def test_a_file_without_marks_keeps_its_newest_slot(tmp_path: Path) -> None:
    """State files written before checkpoints were marked (every save flushed):
    the newest slot counts as the checkpoint, the next save goes into the older."""
    store = LocalUploadStore(tmp_path)
    state = UploadState(id=new_upload_id(), owner="o" * 64, length=10, offset=3)
    older = pack_slot(b'{"old":1}', 6, 4096, synced=False)
    newer = pack_slot(json.dumps(dataclasses.asdict(state)).encode(), 7, 4096, False)
    store.state_path(state.id).write_bytes(newer + older)
    assert target_slot(read_slots(newer + older)) == 1
    state.offset = 5
    store.save(state, durable=False)
    raw = store.state_path(state.id).read_bytes()
    assert raw[:4096] == newer
    loaded = store.load(state.id)
    assert loaded is not None and loaded.offset == 5


def test_the_tus_store_flushes_progress_only_at_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tus = LocalTusStore(tmp_path)
    state = UploadState(id=new_upload_id(), owner="o" * 64, length=4096 * MiB)
    tus.files.create(state)  # flushed: the first checkpoint
    flushed = count_flushes(monkeypatch)

    async def progress(offset: int) -> None:
        state.offset = offset
        await tus.save(state)

    asyncio.run(progress(16 * MiB))
    asyncio.run(progress(32 * MiB))
    assert flushed == []
    asyncio.run(progress(tus_slots.CHECKPOINT_BYTES))  # that far past the last one
    assert len(flushed) == 1
    asyncio.run(progress(tus_slots.CHECKPOINT_BYTES + 16 * MiB))
    assert len(flushed) == 1
    monkeypatch.setattr(tus_slots, "CHECKPOINT_SECONDS", 0.0)  # that long after it
    asyncio.run(progress(tus_slots.CHECKPOINT_BYTES + 32 * MiB))
    assert len(flushed) == 2
    monkeypatch.setattr(tus_slots, "CHECKPOINT_SECONDS", 3600.0)
    tus_slots.forget_checkpoint(state.id)  # another process, or after a restart
    asyncio.run(progress(tus_slots.CHECKPOINT_BYTES + 48 * MiB))
    assert len(flushed) == 3
    # Finishing is always flushed: a crash must not bring back an unfinished upload.
    asyncio.run(tus.mark_finished(state))
    assert len(flushed) == 4
    loaded = tus.files.load(state.id)
    assert loaded is not None and loaded.finished
