"""The write path of one tus request: its body appended to the upload, made durable,
its offset saved (and so reported), the finished file handed to the app, and the
upload's lock let go whichever way the request ends.

:class:`UploadWrite` holds a :class:`~.base.TusWriter` for one POST/PATCH; the
handler (:mod:`.handler`) reads the headers and answers, this does the rest.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable

from webframe.errors import HTTPError, InsufficientStorageError, PayloadTooLargeError, UploadError
from webframe.storage.base import in_background
from webframe.uploads.files import UploadedFile
from webframe.uploads.policy import SNIFF_BYTES, UploadLimits, check_type, sniff_type

from .base import TusLock, TusStore, TusWriter
from .chunks import ChunkWriter, cached_sha256, forget_hash
from .localstore import LocalTusStore
from .protocol import ChecksumMismatchError
from .rules import too_large
from .store import UploadState

__all__ = ["UploadWrite", "storage_error"]

log = logging.getLogger("webframe.tus")

#: the app's hook taking a finished upload (``upload_finished``).
FinishedHook = Callable[[UploadedFile], "Awaitable[None] | None"]


def storage_error(store: TusStore, exc: OSError) -> InsufficientStorageError:
    """Log ``exc`` and give the client a 507 that names no path."""
    log.error("resumable upload storage in %s: %s", store.where, exc)
    return InsufficientStorageError("The upload could not be stored right now; try later.")


class UploadWrite:
    """One request's hold on an upload: bytes in, durable, reported, handed over.

    An offset is saved (and so reported) only after :meth:`TusWriter.make_durable`;
    the chunk completing an upload is saved only once the app has the file, so a
    failing hook leaves the upload resumable at the offset before that chunk.
    """

    def __init__(
        self, store: TusStore, writer: TusWriter, limits: UploadLimits, expires_after: float
    ) -> None:
        self.store = store
        self.writer = writer
        self.limits = limits
        self.expires_after = expires_after
        #: the offset saved before the chunk that completes the upload (kept until
        #: the app has the file, so that a failing hook leaves it resumable).
        self.completing_from: int | None = None

    @classmethod
    async def open(
        cls,
        store: TusStore,
        state: UploadState,
        lock: TusLock,
        checksum: tuple[str, bytes] | None,
        body_size: int | None,
        limits: UploadLimits,
        expires_after: float,
    ) -> UploadWrite:
        """Open a writer at ``state.offset`` holding ``lock`` (released if this fails)
        and tell it the request's ``body_size`` (its Content-Length, if any)."""
        try:
            writer = await store.open_writer(state, lock, checksum)
        except OSError as exc:
            raise storage_error(store, exc) from None
        write = cls(store, writer, limits, expires_after)
        try:
            write.expect(body_size)
        except BaseException:
            writer.close()  # releases the lock: the handler never saw this write
            raise
        return write

    @property
    def state(self) -> UploadState:
        return self.writer.state

    def expect(self, body_size: int | None) -> None:
        """Announce the request's Content-Length to the writer (507 without room)."""
        if body_size:
            try:
                self.writer.expect(body_size)
            except OSError as exc:
                raise storage_error(self.store, exc) from None

    # bytes in ------------------------------------------------------------------

    def write(self, chunk: bytes) -> Awaitable[None] | None:
        """Append a piece of the body (413 past the length or the limit; 507 when
        the storage refuses it); an awaitable while the writer must be waited for."""
        writer = self.writer
        if not writer.open:
            return None
        state = writer.state
        end = writer.start + writer.received + len(chunk)
        if state.length is not None and end > state.length:
            raise PayloadTooLargeError(
                f"The chunk goes past the upload's length of {state.length} bytes."
            )
        if state.length is None and end > self.limits.max_file_size:
            raise too_large(end, self.limits.max_file_size)
        try:
            pending = writer.write(chunk)
        except OSError as exc:
            raise storage_error(self.store, exc) from None
        return None if pending is None else self._wait(pending)

    async def _wait(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except OSError as exc:
            raise storage_error(self.store, exc) from None

    # committing ----------------------------------------------------------------

    async def commit(self, creation: bool = False) -> UploadState:
        """Check the chunk, make its bytes durable, then save (and so report) the offset.

        Raises ChecksumMismatchError (460: the chunk dropped, or at ``creation`` the
        whole upload), the type refusal of the route's limits (the upload removed)
        or a 507."""
        writer, state, store = self.writer, self.writer.state, self.store
        if not writer.checksum_matches():
            if creation:
                await self.terminate()
                raise ChecksumMismatchError()
            try:
                writer.discard()  # the offset stays where it was
            except OSError as exc:
                raise storage_error(store, exc) from None
            raise ChecksumMismatchError()
        try:
            before = state.offset
            state.offset = await writer.make_durable()
        except OSError as exc:
            raise storage_error(store, exc) from None
        if not state.type_checked and (state.offset >= SNIFF_BYTES or state.offset == state.length):
            head = await store.read_head(state, SNIFF_BYTES)
            state.sniffed_type = sniff_type(head)
            allowed = self.limits.allowed_types
            try:
                check_type(state.check_type, state.sniffed_type, allowed, "Upload")
            except UploadError as exc:
                await self.terminate()
                raise HTTPError(exc.message, status=exc.status) from None
            state.type_checked = True
        state.expires = time.time() + self.expires_after
        if state.length is not None and state.offset == state.length and not state.finished:
            self.completing_from = before  # saved once the app has the file
            return state
        try:
            await store.save(state)
        except OSError as exc:
            raise storage_error(store, exc) from None
        return state

    async def terminate(self) -> None:
        """Remove an upload that can never be accepted (bad type, failed checksum at creation)."""
        self.writer.close()
        await self.store.delete(self.state.id)
        forget_hash(self.state.id)

    async def hand_over(self, state: UploadState, hook: FinishedHook) -> None:
        """Give a complete upload to ``hook`` (the app keeps it), then keep only its
        state. If the hook fails, the completing chunk is dropped (sent again)."""
        if state.finished or state.length is None or state.offset != state.length:
            return
        store = self.store
        try:
            upload = await store.finished_file(state, cached_sha256(state.id, state.offset))
        except OSError as exc:
            raise storage_error(store, exc) from None
        try:
            result = hook(upload)
            if inspect.isawaitable(result):
                await result
        except BaseException:
            await self._not_handed_over(state)
            raise
        await store.mark_finished(state)
        forget_hash(state.id)

    async def _not_handed_over(self, state: UploadState) -> None:
        if self.completing_from is None:
            return  # completed by an earlier request: its state already says so
        offset, self.completing_from = self.completing_from, None
        forget_hash(state.id)
        try:
            await self.store.undo_completion(state, offset)
        except OSError as exc:
            log.warning("resumable upload %s: could not drop the last chunk: %s", state.id[:8], exc)

    # letting go ----------------------------------------------------------------

    def release(self, keep_partial: bool) -> None:
        """End the hold; bytes not yet reported are kept (made durable, then saved)
        only when ``keep_partial`` (a cut connection) and the chunk had no checksum."""
        writer, store = self.writer, self.store
        try:
            if writer.open and writer.received:
                complete = writer.start + writer.received == writer.state.length
                # A tail completing the upload is not kept: the app must get the
                # file (the hook) before the upload is reported complete.
                if keep_partial and writer.checksum is None and not complete:
                    if isinstance(writer, ChunkWriter) and isinstance(store, LocalTusStore):
                        writer.state.offset = writer.make_durable_now()
                        writer.state.expires = time.time() + self.expires_after
                        store.save_now(writer.state)
                    else:
                        # Remote: kept in the background; the writer holds the lock
                        # (and closes) until the new offset is saved.
                        in_background(self._keep_partial())
                        return
                else:
                    writer.discard()
        except OSError as exc:
            log.warning("resumable upload %s: clean-up failed: %s", writer.state.id[:8], exc)
        writer.close()

    async def release_now(self) -> None:
        """:meth:`release` for a request that went well, once the lock is really free."""
        writer = self.writer
        try:
            if writer.open and writer.received:
                writer.discard()
        except OSError as exc:
            log.warning("resumable upload %s: clean-up failed: %s", writer.state.id[:8], exc)
        await writer.aclose()

    async def _keep_partial(self) -> None:
        """Make a cut request's bytes durable, then save (report) the offset they reach."""
        writer = self.writer
        try:
            writer.state.offset = await writer.make_durable()
            writer.state.expires = time.time() + self.expires_after
            await self.store.save(writer.state)
        except Exception as exc:
            log.warning(
                "resumable upload %s: the bytes of a cut request were not kept: %s",
                writer.state.id[:8],
                exc,
            )
        finally:
            writer.close()
