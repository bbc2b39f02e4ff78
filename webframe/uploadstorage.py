"""Moved to :mod:`webframe.uploads.stored`; this module keeps the old import path working."""

from __future__ import annotations

from .uploads.stored import *  # noqa: F403
