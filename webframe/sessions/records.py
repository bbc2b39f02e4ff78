"""The values the session store contract passes around (re-exported by
`webframe.sessions.store`, which defines the contract itself)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, TypeAlias

__all__ = [
    "MARSHAL_VERSION",
    "WOULD_BLOCK",
    "Changeset",
    "Count",
    "NowaitRecord",
    "Pending",
    "Record",
]

#: the `marshal` format stores keep decoded session data in (to copy it per read):
#: version 2 writes no back-references (JSON data shares no objects), so
#: ``marshal.loads`` skips their bookkeeping and reads back about 20% faster.
MARSHAL_VERSION = 2


class Count(NamedTuple):
    """What `SessionStore.incr` returns: the counter's value and when its window ends."""

    value: int
    #: seconds until the window ends and the counter starts again from zero (> 0).
    reset_in: float


@dataclass(slots=True)
class Record:
    """One stored session: its data and the times its expiry is measured from."""

    data: dict[str, Any]
    created: float
    accessed: float


@dataclass(frozen=True)
class Changeset:
    """What one `save` applies: deletions first, then changed keys (already validated)."""

    values: Mapping[str, Any]
    encoded: Mapping[str, str]
    deleted: frozenset[str]
    new: bool
    touch: bool


class Pending(enum.Enum):
    """What `SessionStore.load_nowait` answers when the record needs I/O to read."""

    WOULD_BLOCK = "would block"


#: the backend cannot answer without waiting: ``await store.load(sid)`` instead.
WOULD_BLOCK: Final = Pending.WOULD_BLOCK

#: what `SessionStore.load_nowait` answers: the record, None, or `WOULD_BLOCK`.
NowaitRecord: TypeAlias = "Record | Literal[Pending.WOULD_BLOCK] | None"
