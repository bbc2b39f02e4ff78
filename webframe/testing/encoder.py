"""A ``multipart/form-data`` encoder for test requests (Tornado has none); it streams
files from disk, so a large body never sits in memory."""

from __future__ import annotations

import io
import mimetypes
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["FileSpec", "FileValue", "MultipartEncoder"]

FileValue = bytes | str | os.PathLike[str] | IO[bytes]
FileSpec = tuple[str, FileValue] | tuple[str, FileValue, str]


class MultipartEncoder:
    """Encode fields and files as ``multipart/form-data`` (Tornado has no encoder).

    ``files`` maps a field name to ``(filename, content[, content_type])`` or a list of
    them; content is bytes, a path (streamed from disk), or a binary file object.
    Use :attr:`content_type`, :attr:`length`, and either :meth:`to_bytes` or
    :meth:`body_producer` (streams, so a 1 GiB body never sits in memory).
    """

    chunk_size = 64 * 1024

    def __init__(
        self,
        fields: Mapping[str, str | Iterable[str]] | None = None,
        files: Mapping[str, FileSpec | list[FileSpec]] | None = None,
        boundary: str | None = None,
    ) -> None:
        self.boundary = boundary or "webframe" + secrets.token_hex(12)
        self._parts: list[bytes | tuple[Any, int]] = []
        for name, value in (fields or {}).items():
            values = [value] if isinstance(value, str) else list(value)
            for v in values:
                self._parts.append(self._head(name) + v.encode("utf-8") + b"\r\n")
        for name, spec in (files or {}).items():
            for one in spec if isinstance(spec, list) else [spec]:
                filename, content = one[0], one[1]
                ctype = one[2] if len(one) > 2 else None
                ctype = ctype or mimetypes.guess_type(filename)[0] or "application/octet-stream"
                self._parts.append(self._head(name, filename, ctype))
                self._parts.append(self._source(content))
                self._parts.append(b"\r\n")
        self._parts.append(f"--{self.boundary}--\r\n".encode())

    def _head(self, name: str, filename: str | None = None, ctype: str | None = None) -> bytes:
        disp = f'form-data; name="{_quote(name)}"'
        if filename is not None:
            disp += f'; filename="{_quote(filename)}"'
        head = f"--{self.boundary}\r\nContent-Disposition: {disp}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        return (head + "\r\n").encode("utf-8")

    @staticmethod
    def _source(content: FileValue) -> bytes | tuple[Any, int]:
        if isinstance(content, bytes):
            return content
        if isinstance(content, str | os.PathLike):
            return (Path(content), Path(content).stat().st_size)
        pos = content.tell()
        size = content.seek(0, io.SEEK_END) - pos
        content.seek(pos)
        return (content, size)

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header value, boundary included."""
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        """The body's size in bytes (for ``Content-Length``), without reading any file."""
        return sum(len(p) if isinstance(p, bytes) else p[1] for p in self._parts)

    def chunks(self) -> Iterable[bytes]:
        """The body, piece by piece."""
        for part in self._parts:
            if isinstance(part, bytes):
                yield part
                continue
            source, _size = part
            if isinstance(source, Path):
                with source.open("rb") as f:
                    while chunk := f.read(self.chunk_size):
                        yield chunk
            else:
                while chunk := source.read(self.chunk_size):
                    yield chunk

    def to_bytes(self) -> bytes:
        """The whole body in memory; for small bodies (use :meth:`body_producer` for big ones)."""
        return b"".join(self.chunks())

    async def body_producer(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        """For ``HTTPRequest(body_producer=...)``: stream the body with flow control."""
        for chunk in self.chunks():
            await write(chunk)

    def request_kwargs(self) -> dict[str, Any]:
        """``headers`` and ``body_producer`` for a streamed ``HTTPRequest``."""
        return {
            "headers": {"Content-Type": self.content_type, "Content-Length": str(self.length)},
            "body_producer": self.body_producer,
        }


def _quote(value: str) -> str:
    # What browsers do (WHATWG): percent-escape the characters that would end the value.
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")
