"""Moved to `webframe.sessions.backends.sqlite`; this module keeps the old import working."""

from __future__ import annotations

from webframe.sessions.backends.sqlite import SQLiteStore

__all__ = ["SQLiteStore"]
