"""A private file locker: streaming uploads with a progress bar, downloads, deletes.

Files are kept in the app's upload storage (the upload folder, or S3 with
``--upload-storage s3://bucket/prefix``) under a random key, never under the name
the browser sent, and every query is scoped to the logged-in owner: another user's
file is a 404, exactly like a file that never existed.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from webframe import (
    BadRequestError,
    ForbiddenError,
    InsufficientStorageError,
    NotFoundError,
    ResumableUploadHandler,
    ServiceUnavailableError,
    UploadedFile,
    UploadHandler,
    format_size,
    route,
)
from webframe.filenames import extension_of
from webframe.multipart import UploadStorageError
from webframe.storage import StorageFullError, StorageUnavailableError
from webframe.uploadstorage import StoredUpload

from .base import PageHandler

log = logging.getLogger(__name__)


class LockerMixin(PageHandler):
    def user_id(self) -> int:
        user = self.current_user
        if not user:
            raise ForbiddenError("Log in to use your file locker.")
        return int(user["id"])

    def file_key(self, user_id: int, stored_name: str) -> str:
        """The storage key of a stored file (``users/<id>/<name>``, as on disk before)."""
        return f"users/{user_id}/{stored_name}"

    async def remove_stored(self, user_id: int, stored_name: str) -> None:
        try:
            await self.application.upload_storage.delete(self.file_key(user_id, stored_name))
        except (StorageUnavailableError, StorageFullError) as exc:
            # The record is gone already; the object is only unreachable bytes now.
            log.error("file locker: could not delete %s: %s", stored_name, exc.message)

    def login_redirect(self) -> None:
        self.redirect(self.get_login_url() + "?" + urlencode({"next": self.request.uri or "/"}))

    async def own_file(self, file_id: int) -> Any:
        """The logged-in user's file ``file_id``; 404 for anyone else's, as for none."""
        row = await self.db.file_of(self.user_id(), file_id)
        if row is None:
            raise NotFoundError("There is no such file in your locker.")
        return row

    def file_json(self, row: Any) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "size": row["size"],
            "content_type": row["content_type"],
            "sha256": row["sha256"],
            "uploaded": row["uploaded"],
            "url": self.reverse_url("file", file_id=row["id"]),
        }

    def new_stored_name(self, filename: str) -> str:
        # A random name with the cleaned extension; the shown name is data.
        return secrets.token_hex(16) + extension_of(filename)

    async def store(self, owner: int, upload: UploadedFile) -> int:
        planned = upload.key if isinstance(upload, StoredUpload) else ""
        folder, _, stored_name = planned.rpartition("/")
        if folder != self.file_key(owner, "x").rpartition("/")[0]:
            # Not planned by upload_key() below (a tus upload, local storage): name it now.
            stored_name = self.new_stored_name(upload.filename)
        try:
            await upload.store(self.file_key(owner, stored_name), self.application.upload_storage)
        except (UploadStorageError, StorageFullError) as exc:
            # The message names a server folder: it goes to the log, not to the client.
            log.error("file locker: %s", exc.message)
            raise InsufficientStorageError(
                "Your file could not be stored right now; try again later."
            ) from None
        except StorageUnavailableError as exc:
            log.error("file locker: %s", exc.message)
            raise ServiceUnavailableError(
                "The file storage is unavailable; try again shortly."
            ) from None
        try:
            return await self.db.add_file(
                owner,
                upload.filename,
                stored_name,
                upload.size,
                upload.sniffed_type or upload.content_type,
                upload.sha256,
            )
        except BaseException:
            await self.remove_stored(owner, stored_name)
            raise


class LockerUpload(UploadHandler, LockerMixin):
    """Uploads into the locker; the uploader is known before a byte is stored."""

    def upload_key(self, filename: str) -> str | None:
        # On S3 the bytes stream straight to the key the file is kept under: storing
        # it is then a commit, not a copy of the whole object.
        return self.file_key(self.user_id(), self.new_stored_name(filename))

    async def prepare(self) -> None:
        await self.load_session()
        if not self.current_user:
            reading = self.request.method in ("GET", "HEAD")
            if reading and not self.wants_json():
                self.login_redirect()
                return
            # A script gets a 403 it can read, not a login page.
            raise ForbiddenError(
                "Log in to see your files." if reading else "Log in to upload files."
            )
        result = super().prepare()
        if result is not None:
            await result

    def error_message(self, status_code: int, exc: BaseException | None) -> str:
        # An upload over the size limit is told in the words of the upload form's
        # label ("100 MiB each, 100 MiB in all"): never the body limit with its
        # allowance for the multipart framing (which would read "100.1 MiB").
        if status_code == 413:
            message = self.too_large_message()
            if message is not None:
                return message
        return super().error_message(status_code, exc)

    def too_large_message(self) -> str | None:
        """The 413 message for a body over the file size limit (None otherwise)."""
        declared = self.request.headers.get("Content-Length", "").strip()
        if not declared.isdigit() or len(declared) > 18:
            return None
        size, limit = int(declared), self.limits_for(self.wf_settings).max_file_size
        if size <= limit:
            return None  # too many parts, a field too large...: the parser's own message
        shown, limit_text = format_size(size), format_size(limit)
        if shown.replace(".0 ", " ") == limit_text:
            shown = "just over " + limit_text
        return self.too_large_text(shown, limit_text)

    def too_large_text(self, size: str, limit: str) -> str:
        return f"This upload is {size}; the limit is {limit} per file and {limit} in all."

    async def store_all(self, owner: int, uploads: list[UploadedFile]) -> list[int]:
        """Store every upload, or none: a failure removes those already stored."""
        ids: list[int] = []
        try:
            for upload in uploads:
                ids.append(await self.store(owner, upload))
        except BaseException:
            for file_id in ids:
                await self.remove(owner, file_id)
            raise
        return ids

    async def remove(self, owner: int, file_id: int) -> None:
        row = await self.db.file_of(owner, file_id)
        if row is not None and await self.db.delete_file(owner, file_id):
            await self.remove_stored(owner, row["stored_name"])


@route("/files", name="files")
class FilesHandler(LockerUpload):
    """GET: the list and the upload form. POST: one or more files (multipart)."""

    upload_methods = ("POST",)
    raw_upload_methods = ()

    async def get(self) -> None:
        rows = await self.db.files_of(self.user_id())
        if self.wants_json():
            # For scripts: the same list as the page, one object per file.
            await self.json({"files": [self.file_json(r) for r in rows]})
            return
        limits = self.limits_for(self.wf_settings)
        self.render(
            "files.html",
            files=rows,
            limits=limits,
            max_file_size=format_size(limits.max_file_size),
            format_size=format_size,
        )

    async def post(self) -> None:
        owner = self.user_id()
        ids = await self.store_all(owner, self.uploads)
        saved = [await self.db.file_of(owner, file_id) for file_id in ids]
        rows = [r for r in saved if r is not None]
        from_page = self.request.headers.get("X-Requested-With") == "XMLHttpRequest"
        if rows and (from_page or not self.wants_json()):
            # The page's script reloads the list after a JSON answer: the message waits
            # in the session for that page, as it does for the no-JS redirect.
            self.flash(f"Uploaded {', '.join(r['name'] for r in rows)}.", "success")
        if self.wants_json():
            self.json({"files": [self.file_json(r) for r in rows]}, status=201)
            return
        if not rows:
            self.flash("Choose at least one file to upload.", "error")
        self.redirect(self.reverse_url("files"))


@route("/files/raw/{name}", name="file-raw")
class RawUploadHandler(LockerUpload):
    """PUT one file as the raw request body (for scripts: curl -T file URL)."""

    upload_methods = ("PUT",)
    raw_upload_methods = ("PUT",)

    def too_large_text(self, size: str, limit: str) -> str:
        # The body is the file itself.
        return f"This file is {size}; the limit is {limit} per file."

    async def put(self, name: str) -> None:
        owner = self.user_id()
        uploads = self.uploads
        # A multipart body is accepted when it carries exactly one file: refuse the
        # others before anything is stored (the temp files go when the request ends).
        if not uploads:
            raise BadRequestError(
                "The body has no file: send the file itself as the body "
                "(curl -T FILE URL), or exactly one multipart file part with a file name."
            )
        if len(uploads) > 1:
            raise BadRequestError(
                f"The body has {len(uploads)} files; PUT takes exactly one. "
                f"To upload several at once, POST them to {self.reverse_url('files')}."
            )
        file_id = await self.store(owner, uploads[0])
        self.set_header("Location", self.reverse_url("file", file_id=file_id))
        self.json(self.file_json(await self.db.file_of(owner, file_id)), status=201)


@route("/files/tus/", name="files-tus")
@route("/files/tus/{upload_id}", name="files-tus-upload")
class TusUploadHandler(ResumableUploadHandler, LockerMixin):
    """Resumable uploads (tus 1.0.0) into the locker: the page uses them for large
    files, with pause and resume; creation here, each upload at its own URL below.
    Same limits as the form; a finished upload joins the locker like a posted file."""

    async def prepare(self) -> None:
        await self.load_session()
        if not self.current_user and self.request.method != "OPTIONS":
            raise ForbiddenError("Log in to upload files.")
        await super().prepare()

    async def upload_finished(self, upload: UploadedFile) -> None:
        # Called only once every byte is in (and checked): nothing partial is listed.
        await self.store(self.user_id(), upload)
        self.flash(f"Uploaded {upload.filename}.", "success")


@route("/files/{file_id:int}", name="file")
class FileHandler(LockerMixin):
    """GET downloads (ranges, 304); DELETE removes (also POST with _method=DELETE)."""

    async def get(self, file_id: int) -> None:
        if not self.current_user:
            self.login_redirect()
            return
        row = await self.own_file(file_id)
        await self.send_stored(
            self.file_key(row["owner_id"], row["stored_name"]),
            filename=row["name"],
            as_attachment=True,
            content_type=row["content_type"],
        )

    async def post(self, file_id: int) -> None:
        # Only reached without _method: with _method=DELETE (the no-JS delete form)
        # prepare() has already turned the POST into a DELETE. Defining post() is what
        # lets that form's POST past the 405 check, which runs before prepare().
        await self.own_file(file_id)
        raise BadRequestError("To delete this file, send DELETE (or POST with _method=DELETE).")

    async def delete(self, file_id: int) -> None:
        row = await self.own_file(file_id)
        owner = self.user_id()
        if await self.db.delete_file(owner, file_id):
            await self.remove_stored(owner, row["stored_name"])
        if self.wants_json() or self.request.headers.get("X-Requested-With"):
            self.set_status(204)
            self.finish()
            return
        self.flash(f"Deleted {row['name']}.", "info")
        self.redirect(self.reverse_url("files"))


@route("/files/{file_id:int}/delete", name="file-delete")
class DeleteConfirmHandler(LockerMixin):
    """GET: the page that asks before a delete. The list's Delete links here, so a
    browser without JavaScript asks too; the page's script asks with a dialog instead
    and sends DELETE itself."""

    async def get(self, file_id: int) -> None:
        if not self.current_user:
            self.login_redirect()
            return
        row = await self.own_file(file_id)
        self.render("delete.html", file=row, size=format_size(row["size"]))
