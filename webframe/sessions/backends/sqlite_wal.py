"""Whether anything was committed to an SQLite database in WAL mode since a moment,
told by its wal-index header instead of a query.

In WAL mode the ``-shm`` file begins with the wal-index header, kept twice (two
48-byte copies, see https://www.sqlite.org/walformat.html). Every commit, by any
connection of any process, rewrites both copies (second copy first) with a new
change counter, frame count and checksums, and a reset of the WAL changes the salts
too. So the first 96 bytes read the same twice, with both copies equal, only if no
commit ended in between (a commit running while they are read is concurrent with the
read, and either answer is one the read could have had).

`WalIndex` maps those bytes read-only. The SQLite store keeps the records it read
together with the header read *before* the SELECT; while the header is still exactly
that one, the stored rows are the ones it read. Anything unusual (no ``-shm`` file, a
header not initialised, copies that differ) gives no snapshot, and the store queries.

The mapping is valid while a connection of this process keeps the database open in
WAL mode: SQLite only truncates or deletes the ``-shm`` file when no connection has
it open, and leaving WAL mode needs an exclusive lock no other connection holds.
The store closes the mapping before that connection.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import sys

__all__ = ["HEADER_BYTES", "WalIndex"]

#: the two copies of the wal-index header.
HEADER_BYTES = 96
_COPY = 48
#: ``iVersion``, the first field of each copy (native byte order).
_VERSION = (3007000).to_bytes(4, sys.byteorder)
#: the ``isInit`` byte of each copy.
_IS_INIT = 12


class WalIndex:
    """A read-only view of the wal-index header of one database file."""

    __slots__ = ("_fd", "_map")

    def __init__(self, fd: int, mapped: mmap.mmap) -> None:
        self._fd = fd
        self._map = mapped

    @classmethod
    def of(cls, conn: sqlite3.Connection, db_path: str) -> WalIndex | None:
        """`open` for the database ``conn`` has open at ``db_path``, if in WAL mode."""
        mode = conn.execute("PRAGMA journal_mode").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            return None
        return cls.open(db_path)

    @classmethod
    def open(cls, db_path: str) -> WalIndex | None:
        """Map the header of ``db_path``'s ``-shm`` file (the name SQLite gives it: the
        real path of the database plus ``-shm``); None if there is no usable one."""
        if not db_path or db_path == ":memory:" or db_path.startswith("file:"):
            return None
        try:
            fd = os.open(os.path.realpath(db_path) + "-shm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            # SQLite sizes the file in 32 KiB regions; a shorter one is not initialised.
            if os.fstat(fd).st_size < 32768:
                raise OSError("wal-index not initialised")
            mapped = mmap.mmap(fd, HEADER_BYTES, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            os.close(fd)
            return None
        index = cls(fd, mapped)
        if index.snapshot() is None:
            index.close()
            return None
        return index

    def read(self) -> bytes:
        """The two header copies as they are now (compare with an earlier snapshot)."""
        return self._map[:HEADER_BYTES]

    def snapshot(self) -> bytes | None:
        """The header now if it can stand for the database's state (both copies equal,
        initialised, of the known version); None otherwise."""
        head = self._map[:HEADER_BYTES]
        return head if is_snapshot(head) else None

    def close(self) -> None:
        """Unmap and close (idempotent)."""
        if not self._map.closed:
            self._map.close()
            os.close(self._fd)


def is_snapshot(head: bytes) -> bool:
    """Whether header bytes read from the ``-shm`` file are a whole, initialised header."""
    return (
        len(head) == HEADER_BYTES
        and head[:_COPY] == head[_COPY:]
        and head[:4] == _VERSION
        and head[_IS_INIT] == 1
    )
