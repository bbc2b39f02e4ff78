"""What an upload becomes: limits, errors, type sniffing, temp files and ``UploadedFile``.

The receivers in :mod:`webframe.multipart` parse bodies; this module holds what
they share and what a handler gets back: :class:`UploadLimits` (per-route
limits), the ``UploadError`` family (each carrying its HTTP status),
:func:`sniff_type` and the declared-vs-sniffed type check, the temp file a part
streams into, and :class:`UploadedFile` with its never-overwriting ``save()``.
No network I/O happens here.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import dataclasses
import errno
import hashlib
import mimetypes
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from webframe.filenames import clean_filename, extension_of
from webframe.mediatypes import media_type_of

if TYPE_CHECKING:
    from webframe.storage import ObjectInfo, Storage

__all__ = [
    "BadUploadError",
    "UploadError",
    "UploadLimits",
    "UploadStorageError",
    "UploadTooLargeError",
    "UploadTypeError",
    "UploadedFile",
    "sniff_type",
]

KiB: Final = 1024
MiB: Final = 1024 * KiB

# How many leading bytes of a file are kept to sniff its type.
SNIFF_BYTES: Final = 1 * KiB
# Small on purpose: 64 KiB chunk writes bypass it, only slivers (split
# boundaries, 1-byte feeds) get coalesced; a big buffer only adds a memcpy.
_WRITE_BUFFER: Final = 16 * KiB
#: larger pieces are written to the temp file in slices of this size. Measured on
#: 1 GiB uploads (Linux 6.18, ext4, in a VM): 1 MiB writes made the kernel's copy into
#: the page cache cost 1.3-1.7 CPU s/GiB in all, varying with what ran before; 256 KiB
#: slices a steady 1.11-1.17 (128 KiB 1.14-1.25, 512 KiB 1.34-1.55).
_WRITE_SLICE: Final = 256 * KiB
_COPY_BUFFER: Final = 1 * MiB
#: a temp file that may grow past this (its ``room``) gets its disk space reserved
#: ahead of the writes, _PREALLOC_STEP first, then doubling, never past the room;
#: what was not used is given back when it closes. Writing into reserved space
#: spares ext4 its per-block work in write(): 0.03-0.045 CPU s/GiB of 0.21 measured
#: (1 GiB uploads, Linux 6.18, ext4); it also refuses an upload the disk cannot hold
#: (507) after one window instead of after the disk fills.
_PREALLOC_MIN: Final = 1 * MiB
_PREALLOC_STEP: Final = 8 * MiB
#: what fallocate() failing with these means: the space is not there (507).
_NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


# --------------------------------------------------------------------- errors


class UploadError(Exception):
    """An upload was refused; ``status`` is the HTTP status to answer with."""

    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadUploadError(UploadError):
    """400: the body is not well-formed multipart/form-data."""

    status = 400


class UploadTooLargeError(UploadError):
    """413: a limit of ``UploadLimits`` was exceeded."""

    status = 413


class UploadTypeError(UploadError):
    """415: a file's extension or content type is not allowed."""

    status = 415


class UploadStorageError(UploadError):
    """507: the upload could not be written to disk (disk full, I/O error)."""

    status = 507


def _storage_error(exc: OSError) -> UploadStorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UploadStorageError(
            "The server's disk is full, so the upload could not be stored; try again later."
        )
    return UploadStorageError(f"The upload could not be stored: {exc.strerror or exc}.")


