"""Two Linux calls the local chunk writer uses through ctypes (Python's ``os`` has
neither): start writeback of a file range without waiting for it, and reserve
disk space past the end of a file without changing its size.

Both are hints: where they are missing (not Linux, no libc symbol) or refused
(a filesystem that cannot), the writer carries on with plain writes and its
final ``fdatasync`` does all the work.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable
from typing import Final

__all__ = ["load_reserve", "load_start_writeback"]

#: ``sync_file_range`` flag: start writeback of the range's dirty pages, do not wait.
SYNC_FILE_RANGE_WRITE: Final = 2
#: ``fallocate`` mode: allocate blocks past the end, the file's size stays.
FALLOC_FL_KEEP_SIZE: Final = 1
_NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _libc_function(*names: str) -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    for name in names:
        found = getattr(libc, name, None)
        if found is not None:
            return found  # type: ignore[no-any-return]
    return None


def load_start_writeback() -> Callable[[int, int, int], bool] | None:
    """``sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)``, or None.

    The returned function queues the range's dirty pages for writing and returns
    (it may wait briefly for room in the device queue, never for the writes);
    False when the call failed. It makes nothing durable: a later ``fdatasync``
    still must, but finds most pages written already. Write errors are kept by
    the kernel and reported by that ``fdatasync``.
    """
    call = _libc_function("sync_file_range")
    if call is None:
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]  # type: ignore[attr-defined]
    call.restype = ctypes.c_int  # type: ignore[attr-defined]

    def start_writeback(fd: int, offset: int, length: int) -> bool:
        return call(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0

    return start_writeback


def load_reserve() -> Callable[[int, int, int], bool] | None:
    """``fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)``, or None.

    The returned function reserves the blocks the next ``length`` bytes at
    ``offset`` will need, so ext4 does not allocate them piecemeal while they are
    written and flushed; the file's size is unchanged (a reader or a restart
    sees only bytes written). False when the filesystem cannot; raises
    ``OSError`` when the space is not there (ENOSPC, EDQUOT, EFBIG).
    """
    call = _libc_function("fallocate64", "fallocate")
    if call is None:
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]  # type: ignore[attr-defined]
    call.restype = ctypes.c_int  # type: ignore[attr-defined]

    def reserve(fd: int, offset: int, length: int) -> bool:
        if call(fd, FALLOC_FL_KEEP_SIZE, offset, length) == 0:
            return True
        code = ctypes.get_errno()
        if code in _NO_SPACE:
            raise OSError(code, os.strerror(code))
        return False

    return reserve
