"""Moved to `webframe.sessions.backends.memory`; this module keeps the old import working."""

from __future__ import annotations

from webframe.sessions.backends.memory import MemoryStore

__all__ = ["MemoryStore"]
