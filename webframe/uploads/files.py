"""What a handler gets for each file it received: :class:`UploadedFile`.

The bytes sit in a temp file until the request ends; ``save()`` puts them in a
folder under a name that is never overwritten, ``store()`` keeps them in a
:class:`~webframe.storage.Storage`. Uploads received straight into a remote
storage are :class:`~webframe.uploads.stored.StoredUpload`, a subclass.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from webframe.errors import UploadStorageError
from webframe.filenames import clean_filename
from webframe.units import MiB

if TYPE_CHECKING:
    from webframe.storage import ObjectInfo, Storage

__all__ = ["NO_LINK_ERRNOS", "UploadedFile"]

_COPY_BUFFER: Final = 1 * MiB
#: what ``os.link`` failing with these means: this filesystem (or pair of them)
#: cannot hard-link, so the bytes must be copied instead.
NO_LINK_ERRNOS: Final = frozenset(
    {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)


def _folder_error(folder: Path, what: str, exc: OSError) -> UploadStorageError:
    """The error for a folder an upload cannot be saved into, naming the folder."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full"
    elif isinstance(exc, FileExistsError) and exc.errno is None:
        reason = str(exc)  # _link_unique ran out of free names
    else:
        reason = exc.strerror or str(exc)
    return UploadStorageError(f"The upload folder {str(folder)!r} {what}: {reason}.")


class UploadedFile:
    """A file received into a temp file; ``save()`` it or ``discard()`` it.

    The temp file stays until ``discard()``: the HTTP layer discards every
    upload when the request ends, so ``save()`` links (or copies) rather than moves.
    """

    __slots__ = (
        "_sha256",
        "content_type",
        "field_name",
        "filename",
        "path",
        "raw_filename",
        "size",
        "sniffed_type",
        "storage",
    )

    def __init__(
        self,
        *,
        field_name: str,
        filename: str,
        raw_filename: str,
        content_type: str,
        sniffed_type: str | None,
        size: int,
        sha256: str | None,
        path: Path | None,
        storage: Storage | None = None,
    ) -> None:
        self.field_name = field_name
        self.filename = filename
        self.raw_filename = raw_filename
        self.content_type = content_type
        self.sniffed_type = sniffed_type
        self.size = size
        self._sha256 = sha256
        #: the temp file holding the bytes (None for an upload held in a remote storage).
        self.path = path
        #: the storage :meth:`store` writes to when given none (the app's upload storage).
        self.storage = storage

    def __repr__(self) -> str:
        return (
            f"UploadedFile(field_name={self.field_name!r}, filename={self.filename!r}, "
            f"content_type={self.content_type!r}, size={self.size})"
        )

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the content: computed while streaming, or now if the
        receiver was built with ``checksum=False``."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            with self.open() as fh:
                while block := fh.read(_COPY_BUFFER):
                    digest.update(block)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def open(self) -> BinaryIO:
        """Open the received bytes for reading (binary)."""
        return open(self._local_path(), "rb")  # the caller closes it

    def read(self) -> bytes:
        """Return the whole content; only for small files."""
        return self._local_path().read_bytes()

    def _local_path(self) -> Path:
        if self.path is None:
            raise UploadStorageError(f"The upload {self.filename!r} has no local file.")
        return self.path

    async def store(self, key: str, storage: Storage | None = None) -> ObjectInfo:
        """Keep the upload as the object ``key`` of ``storage`` (default: ``self.storage``,
        the app's ``upload_storage``) and describe it; call it before the request ends.

        On local storage the temp file is hard-linked into place (atomic, no copy);
        elsewhere its bytes stream into the storage. An upload received straight into
        a storage (S3) is copied there server-side. Storage errors (503, 507) propagate.
        """
        from .stored import store_file  # stored.py builds on this module

        target = storage if storage is not None else self.storage
        if target is None:
            raise UploadStorageError(
                "This upload has no storage to go to: pass one, or receive it through "
                "an UploadHandler (which uses the app's upload_storage)."
            )
        return await store_file(self, target, key)

    def save(self, folder: str | os.PathLike[str], name: str | None = None) -> Path:
        """Store the file in ``folder`` under a unique name and return its path.

        ``name`` (cleaned) defaults to ``filename``; if taken, ``-1``, ``-2``…
        is added before the extension. An existing file is never overwritten
        and the final name appears only once the content is complete: it is a
        hard link to the temp file, or (across filesystems) a link to a
        complete copy staged in ``folder``. A missing ``folder`` is created (with
        its parents). Raises ``UploadStorageError`` naming the folder when it
        cannot be created or written to.
        """
        directory = Path(folder)
        wanted = clean_filename(name) if name is not None else self.filename
        source = self._local_path()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _folder_error(directory, "could not be created", exc) from exc
        try:
            return self._save_into(directory, wanted)
        except OSError as exc:
            if not source.exists():
                raise UploadStorageError(
                    f"The upload {self.filename!r} was already discarded; save it before "
                    "the request ends."
                ) from exc
            raise _folder_error(directory, f"could not take {wanted!r}", exc) from exc

    def _save_into(self, directory: Path, wanted: str) -> Path:
        try:
            return _link_unique(self._local_path(), directory, wanted)
        except _LinkUnsupportedError:
            pass
        fd, staged_name = tempfile.mkstemp(dir=directory, prefix=".saving-", suffix=".part")
        staged = Path(staged_name)
        try:
            with open(fd, "wb") as out, self.open() as src:
                shutil.copyfileobj(src, out, _COPY_BUFFER)
                out.flush()
                os.fsync(out.fileno())
            try:
                return _link_unique(staged, directory, wanted)
            except _LinkUnsupportedError:
                return _replace_unique(staged, directory, wanted)
        finally:
            staged.unlink(missing_ok=True)

    def discard(self) -> None:
        """Delete the temp file (saved copies are kept); safe to call twice."""
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


class _LinkUnsupportedError(Exception):
    pass


def _candidates(name: str) -> list[str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    else:
        ext = "." + ext
    names = [name]
    for n in [*range(1, 100), *(secrets.token_hex(4) for _ in range(20))]:
        suffix = f"-{n}{ext}"
        cut = stem
        while cut and len((cut + suffix).encode("utf-8")) > 120:
            cut = cut[:-1]
        names.append((cut or "upload") + suffix)
    return names


def _link_unique(source: Path, directory: Path, name: str) -> Path:
    for candidate in _candidates(name):
        target = directory / candidate
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in NO_LINK_ERRNOS:
                raise _LinkUnsupportedError from exc
            raise
        return target
    raise FileExistsError(f"every name like {name!r} is taken")


def _replace_unique(staged: Path, directory: Path, name: str) -> Path:
    # Last resort where hard links are unsupported: claim the name with an
    # exclusive create, then atomically replace the placeholder we own.
    for candidate in _candidates(name):
        target = directory / candidate
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        os.replace(staged, target)
        return target
    raise FileExistsError(f"every name like {name!r} is taken")
