"""Part sinks: where a file part's bytes go, and the factory that opens one per part.

A sink is written synchronously from the parser's callbacks; an *asynchronous*
sink only queues there and writes when its :meth:`~PartSink.flush` is awaited,
before the next chunk is read (back-pressure). The local sink is
:class:`~.tempfile.TempFile`; a remote storage's is :class:`~.stored.StoredPart`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from .stored import StoredPart
from .tempfile import TempFile

if TYPE_CHECKING:
    from webframe.storage import Storage

    from .files import UploadedFile

__all__ = ["PartSink", "SinkFactory"]


class PartSink(Protocol):
    """Where one file part's bytes go; :class:`TempFile` and :class:`StoredPart` are two."""

    #: True if ``write()`` only queues and :meth:`flush` must be awaited before the next chunk.
    asynchronous: ClassVar[bool]
    size: int
    #: the first bytes (up to ``SNIFF_BYTES``), for the type check.
    head: bytearray

    def write(self, data: bytes | memoryview) -> None: ...

    async def flush(self) -> None: ...

    def finish(
        self, *, field_name: str, filename: str, raw_filename: str, content_type: str
    ) -> UploadedFile: ...

    def drop(self) -> asyncio.Task[None] | None: ...


class SinkFactory:
    """Opens the sink of each file part: a temp file, or a sink of a remote ``storage``."""

    def __init__(
        self,
        temp_dir: str | os.PathLike[str],
        *,
        checksum: bool = True,
        storage: Storage | None = None,
        key_for: Callable[[str], str | None] | None = None,
    ) -> None:
        self.temp_dir = Path(temp_dir)
        self.checksum = checksum
        self.storage = storage
        #: the key a stored file part is written to, from its cleaned file name (None:
        #: a temporary key; ``store()`` under the planned key then needs no copy).
        self.key_for = key_for

    def open(self, content_type: str, filename: str, room: int) -> PartSink:
        """A sink for a file called ``filename`` that may still receive ``room`` bytes."""
        if self.storage is None:
            return TempFile(self.temp_dir, self.checksum, room)
        planned = self.key_for(filename) if self.key_for is not None else None
        return StoredPart(self.storage, content_type, room or None, planned)
