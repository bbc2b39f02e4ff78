"""What the tus handler needs of a place to keep uploads: :class:`TusStore` and the
:class:`TusWriter` that appends one request's body.

Two implementations sit side by side: local disk (:mod:`.store`, one folder on the
upload volume) and S3 (:mod:`.s3store`, a multipart upload per tus upload, so any
node sharing the bucket can resume it). Both promise the same thing: an offset
is saved (and so reported) only once the bytes below it are durable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webframe.uploads.files import UploadedFile

    from .store import UploadState

__all__ = ["TusLock", "TusStore", "TusWriter"]


class TusLock(ABC):
    """One writer per upload; :meth:`release` is safe to call twice."""

    @abstractmethod
    def release(self) -> None:
        """Let the next writer in (may finish in the background)."""


class TusWriter(ABC):
    """Appends one POST/PATCH body at the upload's offset while holding its lock."""

    state: UploadState
    #: the saved offset this request started at (moves on with each make_durable).
    start: int
    #: bytes received since ``start`` (not durable, not reported).
    received: int
    checksum: tuple[str, bytes] | None

    @property
    @abstractmethod
    def open(self) -> bool:
        """False once closed: later body pieces are ignored."""

    def expect(self, size: int) -> None:
        """The request announces ``size`` body bytes (its Content-Length): a hint, to
        reserve room ahead. Raises OSError when the room is not there."""
        return None  # no room to reserve by default

    @abstractmethod
    def write(self, data: bytes) -> Awaitable[None] | None:
        """Append ``data``; an awaitable when the caller must wait (flow control).

        Raises OSError (or a storage error) when the bytes cannot be kept."""

    @abstractmethod
    def checksum_matches(self) -> bool:
        """True unless the request's ``Upload-Checksum`` disagrees with its bytes."""

    @abstractmethod
    def discard(self) -> None:
        """Forget the bytes not yet made durable (the offset stays)."""

    @abstractmethod
    async def make_durable(self) -> int:
        """Make what arrived durable and return the offset it now reaches."""

    @abstractmethod
    def close(self) -> None:
        """Close files and release the lock; safe to call twice."""

    async def aclose(self) -> None:
        """:meth:`close`, returning once the lock is really free (a client may go on)."""
        self.close()


class TusStore(ABC):
    """Upload state, bytes and locks of one tus route (async: local work runs in threads)."""

    #: where the store lives, for log lines.
    where: str = ""
    #: True when a cut connection's bytes can be kept synchronously (local disk).
    keeps_partial_in_place: bool = True

    @abstractmethod
    async def load(self, upload_id: str) -> UploadState | None:
        """The saved state of ``upload_id``; None if missing, unreadable or not an ID."""

    @abstractmethod
    async def create(self, state: UploadState) -> None:
        """Make a new, empty upload (its state last: then it exists)."""

    @abstractmethod
    async def save(self, state: UploadState) -> None:
        """Replace the saved state durably."""

    @abstractmethod
    async def delete(self, upload_id: str) -> None:
        """Remove the upload, its bytes and anything in progress."""

    @abstractmethod
    async def try_lock(self, upload_id: str) -> TusLock | None:
        """Take the upload's lock without waiting; None if another writer holds it."""

    @abstractmethod
    async def open_writer(
        self, state: UploadState, lock: TusLock, checksum: tuple[str, bytes] | None
    ) -> TusWriter:
        """A writer appending at ``state.offset`` (bytes past it, never reported, go)."""

    @abstractmethod
    async def read_head(self, state: UploadState, size: int) -> bytes:
        """The first ``size`` bytes (for type sniffing), once at least that many are durable."""

    @abstractmethod
    async def finished_file(self, state: UploadState, sha256: str | None) -> UploadedFile:
        """The complete upload as an :class:`UploadedFile` (``sha256`` computed if None)."""

    @abstractmethod
    async def undo_completion(self, state: UploadState, offset: int) -> None:
        """The app refused the completed file: go back to ``offset`` (the client resends)."""

    @abstractmethod
    async def mark_finished(self, state: UploadState) -> None:
        """The app has the file: save ``state`` as finished and drop the bytes."""

    @abstractmethod
    async def purge_expired(self) -> int:
        """Remove expired uploads nobody is writing; returns how many."""
