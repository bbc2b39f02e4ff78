"""UploadHandler: multipart (or raw) request bodies streamed into part sinks as they arrive.

Subclass :class:`UploadHandler`; the body is parsed while it arrives (constant
memory), every limit in :class:`UploadLimits` is enforced as it streams, fields are
readable with ``get_body_argument`` and files are in ``self.uploads``. Any failure or
disconnect removes the request's temp files.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import tornado.web
from tornado.httputil import parse_body_arguments

from webframe.errors import (
    HTTPError,
    InsufficientStorageError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    UploadError,
)
from webframe.handler import RequestHandler
from webframe.server import tornado_impl
from webframe.storage import Storage
from webframe.storage.local import LocalStorage

from .files import UploadedFile
from .policy import UploadLimits
from .raw import RawBodyReceiver
from .receiver import MultipartReceiver

if TYPE_CHECKING:
    from webframe.settings import Settings

__all__ = ["UploadHandler", "UploadLimits", "UploadedFile", "upload_error"]


def upload_error(exc: UploadError) -> HTTPError:
    """The HTTP error answering an upload-layer error: the error itself.

    Upload errors are :class:`~webframe.errors.HTTPError` subclasses carrying their
    status; this stays for code written when they were a separate family.
    """
    return exc


def _declared_size(value: str | None) -> int | None:
    """A Content-Length the application already checked, as an int (None: chunked)."""
    if value is None or not value.isdigit() or not value.isascii():
        return None
    return int(value)


@tornado.web.stream_request_body
class UploadHandler(RequestHandler):
    """A handler whose request body streams to disk.

    ``upload_methods`` receive the body as uploads: a ``multipart/form-data`` body
    is parsed into fields and files; any other body sent with a method listed in
    ``raw_upload_methods`` becomes one file named by :meth:`raw_upload_filename`.
    Other methods get an ordinary (size-limited) body. The XSRF token is taken from
    the ``X-XSRFToken`` header or, for forms, from the ``_xsrf`` field once the body
    has been read (the files are removed if it does not match).
    """

    #: the route's limits; None: defaults with ``settings.max_upload_size`` as the
    #: largest body and file.
    upload_limits: ClassVar[UploadLimits | None] = None
    #: compute each file's SHA-256 while it streams (about a third of the CPU per
    #: byte); False computes it on first use of ``UploadedFile.sha256`` instead.
    checksum: ClassVar[bool] = True
    #: the receivers copy or write out every piece at once (see RequestHandler);
    #: a subclass overriding ``data_received`` to keep pieces must set this False.
    reuses_body_buffer: ClassVar[bool] = True
    upload_methods: ClassVar[tuple[str, ...]] = ("POST", "PUT")
    raw_upload_methods: ClassVar[tuple[str, ...]] = ("PUT",)

    _receiver: MultipartReceiver | RawBodyReceiver | None = None
    _plain_body: bytearray | None = None
    _xsrf_deferred = False
    _uploads: list[UploadedFile] | None = None

    @classmethod
    def limits_for(cls, settings: Settings) -> UploadLimits:
        """The limits in force for this route under ``settings``."""
        if cls.upload_limits is not None:
            return cls.upload_limits
        size = settings.max_upload_size
        # Room for the multipart framing around a file of the largest size.
        return UploadLimits(max_body_size=size + 64 * 1024, max_file_size=size)

    @classmethod
    def body_size_limit(cls, settings: Settings) -> int:
        """The largest request body this route accepts: ``max_body_size`` of its limits."""
        return cls.limits_for(settings).max_body_size

    @property
    def uploads(self) -> list[UploadedFile]:
        """The files received, in body order (empty before the body is read)."""
        if self._uploads is None:
            self._uploads = []
        return self._uploads

    @property
    def upload_storage(self) -> Storage | None:
        """The app's upload storage (``upload_storage`` setting); None outside a webframe app."""
        storage = getattr(self.application, "upload_storage", None)
        return storage if isinstance(storage, Storage) else None

    def upload_temp_dir(self) -> Path:
        """Where parts are written while they arrive: on the upload volume, so that
        ``UploadedFile.store()`` into local storage (or ``save()`` into the upload
        folder) is a link, not a copy."""
        storage = self.upload_storage
        base = (
            storage.root if isinstance(storage, LocalStorage) else Path(self.wf_settings.upload_dir)
        )
        temp = base / ".tmp"
        temp.mkdir(parents=True, exist_ok=True)
        return temp

    def upload_key(self, filename: str) -> str | None:
        """The key a file part will be kept under, if known before its bytes arrive.

        Called when a file part (``filename`` cleaned) starts streaming into a remote
        storage (S3). A key returned here is where the bytes go, so ``await
        upload.store(upload.key)`` only commits them: no copy inside the storage.
        None (the default): a temporary key, and ``store(key)`` copies. Local storage
        never calls it (its ``store()`` is a hard link either way).
        """
        return None

    def raw_upload_filename(self) -> str | None:
        """The name of a raw-body upload: the ``name`` path parameter by default."""
        name = self.path_kwargs.get("name")
        return str(name) if name is not None else None

    def check_xsrf_cookie(self) -> None:
        """Header tokens are checked now; a form's ``_xsrf`` field once it is parsed."""
        if self.request.method not in self.allowed_methods():
            super().check_xsrf_cookie()
        if (
            self.request.method in self.upload_methods
            and not self.request.headers.get("X-Xsrftoken")
            and not self.request.headers.get("X-Csrftoken")
        ):
            self._xsrf_deferred = True
            return
        super().check_xsrf_cookie()

    def prepare(self) -> Awaitable[None] | None:
        """Called once the headers are in: builds the streaming parser for the body."""
        method = self.request.method or ""
        if method in self.upload_methods:
            ctype = self.request.headers.get("Content-Type", "")
            body_size = _declared_size(self.request.headers.get("Content-Length"))
            storage = self.upload_storage
            # Local storage keeps the tuned temp files (linked into place on store());
            # any other storage gets the parts streamed into its sinks as they arrive.
            remote = None if storage is None or isinstance(storage, LocalStorage) else storage
            try:
                if ctype.split(";", 1)[0].strip().lower() == "multipart/form-data":
                    self._receiver = MultipartReceiver.from_content_type(
                        ctype,
                        self.limits_for(self.wf_settings),
                        self.upload_temp_dir(),
                        checksum=self.checksum,
                        body_size=body_size,
                        storage=remote,
                        key_for=self.upload_key,
                    )
                elif method in self.raw_upload_methods:
                    self._receiver = RawBodyReceiver(
                        self.limits_for(self.wf_settings),
                        self.upload_temp_dir(),
                        self.raw_upload_filename(),
                        ctype or None,
                        checksum=self.checksum,
                        body_size=body_size,
                        storage=remote,
                        key_for=self.upload_key,
                    )
                else:
                    raise UnsupportedMediaTypeError(
                        f"Send the upload as multipart/form-data, not {ctype[:60] or 'no type'}."
                    )
            except OSError as exc:
                raise InsufficientStorageError(
                    f"The upload folder cannot take files right now ({exc.strerror})."
                ) from None
        else:
            self._plain_body = bytearray()
        return super().prepare()

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        """Called for each piece of the body; raising an HTTPError stops the upload.

        Returns an awaitable while file bytes are being written to a remote storage,
        so that the next piece is read only once they are (back-pressure).
        """
        if self._receiver is not None:
            try:
                pending = self._receiver.feed(chunk)
            except UploadError as exc:
                receiver, self._receiver = self._receiver, None  # it removed its temp files
                if receiver.stores_remotely:
                    return self._refuse_after_abort(receiver, exc)
                raise
            if pending is not None:
                return self._await_stored(pending)
        elif self._plain_body is not None:
            self._plain_body += chunk
            limit = self.wf_settings.max_body_size
            if len(self._plain_body) > limit:
                self._plain_body = None
                raise PayloadTooLargeError(f"The request body is larger than {limit} bytes.")
        return None

    async def _await_stored(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except BaseException:
            self._receiver = None  # it aborted every part before raising
            raise

    async def _refuse_after_abort(
        self, receiver: MultipartReceiver | RawBodyReceiver, exc: UploadError
    ) -> None:
        # The answer goes out once the storage has dropped the parts (no orphans).
        await receiver.aclose()
        raise exc

    def on_body_complete(self) -> None:
        """Called by the application when the whole body has arrived, before the method."""
        if tornado_impl.handler_finished(self) or self.get_status() >= 400:
            # Already answered (prepare refused the request; the error page may still be
            # waiting on the session save): the body is moot. Raising here would fail a
            # body future nobody awaits anymore.
            self._xsrf_deferred = False
            self._discard_uploads()
            return
        receiver, self._receiver = self._receiver, None
        if isinstance(receiver, MultipartReceiver):
            fields, files = receiver.finish()
            self._attach_storage(files)
            self.uploads.extend(files)
            for name, values in fields.items():
                encoded = [v.encode("utf-8") for v in values]
                self.request.body_arguments.setdefault(name, []).extend(encoded)
                self.request.arguments.setdefault(name, []).extend(encoded)
        elif isinstance(receiver, RawBodyReceiver):
            upload = receiver.finish()
            self._attach_storage([upload])
            self.uploads.append(upload)
        elif self._plain_body is not None:
            self.request.body = bytes(self._plain_body)
            self._plain_body = None
            parse_body_arguments(
                self.request.headers.get("Content-Type", ""),
                self.request.body,
                self.request.body_arguments,
                self.request.files,
                self.request.headers,
            )
            for name, raw in self.request.body_arguments.items():
                self.request.arguments.setdefault(name, []).extend(raw)
        if self._xsrf_deferred:
            self._xsrf_deferred = False
            try:
                super().check_xsrf_cookie()
            except HTTPError:
                self._discard_uploads()
                raise

    def _attach_storage(self, files: list[UploadedFile]) -> None:
        storage = self.upload_storage
        for upload in files:
            if upload.storage is None:
                upload.storage = storage

    def _discard_uploads(self) -> None:
        if self._receiver is not None:
            self._receiver.abort()
            self._receiver = None
        for upload in self.uploads:
            upload.discard()

    def on_connection_close(self) -> None:
        """The client went away: remove every temp file of this request."""
        self._discard_uploads()
        super().on_connection_close()

    def on_finish(self) -> None:
        """Called once the response is sent: the temp files go (copies made by ``save()`` stay)."""
        self._discard_uploads()
        super().on_finish()

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """Answer with an error page; removes the temp files of a half-read upload first."""
        # An error before or during the body (limits, XSRF, a bug) drops the temp files.
        self._discard_uploads()
        super().send_error(status_code, **kwargs)
