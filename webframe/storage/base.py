"""The upload-storage interface: sinks that stream an object in, ranged reads, metadata.

A storage knows nothing of HTTP or multipart: it stores byte objects under keys
(``"avatars/2026/a1b2.png"``). Backends live one per module (``local``, ``s3``)
and are chosen by URL with :func:`from_url`. Errors are the framework's own
(they carry an HTTP status), so a handler can let them through unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final

from webframe.errors import (
    BadRequestError,
    HTTPError,
    InsufficientStorageError,
    NotFoundError,
    ServiceUnavailableError,
)

__all__ = [
    "InvalidKeyError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectReader",
    "RangeNotSatisfiableError",
    "Sink",
    "Storage",
    "StorageFullError",
    "StorageUnavailableError",
    "UnsupportedOperationError",
    "check_key",
    "in_background",
]

#: S3's limit on key length; also applied to local keys so a key works on both.
MAX_KEY_BYTES: Final = 1024
#: how much a reader yields at a time, unless asked otherwise.
READ_CHUNK: Final = 256 * 1024

_BAD_KEY_CHARS: Final = re.compile(r"[\x00-\x1f\x7f\\]")

# Strong references to fire-and-forget tasks (closing clients, aborting uploads,
# clean-ups that outlive their request): the loop itself keeps only weak ones.
_background: set[asyncio.Future[Any]] = set()


def in_background(coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    """Run ``coro`` as a task that is kept alive until it ends."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


# --------------------------------------------------------------------- errors


class StorageUnavailableError(ServiceUnavailableError):
    """503: the storage cannot be reached, refuses our credentials, or its bucket is gone."""

    default_message = "The file storage is unavailable; try again shortly."


class StorageFullError(InsufficientStorageError):
    """507: the storage has no room left for this object."""

    default_message = "The file storage is full, so the file could not be stored."


class ObjectNotFoundError(NotFoundError):
    """404: no object is stored under this key."""

    default_message = "The file you asked for does not exist."


class InvalidKeyError(BadRequestError):
    """400: the key is not one a storage accepts (empty, absolute, ``..``, control chars)."""

    default_message = "The file name is not valid."


class RangeNotSatisfiableError(HTTPError):
    """416: the requested byte range lies outside the object."""

    status = 416
    default_message = "The requested byte range is outside the file."


