"""Moved to :mod:`webframe.uploads` (``policy``: limits and type checks, ``files``:
``UploadedFile``, ``tempfile``: the temp-file sink; the upload errors are in
:mod:`webframe.errors`); this module keeps the old import path working."""

from __future__ import annotations

from .errors import *  # noqa: F403
from .units import KiB as KiB
from .units import MiB as MiB
from .uploads import *  # noqa: F403
from .uploads.policy import SNIFF_BYTES as SNIFF_BYTES
from .uploads.policy import check_name as check_name
