"""Moved to :mod:`webframe.sendfile`; this module keeps the old import path working."""

from __future__ import annotations

from .sendfile import content_disposition, send_file, send_stored

__all__ = ["content_disposition", "send_file", "send_stored"]
