"""Resumable uploads with the tus 1.0.0 protocol (https://tus.io).

:class:`ResumableUploadHandler` (:mod:`.handler`) is the endpoint: :mod:`.protocol`
and :mod:`.rules` read and check the headers with no I/O, :mod:`.writing` takes a
request's body to durable, reported bytes. Stores (:mod:`.base`): local disk
(:mod:`.store`, :mod:`.localstore`, the chunk writer in :mod:`.chunks` with
:mod:`.diskio`) and S3 (:mod:`.s3store`, with :mod:`.s3objects`, :mod:`.s3writer`
and :mod:`.s3finish`).
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
