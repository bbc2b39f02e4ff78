"""``ResumableUploadHandler``: tus 1.0.0 uploads that survive dropped connections and restarts.

Subclass it, route it at a creation URL and at that URL plus ``{upload_id}``,
and override :meth:`ResumableUploadHandler.upload_finished` to keep the file::

    @route("/files/tus/", name="tus")
    @route("/files/tus/{upload_id}", name="tus-upload")
    class Uploads(ResumableUploadHandler):
        def upload_finished(self, upload: UploadedFile) -> None:
            upload.save("/srv/files")

SHA-256 of a finished upload: Python cannot save a ``hashlib`` state to disk, so
the running hash is kept in this process only while the upload's PATCHes arrive
here in order; when it is missing (a restart, another worker, a cut connection
whose tail was kept) the data file is hashed again at the end, 1 MiB at a time,
in a thread. Memory stays bounded either way and the digest is always that of
the bytes on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import tornado.web

from webframe.errors import (
    ForbiddenError,
    HTTPError,
    InsufficientStorageError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    UploadError,
)
from webframe.handler import RequestHandler
from webframe.storage import Storage
from webframe.storage.base import in_background
from webframe.uploads.files import UploadedFile
from webframe.uploads.policy import SNIFF_BYTES, UploadLimits, sniff_type
from webframe.uploads.policy import check_type as _check_type

from .base import TusLock, TusStore, TusWriter
from .chunks import ChunkWriter, cached_sha256, forget_hash
from .localstore import LocalTusStore
from .protocol import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    TUS_VERSION,
    ChecksumMismatchError,
    check_version,
    http_date,
)
from .purger import start_purger
from .rules import apply_patch, read_creation, read_patch, too_large
from .store import UploadState, is_upload_id, new_upload_id

if TYPE_CHECKING:
    from webframe.settings import Settings

__all__ = ["ResumableUploadHandler"]

log = logging.getLogger("webframe.tus")


@tornado.web.stream_request_body
class ResumableUploadHandler(RequestHandler):
    """A tus 1.0.0 endpoint: core protocol plus creation, creation-with-upload,
    creation-defer-length, termination, checksum (sha1, sha256) and expiration.

    Route it twice: at the creation URL (``POST`` makes an upload) and at that URL
    plus ``{upload_id}`` (``HEAD``, ``PATCH``, ``DELETE``). Each upload belongs to
    :meth:`upload_owner` (the logged-in user, else the session): anyone else gets
    a 404. ``POST``/``PATCH``/``DELETE`` need the XSRF header like any unsafe
    request. The route's :class:`UploadLimits` apply as to multipart uploads. State
    and data live in :meth:`upload_folder`, so uploads survive a restart; expired
    ones are purged every ``purge_interval`` seconds by a task started on the
    first request (or by :meth:`start_purger`).
    """

    #: the route's limits; None: ``settings.max_upload_size`` per file.
    upload_limits: ClassVar[UploadLimits | None] = None
    #: seconds an upload may sit idle before it expires (``Upload-Expires``).
    expires_after: ClassVar[float] = 24 * 3600.0
    #: seconds between purges of expired uploads.
    purge_interval: ClassVar[float] = 600.0
    #: bytes are written out at once, so the body buffer may be reused.
    reuses_body_buffer: ClassVar[bool] = True
    uses_session: ClassVar[bool] = True

    _patch: TusWriter | None = None
    _done_state: UploadState | None = None
    #: the offset saved before the chunk that completes the upload (kept until the
    #: app has the file, so that a failing hook leaves the upload resumable).
    _completing_from: int | None = None

    # configuration -----------------------------------------------------------

    @classmethod
    def limits_for(cls, settings: Settings) -> UploadLimits:
        """The limits in force for this route under ``settings``."""
        if cls.upload_limits is not None:
            return cls.upload_limits
        size = settings.max_upload_size
        return UploadLimits(max_body_size=size, max_file_size=size)

    @classmethod
    def body_size_limit(cls, settings: Settings) -> int:
        """One request carries at most a whole file."""
        return cls.limits_for(settings).max_file_size

    @classmethod
    def upload_folder_for(cls, settings: Settings) -> Path:
        """Where uploads in progress are kept on local storage: ``<upload_dir>/.tus``."""
        return Path(settings.upload_dir) / ".tus"

    def upload_folder(self) -> Path:
        """Where upload state and data are kept on local storage (see :meth:`upload_folder_for`)."""
        return self.upload_folder_for(self.wf_settings)

    @classmethod
    def store_for(cls, app: tornado.web.Application) -> TusStore:
        """The store of this route's uploads in ``app``: in S3 when the app's
        ``upload_storage`` is S3 (any node can resume them), else on the local
        upload volume."""
        storage = getattr(app, "upload_storage", None)
        storage = storage if isinstance(storage, Storage) else None
        if storage is not None and type(storage).__name__ == "S3Storage":
            from .s3store import S3TusStore

            return S3TusStore(storage)  # type: ignore[arg-type]
        settings = getattr(app, "wf_settings", None)
        assert settings is not None, "a ResumableUploadHandler needs a webframe Application"
        return LocalTusStore(cls.upload_folder_for(settings), storage)

    @property
    def upload_store(self) -> TusStore:
        """The store of this route's uploads (made once per request)."""
        store = self.__dict__.get("_tus_store")
        if store is None:
            store = self.__dict__["_tus_store"] = self.store_for(self.application)
        assert isinstance(store, TusStore)
        return store

    def upload_owner(self) -> str | None:
        """Who owns uploads made by this request: ``user:<id>`` when logged in, else
        ``session:<sid>``; None (no session) refuses creation with 403."""
        user = self.current_user
        if user:
            ident = user.get("id", user) if isinstance(user, dict) else user
            return f"user:{ident}"
        session = self._session
        if session is not None and not session.new:
            return f"session:{session.sid}"
        return None

    def upload_finished(self, upload: UploadedFile) -> Awaitable[None] | None:
        """Called once an upload is complete (all bytes, checksums and type checked),
        before the final response; save the file here. ``upload.path`` is removed
        afterwards. If it raises, the last PATCH is answered with the error and its
        chunk is dropped (the offset stays where it was), so the client sends that
        chunk again and this hook runs again: an upload is never reported complete
        before the app has it."""
        raise NotImplementedError(
            f"{type(self).__name__} must override upload_finished() to keep the file"
        )

    # purging -------------------------------------------------------------------

    @classmethod
    def start_purger(cls, app: tornado.web.Application) -> bool:
        """Start (once per app and store) the task removing expired uploads; called by
        ``Application.start_background_tasks`` and, failing that, by the first request."""
        return start_purger(app, cls.store_for(app), cls.purge_interval)

    # protocol ----------------------------------------------------------------

    def set_default_headers(self) -> None:
        """Every response, errors included, says which tus version it speaks."""
        self.set_header("Tus-Resumable", TUS_VERSION)

    def _upload_id(self) -> str | None:
        value = self.path_kwargs.get("upload_id")
        return None if value is None else str(value)

    async def prepare(self) -> None:
        """Called once the headers are in: checks the version, the owner and the
        headers, and for POST/PATCH takes the upload's lock before any byte is read."""
        result = super().prepare()
        if result is not None:
            await result
        method = self.request.method
        if method == "OPTIONS":
            return
        check_version(self.request.headers)
        if not isinstance(self.upload_store, LocalTusStore):
            # Work-around: the server's eager first step (server/tornado_impl.py
            # execute_eagerly) runs a handler outside its Task until it suspends;
            # aiobotocore sets a ContextVar before its first await and resets it
            # after, which then fails ("Token created in a different Context"). One
            # yield here puts every S3 call inside the handler's Task.
            await asyncio.sleep(0)
        self.start_purger(self.application)
        if method == "POST":
            await self._prepare_creation()
        elif method == "PATCH":
            await self._prepare_patch()

    def options(self, *args: Any, **kwargs: Any) -> None:
        """Advertise the version, extensions, size limit and checksum algorithms."""
        self.set_header("Tus-Version", TUS_VERSION)
        self.set_header("Tus-Extension", ",".join(EXTENSIONS))
        self.set_header("Tus-Max-Size", str(self.limits_for(self.wf_settings).max_file_size))
        self.set_header("Tus-Checksum-Algorithm", ",".join(CHECKSUM_ALGORITHMS))
        super().options(*args, **kwargs)

    def _owner_key(self) -> str | None:
        owner = self.upload_owner()
        if owner is None:
            return None
        # Only a digest is written to disk: the state file never holds a session ID.
        return hashlib.sha256(b"webframe-tus|" + owner.encode("utf-8")).hexdigest()

    async def _own_state(self, upload_id: str | None) -> UploadState:
        """The state of an upload this request's owner may see, else 404 (410 once expired)."""
        if upload_id is None:
            raise NotFoundError(
                "Send HEAD, PATCH and DELETE to the upload's own URL (the Location "
                "answered at creation)."
            )
        state = await self.upload_store.load(upload_id) if is_upload_id(upload_id) else None
        owner = self._owner_key()
        if state is None or owner is None or not hmac.compare_digest(state.owner, owner):
            raise NotFoundError("There is no such upload.", quiet=True)
        if state.expires <= time.time():
            raise HTTPError("This upload has expired; start a new one.", status=410)
        return state

    async def _prepare_creation(self) -> None:
        if self._upload_id() is not None:
            raise MethodNotAllowedError(
                "POST goes to the creation URL; an upload's own URL takes HEAD, PATCH and DELETE.",
                quiet=True,
            )
        owner = self._owner_key()
        if owner is None:
            raise ForbiddenError("Open a session (load a page) before uploading.")
        creation = read_creation(self.request.headers, self.limits_for(self.wf_settings))
        now = time.time()
        state = UploadState(
            id=new_upload_id(),
            owner=owner,
            length=creation.length,
            metadata=creation.metadata,
            raw_metadata=creation.raw_metadata,
            filename=creation.filename,
            raw_filename=creation.raw_filename,
            content_type=creation.declared_type,
            check_type=creation.check_type,
            created=now,
            expires=now + self.expires_after,
        )
        store = self.upload_store
        try:
            await store.create(state)
            lock = await store.try_lock(state.id)
        except OSError as exc:
            raise self._storage_error(exc) from None
        assert lock is not None  # nobody else knows the ID yet
        await self._open_patch(state, lock, creation.checksum, creation.body_size)

    async def _open_patch(
        self,
        state: UploadState,
        lock: TusLock,
        checksum: tuple[str, bytes] | None,
        body_size: int | None,
    ) -> None:
        try:
            self._patch = await self.upload_store.open_writer(state, lock, checksum)
            if body_size:
                self._patch.expect(body_size)
        except OSError as exc:
            raise self._storage_error(exc) from None

    def _storage_error(self, exc: OSError) -> InsufficientStorageError:
        log.error("resumable upload storage in %s: %s", self.upload_store.where, exc)
        return InsufficientStorageError("The upload could not be stored right now; try later.")

    async def _prepare_patch(self) -> None:
        upload_id = self._upload_id()
        state = await self._own_state(upload_id)
        request = read_patch(self.request.headers)
        lock = await self.upload_store.try_lock(state.id)
        if lock is None:
            raise HTTPError(
                "Another request is writing to this upload; wait for it, then HEAD for the offset.",
                status=409,
            )
        try:
            fresh = await self.upload_store.load(state.id)
            if fresh is None:
                raise NotFoundError("There is no such upload.", quiet=True)
            state = fresh
            apply_patch(request, state, self.limits_for(self.wf_settings).max_file_size)
        except BaseException:
            lock.release()
            raise
        if state.finished:
            # Complete and handed to the app: its bytes are gone, an empty PATCH at
            # the end (a client making sure) is answered with the final offset.
            lock.release()
            self._done_state = state
            return
        await self._open_patch(state, lock, request.checksum, request.body_size)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        """Called for each piece of a POST/PATCH body: appended to the upload's data
        (an awaitable while a full S3 part is sent: flow control)."""
        patch = self._patch
        if patch is None or not patch.open:
            return None
        state = patch.state
        end = patch.start + patch.received + len(chunk)
        if state.length is not None and end > state.length:
            raise PayloadTooLargeError(
                f"The chunk goes past the upload's length of {state.length} bytes."
            )
        if state.length is None and end > self.limits_for(self.wf_settings).max_file_size:
            raise too_large(end, self.limits_for(self.wf_settings).max_file_size)
        try:
            pending = patch.write(chunk)
        except OSError as exc:
            raise self._storage_error(exc) from None
        return None if pending is None else self._wait_write(pending)

    async def _wait_write(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except OSError as exc:
            raise self._storage_error(exc) from None

    # methods -----------------------------------------------------------------

    async def post(self, upload_id: str | None = None) -> None:
        """Creation (with upload): answers 201 with ``Location`` and ``Upload-Offset``."""
        patch = self._patch
        assert patch is not None
        location = self.request.path.rstrip("/") + "/" + patch.state.id
        try:
            state = await self._commit(patch)
        except ChecksumMismatchError:
            await self._terminate(patch)
            raise
        self.set_header("Location", location)
        self._offset_headers(state)
        self.set_status(201)
        await self._finish_if_complete(state)
        await self._release_now()  # before the answer: the client may go on at once
        self.finish()

    async def patch(self, upload_id: str | None = None) -> None:
        """Append the body at ``Upload-Offset``: answers 204 with the new ``Upload-Offset``."""
        patch = self._patch
        if patch is None:
            assert self._done_state is not None
            state = self._done_state
        else:
            state = await self._commit(patch)
        self._offset_headers(state)
        self.set_status(204)
        await self._finish_if_complete(state)
        await self._release_now()  # before the answer: the client may go on at once
        self.finish()

    async def head(self, upload_id: str | None = None) -> None:
        """The upload's offset and length (never cached)."""
        state = await self._own_state(upload_id)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Upload-Offset", str(state.offset))
        if state.length is None:
            self.set_header("Upload-Defer-Length", "1")
        else:
            self.set_header("Upload-Length", str(state.length))
        if state.raw_metadata:
            self.set_header("Upload-Metadata", state.raw_metadata)
        self.set_header("Upload-Expires", http_date(state.expires))
        self.set_status(200)
        self.finish()

    async def delete(self, upload_id: str | None = None) -> None:
        """Termination: the upload and its bytes are removed (204)."""
        state = await self._own_state(upload_id)
        lock = await self.upload_store.try_lock(state.id)
        if lock is None:
            raise HTTPError(
                "A request is writing to this upload; try again once it ends.", status=409
            )
        try:
            await self.upload_store.delete(state.id)
            forget_hash(state.id)
        finally:
            lock.release()
        self.set_status(204)
        self.finish()

    def _offset_headers(self, state: UploadState) -> None:
        self.set_header("Upload-Offset", str(state.offset))
        self.set_header("Upload-Expires", http_date(state.expires))

    # committing --------------------------------------------------------------

    async def _commit(self, patch: TusWriter) -> UploadState:
        """Check the chunk, make its bytes durable, then save (and so report) the offset."""
        state = patch.state
        store = self.upload_store
        try:
            if not patch.checksum_matches():
                patch.discard()  # the offset stays where it was
                raise ChecksumMismatchError()
            before = state.offset
            state.offset = await patch.make_durable()
        except OSError as exc:
            raise self._storage_error(exc) from None
        if not state.type_checked and (state.offset >= SNIFF_BYTES or state.offset == state.length):
            head = await store.read_head(state, SNIFF_BYTES)
            state.sniffed_type = sniff_type(head)
            allowed = self.limits_for(self.wf_settings).allowed_types
            try:
                _check_type(state.check_type, state.sniffed_type, allowed, "Upload")
            except UploadError as exc:
                await self._terminate(patch)
                raise HTTPError(exc.message, status=exc.status) from None
            state.type_checked = True
        state.expires = time.time() + self.expires_after
        if state.length is not None and state.offset == state.length and not state.finished:
            self._completing_from = before  # saved once upload_finished() succeeds
            return state
        try:
            await store.save(state)
        except OSError as exc:
            raise self._storage_error(exc) from None
        return state

    async def _terminate(self, patch: TusWriter) -> None:
        """Remove an upload that can never be accepted (bad type, failed checksum at creation)."""
        self._patch = None
        patch.close()
        await self.upload_store.delete(patch.state.id)
        forget_hash(patch.state.id)

    async def _finish_if_complete(self, state: UploadState) -> None:
        """Hand a complete upload to :meth:`upload_finished`, then keep only its state."""
        if state.finished or state.length is None or state.offset != state.length:
            return
        store = self.upload_store
        try:
            upload = await store.finished_file(state, cached_sha256(state.id, state.offset))
        except OSError as exc:
            raise self._storage_error(exc) from None
        try:
            result = self.upload_finished(upload)
            if inspect.isawaitable(result):
                await result
        except BaseException:
            await self._not_handed_over(state)
            raise
        await store.mark_finished(state)
        forget_hash(state.id)

    async def _not_handed_over(self, state: UploadState) -> None:
        """The hook failed: drop the completing chunk so the client sends it again."""
        if self._completing_from is None:
            return  # completed by an earlier request: its state already says so
        offset, self._completing_from = self._completing_from, None
        forget_hash(state.id)
        try:
            await self.upload_store.undo_completion(state, offset)
        except OSError as exc:
            log.warning("resumable upload %s: could not drop the last chunk: %s", state.id[:8], exc)

    # clean-up ------------------------------------------------------------------

    def _release(self, keep_partial: bool) -> None:
        """End this request's hold on its upload; uncommitted bytes are kept (made
        durable, then reported) only when ``keep_partial`` and the chunk had no checksum."""
        patch, self._patch = self._patch, None
        if patch is None:
            return
        store = self.upload_store
        try:
            if patch.open and patch.received:
                complete = patch.start + patch.received == patch.state.length
                # A tail that completes the upload is not kept: the app must get the
                # file (upload_finished) before the upload is reported complete.
                if keep_partial and patch.checksum is None and not complete:
                    if isinstance(patch, ChunkWriter) and isinstance(store, LocalTusStore):
                        patch.state.offset = patch.make_durable_now()
                        patch.state.expires = time.time() + self.expires_after
                        store.save_now(patch.state)
                    else:
                        # Remote: kept in the background; the writer holds the lock
                        # (and closes) until the new offset is saved.
                        in_background(self._keep_partial(patch, store))
                        return
                else:
                    patch.discard()
        except OSError as exc:
            log.warning("resumable upload %s: clean-up failed: %s", patch.state.id[:8], exc)
        patch.close()

    async def _release_now(self) -> None:
        """:meth:`_release` for a request that went well, waiting until the lock is free."""
        patch, self._patch = self._patch, None
        if patch is None:
            return
        try:
            if patch.open and patch.received:
                patch.discard()
        except OSError as exc:
            log.warning("resumable upload %s: clean-up failed: %s", patch.state.id[:8], exc)
        await patch.aclose()

    async def _keep_partial(self, patch: TusWriter, store: TusStore) -> None:
        """Make a cut request's bytes durable, then save (report) the offset they reach."""
        try:
            patch.state.offset = await patch.make_durable()
            patch.state.expires = time.time() + self.expires_after
            await store.save(patch.state)
        except Exception as exc:
            log.warning(
                "resumable upload %s: the bytes of a cut request were not kept: %s",
                patch.state.id[:8],
                exc,
            )
        finally:
            patch.close()

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """Answer with an error; the upload's lock goes first, so a client retrying at
        once is not refused as a concurrent writer (unreported bytes are dropped)."""
        self._release(keep_partial=False)
        super().send_error(status_code, **kwargs)

    def on_connection_close(self) -> None:
        """The client went away mid-body: keep what arrived (tus clients resume from it)."""
        self._release(keep_partial=True)
        super().on_connection_close()

    def on_finish(self) -> None:
        """Called once the response is sent: the lock goes, unreported bytes are dropped."""
        self._release(keep_partial=False)
        super().on_finish()
