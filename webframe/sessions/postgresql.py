"""Moved to `webframe.sessions.backends.postgresql`; this module keeps the old import working."""

from __future__ import annotations

from webframe.sessions.backends.postgresql import PostgreSQLStore

__all__ = ["PostgreSQLStore"]
