"""Local-disk storage: a temp file beside the target, fsync, then an atomic rename.

Objects are plain files under ``root`` (``root/avatars/a.png`` for the key
``avatars/a.png``), so a reverse proxy or ``send_file`` can serve them as they
are. The content type and SHA-256 travel in extended attributes where the
filesystem has them (``user.webframe.*``); elsewhere the type is guessed from
the name and the digest is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import mimetypes
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Final

from webframe.storage.base import (
    READ_CHUNK,
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectReader,
    Sink,
    Storage,
    StorageFullError,
    StorageUnavailableError,
    check_key,
    check_range,
)

__all__ = ["LocalSink", "LocalStorage", "load_fallocate", "open_temp_file"]

_TEMP_PREFIX: Final = ".upload-"
_TEMP_SUFFIX: Final = ".part"
_WRITE_BUFFER: Final = 256 * 1024
#: below this expected size, reserving disk space ahead costs more than it saves.
_RESERVE_MIN: Final = 1024 * 1024
_XATTR_TYPE: Final = "user.webframe.content_type"
_XATTR_SHA256: Final = "user.webframe.sha256"
_NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def load_fallocate() -> Callable[[int, int, int], bool] | None:
    """Linux ``fallocate(fd, 0, offset, length)`` through ctypes, or None elsewhere.

    Not ``os.posix_fallocate``: where the filesystem cannot allocate, glibc's
    version falls back to writing a byte into every block, which for a 1 GiB
    file is 262,144 writes. The system call just says it is not supported.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = getattr(libc, "fallocate64", None) or libc.fallocate
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    call.restype = ctypes.c_int

    def fallocate(fd: int, offset: int, length: int) -> bool:
        """Reserve ``length`` bytes at ``offset``; False if the filesystem cannot.

        Raises ``OSError`` when the space is not there (ENOSPC, EDQUOT, EFBIG).
        """
        if call(fd, 0, offset, length) == 0:
            return True
        code = ctypes.get_errno()
        if code in _NO_SPACE:
            raise OSError(code, os.strerror(code))
        return False  # EOPNOTSUPP, EINTR, ...: write without reserving

    return fallocate


_reserve = load_fallocate()


