"""Streaming multipart/form-data and raw-body receivers: bytes in, fields and files out.

This layer does no network I/O and knows nothing of Tornado: a handler feeds it
the chunks it receives and calls ``finish()`` at the end of the body. Parsing is
done by python-multipart's callback ``MultipartParser``; this module adds the
limits, the temp files, type checks and clean-up. File parts go straight to
temp files (constant memory); fields stay in memory, each capped in size.

On any exception raised from ``feed()`` or ``finish()`` the receiver has
already removed every temp file it created, so a caller never has to.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import errno
import hashlib
import mimetypes
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from webframe.filenames import clean_filename, extension_of

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = [
    "BadUploadError",
    "MultipartReceiver",
    "RawBodyReceiver",
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

# RFC 2046 allows 70 characters; real clients stay well under 200.
MAX_BOUNDARY_LENGTH: Final = 200
# Only CR/LF may precede the first boundary (python-multipart refuses anything
# else); this caps how many.
MAX_PREAMBLE: Final = 1 * KiB
# Bytes tolerated after the closing boundary (clients add a CRLF or so).
MAX_EPILOGUE: Final = 1 * KiB
MAX_HEADERS_PER_PART: Final = 16
# How many leading bytes of a file are kept to sniff its type.
SNIFF_BYTES: Final = 1 * KiB
# Small on purpose: 64 KiB chunk writes bypass it, only slivers (split
# boundaries, 1-byte feeds) get coalesced; a big buffer only adds a memcpy.
_WRITE_BUFFER: Final = 16 * KiB
_COPY_BUFFER: Final = 1 * MiB
_BOUNDARY_CHARS: Final = frozenset(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? "
)


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


def _size(n: int) -> str:
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    if n >= KiB and n % KiB == 0:
        return f"{n // KiB} KiB"
    return f"{n} bytes"


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
    """Return (declared type as sent, type to check) for a file part."""
    declared = _media_type(header_value) or "application/octet-stream"
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
        path: Path,
    ) -> None:
        self.field_name = field_name
        self.filename = filename
        self.raw_filename = raw_filename
        self.content_type = content_type
        self.sniffed_type = sniffed_type
        self.size = size
        self._sha256 = sha256
        self.path = path

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
        return open(self.path, "rb")  # the caller closes it

    def read(self) -> bytes:
        """Return the whole content; only for small files."""
        return self.path.read_bytes()

    def save(self, folder: str | os.PathLike[str], name: str | None = None) -> Path:
        """Store the file in ``folder`` under a unique name and return its path.

        ``name`` (cleaned) defaults to ``filename``; if taken, ``-1``, ``-2``…
        is added before the extension. An existing file is never overwritten
        and the final name appears only once the content is complete: it is a
        hard link to the temp file, or (across filesystems) a link to a
        complete copy staged in ``folder``.
        """
        directory = Path(folder)
        wanted = clean_filename(name) if name is not None else self.filename
        try:
            return _link_unique(self.path, directory, wanted)
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
    raise FileExistsError(f"no free name for {name!r} in {directory}")


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
    raise FileExistsError(f"no free name for {name!r} in {directory}")


# ----------------------------------------------------------------- temp files


class _TempFile:
    """One file being received: a buffered temp file, running size and sha256."""

    __slots__ = ("_file", "hash", "head", "path", "size")

    def __init__(self, temp_dir: Path, checksum: bool = True) -> None:
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

    def write(self, data: bytes | memoryview) -> None:
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as exc:
            raise _storage_error(exc) from exc
        if self.hash is not None:
            self.hash.update(data)
        self.size += len(data)
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]

    def close(self) -> None:
        """Flush and close; a full disk may only show up here."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
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


# ------------------------------------------------------------ multipart body


class _FilePart:
    __slots__ = ("checked", "declared", "field_name", "filename", "raw_filename", "temp", "type")

    def __init__(
        self, field_name: str, raw_filename: str, content_type: str, temp: _TempFile
    ) -> None:
        self.field_name = field_name
        self.raw_filename = raw_filename
        self.filename = clean_filename(raw_filename)
        self.declared, self.type = _declared_type(content_type, self.filename)
        self.temp = temp
        self.checked = False


class _FieldPart:
    __slots__ = ("name", "value")

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = bytearray()