def _folder_error(folder: Path, what: str, exc: OSError) -> UploadStorageError:
    """The error for a folder an upload cannot be saved into, naming the folder."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full"
    elif isinstance(exc, FileExistsError) and exc.errno is None:
        reason = str(exc)  # _link_unique ran out of free names
    else:
        reason = exc.strerror or str(exc)
    return UploadStorageError(f"The upload folder {str(folder)!r} {what}: {reason}.")


def _load_fallocate() -> Callable[[int, int, int], bool] | None:
    """Linux ``fallocate(fd, 0, offset, length)`` through ctypes, or None elsewhere.

    Not ``os.posix_fallocate``: where the filesystem cannot allocate, glibc's
    version falls back to writing a byte into every block, which for a 1 GiB
    upload is 262,144 writes. The system call just says it is not supported.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = getattr(libc, "fallocate64", None) or libc.fallocate
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    call.restype = ctypes.c_int

    def fallocate(fd: int, offset: int, length: int) -> bool:
        """Reserve ``length`` bytes at ``offset``; False if the filesystem cannot.

        Raises ``OSError`` when the space is not there (ENOSPC, EDQUOT, EFBIG).
        """
        if call(fd, 0, offset, length) == 0:
            return True
        code = ctypes.get_errno()
        if code in _NO_SPACE:
            raise OSError(code, os.strerror(code))
        return False  # EOPNOTSUPP, EINTR, ...: write without reserving

    return fallocate


_fallocate = _load_fallocate()


# --------------------------------------------------------------------- limits


