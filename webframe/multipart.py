"""Moved to :mod:`webframe.uploads` (``multipart``: the decoder, ``receiver`` and ``raw``:
the receivers; the upload errors are in :mod:`webframe.errors`); this module keeps the
old import path working."""

from __future__ import annotations

from .errors import *  # noqa: F403
from .uploads import *  # noqa: F403