def _header_text(value: bytes) -> str:
    # Browsers send UTF-8 names raw in the header (RFC 7578 §4.2); old clients latin-1.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def boundary_from_content_type(content_type: str) -> bytes:
    """Return the boundary of a ``multipart/form-data`` Content-Type header value.

    Raises ``UploadTypeError`` for another media type and ``BadUploadError`` for
    a missing, too long or invalid boundary.
    """
    media, params = parse_options_header(content_type)
    if media != b"multipart/form-data":
        raise UploadTypeError(
            f"Expected a multipart/form-data body, got {media.decode('latin-1') or 'none'!r}."
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadUploadError("The multipart Content-Type header has no boundary parameter.")
    _validate_boundary(boundary)
    return boundary


def _validate_boundary(boundary: bytes) -> None:
    if not boundary:
        raise BadUploadError("The multipart boundary is empty.")
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise BadUploadError(
            f"The multipart boundary is {len(boundary)} characters long; "
            f"at most {MAX_BOUNDARY_LENGTH} are accepted (RFC 2046 allows 70)."
        )
    if not set(boundary) <= _BOUNDARY_CHARS or boundary.endswith(b" "):
        raise BadUploadError("The multipart boundary contains characters RFC 2046 does not allow.")


class MultipartReceiver:
    """Receive a multipart/form-data body fed in chunks of any size.

    Call ``feed(chunk)`` for each chunk, then ``finish()`` for the fields and
    files, or ``abort()`` if the request goes away. Every limit is enforced
    while streaming; any error removes the temp files before it propagates.
    ``checksum=False`` skips hashing while streaming (about a third of the
    CPU per byte); ``UploadedFile.sha256`` is then computed on first access.
    """

    def __init__(
        self,
        boundary: bytes,
        limits: UploadLimits,
        temp_dir: str | os.PathLike[str],
        *,
        checksum: bool = True,
    ) -> None:
        _validate_boundary(boundary)
        self._checksum = checksum
        self.limits = limits
        self.temp_dir = Path(temp_dir)
        self._boundary = boundary
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        self._parser = MultipartParser(
            boundary,
            callbacks,
            max_header_count=MAX_HEADERS_PER_PART,
            max_header_size=limits.max_part_header_size,
        )
        self._received = 0
        self._parts = 0
        self._field_count = 0
        self._file_count = 0
        self._started = False
        self._ended = False
        self._epilogue = 0
        self._closed = False
        self._fields: dict[str, list[str]] = {}
        self._files: list[UploadedFile] = []
        self._temps: list[_TempFile] = []
        self._part: _FilePart | _FieldPart | None = None
        self._headers: dict[str, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._header_bytes = 0
        self._on_data: Callable[[bytes, int, int], None] = self._ignore_data

    @classmethod
    def from_content_type(
        cls,
        content_type: str,
        limits: UploadLimits,
        temp_dir: str | os.PathLike[str],
        *,
        checksum: bool = True,
    ) -> MultipartReceiver:
        """Build a receiver from a request's Content-Type header value."""
        return cls(boundary_from_content_type(content_type), limits, temp_dir, checksum=checksum)

    # public API

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body; raises ``UploadError`` subclasses."""
        if self._closed:
            raise RuntimeError("this MultipartReceiver is finished or aborted")
        try:
            self._received += len(chunk)
            if self._received > self.limits.max_body_size:
                raise UploadTooLargeError(
                    f"The request body is larger than {_size(self.limits.max_body_size)} "
                    "(max_body_size)."
                )
            was_ended = self._ended
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise self._parse_error(exc) from exc
            if self._ended:
                self._count_epilogue(chunk, was_ended)
            elif not self._started and self._received > MAX_PREAMBLE + len(self._boundary) + 4:
                raise BadUploadError("The body does not start with the multipart boundary.")
        except BaseException:
            self._cleanup()
            raise

    def finish(self) -> tuple[dict[str, list[str]], list[UploadedFile]]:
        """Check the body ended properly; return ``(fields, files)``.

        The files' temp files now belong to the caller (``discard()`` them).
        """
        if self._closed:
            raise RuntimeError("this MultipartReceiver is finished or aborted")
        try:
            if not self._ended:
                if self._received == 0:
                    raise BadUploadError("The multipart body is empty.")
                raise BadUploadError(
                    "The multipart body ended before its closing boundary (upload interrupted?)."
                )
            self._parser.finalize()
        except BaseException:
            self._cleanup()
            raise
        self._closed = True
        return self._fields, self._files

    def abort(self) -> None:
        """Stop receiving and delete every temp file; no-op after ``finish()``."""
        if not self._closed:
            self._cleanup()

    @property
    def bytes_received(self) -> int:
        """Body bytes fed so far."""
        return self._received

    # internals

    def _cleanup(self) -> None:
        self._closed = True
        for temp in self._temps:
            temp.remove()
        self._temps.clear()
        self._files.clear()
        self._part = None

    def _parse_error(self, exc: MultipartParseError) -> UploadError:
        text = str(exc)
        if text.startswith("Maximum header size"):
            return UploadTooLargeError(
                f"A part's headers are larger than {_size(self.limits.max_part_header_size)} "
                "(max_part_header_size)."
            )
        if text.startswith("Maximum header count"):
            return BadUploadError(f"A part has more than {MAX_HEADERS_PER_PART} headers.")
        if not self._started:
            return BadUploadError("The body does not start with the multipart boundary.")
        return BadUploadError(f"The multipart body is malformed: {text}.")

    def _count_epilogue(self, chunk: bytes, was_ended: bool) -> None:
        if was_ended:
            self._epilogue += len(chunk)
        else:
            closing = b"--" + self._boundary + b"--"
            at = chunk.rfind(closing)
            # The closing boundary may straddle chunks; then it ends near the start.
            end = at + len(closing) if at >= 0 else len(closing)
            self._epilogue += max(0, len(chunk) - end)
        if self._epilogue > MAX_EPILOGUE:
            raise BadUploadError("Unexpected data after the closing multipart boundary.")

    def _on_part_begin(self) -> None:
        self._started = True
        self._parts += 1
        if self._parts > self.limits.max_parts:
            raise UploadTooLargeError(
                f"The body has more than {self.limits.max_parts} parts (max_parts)."
            )
        self._headers = {}
        self._header_bytes = 0

    def _add_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.limits.max_part_header_size:
            raise UploadTooLargeError(
                f"A part's headers are larger than {_size(self.limits.max_part_header_size)} "
                "(max_part_header_size)."
            )

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._add_header_bytes(end - start)
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._add_header_bytes(end - start)
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._header_name.decode("latin-1").strip().lower()
        if name == "content-disposition" and name in self._headers:
            raise BadUploadError("A part has two Content-Disposition headers.")
        self._headers[name] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition")
        if disposition is None:
            raise BadUploadError("A part of the body has no Content-Disposition header.")
        kind, params = parse_options_header(disposition)
        if kind != b"form-data":
            raise BadUploadError("A part's Content-Disposition is not form-data.")
        raw_name = params.get(b"name")
        if not raw_name:
            raise BadUploadError("A part of the body has no field name.")
        name = _header_text(raw_name)
        raw_filename = params.get(b"filename")
        if raw_filename is None:
            self._field_count += 1
            if self._field_count > self.limits.max_fields:
                raise UploadTooLargeError(
                    f"The form has more than {self.limits.max_fields} fields (max_fields); "
                    f"refused at field {name!r}."
                )
            self._part = _FieldPart(name)
            self._on_data = self._on_field_data
            return
        self._file_count += 1
        if self._file_count > self.limits.max_files:
            raise UploadTooLargeError(
                f"The form has more than {self.limits.max_files} files (max_files); "
                f"refused at field {name!r}."
            )
        temp = _TempFile(self.temp_dir, self._checksum)
        self._temps.append(temp)
        content_type = _header_text(self._headers.get("content-type", b""))
        part = _FilePart(name, _header_text(raw_filename), content_type, temp)
        self._part = part
        self._on_data = self._on_file_data
        # filename="" is what browsers send for an empty file input: checks
        # wait for content, and a part with none is skipped (see _on_part_end).
        if part.raw_filename:
            self._check_extension(part)

    def _check_extension(self, part: _FilePart) -> None:
        allowed = self.limits.allowed_extensions
        if allowed is not None and extension_of(part.filename) not in allowed:
            shown = ", ".join(sorted(allowed)) or "none"
            raise UploadTypeError(
                f"Field {part.field_name!r}: files named like {part.filename!r} are not "
                f"accepted here (allowed extensions: {shown})."
            )

    def _check_content(self, part: _FilePart) -> None:
        part.checked = True
        _check_type(
            part.type,
            sniff_type(bytes(part.temp.head)),
            self.limits.allowed_types,
            f"Field {part.field_name!r}",
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._on_data(data, start, end)

    def _ignore_data(self, data: bytes, start: int, end: int) -> None:
        pass

    def _on_field_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert isinstance(part, _FieldPart)
        if len(part.value) + (end - start) > self.limits.max_field_size:
            raise UploadTooLargeError(
                f"Field {part.name!r} is larger than {_size(self.limits.max_field_size)} "
                "(max_field_size)."
            )
        part.value += data[start:end]

    def _on_file_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert isinstance(part, _FilePart)
        temp = part.temp
        if temp.size == 0 and not part.raw_filename:
            self._check_extension(part)
        if temp.size + (end - start) > self.limits.max_file_size:
            raise UploadTooLargeError(
                f"File field {part.field_name!r} is larger than "
                f"{_size(self.limits.max_file_size)} (max_file_size)."
            )
        temp.write(memoryview(data)[start:end])
        if not part.checked and len(temp.head) >= SNIFF_BYTES:
            self._check_content(part)

    def _on_part_end(self) -> None:
        part, self._part = self._part, None
        self._on_data = self._ignore_data
        if isinstance(part, _FieldPart):
            try:
                value = part.value.decode("utf-8")
            except UnicodeDecodeError:
                raise BadUploadError(f"Field {part.name!r} is not valid UTF-8 text.") from None
            self._fields.setdefault(part.name, []).append(value)
        elif isinstance(part, _FilePart):
            temp = part.temp
            if not part.raw_filename and temp.size == 0:
                # No file chosen in the browser: not an upload at all.
                temp.remove()
                self._temps.remove(temp)
                self._file_count -= 1
                return
            if not part.checked:
                self._check_content(part)
            temp.close()
            self._files.append(
                UploadedFile(
                    field_name=part.field_name,
                    filename=part.filename,
                    raw_filename=part.raw_filename,
                    content_type=part.declared,
                    sniffed_type=sniff_type(bytes(temp.head)),
                    size=temp.size,
                    sha256=temp.hash.hexdigest() if temp.hash is not None else None,
                    path=temp.path,
                )
            )

    def _on_end(self) -> None:
        self._ended = True


# ------------------------------------------------------------------ raw body


class RawBodyReceiver:
    """Receive a raw request body (``PUT /files/{name}``) into one temp file.

    Size is capped by the smaller of ``max_body_size`` and ``max_file_size``;
    extension and type rules are those of multipart file parts.
    """

    def __init__(
        self,
        limits: UploadLimits,
        temp_dir: str | os.PathLike[str],
        filename: str | None,
        content_type: str | None,
        *,
        field_name: str = "",
        checksum: bool = True,
    ) -> None:
        self.limits = limits
        self._raw_filename = filename or ""
        self._filename = clean_filename(filename)
        self._field_name = field_name
        self._declared, self._check = _declared_type(content_type or "", self._filename)
        self._max = min(limits.max_body_size, limits.max_file_size)
        allowed = limits.allowed_extensions
        if allowed is not None and extension_of(self._filename) not in allowed:
            raise UploadTypeError(
                f"Files named like {self._filename!r} are not accepted here "
                f"(allowed extensions: {', '.join(sorted(allowed)) or 'none'})."
            )
        self._temp: _TempFile | None = _TempFile(Path(temp_dir), checksum)
        self._checked = False

    def feed(self, chunk: bytes) -> None:
        """Append the next chunk of the body to the temp file."""
        temp = self._temp
        if temp is None:
            raise RuntimeError("this RawBodyReceiver is finished or aborted")
        try:
            if temp.size + len(chunk) > self._max:
                raise UploadTooLargeError(
                    f"The uploaded file is larger than {_size(self._max)} "
                    "(max_file_size / max_body_size)."
                )
            temp.write(chunk)
            if not self._checked and len(temp.head) >= SNIFF_BYTES:
                self._check_content(temp)
        except BaseException:
            self.abort()
            raise

    def finish(self) -> UploadedFile:
        """Close the temp file and return it as an ``UploadedFile`` owned by the caller."""
        temp = self._temp
        if temp is None:
            raise RuntimeError("this RawBodyReceiver is finished or aborted")
        try:
            if not self._checked:
                self._check_content(temp)
            temp.close()
        except BaseException:
            self.abort()
            raise
        self._temp = None
        return UploadedFile(
            field_name=self._field_name,
            filename=self._filename,
            raw_filename=self._raw_filename,
            content_type=self._declared,
            sniffed_type=sniff_type(bytes(temp.head)),
            size=temp.size,
            sha256=temp.hash.hexdigest() if temp.hash is not None else None,
            path=temp.path,
        )

    def abort(self) -> None:
        """Delete the temp file; no-op after ``finish()``."""
        temp, self._temp = self._temp, None
        if temp is not None:
            temp.remove()

    def _check_content(self, temp: _TempFile) -> None:
        self._checked = True
        _check_type(self._check, sniff_type(bytes(temp.head)), self.limits.allowed_types, "Upload")
