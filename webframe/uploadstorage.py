"""Moved to :mod:`webframe.uploads.stored`; this module keeps the old import path working."""

from __future__ import annotations

from .uploads.stored import (
    INCOMING_PREFIX,
    StoredPart,
    StoredUpload,
    in_background,
    incoming_key,
    store_file,
    wait_background,
)

__all__ = [
    "INCOMING_PREFIX",
    "StoredPart",
    "StoredUpload",
    "in_background",
    "incoming_key",
    "store_file",
    "wait_background",
]