def open_temp_file(folder: Path, prefix: str, suffix: str, buffering: int) -> tuple[Path, BinaryIO]:
    """A new, empty file of this process's own in ``folder``, open for buffered writing;
    raises ``OSError`` if it cannot be made, and leaves nothing behind when it fails."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    try:
        return Path(name), open(fd, "wb", buffering=buffering)
    except BaseException:
        os.close(fd)
        Path(name).unlink(missing_ok=True)
        raise


def _storage_error(exc: OSError, what: str) -> Exception:
    """The framework error for an OSError met while doing ``what``."""
    if exc.errno in _NO_SPACE:
        return StorageFullError(f"The disk is full, so {what} failed; try again later.")
    return StorageUnavailableError(
        f"The file storage could not be used ({what}: {exc.strerror or exc})."
    )


def _get_xattr(path: Path | int, name: str) -> str | None:
    try:
        return os.getxattr(path, name).decode("utf-8")
    except (OSError, AttributeError, UnicodeDecodeError):
        return None


def _set_xattr(fd: int, name: str, value: str) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.setxattr(fd, name, value.encode("utf-8"))


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable; filesystems that cannot do it are let be."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalSink(Sink):
    """Bytes go to a hidden temp file in the target folder; commit renames it into place."""

    def __init__(
        self, storage: LocalStorage, key: str, content_type: str, size_hint: int | None
    ) -> None:
        super().__init__(key, content_type)
        self._storage = storage
        self.target = storage.path_for(key)
        folder = self.target.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.temp_path, file = open_temp_file(folder, _TEMP_PREFIX, _TEMP_SUFFIX, _WRITE_BUFFER)
        except OSError as exc:
            storage.check_root()
            raise _storage_error(exc, "creating a temporary file") from exc
        self._file: BinaryIO | None = file
        self._reserved = 0
        if size_hint and size_hint >= _RESERVE_MIN and _reserve is not None:
            try:
                if _reserve(file.fileno(), 0, size_hint):
                    self._reserved = size_hint
            except OSError as exc:
                self._discard()
                raise _storage_error(exc, "reserving space for the file") from exc

    async def _write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as exc:
            raise _storage_error(exc, "writing the file") from exc

    async def _commit(self) -> ObjectInfo:
        assert self._file is not None
        file, self._file = self._file, None
        digest = self.sha256
        try:
            await asyncio.to_thread(self._publish, file, digest)
        except OSError as exc:
            raise _storage_error(exc, "saving the file") from exc
        return self._storage.info_for(self.key, self.target, sha256=digest)

    def _publish(self, file: BinaryIO, digest: str) -> None:
        """Flush, trim the reserve, record metadata, fsync and rename (in a worker thread)."""
        try:
            file.flush()
            fd = file.fileno()
            if self._reserved > self.size:
                os.ftruncate(fd, self.size)
            _set_xattr(fd, _XATTR_TYPE, self.content_type)
            _set_xattr(fd, _XATTR_SHA256, digest)
            os.fsync(fd)
        finally:
            file.close()
        os.replace(self.temp_path, self.target)
        _fsync_dir(self.target.parent)

    async def _abort(self) -> None:
        self._discard()

    def _discard(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()
        with contextlib.suppress(OSError):
            self.temp_path.unlink(missing_ok=True)

    def __del__(self) -> None:
        # An abandoned sink (never committed nor aborted) must not leave a temp file.
        if getattr(self, "_state", None) == "open" and hasattr(self, "temp_path"):
            self._discard()


class LocalReader(ObjectReader):
    """Reads a range of an open file in chunks."""

    def __init__(self, file: BinaryIO, info: ObjectInfo, start: int, end: int) -> None:
        super().__init__(info, start, end)
        self._file: BinaryIO | None = file

    async def __aiter__(self) -> AsyncIterator[bytes]:
        file = self._file
        if file is None:
            return
        try:
            file.seek(self.start)
            remaining = self.length
            while remaining > 0:
                chunk = file.read(min(READ_CHUNK, remaining))
                if not chunk:  # truncated under us: stop rather than spin
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


class LocalStorage(Storage):
    """Objects as files under ``root``; writes are atomic and durable (fsync + rename)."""

    def __init__(self, root: str | Path, *, create: bool = True) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _storage_error(exc, f"creating the storage folder {self.root}") from exc

    def check_root(self) -> None:
        """Raise 503 if the storage folder itself is gone or not a folder."""
        if not self.root.is_dir():
            raise StorageUnavailableError(
                f"The file storage folder {self.root} does not exist; create it or fix "
                "the upload_storage setting."
            )

    async def check(self) -> None:
        self.check_root()
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailableError(
                f"The file storage folder {self.root} is not writable by this process."
            )

    def path_for(self, key: str) -> Path:
        """The file that holds ``key`` (validated: always inside ``root``)."""
        check_key(key)
        path = self.root.joinpath(*key.split("/"))
        # check_key already refuses '..'; a symlinked folder must not lead out either.
        real_root = os.path.realpath(self.root)
        if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
            raise InvalidKeyError(f"The file name {key!r} leads outside the storage folder.")
        return path

    def info_for(self, key: str, path: Path | int, sha256: str | None = None) -> ObjectInfo:
        """Describe the file at ``path`` (a path or an open descriptor)."""
        st = os.stat(path)
        content_type = _get_xattr(path, _XATTR_TYPE)
        if content_type is None:
            content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=f"{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}",
            content_type=content_type,
            modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
            sha256=sha256 if sha256 is not None else _get_xattr(path, _XATTR_SHA256),
        )

    def _missing(self, key: str, exc: OSError) -> Exception:
        self.check_root()
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            return ObjectNotFoundError(f"No file is stored under {key!r}.")
        return _storage_error(exc, f"reading {key!r}")

    async def open_sink(
        self, key: str, *, content_type: str, size_hint: int | None = None
    ) -> LocalSink:
        check_key(key)
        self.check_root()  # never re-create a vanished root (an unmounted volume, say)
        return LocalSink(self, key, content_type, size_hint)

    async def open_read(self, key: str, start: int = 0, end: int | None = None) -> LocalReader:
        path = self.path_for(key)
        try:
            file = open(path, "rb")  # noqa: SIM115 (the reader closes it)
        except OSError as exc:
            raise self._missing(key, exc) from exc
        try:
            info = self.info_for(key, file.fileno())
            first, stop = check_range(start, end, info.size)
        except BaseException:
            file.close()
            raise
        return LocalReader(file, info, first, stop)

    async def stat(self, key: str) -> ObjectInfo:
        path = self.path_for(key)
        try:
            if not path.is_file():
                raise FileNotFoundError(errno.ENOENT, "not a file")
            return self.info_for(key, path)
        except OSError as exc:
            raise self._missing(key, exc) from exc

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink()
        except FileNotFoundError:
            self.check_root()
            return
        except OSError as exc:
            raise _storage_error(exc, f"deleting {key!r}") from exc
        # Drop folders the key left empty, never the root itself.
        folder = path.parent
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent

    async def copy(self, src: str, dst: str) -> ObjectInfo:
        source = self.path_for(src)
        target = self.path_for(dst)
        try:
            if not source.is_file():
                raise FileNotFoundError(errno.ENOENT, "not a file")
        except OSError as exc:
            raise self._missing(src, exc) from exc
        try:
            await asyncio.to_thread(self._copy_file, source, target)
        except FileNotFoundError as exc:
            raise self._missing(src, exc) from exc
        except OSError as exc:
            raise _storage_error(exc, f"copying {src!r}") from exc
        return self.info_for(dst, target)

    @staticmethod
    def _copy_file(source: Path, target: Path) -> None:
        """Copy through a temp file beside ``target`` so readers never see half a copy."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX)
        os.close(fd)
        temp = Path(name)
        try:
            shutil.copyfile(source, temp)  # copy_file_range/sendfile: no trip through Python
            for attr in (_XATTR_TYPE, _XATTR_SHA256):
                value = _get_xattr(source, attr)
                if value is not None:
                    with contextlib.suppress(OSError, AttributeError):
                        os.setxattr(temp, attr, value.encode("utf-8"))
            with open(temp, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
