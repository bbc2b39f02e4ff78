"""Send a file from disk or from storage: ranges, conditional requests, Content-Disposition.

``send_file`` streams in chunks and waits for each to be flushed, so memory
stays flat for any file size and a slow client slows the reading down.
"""

from __future__ import annotations

import contextlib
import email.utils
import mimetypes
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final
from urllib.parse import quote

import tornado.web
from tornado.iostream import StreamClosedError

from webframe.mediatypes import valid_media_type

if TYPE_CHECKING:
    from webframe.storage import Storage

__all__ = ["content_disposition", "send_file", "send_stored"]

# RFC 5987 attr-char minus ALPHA / DIGIT (which quote() never escapes).
_ATTR_CHARS: Final = "!#$&+-.^_`|~"
_RANGE: Final = re.compile(r"(\d{0,19})-(\d{0,19})")
_UNSAFE_ASCII: Final = re.compile(r'[\x00-\x1f\x7f"\\%]')


class _Unsatisfiable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Entity:
    """What the answer says about the content sent, whatever it is read from."""

    size: int
    mtime: float
    etag: str
    #: the file name for Content-Disposition.
    name: str
    as_attachment: bool
    content_type: str


def content_disposition(filename: str, *, as_attachment: bool = False) -> str:
    """Return a Content-Disposition value for ``filename`` that every browser reads safely.

    ``filename="..."`` is an ASCII fallback (accents folded, quotes, backslashes,
    percent signs and control characters removed); a non-ASCII name is also
    given as RFC 5987 ``filename*=UTF-8''...``, which modern browsers prefer.
    """
    kind = "attachment" if as_attachment else "inline"
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    # Cs: a lone surrogate (from a surrogateescape'd path) has no UTF-8 form.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    name = name.strip()
    if not name.strip(". "):
        name = "download"
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = _UNSAFE_ASCII.sub("", folded).strip()
    if not fallback.strip(". "):
        fallback = "download"
    elif fallback.startswith("."):  # only the extension was ASCII
        fallback = "download" + fallback
    value = f'{kind}; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
    return value


def _resolve_inside(root: str | Path, path: str | Path) -> str:
    """Return the real path of ``path`` under ``root``; 404 if it resolves outside ``root``."""
    try:
        real_root = os.path.realpath(root)
        target = os.path.realpath(os.path.join(real_root, path))
        inside = os.path.commonpath([real_root, target]) == real_root
    except (ValueError, OSError):  # NUL bytes, mixed drive letters
        inside = False
    if not inside or target == real_root:
        raise tornado.web.HTTPError(404)
    return target


def _http_date(timestamp: float) -> str:
    return email.utils.format_datetime(
        datetime.fromtimestamp(int(timestamp), timezone.utc), usegmt=True
    )


def _parse_http_date(value: str) -> float | None:
    """Seconds since the epoch of an HTTP date; None for anything unreadable."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        # OverflowError: a zone offset like +99999999999999999999.
        return None


def _etags(value: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()]


def _not_modified(headers: tornado.httputil.HTTPHeaders, etag: str, mtime: float) -> bool:
    """Whether a conditional GET/HEAD should get 304 (If-None-Match wins over If-Modified-Since)."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        # Weak comparison, as RFC 9110 §13.1.2 asks for If-None-Match.
        tags = _etags(if_none_match)
        return "*" in tags or etag in tags
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since is not None:
        since = _parse_http_date(if_modified_since)
        return since is not None and int(mtime) <= since
    return False