@dataclass(frozen=True)
class UploadLimits:
    """Per-route upload limits; every default is safe for a public site.

    ``allowed_extensions`` (like ``{".png", ".jpg"}``) and ``allowed_types``
    (like ``{"image/*", "application/pdf"}``) are ``None`` to allow anything.
    """

    max_body_size: int = 100 * MiB
    max_file_size: int = 100 * MiB
    max_files: int = 10
    max_fields: int = 100
    max_field_size: int = 64 * KiB
    max_part_header_size: int = 8 * KiB
    max_parts: int = 1000
    allowed_extensions: frozenset[str] | None = None
    allowed_types: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int) and value < 0:
                raise ValueError(f"UploadLimits.{field.name} must be >= 0, not {value}")
        if self.allowed_extensions is not None:
            exts = frozenset(
                ("." + e.lower().lstrip(".")) for e in self.allowed_extensions if e.strip(".")
            )
            object.__setattr__(self, "allowed_extensions", exts)
        if self.allowed_types is not None:
            types = frozenset(t.strip().lower() for t in self.allowed_types)
            for t in types:
                if t.count("/") != 1:
                    raise ValueError(f"UploadLimits.allowed_types: {t!r} is not a type/subtype")
            object.__setattr__(self, "allowed_types", types)

    def replace(self, **changes: object) -> UploadLimits:
        """Return a copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------------- sniffing

_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"PK\x07\x08", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
)
# Markup a browser would render as active content if it ever sniffed it.
_HTML_STARTS: Final = (
    b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<svg", b"<iframe",
    b"<?xml", b"<!--", b"<a ", b"<img", b"<div", b"<style", b"<title", b"<meta",
)  # fmt: skip
# Found anywhere in the sniffed bytes: scripts hidden after a harmless start.
_HTML_ANYWHERE: Final = (b"<script", b"<html", b"<svg", b"<iframe", b"javascript:")
_WHITESPACE: Final = b" \t\r\n\x0c"
_TEXT_CONTROLS: Final = bytes(c for c in range(32) if c not in b"\t\n\r\x0c") + b"\x7f"


def sniff_type(first_bytes: bytes) -> str | None:
    """Guess a media type from a file's first bytes; ``None`` when there are none.

    Known magic numbers win; then anything that looks like HTML/SVG/script is
    ``text/html`` (so it is refused where only images are allowed); then valid
    UTF-8 without control characters is ``text/plain``; the rest is
    ``application/octet-stream``.
    """
    if not first_bytes:
        return None
    for magic, media_type in _MAGIC:
        if first_bytes.startswith(magic):
            return media_type
    if first_bytes[:4] == b"RIFF" and first_bytes[8:12] == b"WEBP":
        return "image/webp"
    head = first_bytes.removeprefix(b"\xef\xbb\xbf").lstrip(_WHITESPACE).lower()
    if head.startswith(_HTML_STARTS) or any(m in head for m in _HTML_ANYWHERE):
        return "text/html"
    if first_bytes.translate(None, _TEXT_CONTROLS) != first_bytes:
        return "application/octet-stream"
    try:
        # Not final: the sniffed bytes may end in the middle of a character.
        codecs.getincrementaldecoder("utf-8")().decode(first_bytes, final=False)
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


_SNIFFABLE: Final = frozenset(t for _, t in _MAGIC) | {"image/webp", "text/html"}
_GENERIC: Final = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_ALIASES: Final = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-gzip": "application/gzip",
    "application/x-zip-compressed": "application/zip",
    "application/x-zip": "application/zip",
    "application/x-pdf": "application/pdf",
    "application/xhtml+xml": "text/html",
    "image/svg+xml": "text/html",
}
# Formats that are zip/gzip files inside: a declared type of this family may
# sniff as the container.
_CONTAINERS: Final = {
    "application/zip": (
        "application/vnd.openxmlformats-officedocument.",
        "application/vnd.oasis.opendocument.",
        "application/epub+zip",
        "application/java-archive",
        "application/vnd.android.package-archive",
    ),
    "application/gzip": ("application/x-tar", "application/x-compressed-tar"),
}


def _media_type(value: str) -> str:
    media = value.split(";", 1)[0].strip().lower()
    return _ALIASES.get(media, media)


def _type_allowed(media_type: str, allowed: frozenset[str]) -> bool:
    major = media_type.split("/", 1)[0]
    return (
        media_type in allowed
        or f"{major}/*" in allowed
        or "*/*" in allowed
        or any(_ALIASES.get(a) == media_type for a in allowed)
    )


def check_name(filename: str, limits: UploadLimits, what: str) -> None:
    """Refuse (415) a cleaned file name the route does not accept.

    Its extension must be in ``allowed_extensions``, and, when ``allowed_types`` is
    set, the type its extension stands for must be allowed too: ``a.jpg.php`` holding
    PNG bytes is still a ``.php`` file to any server that later serves it.
    """
    ext = extension_of(filename)
    allowed_ext = limits.allowed_extensions
    if allowed_ext is not None and ext not in allowed_ext:
        raise UploadTypeError(
            f"{what}: files named like {filename!r} are not accepted here "
            f"(allowed extensions: {', '.join(sorted(allowed_ext)) or 'none'})."
        )
    allowed = limits.allowed_types
    if allowed is None or not ext:
        return
    guessed, _encoding = mimetypes.guess_type("name" + ext, strict=False)
    if guessed is None or not _type_allowed(_media_type(guessed), allowed):
        kind = f" ({_media_type(guessed)})" if guessed else ""
        raise UploadTypeError(
            f"{what}: files ending in {ext!r}{kind} are not accepted here "
            f"(allowed types: {', '.join(sorted(allowed))})."
        )


def _check_type(
    declared: str, sniffed: str | None, allowed: frozenset[str] | None, what: str
) -> None:
    """Refuse (415) unless both the declared and the sniffed type are acceptable.

    A missing or generic declared type (``application/octet-stream``) means
    "unknown" and leaves the decision to the sniffed type. A declared type the
    sniffer knows (``image/png``) must agree with the bytes. HTML never passes
    unless ``text/html`` itself is allowed.
    """
    if allowed is None:
        return
    generic = declared in _GENERIC
    if not generic and not _type_allowed(declared, allowed):
        raise UploadTypeError(f"{what}: type {declared!r} is not accepted here.")
    if sniffed is None:
        if generic:
            raise UploadTypeError(f"{what}: the file is empty and its type is unknown.")
        return
    if sniffed == "text/html" and not _type_allowed("text/html", allowed):
        raise UploadTypeError(
            f"{what}: the content looks like HTML or script, not an allowed type."
        )
    if sniffed in _SNIFFABLE:
        if _type_allowed(sniffed, allowed):
            return
        family = _CONTAINERS.get(sniffed, ())
        if not generic and declared.startswith(family):
            return
        raise UploadTypeError(f"{what}: the content is {sniffed}, which is not accepted here.")
    if generic:
        if not _type_allowed(sniffed, allowed):
            raise UploadTypeError(f"{what}: the content is {sniffed}, which is not accepted here.")
    elif declared in _SNIFFABLE:
        raise UploadTypeError(f"{what}: the content is not {declared} as declared.")


def _declared_type(header_value: str, filename: str) -> tuple[str, str]:
    """Return (declared type, type to check) for a file part or raw body.

    The declared type is the value's ``type/subtype``, lowercased and without
    parameters; a value that is not a well-formed media type (RFC 6838 names,
    RFC 9110 parameters: ``text/日本``, ``a/b/c``, ``text/ plain``) counts as
    ``application/octet-stream``, as if none were sent: it could not be sent
    back in a header, so it is not kept.
    """
    media = media_type_of(header_value)
    declared = _ALIASES.get(media, media) if media else "application/octet-stream"
    check = declared
    if declared in _GENERIC:
        # Clients that do not know the type (requests, some scripts) send none:
        # judge by the file name, as a browser would have.
        guessed, encoding = mimetypes.guess_type(filename, strict=False)
        if encoding == "gzip":
            guessed = "application/gzip"
        if guessed:
            check = _media_type(guessed)
    return declared, check


# ------------------------------------------------------------- uploaded files


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
        from webframe.uploadstorage import store_file

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


_NO_LINK_ERRNOS: Final = frozenset(
    {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)


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
            if exc.errno in _NO_LINK_ERRNOS:
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


# ----------------------------------------------------------------- temp files


class _TempFile:
    """One file being received: a buffered temp file, running size and sha256.

    ``room`` is the most bytes the file can still receive (the rest of the
    declared body, capped by the file limit; 0 when unknown): from it, disk space
    is reserved ahead of the writes (see _PREALLOC_MIN) and trimmed on ``close()``.
    """

    __slots__ = ("_allocated", "_file", "_room", "hash", "head", "path", "size")

    def __init__(self, temp_dir: Path, checksum: bool = True, room: int = 0) -> None:
        try:
            fd, name = tempfile.mkstemp(dir=temp_dir, prefix="upload-", suffix=".part")
        except OSError as exc:
            raise _storage_error(exc) from exc
        self.path = Path(name)
        try:
            self._file: BinaryIO | None = open(fd, "wb", buffering=_WRITE_BUFFER)  # noqa: SIM115
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        self.hash = hashlib.sha256() if checksum else None
        self.head = bytearray()
        self.size = 0
        self._room = room if room >= _PREALLOC_MIN and _fallocate is not None else 0
        self._allocated = 0

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None
        try:
            if self._room and self.size + len(data) > self._allocated:
                self._reserve(self.size + len(data))
            if len(data) > _WRITE_SLICE:
                view = memoryview(data)
                for start in range(0, len(view), _WRITE_SLICE):
                    self._file.write(view[start : start + _WRITE_SLICE])
            else:
                self._file.write(data)
        except OSError as exc:
            raise _storage_error(exc) from exc
        if self.hash is not None:
            self.hash.update(data)
        self.size += len(data)
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]

    def _reserve(self, end: int) -> None:
        """Reserve space up to at least ``end`` (within the room); raises OSError."""
        assert self._file is not None and _fallocate is not None
        target = min(self._room, max(end, 2 * self._allocated, _PREALLOC_STEP))
        if target <= self._allocated:  # past the room: the size limits will speak
            self._room = 0
        elif _fallocate(self._file.fileno(), self._allocated, target - self._allocated):
            self._allocated = target
        else:
            self._room = 0  # this filesystem cannot: plain writes from now on

    def close(self) -> None:
        """Flush, give back unused reserved space, close; a full disk may show up here."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
                try:
                    if self._allocated > self.size:
                        # The reserve extended the file: cut it back to what was written.
                        file.flush()
                        os.ftruncate(file.fileno(), self.size)
                finally:
                    file.close()
            except OSError as exc:
                raise _storage_error(exc) from exc

    def remove(self) -> None:
        """Close without flushing errors and delete the file."""
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()
        self.path.unlink(missing_ok=True)
