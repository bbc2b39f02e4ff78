"""Server-side sessions: the Session object, the SessionStore contract and its backends.

`webframe.sessions.session` holds the per-request `Session`,
`webframe.sessions.store` the `SessionStore` contract (records, IDs, the touch
rule) and `webframe.sessions.backends` one module per store.  Concrete stores
are imported lazily (`open_store`, or the submodules) so that a client library
(redis, asyncpg) is only needed when its store is configured; the URL schemes
and their stores are listed once, in `webframe.sessions.registry`.
The HTTP side (``self.session`` on a handler, flash messages) is in
`webframe.sessions.mixin` and `webframe.sessions.flash`; the stores never import it.
"""

from __future__ import annotations

from webframe.sessions.backends.memory import MemoryStore
from webframe.sessions.backends.sqlite import SQLiteStore
from webframe.sessions.registry import open_store
from webframe.sessions.session import CookieAction, Session
from webframe.sessions.store import (
    Changeset,
    Count,
    Record,
    SessionStore,
    SessionStoreError,
    encode_value,
    is_valid_session_id,
    new_session_id,
)

__all__ = [
    "Changeset",
    "CookieAction",
    "Count",
    "MemoryStore",
    "Record",
    "SQLiteStore",
    "Session",
    "SessionStore",
    "SessionStoreError",
    "encode_value",
    "is_valid_session_id",
    "new_session_id",
    "open_store",
]