def _if_range_allows(value: str | None, etag: str, mtime: float) -> bool:
    """Whether If-Range lets the Range header apply (strong ETag or exact date match)."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    date = _parse_http_date(value)
    return date is not None and date == int(mtime)


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """Return the (first, last) byte of a single range, or None to ignore the header.

    Multiple ranges (``bytes=0-1,5-6``) are ignored and the whole file is sent:
    a multipart/byteranges response buys little over a 200 and is a known
    amplification vector. Raises ``_Unsatisfiable`` for a valid but
    unsatisfiable range (answered with 416).
    """
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE.fullmatch(spec.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    if last != "" and int(last) < start:
        return None  # syntactically invalid: ignored, not unsatisfiable
    if start >= size:
        raise _Unsatisfiable
    return start, size - 1 if last == "" else min(int(last), size - 1)


def _guess_type(*names: str) -> str:
    for name in names:
        guessed, encoding = mimetypes.guess_type(name, strict=False)
        if encoding == "gzip":
            # Not Content-Encoding: the client should save the .gz, not unpack it.
            return "application/gzip"
        if encoding is not None:
            return "application/octet-stream"
        if guessed:
            return guessed
    return "application/octet-stream"


def _content_type(given: str | None, filename: str | None, real: str) -> str:
    """``given`` if it is a well-formed media type, else the type the names suggest.

    The given type often comes from a client (an upload's declared type): a
    value that is not ``type/subtype`` (``text/日本``) could not be sent as a
    header at all, so it is replaced rather than failing every download.
    """
    if given and valid_media_type(given):
        return given.strip()
    return _guess_type(*(n for n in (filename, real) if n))


async def send_file(
    handler: tornado.web.RequestHandler,
    path: str | Path,
    *,
    root: str | Path,
    filename: str | None = None,
    as_attachment: bool = False,
    content_type: str | None = None,
    chunk_size: int = 64 * 1024,
) -> None:
    """Send the file at ``path`` (relative to ``root``) as the whole response, then finish it.

    Raises ``tornado.web.HTTPError(404)`` before anything is sent if the path
    resolves (symlinks followed) outside ``root`` or is not a regular file.
    Answers 304 for a matching If-None-Match / If-Modified-Since, 206 for a
    single satisfiable Range (honouring If-Range), 416 for an unsatisfiable
    one, and 200 otherwise; HEAD gets the headers only. A client that goes
    away mid-transfer ends the send quietly.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    real = _resolve_inside(root, path)
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        raise tornado.web.HTTPError(404) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise tornado.web.HTTPError(404)
    with open(fd, "rb", buffering=0) as file:
        entity = _Entity(
            info.st_size,
            info.st_mtime,
            f'"{info.st_size:x}-{info.st_mtime_ns:x}"',
            filename or os.path.basename(real),
            as_attachment,
            _content_type(content_type, filename, real),
        )
        await _send_open_file(handler, file, entity, chunk_size)


async def _send_open_file(
    handler: tornado.web.RequestHandler, file: BinaryIO, entity: _Entity, chunk_size: int
) -> None:
    body = await _answer_head(handler, entity)
    if body is None:
        return
    start, length = body
    file.seek(start)
    remaining = length
    try:
        while remaining > 0:
            chunk = file.read(min(chunk_size, remaining))
            if not chunk:
                _drop(handler)
                return
            remaining -= len(chunk)
            handler.write(chunk)
            await handler.flush()
    except StreamClosedError:
        return
    await _finish(handler)


def _drop(handler: tornado.web.RequestHandler) -> None:
    """The content shrank while being sent: the promised length cannot be met, so
    drop the connection rather than send a short body as whole."""
    close = getattr(handler.request.connection, "close", None)
    if close is not None:
        close()


async def _answer_head(
    handler: tornado.web.RequestHandler, entity: _Entity
) -> tuple[int, int] | None:
    """Set the status and headers for sending ``entity``; return ``(start, length)``
    of the body to send, or None once a bodyless answer (304, 416, HEAD) is finished."""
    size, mtime, etag = entity.size, entity.mtime, entity.etag
    request = handler.request
    headers = request.headers
    method = request.method
    handler.set_header("ETag", etag)
    handler.set_header("Last-Modified", _http_date(mtime))
    handler.set_header("Accept-Ranges", "bytes")
    handler.set_header("X-Content-Type-Options", "nosniff")
    if method in ("GET", "HEAD") and _not_modified(headers, etag, mtime):
        handler.set_status(304)
        await _finish(handler)
        return None
    handler.set_header("Content-Type", entity.content_type)
    handler.set_header(
        "Content-Disposition", content_disposition(entity.name, as_attachment=entity.as_attachment)
    )

    start, length = 0, size
    range_header = headers.get("Range")
    if (
        range_header is not None
        and method in ("GET", "HEAD")
        and _if_range_allows(headers.get("If-Range"), etag, mtime)
    ):
        try:
            byte_range = _parse_range(range_header, size)
        except _Unsatisfiable:
            handler.set_status(416)
            handler.set_header("Content-Range", f"bytes */{size}")
            handler.set_header("Content-Length", 0)
            await _finish(handler)
            return None
        if byte_range is not None:
            start, last = byte_range
            length = last - start + 1
            handler.set_status(206)
            handler.set_header("Content-Range", f"bytes {start}-{last}/{size}")
    handler.set_header("Content-Length", length)
    if method == "HEAD":
        await _finish(handler)
        return None
    return start, length


async def send_stored(
    handler: tornado.web.RequestHandler,
    storage: Storage,
    key: str,
    *,
    filename: str | None = None,
    as_attachment: bool = False,
    content_type: str | None = None,
    presigned: bool = False,
    expires: int = 300,
) -> None:
    """Send the object ``key`` of ``storage`` as the whole response, then finish it.

    The same answers as :func:`send_file` (304, 206, 416, HEAD, Content-Disposition
    from ``filename``, the stored content type unless ``content_type`` is given),
    streamed chunk by chunk, each flushed before the next is read. A missing object
    is a 404, a storage that cannot be reached a 503, both before anything is sent.
    ``presigned=True`` answers 307 with a URL of the storage valid for ``expires``
    seconds instead, where the backend can sign one (S3); elsewhere it streams.
    """
    name = filename or key.rsplit("/", 1)[-1]
    if presigned and storage.supports_presigned_urls:
        info = await storage.stat(key)
        url = await storage.presigned_url(
            key,
            expires,
            filename=name,
            content_type=_content_type(content_type or info.content_type, filename, key),
            as_attachment=as_attachment,
        )
        handler.set_header("Cache-Control", "private, no-store")
        handler.redirect(url, status=307)
        return
    info = await storage.stat(key)
    entity = _Entity(
        info.size,
        info.modified.timestamp(),
        f'"{info.etag}"',
        name,
        as_attachment,
        _content_type(content_type or info.content_type, filename, key),
    )
    body = await _answer_head(handler, entity)
    if body is None:
        return
    start, length = body
    if length == 0:
        await _finish(handler)
        return
    reader = await storage.open_read(key, start, start + length)
    remaining = length
    try:
        async with reader:
            async for chunk in reader:
                remaining -= len(chunk)
                handler.write(chunk)
                await handler.flush()
    except StreamClosedError:
        return
    except tornado.web.HTTPError:
        if remaining == length:
            raise  # nothing sent yet: the error page can still go out (a 503)
        _drop(handler)  # the storage failed mid-body: the client sees a cut transfer
        return
    if remaining != 0:
        _drop(handler)
        return
    await _finish(handler)


async def _finish(handler: tornado.web.RequestHandler) -> None:
    with contextlib.suppress(StreamClosedError):
        await handler.finish()
