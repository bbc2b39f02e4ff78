"""Resumable uploads on local disk: one state file, one data file and one lock file per upload.

``<id>.state`` holds what the server has promised (the offset it reported, the
length, the owner, the metadata); ``<id>.bin`` holds the bytes. The state file
has two slots (:mod:`.slots`), each a header (length, CRC-32, sequence number) and
the JSON: a save overwrites one slot in place and a load takes the valid slot with
the higher sequence number, so a save torn by a crash leaves the previous state.
A save is flushed (``fdatasync``) when asked (``durable``; a *checkpoint*); one
that is not only records progress, goes into the other slot than the newest
checkpoint, and can only be lost by a machine crash, leaving a lower offset (see
:mod:`.slots`). A state that outgrows its slots is rewritten whole, atomically
(write, fsync, rename, fsync the folder). A state is saved only after the data it
describes was fsynced, so a killed server resumes at the last offset it reported,
never past it. ``<id>.lock`` carries an ``fcntl`` lock: one writer per
upload across every process sharing the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from .base import TusLock
from .slots import (
    SLOT_HEADER,
    forget_checkpoint,
    newest,
    note_checkpoint,
    pack_slot,
    read_slots,
    target_slot,
)

__all__ = ["LocalUploadStore", "UploadLock", "UploadState", "new_upload_id"]

#: upload IDs: 256 bits from ``secrets``, URL-safe base64 (43 characters).
_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_SLOT_ROUND: Final = 4096
#: state files are read in blocks of this size (one read for any usual state).
_READ_SIZE: Final = 64 * 1024


def new_upload_id() -> str:
    """A fresh upload ID (256 random bits)."""
    return secrets.token_urlsafe(32)


def is_upload_id(value: str) -> bool:
    """True if ``value`` has the shape of an ID this server issues."""
    return bool(_ID.fullmatch(value))


@dataclass
class UploadState:
    """What the server knows of one upload (saved as JSON next to its data)."""

    id: str
    owner: str
    length: int | None
    offset: int = 0
    metadata: dict[str, str | None] = field(default_factory=dict)
    raw_metadata: str = ""
    filename: str = "upload"
    raw_filename: str = ""
    content_type: str = "application/octet-stream"
    check_type: str = "application/octet-stream"
    sniffed_type: str | None = None
    type_checked: bool = False
    created: float = 0.0
    expires: float = 0.0
    finished: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UploadState:
        """Build from the saved dict; raises ValueError/TypeError/KeyError if it is not one."""
        state = cls(**data)
        if not isinstance(state.offset, int) or state.offset < 0:
            raise ValueError("bad offset")
        return state

    def file_fields(self) -> dict[str, Any]:
        """What the finished upload's ``UploadedFile`` says of it, taken from this state
        (the store adds where the bytes are and their SHA-256)."""
        return {
            "field_name": "",
            "filename": self.filename,
            "raw_filename": self.raw_filename,
            "content_type": self.content_type,
            "sniffed_type": self.sniffed_type,
            "size": self.offset,
        }


#: the saved fields of a state, in order.
_STATE_FIELDS: Final = tuple(f.name for f in fields(UploadState))


class UploadLock(TusLock):
    """An exclusive ``flock`` on an upload's lock file; :meth:`release` is safe twice."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        """Release the lock (closing the file releases it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class LocalUploadStore:
    """Upload state and data under ``folder`` (created on first use)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        #: the folder as a string ending in a separator: the per-request calls build
        #: their paths by concatenation (a ``Path`` join costs ~10 times as much).
        self._prefix = os.path.join(os.fspath(folder), "")

    def _ensure(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def state_path(self, upload_id: str) -> Path:
        """The state file of ``upload_id``."""
        return self.folder / f"{upload_id}.state"

    def data_path(self, upload_id: str) -> Path:
        """The data file of ``upload_id``."""
        return self.folder / f"{upload_id}.bin"

    def lock_path(self, upload_id: str) -> Path:
        """The lock file of ``upload_id``."""
        return self.folder / f"{upload_id}.lock"

    # state -------------------------------------------------------------------

    def load(self, upload_id: str) -> UploadState | None:
        """The saved state of ``upload_id``, or None if there is none (or it is unreadable)."""
        if not is_upload_id(upload_id):
            return None
        try:
            found = newest(read_slots(_read_small(self._prefix + upload_id + ".state")))
            if found is None:
                return None
            return UploadState.from_json(json.loads(found.data))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def save(self, state: UploadState, durable: bool = True) -> None:
        """Replace the saved state in place: into the other slot than the newest
        checkpoint; ``durable``: ``fdatasync`` it (it becomes the checkpoint)."""
        saved = {name: getattr(state, name) for name in _STATE_FIELDS}  # asdict: 4x dearer
        data = json.dumps(saved, separators=(",", ":")).encode("utf-8")
        try:
            fd = os.open(self._prefix + state.id + ".state", os.O_RDWR)
        except FileNotFoundError:
            self._rewrite(state.id, data)
            note_checkpoint(state.id, state.offset)
            return
        try:
            size = os.fstat(fd).st_size
            slot = size // 2
            slots = read_slots(os.pread(fd, size, 0)) if slot else []
            last = newest(slots)
            if last is None or len(data) + SLOT_HEADER.size > slot or size % 2:
                self._rewrite(state.id, data)
                durable = True
            else:
                packed = pack_slot(data, last.seq + 1, slot, durable)
                os.pwrite(fd, packed, target_slot(slots) * slot)
                if durable:
                    os.fdatasync(fd)
        finally:
            os.close(fd)
        if durable:
            note_checkpoint(state.id, state.offset)

    def _rewrite(self, upload_id: str, data: bytes) -> None:
        """Write a new state file with both slots (room to grow) and put it in place
        atomically and durably (its one slot a checkpoint)."""
        self._ensure()
        target = self.state_path(upload_id)
        slot = -(-(len(data) + SLOT_HEADER.size + 1024) // _SLOT_ROUND) * _SLOT_ROUND
        temp = target.with_name(f"{upload_id}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.write(fd, pack_slot(data, 0, slot, True) + bytes(slot))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._sync_folder()

    def _sync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def create(self, state: UploadState) -> None:
        """Make the empty data file, then the state file (the upload exists once both do)."""
        self._ensure()
        fd = os.open(self.data_path(state.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        try:
            self.save(state)
        except BaseException:
            self.data_path(state.id).unlink(missing_ok=True)
            raise

    def delete(self, upload_id: str) -> None:
        """Remove every file of ``upload_id`` (the state first: then it no longer exists)."""
        forget_checkpoint(upload_id)
        for path in (
            self.state_path(upload_id),
            self.data_path(upload_id),
            self.lock_path(upload_id),
        ):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    # locking -----------------------------------------------------------------

    def try_lock(self, upload_id: str) -> UploadLock | None:
        """Take the upload's lock without waiting; None if another request holds it."""
        path = self._prefix + upload_id + ".lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # no folder yet (an upload exists once it does)
            self._ensure()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return UploadLock(fd)

    # data --------------------------------------------------------------------

    def open_at(self, upload_id: str, offset: int) -> int:
        """Open the data file for appending at ``offset``; bytes past it (never reported)
        go. (Cut only when there are any: ``ftruncate`` dirties the inode's times.)"""
        fd = os.open(self._prefix + upload_id + ".bin", os.O_WRONLY | os.O_APPEND)
        try:
            if os.fstat(fd).st_size != offset:
                os.ftruncate(fd, offset)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def truncate(self, upload_id: str, size: int) -> None:
        """Cut the data back to ``size`` bytes (bytes past the saved offset)."""
        os.truncate(self.data_path(upload_id), size)

    def read_head(self, upload_id: str, size: int) -> bytes:
        """The first ``size`` bytes of the data (for type sniffing)."""
        with open(self.data_path(upload_id), "rb") as fh:
            return fh.read(size)

    def sha256_of(self, upload_id: str, length: int, block: int = 1024 * 1024) -> str:
        """SHA-256 of the first ``length`` bytes, read ``block`` bytes at a time."""
        import hashlib

        digest = hashlib.sha256()
        left = length
        with open(self.data_path(upload_id), "rb") as fh:
            while left > 0:
                chunk = fh.read(min(block, left))
                if not chunk:
                    raise OSError(f"upload {upload_id} is shorter than its offset")
                digest.update(chunk)
                left -= len(chunk)
        return digest.hexdigest()

    def drop_data(self, upload_id: str) -> None:
        """Remove the data file only (a finished upload keeps its state until it expires)."""
        with contextlib.suppress(OSError):
            self.data_path(upload_id).unlink(missing_ok=True)

    # expiry ------------------------------------------------------------------

    def purge_expired(self, now: float | None = None, grace: float = 3600.0) -> int:
        """Delete expired uploads not being written; returns how many were removed.

        Files left without a state file (a crash during create or delete) go once
        they are ``grace`` seconds old.
        """
        now = time.time() if now is None else now
        removed = 0
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return 0
        ids_with_state: set[str] = set()
        for entry in entries:
            name = entry.name
            if not name.endswith(".state"):
                continue
            upload_id = name[: -len(".state")]
            ids_with_state.add(upload_id)
            state = self.load(upload_id)
            if state is not None and state.expires > now:
                continue
            lock = self.try_lock(upload_id)
            if lock is None:
                continue  # a request is writing to it: it is alive
            try:
                state = self.load(upload_id)
                if state is None or state.expires <= now:
                    self.delete(upload_id)
                    removed += 1
            finally:
                lock.release()
        for entry in entries:
            stem, dot, ext = entry.name.partition(".")
            if not dot or stem in ids_with_state:
                continue
            if ext not in ("bin", "lock") and not ext.endswith("tmp"):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > grace:
                    os.unlink(entry.path)
        return removed


def _read_small(path: str) -> bytes:
    """The whole of a small file in as few calls as can be (open, read, close)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        blocks = []
        while block := os.read(fd, _READ_SIZE):
            blocks.append(block)
            if len(block) < _READ_SIZE:
                break  # a short read of a regular file: its end
        return b"".join(blocks)
    finally:
        os.close(fd)
