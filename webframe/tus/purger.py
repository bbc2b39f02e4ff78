"""The periodic removal of expired uploads, started once per application and store."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import tornado.web

from .base import TusStore

__all__ = ["purger_started", "start_purger"]

log = logging.getLogger("webframe.tus")
#: the ``app.__dict__`` key of the set of stores (``store.where``) being purged.
_STARTED = "_webframe_tus_purgers"


def purger_started(app: tornado.web.Application, where: str) -> bool:
    """True once :func:`start_purger` runs for the store at ``where`` in ``app``."""
    started: set[str] | None = app.__dict__.get(_STARTED)
    return started is not None and where in started


def start_purger(app: tornado.web.Application, store: TusStore, interval: float) -> bool:
    """Purge expired uploads of ``store`` now and every ``interval`` seconds.

    Call with the loop running; a second call for the same app and store (same
    ``store.where``) does nothing (returns False). The task stops with
    ``app.aclose()`` when the app has one (webframe's :class:`~webframe.Application`).
    """
    if interval <= 0:
        raise ValueError(f"purge interval must be > 0 seconds, got {interval!r}")
    started: set[str] = app.__dict__.setdefault(_STARTED, set())
    if store.where in started:
        return False
    started.add(store.where)

    async def purge_loop() -> None:
        while True:
            try:
                removed = await store.purge_expired()
                if removed:
                    log.info("purged %d expired upload(s) from %s", removed, store.where)
            except Exception:
                log.exception("purging expired uploads in %s failed", store.where)
            await asyncio.sleep(interval)

    task = asyncio.get_running_loop().create_task(purge_loop())

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        started.discard(store.where)

    add = getattr(app, "add_close_callback", None)
    if add is not None:
        add(stop)
    return True


def start_app_purgers(app: tornado.web.Application) -> int:
    """Start the purger of every tus route of ``app`` (its handlers that subclass
    :class:`~webframe.tus.ResumableUploadHandler`); returns how many were started."""
    from .handler import ResumableUploadHandler

    seen: set[type] = set()
    count = 0
    for handler in _handler_classes(app.wildcard_router):
        if issubclass(handler, ResumableUploadHandler) and handler not in seen:
            seen.add(handler)
            count += handler.start_purger(app)
    return count


def _handler_classes(router: object) -> list[type]:
    """Handler classes reachable from a Tornado rule router (nested routers too)."""
    found: list[type] = []
    for rule in getattr(router, "rules", []):
        target = rule.target
        if isinstance(target, type):
            found.append(target)
        elif hasattr(target, "rules"):
            found.extend(_handler_classes(target))
    return found
