"""``ResumableUploadHandler``: tus 1.0.0 uploads that survive dropped connections and restarts.

Subclass it, route it at a creation URL and at that URL plus ``{upload_id}``,
and override :meth:`ResumableUploadHandler.upload_finished` to keep the file::

    @route("/files/tus/", name="tus")
    @route("/files/tus/{upload_id}", name="tus-upload")
    class Uploads(ResumableUploadHandler):
        def upload_finished(self, upload: UploadedFile) -> None:
            upload.save("/srv/files")

The headers are read by :mod:`.rules` and :mod:`.protocol`; the bytes go through
:mod:`.writing` (durable before reported) into the store's writer, which keeps the
running SHA-256 of the upload (see :mod:`.chunks`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import tornado.web

from webframe.errors import (
    ForbiddenError,
    HTTPError,
    MethodNotAllowedError,
    NotFoundError,
)
from webframe.handler import RequestHandler
from webframe.storage import Storage
from webframe.uploads.files import UploadedFile
from webframe.uploads.policy import UploadLimits

from .base import TusLock, TusStore
from .chunks import forget_hash
from .localstore import LocalTusStore
from .protocol import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    TUS_VERSION,
    check_version,
    http_date,
)
from .purger import purger_started, start_purger
from .rules import Creation, PatchRequest, apply_patch, default_limits, read_creation, read_patch
from .store import UploadState, is_upload_id, new_upload_id
from .writing import UploadWrite, storage_error

if TYPE_CHECKING:
    from webframe.settings import Settings

__all__ = ["ResumableUploadHandler"]


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

    #: this POST/PATCH's write (see :mod:`.writing`), from prepare() until released.
    _write: UploadWrite | None = None
    #: a PATCH on an upload already finished: its state, answered as is.
    _done_state: UploadState | None = None

    # configuration -----------------------------------------------------------

    @classmethod
    def limits_for(cls, settings: Settings) -> UploadLimits:
        """The limits in force for this route under ``settings``."""
        if cls.upload_limits is not None:
            return cls.upload_limits
        return default_limits(settings.max_upload_size)

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
        if not purger_started(self.application, self.upload_store.where):
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
        state = creation.new_state(new_upload_id(), owner, time.time(), self.expires_after)
        store = self.upload_store
        try:
            await store.create(state)
            lock = await store.try_lock(state.id)
        except OSError as exc:
            raise storage_error(store, exc) from None
        assert lock is not None  # nobody else knows the ID yet
        await self._open_write(state, lock, creation)

    async def _open_write(
        self, state: UploadState, lock: TusLock, request: Creation | PatchRequest
    ) -> None:
        limits = self.limits_for(self.wf_settings)
        self._write = await UploadWrite.open(
            self.upload_store, state, lock, request.checksum, request.body_size, limits,
            self.expires_after,
        )  # fmt: skip

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
        await self._open_write(state, lock, request)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        """Called for each piece of a POST/PATCH body: appended to the upload's data
        (an awaitable while a full S3 part is sent: flow control)."""
        write = self._write
        return None if write is None else write.write(chunk)

    # methods -----------------------------------------------------------------

    async def post(self, upload_id: str | None = None) -> None:
        """Creation (with upload): answers 201 with ``Location`` and ``Upload-Offset``."""
        write = self._write
        assert write is not None
        location = self.request.path.rstrip("/") + "/" + write.state.id
        state = await self._commit(write, creation=True)
        self.set_header("Location", location)
        self._offset_headers(state)
        self.set_status(201)
        await write.hand_over(state, self.upload_finished)
        await self._release_now()  # before the answer: the client may go on at once
        self.finish()

    async def patch(self, upload_id: str | None = None) -> None:
        """Append the body at ``Upload-Offset``: answers 204 with the new ``Upload-Offset``."""
        write = self._write
        if write is None:
            assert self._done_state is not None
            state = self._done_state
        else:
            state = await self._commit(write)
            await write.hand_over(state, self.upload_finished)
        self._offset_headers(state)
        self.set_status(204)
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

    # committing and letting go -------------------------------------------------

    async def _commit(self, write: UploadWrite, creation: bool = False) -> UploadState:
        """:meth:`UploadWrite.commit`; a refused type (or, at ``creation``, checksum)
        has removed the upload."""
        try:
            return await write.commit(creation)
        except HTTPError:
            if not write.writer.open:
                self._write = None  # terminated: nothing left to release
            raise

    def _release(self, keep_partial: bool) -> None:
        """End this request's hold on its upload (see :meth:`UploadWrite.release`)."""
        write, self._write = self._write, None
        if write is not None:
            write.release(keep_partial)

    async def _release_now(self) -> None:
        """:meth:`_release` for a request that went well, waiting until the lock is free."""
        write, self._write = self._write, None
        if write is not None:
            await write.release_now()

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
