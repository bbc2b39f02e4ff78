"""Moved to :mod:`webframe.uploads` (``policy``: limits and type checks, ``files``:
``UploadedFile``, ``tempfile``: the temp-file sink); this module keeps the old import
path working."""

from __future__ import annotations

from .errors import (
    BadUploadError,
    UploadError,
    UploadStorageError,
    UploadTooLargeError,
    UploadTypeError,
)
from .uploads.files import UploadedFile
from .uploads.policy import SNIFF_BYTES, KiB, MiB, UploadLimits, check_name, sniff_type

__all__ = [
    "SNIFF_BYTES",
    "BadUploadError",
    "KiB",
    "MiB",
    "UploadError",
    "UploadLimits",
    "UploadStorageError",
    "UploadTooLargeError",
    "UploadTypeError",
    "UploadedFile",
    "check_name",
    "sniff_type",
]
