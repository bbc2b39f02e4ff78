"""The periodic removal of expired uploads, started once per application and folder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import tornado.web

from .store import LocalUploadStore

__all__ = ["start_purger"]

log = logging.getLogger("webframe.tus")


def start_purger(app: tornado.web.Application, folder: Path, interval: float) -> bool:
    """Purge expired uploads in ``folder`` now and every ``interval`` seconds.

    Call with the loop running; a second call for the same app and folder does
    nothing (returns False). The task stops with ``app.aclose()`` when the app has
    one (webframe's :class:`~webframe.Application`).
    """
    if interval <= 0:
        raise ValueError(f"purge interval must be > 0 seconds, got {interval!r}")
    started: set[str] = app.__dict__.setdefault("_webframe_tus_purgers", set())
    if str(folder) in started:
        return False
    started.add(str(folder))
    store = LocalUploadStore(folder)

    async def purge_loop() -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                removed = await loop.run_in_executor(None, store.purge_expired)
                if removed:
                    log.info("purged %d expired upload(s) from %s", removed, folder)
            except Exception:
                log.exception("purging expired uploads in %s failed", folder)
            await asyncio.sleep(interval)

    task = asyncio.get_running_loop().create_task(purge_loop())

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        started.discard(str(folder))

    add = getattr(app, "add_close_callback", None)
    if add is not None:
        add(stop)
    return True
