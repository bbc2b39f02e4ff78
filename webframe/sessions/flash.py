"""Flash messages: ``flash()`` on one request, shown once by the next page rendered.

Each message is its own session key, so concurrent requests adding messages never
overwrite each other, and a page takes its messages from the store atomically:
two pages rendered at once never both show one message.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from tornado.concurrent import Future

from ..server import tornado_impl
from .mixin import ResponseEnd, SessionMixin, store_failures
from .store import SessionStoreError

__all__ = ["FLASH_PREFIX", "FlashMixin"]

FLASH_PREFIX = "_flash."

#: flash messages on their way back to the store after a failed page.
_putting_back: set[Future[None]] = set()


class FlashMixin(SessionMixin):
    """Adds ``flash()`` and ``get_flashed_messages()``; used through
    :class:`webframe.RequestHandler`."""

    #: flashes this request took from the store, (session ID, {key: value}), while
    #: they may still have to go back (the page failed before anything was sent).
    _taken_flashes: tuple[str, dict[str, Any]] | None = None
    _flashes_read = False

    def flash(self, message: str, category: str = "info") -> None:
        """Queue ``message`` to be shown once, on the next page rendered for this session."""
        # One key per message: concurrent requests adding messages never overwrite each
        # other, and each key is taken from the store by exactly one page.
        key = f"{FLASH_PREFIX}{time.time_ns():020d}.{secrets.token_hex(4)}"
        self.session[key] = [category, str(message)]

    def get_flashed_messages(self) -> list[tuple[str, str]]:
        """The ``(category, message)`` pairs this page shows (claimed when it rendered)."""
        self._flashes_read = True
        return list(self._flashes or ())

    def render(self, template_name: str, **kwargs: Any) -> Future[None]:
        """Render a template; pending flash messages are claimed first, exactly once."""
        if (
            self._flashes is None
            and self._end in (ResponseEnd.OPEN, ResponseEnd.SETTLED)
            and self._session is not None
            and any(k.startswith(FLASH_PREFIX) for k in self._session)
        ):
            return self._wait_for_store(self._claim_then_render(template_name, kwargs))
        return super().render(template_name, **kwargs)

    async def _claim_then_render(self, template_name: str, kwargs: dict[str, Any]) -> None:
        try:
            await self._claim_flashes()
            self._stop_waiting()
            tornado_impl.set_handler_finished(self, False)
            await super().render(template_name, **kwargs)
        except Exception as exc:
            self._stop_waiting()
            if tornado_impl.headers_written(self):
                self._taken_flashes = None  # the page went out: they were shown
            # Whether the error page shows them decides if they go back (on_finish).
            self._flashes_read = False
            self._fail(exc)
        else:
            self._taken_flashes = None

    def on_finish(self) -> None:
        """After the response: flashes taken for a page that failed before anything was
        sent, and that the error page did not show either, go back to the store."""
        taken = self._taken_flashes
        if taken is not None:
            self._taken_flashes = None
        if taken is not None and not self._flashes_read:
            task = asyncio.ensure_future(self._put_back_flashes(*taken))
            _putting_back.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(_putting_back.discard)
        super().on_finish()

    async def _put_back_flashes(self, sid: str, flashes: dict[str, Any]) -> None:
        try:
            # touch=False: showing nothing is not activity; a session gone meanwhile
            # (logout in another tab) stays gone, save() does not recreate it.
            await self.session_store.save(sid, flashes, (), new=False, touch=False)
        except SessionStoreError as exc:
            store_failures.report(exc)

    async def _claim_flashes(self) -> None:
        session = self._session
        assert session is not None
        keys = sorted(k for k in session if k.startswith(FLASH_PREFIX))
        stored = [k for k in keys if k not in session.changes]
        taken: dict[str, Any] = {}
        if stored and not session.new:
            try:
                taken = await self.session_store.take(session.sid, stored)
            except SessionStoreError as exc:
                # Left in the store: shown by a later page once the store is back.
                store_failures.report(exc)
                self._flashes = []
                return
        if taken:
            self._taken_flashes = (session.sid, taken)
        flashes: list[tuple[str, str]] = []
        for key in keys:
            value = session[key] if key not in stored else taken.get(key)
            session.forget(key)
            if isinstance(value, list) and len(value) == 2:
                flashes.append((str(value[0]), str(value[1])))
        self._flashes = flashes