class UnsupportedOperationError(NotImplementedError):
    """This backend cannot do the operation (a programming or configuration error, not a 4xx)."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise :class:`InvalidKeyError`.

    A key is a relative, ``/``-separated path: no empty, ``.`` or ``..`` segment,
    no leading ``/``, no backslash or control character, at most 1024 UTF-8 bytes.
    The same rule for every backend keeps a key portable between them.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("The file name is empty.")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"The file name is longer than {MAX_KEY_BYTES} bytes.")
    if _BAD_KEY_CHARS.search(key):
        raise InvalidKeyError("The file name contains a backslash or a control character.")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError("The file name is not valid UTF-8.") from None
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKeyError(
            "The file name must be a relative path without empty, '.' or '..' parts."
        )
    return key


def check_range(start: int, end: int | None, size: int) -> tuple[int, int]:
    """Clamp ``[start, end)`` to an object of ``size`` bytes; 416 if it selects nothing.

    ``end`` is exclusive (Python slicing, like Tornado's ``get_content``); None
    means the end of the object. An empty object read whole gives ``(0, 0)``.
    """
    if start < 0 or (end is not None and end < start):
        raise RangeNotSatisfiableError(f"The byte range {start}-{end} is not valid.")
    stop = size if end is None else min(end, size)
    if start >= size and not (start == 0 and end is None):
        raise RangeNotSatisfiableError(
            f"The byte range starts at {start}, but the file has {size} bytes."
        )
    return start, stop


# --------------------------------------------------------------------- values


@dataclass(frozen=True)
class ObjectInfo:
    """What a storage knows about one stored object.

    ``etag`` is unquoted (put it in quotes for an HTTP ``ETag`` header); it
    changes whenever the content changes. ``sha256`` is the hex digest of the
    content when the object was written through a sink (None if unknown).
    """

    key: str
    size: int
    etag: str
    content_type: str
    modified: datetime
    sha256: str | None = None


class ObjectReader(ABC):
    """The bytes ``[start, end)`` of one object, as an async iterator of chunks.

    Returned by :meth:`Storage.open_read` once the object and range are known to
    be good, so a handler can choose its status and headers before the first
    byte is read. ``info`` describes the whole object. Close it when done (or
    use ``async with``); iterating to the end closes it too.
    """

    def __init__(self, info: ObjectInfo, start: int, end: int) -> None:
        self.info = info
        self.start = start
        self.end = end

    @property
    def length(self) -> int:
        """How many bytes this reader yields in total."""
        return self.end - self.start

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield the selected bytes in chunks of at most a few hundred KiB."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the file or connection; safe to call more than once."""

    async def read_all(self) -> bytes:
        """Every selected byte at once (for small objects and tests)."""
        chunks = [chunk async for chunk in self]
        return b"".join(chunks)

    async def __aenter__(self) -> ObjectReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Sink(ABC):
    """One object being written: bytes arrive with :meth:`write`, then commit or abort.

    The object becomes visible under its key only at :meth:`commit`; until then
    readers see the previous object (or none). :meth:`abort` -- or leaving an
    ``async with`` block by an exception or cancellation -- leaves nothing
    behind. The SHA-256 of the content is computed as the bytes arrive.
    """

    def __init__(self, key: str, content_type: str) -> None:
        self.key = key
        self.content_type = content_type
        self.size = 0
        self._hash = hashlib.sha256()
        self._state = "open"  # -> "committed" | "aborted"

    @property
    def closed(self) -> bool:
        """True once the sink was committed or aborted."""
        return self._state != "open"

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far."""
        return self._hash.hexdigest()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the object; a storage error aborts the sink and is raised."""
        if self._state != "open":
            raise RuntimeError(f"write() on a sink that is already {self._state}")
        if not data:
            return
        self._hash.update(data)
        self.size += len(data)
        try:
            await self._write(data)
        except BaseException:
            await self.abort()
            raise

    async def commit(self) -> ObjectInfo:
        """Make the object visible under its key and describe it; an error aborts the sink."""
        if self._state != "open":
            raise RuntimeError(f"commit() on a sink that is already {self._state}")
        try:
            info = await self._commit()
        except BaseException:
            await self.abort()
            raise
        self._state = "committed"
        return info

    async def abort(self) -> None:
        """Throw away everything written; safe to call more than once, never raises for I/O."""
        if self._state != "open":
            return
        self._state = "aborted"
        await self._abort()

    @abstractmethod
    async def _write(self, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` (already counted and hashed); raise a storage error on failure."""

    @abstractmethod
    async def _commit(self) -> ObjectInfo:
        """Publish the object; called once, after the last write."""

    @abstractmethod
    async def _abort(self) -> None:
        """Remove every trace of the object; must not raise for I/O errors."""

    async def __aenter__(self) -> Sink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Committed sinks are left alone; anything else (an error, a cancellation,
        # or a block that simply forgot to commit) is abandoned.
        await self.abort()


# --------------------------------------------------------------------- storage


class Storage(ABC):
    """A place to keep uploaded files: keys map to immutable byte objects.

    Every method is a coroutine and raises the errors above: 404 for a missing
    key, 400 for a bad key, 416 for a bad range, 503 when the storage cannot be
    used (down, bucket or folder missing, credentials refused), 507 when full.
    A storage recovers by itself when its service comes back.
    """

    #: the URL this storage was made from (without secrets), for messages and logs.
    url: str = ""

    @abstractmethod
    async def open_sink(self, key: str, *, content_type: str, size_hint: int | None = None) -> Sink:
        """Start writing the object ``key``; ``size_hint`` is the expected size, if known."""

    @abstractmethod
    async def open_read(self, key: str, start: int = 0, end: int | None = None) -> ObjectReader:
        """Open the bytes ``[start, end)`` of ``key`` (end exclusive, None = to the end)."""

    @abstractmethod
    async def stat(self, key: str) -> ObjectInfo:
        """Describe the object ``key``."""

    async def check(self) -> None:  # noqa: B027 (a backend with nothing to check keeps this)
        """Raise :class:`StorageUnavailableError` unless the storage can be used now.

        For start-up and health checks; the other methods raise the same error on
        their own, so a request path need not call this first.
        """

    async def exists(self, key: str) -> bool:
        """True if an object is stored under ``key``."""
        try:
            await self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abstractmethod
    async def copy(self, src: str, dst: str) -> ObjectInfo:
        """Copy ``src`` to ``dst`` inside the storage (no download and re-upload)."""

    @property
    def supports_presigned_urls(self) -> bool:
        """True if :meth:`presigned_url` works for this backend."""
        return False

    async def presigned_url(
        self,
        key: str,
        expires: int = 300,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        as_attachment: bool = True,
    ) -> str:
        """A URL that lets anyone GET ``key`` for ``expires`` seconds, without this server.

        ``filename`` sets the Content-Disposition the storage answers with.
        Backends that cannot sign URLs raise :class:`UnsupportedOperationError`.
        """
        raise UnsupportedOperationError(
            f"{type(self).__name__} cannot make presigned URLs; serve the file through "
            "the application instead (check storage.supports_presigned_urls first)."
        )

    async def close(self) -> None:  # noqa: B027 (optional hook, most backends hold nothing)
        """Release connections; the storage may be used again afterwards."""

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
