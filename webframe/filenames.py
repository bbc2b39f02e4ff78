"""Turn a client-supplied file name into one that is safe to store and serve.

Normalisation is NFKC, applied *first*: compatibility forms such as the
fullwidth solidus (U+FF0F), fullwidth full stop (U+FF0E) or superscript
digits (``COM¹``) fold into their ASCII look-alikes, which the separator, dot
and device-name rules below then see and handle. With NFC those look-alikes
would survive cleaning and could turn back into ``/`` or ``..`` in any later
NFKC step (some filesystems and tools apply one). NFKC also makes composed and
decomposed forms (``é`` vs ``e`` + U+0301) give the same result.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_filename", "extension_of"]

# Device names Windows refuses as file names, with or without an extension.
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
)

# ASCII punctuation kept as-is; everything else that is not a Unicode letter,
# digit or combining mark becomes "_".
_SAFE_PUNCTUATION = frozenset("._-+()[] ,~@=")
_KEPT_CATEGORIES = ("L", "N", "M")
# Format characters (bidi overrides such as U+202E) are dropped like control
# characters: they make "txt.exe" display as "exe.txt".
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_DOTS = re.compile(r"\.{2,}")
_SPACES = re.compile(r" {2,}")
# A suffix longer than this is not treated as an extension when truncating.
_MAX_EXTENSION = 16


def _safe_char(ch: str) -> str:
    if ch in _SAFE_PUNCTUATION:
        return ch
    if ch.isascii():
        return ch if ch.isalnum() else "_"
    if unicodedata.category(ch)[0] in _KEPT_CATEGORIES:
        return ch
    return "_"


def _truncate_utf8(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    # Cutting mid-character leaves a partial sequence; "ignore" drops it.
    return encoded[: max(max_bytes, 0)].decode("utf-8", "ignore")


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext or len(ext) + 1 > _MAX_EXTENSION:
        return name, ""
    return stem, "." + ext


def _tidy(name: str) -> str:
    name = _DOTS.sub(".", name)
    name = _SPACES.sub(" ", name)
    return name.lstrip(".- ").rstrip(". ")


def clean_filename(raw: str | None, *, max_length: int = 120, fallback: str = "upload") -> str:
    """Return a safe, non-empty file name derived from ``raw``.

    The result has no path separators, no control characters, no ``..``, no
    leading dot or dash, is not a Windows device name, and is at most
    ``max_length`` UTF-8 bytes (the extension is kept when truncating). When
    nothing usable is left, ``fallback`` (which must itself be safe) is returned.
    """
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    if not raw:
        return fallback
    name = unicodedata.normalize("NFKC", raw)
    # Last non-empty component, treating both separators alike: clients send
    # full Windows paths ("C:\\Users\\me\\x.txt") as well as POSIX ones.
    components = [part for part in name.replace("\\", "/").split("/") if part]
    if not components:
        return fallback
    name = components[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    name = "".join(_safe_char(ch) for ch in name)
    name = _tidy(name)
    if not name:
        return fallback

    name = _fit(name, max_length, fallback)
    if _is_device_name(name):
        # The "_" prefix survives truncation, so the result cannot be a device name.
        name = _fit("_" + name, max_length, fallback)
    return name


def _is_device_name(name: str) -> bool:
    return name.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_RESERVED


def _fit(name: str, max_length: int, fallback: str) -> str:
    """Cut ``name`` to ``max_length`` UTF-8 bytes, keeping its extension when it is short."""
    if len(name.encode("utf-8")) <= max_length:
        return name
    stem, ext = _split_extension(name)
    ext_bytes = len(ext.encode("utf-8"))
    if ext_bytes >= max_length // 2:
        stem, ext, ext_bytes = name, "", 0
    stem = _tidy(_truncate_utf8(stem, max_length - ext_bytes))
    name = _truncate_utf8((stem or fallback) + ext, max_length).rstrip(". ")
    return name or fallback


def extension_of(name: str) -> str:
    """Return the last extension of ``name``, lowercased: ``"a.jpg.PHP"`` gives ``".php"``.

    A leading dot alone (``".htaccess"``) is not an extension; trailing dots and
    spaces are ignored, as Windows ignores them when opening a file.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1].rstrip(". ")
    stem, dot, ext = base.rpartition(".")
    if not dot or not ext or not stem.strip("."):
        return ""
    return "." + ext.lower()
