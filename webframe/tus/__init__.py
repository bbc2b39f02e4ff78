"""Resumable uploads with the tus 1.0.0 protocol (https://tus.io).

:class:`ResumableUploadHandler` is the endpoint; :mod:`.protocol` reads and writes
the headers with no I/O; :mod:`.store` keeps each upload's state and bytes on
local disk.
"""

from __future__ import annotations

from .handler import ResumableUploadHandler
from .protocol import CHECKSUM_ALGORITHMS, EXTENSIONS, TUS_VERSION
from .store import LocalUploadStore, UploadState

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "EXTENSIONS",
    "TUS_VERSION",
    "LocalUploadStore",
    "ResumableUploadHandler",
    "UploadState",
]
