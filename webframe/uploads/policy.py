"""What an upload may be: per-route limits, file-name rules and type sniffing.

Pure decisions, no I/O: :class:`UploadLimits` (frozen, safe defaults),
:func:`sniff_type` (a media type from a file's first bytes), :func:`check_name`
and :func:`check_type` (refuse with 415), and :func:`declared_type` (what a client
said a file is, normalised). The receivers, the tus handler and the storage sinks
all ask this module.
"""

from __future__ import annotations

import codecs
import dataclasses
import mimetypes
from dataclasses import dataclass
from typing import Final

from webframe.errors import UploadTypeError
from webframe.filenames import extension_of
from webframe.mediatypes import media_type_of
from webframe.units import KiB, MiB

__all__ = [
    "SNIFF_BYTES",
    "UploadLimits",
    "check_name",
    "check_type",
    "declared_type",
    "normal_media_type",
    "sniff_type",
    "type_allowed",
]

#: how many leading bytes of a file are kept to sniff its type.
SNIFF_BYTES: Final = 1 * KiB


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


def normal_media_type(value: str) -> str:
    """``type/subtype`` of a header value, lowercased, parameters dropped, aliases folded."""
    media = value.split(";", 1)[0].strip().lower()
    return _ALIASES.get(media, media)


def type_allowed(media_type: str, allowed: frozenset[str]) -> bool:
    """True if ``media_type`` matches ``allowed`` (exactly, ``major/*``, ``*/*`` or an alias)."""
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
    if guessed is None or not type_allowed(normal_media_type(guessed), allowed):
        kind = f" ({normal_media_type(guessed)})" if guessed else ""
        raise UploadTypeError(
            f"{what}: files ending in {ext!r}{kind} are not accepted here "
            f"(allowed types: {', '.join(sorted(allowed))})."
        )


def check_type(
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
    if not generic and not type_allowed(declared, allowed):
        raise UploadTypeError(f"{what}: type {declared!r} is not accepted here.")
    if sniffed is None:
        if generic:
            raise UploadTypeError(f"{what}: the file is empty and its type is unknown.")
        return
    if sniffed == "text/html" and not type_allowed("text/html", allowed):
        raise UploadTypeError(
            f"{what}: the content looks like HTML or script, not an allowed type."
        )
    if sniffed in _SNIFFABLE:
        if type_allowed(sniffed, allowed):
            return
        family = _CONTAINERS.get(sniffed, ())
        if not generic and declared.startswith(family):
            return
        raise UploadTypeError(f"{what}: the content is {sniffed}, which is not accepted here.")
    if generic:
        if not type_allowed(sniffed, allowed):
            raise UploadTypeError(f"{what}: the content is {sniffed}, which is not accepted here.")
    elif declared in _SNIFFABLE:
        raise UploadTypeError(f"{what}: the content is not {declared} as declared.")


def declared_type(header_value: str, filename: str) -> tuple[str, str]:
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
            check = normal_media_type(guessed)
    return declared, check
