"""Moved to :mod:`webframe.uploads` (``multipart``: the decoder, ``receiver`` and ``raw``:
the receivers); this module keeps the old import path working."""

from __future__ import annotations

from .errors import (
    BadUploadError,
    UploadError,
    UploadStorageError,
    UploadTooLargeError,
    UploadTypeError,
)
from .uploads.files import UploadedFile
from .uploads.multipart import (
    MAX_BOUNDARY_LENGTH,
    MAX_EPILOGUE,
    MAX_HEADERS_PER_PART,
    MAX_PREAMBLE,
    boundary_from_content_type,
)
from .uploads.policy import UploadLimits, sniff_type
from .uploads.raw import RawBodyReceiver
from .uploads.receiver import MultipartReceiver

__all__ = [
    "MAX_BOUNDARY_LENGTH",
    "MAX_EPILOGUE",
    "MAX_HEADERS_PER_PART",
    "MAX_PREAMBLE",
    "BadUploadError",
    "MultipartReceiver",
    "RawBodyReceiver",
    "UploadError",
    "UploadLimits",
    "UploadStorageError",
    "UploadTooLargeError",
    "UploadTypeError",
    "UploadedFile",
    "boundary_from_content_type",
    "sniff_type",
]
