"""Test doubles for session stores, shared by the store suite and the HTTP tests."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from webframe.sessions.store import Changeset, Record, SessionStore

from .support.clock import FakeClock

__all__ = ["CountingStore", "FakeClock"]


class CountingStore(SessionStore):
    """Wraps a store and records every call made to it, as (name, session id)."""

    def __init__(self, inner: SessionStore) -> None:
        super().__init__(
            idle_timeout=inner.idle_timeout,
            absolute_timeout=inner.absolute_timeout,
            clock=inner.clock,
            timeout=inner.timeout,
        )
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def names(self) -> list[str]:
        return [name for name, _sid in self.calls]

    @property
    def writes(self) -> list[str]:
        """The names of the calls that could write (all but load)."""
        return [name for name in self.names() if name != "load"]

    async def load(self, sid: str) -> Record | None:
        self.calls.append(("load", sid))
        return await self.inner.load(sid)

    async def save(
        self,
        sid: str,
        changes: Mapping[str, Any],
        deleted_keys: Iterable[str] = frozenset(),
        *,
        new: bool,
        touch: bool = True,
    ) -> bool:
        self.calls.append(("save", sid))
        return await self.inner.save(sid, changes, deleted_keys, new=new, touch=touch)

    async def touch(self, sid: str) -> bool:
        self.calls.append(("touch", sid))
        return await self.inner.touch(sid)

    async def take(self, sid: str, keys: Collection[str]) -> dict[str, Any]:
        self.calls.append(("take", sid))
        return await self.inner.take(sid, keys)

    async def delete(self, sid: str) -> None:
        self.calls.append(("delete", sid))
        await self.inner.delete(sid)

    async def _load(self, sid: str, now: float) -> Record | None:
        raise AssertionError("not reached")

    async def _save(self, sid: str, cs: Changeset, now: float) -> bool:
        raise AssertionError("not reached")

    async def _take(self, sid: str, keys: frozenset[str], now: float) -> dict[str, Any]:
        raise AssertionError("not reached")

    async def _delete(self, sid: str) -> None:
        raise AssertionError("not reached")

    async def _purge(self, now: float) -> int:
        return await self.inner.purge_expired()
