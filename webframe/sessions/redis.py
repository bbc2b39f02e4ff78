"""Moved to `webframe.sessions.backends.redis` (its Lua scripts to
`webframe.sessions.backends.redis_lua`); this module keeps the old imports working."""

from __future__ import annotations

from webframe.sessions.backends.redis import RedisStore, glob_escape, split_options

__all__ = ["RedisStore", "glob_escape", "split_options"]
