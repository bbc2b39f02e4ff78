"""Moved: the store contract is now `webframe.sessions.store` and the per-request
session `webframe.sessions.session`; this module keeps the old imports working."""

from __future__ import annotations

from webframe.sessions.registry import open_store
from webframe.sessions.session import CookieAction, Session
from webframe.sessions.store import SESSION_ID_BYTES as SESSION_ID_BYTES
from webframe.sessions.store import SESSION_ID_LENGTH as SESSION_ID_LENGTH
from webframe.sessions.store import Changeset as Changeset
from webframe.sessions.store import Count as Count
from webframe.sessions.store import Record as Record
from webframe.sessions.store import SessionStore as SessionStore
from webframe.sessions.store import SessionStoreError as SessionStoreError
from webframe.sessions.store import encode_value as encode_value
from webframe.sessions.store import is_valid_session_id as is_valid_session_id
from webframe.sessions.store import new_session_id as new_session_id

__all__ = [
    "SESSION_ID_BYTES",
    "SESSION_ID_LENGTH",
    "Changeset",
    "CookieAction",
    "Count",
    "Record",
    "Session",
    "SessionStore",
    "SessionStoreError",
    "encode_value",
    "is_valid_session_id",
    "new_session_id",
    "open_store",
]
