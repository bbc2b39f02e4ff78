"""Disk space reserved ahead of large uploads (``TempFile`` and ``fallocate``).

A temp file that may grow past 1 MiB reserves its space in windows (8 MiB, then
doubling, never past what the rest of the declared body can hold) and gives the
unused part back when it closes. These tests check the reserve happens, that the
file on disk is then exactly what was sent (a missing trim would leave zeros at
the end), that filesystems without ``fallocate`` still work, and that a disk
without the space answers 507 with nothing left behind.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar
from unittest import mock

import pytest

from webframe import UploadHandler, UploadStorageError, route
from webframe.uploads import tempfile as temp_files
from webframe.uploads.tempfile import TempFile

from .support.uploads import BODY_LIMITS as LIMITS
from .support.uploads import BodyBufferCase, HomeHandler, multipart, pattern, sha

MiB = 1024 * 1024
STEP = temp_files.PREALLOC_STEP
REAL_FALLOCATE = temp_files.fallocate


def fallocate_works(folder: Path) -> bool:
    if REAL_FALLOCATE is None:
        return False
    fd, name = tempfile.mkstemp(dir=folder)
    try:
        return REAL_FALLOCATE(fd, 0, 4096)
    finally:
        os.close(fd)
        os.unlink(name)


def need_fallocate(folder: Path) -> None:
    if not fallocate_works(folder):
        pytest.skip(f"the filesystem of {folder} has no fallocate(); nothing is reserved there")


class Spy:
    """Wraps the real fallocate and records each (offset, length) asked for."""

    def __init__(self, result: Callable[[int, int, int], bool] | None = None) -> None:
        self.calls: list[tuple[int, int]] = []
        self.result = result or REAL_FALLOCATE

    def __call__(self, fd: int, offset: int, length: int) -> bool:
        self.calls.append((offset, length))
        assert self.result is not None
        return self.result(fd, offset, length)


def on_disk(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_blocks * 512


# ------------------------------------------------------------ the temp file


def test_space_is_reserved_ahead_and_trimmed_on_close(tmp_path: Path) -> None:
    need_fallocate(tmp_path)
    data = pattern(3 * MiB + 5)
    temp = TempFile(tmp_path, room=64 * MiB)
    temp.write(data[: 1 * MiB])
    temp.write(data[1 * MiB :])
    size, allocated = on_disk(temp.path)
    assert allocated >= STEP, "the first window is reserved before the data is written"
    assert size == STEP
    temp.close()
    size, allocated = on_disk(temp.path)
    assert size == len(data)
    assert allocated < len(data) + 1 * MiB, "unused reserved space is given back"
    assert temp.path.read_bytes() == data
    assert temp.hash is not None and temp.hash.hexdigest() == sha(data)


def test_windows_double_and_stop_at_the_room(tmp_path: Path) -> None:
    need_fallocate(tmp_path)
    spy = Spy()
    room = 3 * STEP + 12345
    with mock.patch.object(temp_files, "fallocate", spy):
        temp = TempFile(tmp_path, room=room)
        piece = pattern(1 * MiB, seed=3)
        for _ in range(room // MiB + 2):  # two pieces past the room: no error, no reserve
            temp.write(piece)
        temp.close()
    assert spy.calls == [(0, STEP), (STEP, STEP), (2 * STEP, room - 2 * STEP)]
    assert on_disk(temp.path)[0] == (room // MiB + 2) * MiB


def test_small_room_reserves_nothing(tmp_path: Path) -> None:
    spy = Spy()
    with mock.patch.object(temp_files, "fallocate", spy):
        temp = TempFile(tmp_path, room=temp_files.PREALLOC_MIN - 1)
        temp.write(b"x" * 1000)
        unknown = TempFile(tmp_path)  # chunked body: the size is not known
        unknown.write(pattern(2 * MiB))
        temp.close()
        unknown.close()
    assert spy.calls == []
    assert on_disk(unknown.path)[0] == 2 * MiB


def test_filesystem_without_fallocate_writes_plainly(tmp_path: Path) -> None:
    spy = Spy(result=lambda fd, offset, length: False)
    data = pattern(5 * MiB, seed=4)
    with mock.patch.object(temp_files, "fallocate", spy):
        temp = TempFile(tmp_path, room=64 * MiB)
        for start in range(0, len(data), MiB):
            temp.write(data[start : start + MiB])
        temp.close()
    assert spy.calls == [(0, STEP)], "asked once, then never again for this file"
    assert temp.path.read_bytes() == data


def test_no_space_for_the_window_is_a_storage_error(tmp_path: Path) -> None:
    def full(fd: int, offset: int, length: int) -> bool:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with mock.patch.object(temp_files, "fallocate", full):
        temp = TempFile(tmp_path, room=64 * MiB)
        with pytest.raises(UploadStorageError, match="disk is full"):
            temp.write(b"x" * 100)
        temp.remove()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ over HTTP


@route("/disk")
class DiskProbe(UploadHandler):
    """Answers each upload as its temp file is on disk: size and SHA-256 of the bytes."""

    upload_limits = LIMITS
    upload_methods = ("POST", "PUT")

    def post(self) -> None:
        self.answer()

    def put(self) -> None:
        self.answer()

    def answer(self) -> None:
        files = []
        for upload in self.uploads:
            with upload.open() as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            files.append([upload.filename, upload.size, os.path.getsize(upload.path), digest])
        self.json({"files": files})


class PreallocOverHTTP(BodyBufferCase):
    app_handlers: ClassVar[list[type]] = [HomeHandler, DiskProbe]

    def setUp(self) -> None:
        super().setUp()
        need_fallocate(self.upload_root)
        self.spy = Spy()
        patcher = mock.patch.object(temp_files, "fallocate", self.spy)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_files_on_disk_are_exact_after_the_trim(self) -> None:
        # The first file can hold the whole rest of the body, so it reserves a full
        # window it does not use; the big file reserves several.
        small = pattern(10_000, seed=5)
        big = pattern(2 * STEP + 777, seed=6)
        last = pattern(3 * MiB + 1, seed=7)
        body = multipart(
            [
                ("note", None, b"hi"),
                ("a", "a.bin", small),
                ("b", "b.bin", big),
                ("c", "c.bin", last),
            ]
        )
        code, out = self.send("/disk", body)
        assert code == 200, out
        assert out["files"] == [
            ["a.bin", len(small), len(small), sha(small)],
            ["b.bin", len(big), len(big), sha(big)],
            ["c.bin", len(last), len(last), sha(last)],
        ]
        assert len(self.spy.calls) >= 5, self.spy.calls
        offsets = [offset for offset, _ in self.spy.calls]
        assert offsets.count(0) == 3, "each file starts its own reserve"
        assert max(off + n for off, n in self.spy.calls) <= len(body)
        self.assert_no_temp_files()

    def test_raw_body_reserves_at_most_its_length(self) -> None:
        data = pattern(STEP + 3 * MiB, seed=8)
        code, out = self.send("/disk", data, method="PUT")
        assert code == 200, out
        assert out["files"][0][1:] == [len(data), len(data), sha(data)]
        assert self.spy.calls == [(0, STEP), (STEP, len(data) - STEP)]

    def test_chunked_body_reserves_nothing(self) -> None:
        data = pattern(3 * MiB, seed=9)
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(data[i : i + 65536]), data[i : i + 65536])
            for i in range(0, len(data), 65536)
        )
        auth = "".join(f"{k}: {v}\r\n" for k, v in self.auth_headers("/disk").items())
        head = (
            "PUT /disk HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
            f"{auth}Connection: close\r\n\r\n"
        ).encode()
        answer = self.raw(head + chunks + b"0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert sha(data).encode() in answer
        assert self.spy.calls == []

    def test_no_space_answers_507_and_leaves_nothing(self) -> None:
        def full(fd: int, offset: int, length: int) -> bool:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self.spy.result = full
        data = pattern(4 * MiB, seed=10)
        code, out = self.send("/disk", multipart([("f", "f.bin", data)]))
        assert code == 507, out
        assert "disk is full" in str(out)
        self.assert_no_temp_files()
