"""Moved: the session mixin is now :mod:`webframe.sessions.mixin`, flash messages
:mod:`webframe.sessions.flash` and the session-bound XSRF token :mod:`webframe.xsrf`.

This module keeps the old import path working.
"""

from __future__ import annotations

from .sessions.flash import FLASH_PREFIX, FlashMixin
from .sessions.mixin import (
    SessionStoreUnavailableError,
    StoreFailureLog,
    store_failures,
    store_unavailable,
)
from .xsrf import XSRF_ANCHOR, XSRFMixin

__all__ = [
    "FLASH_PREFIX",
    "XSRF_ANCHOR",
    "SessionMixin",
    "SessionStoreUnavailableError",
    "StoreFailureLog",
    "store_failures",
    "store_unavailable",
]


class SessionMixin(XSRFMixin, FlashMixin):
    """``self.session``, flash messages and the session-bound XSRF token together, as
    this module offered them before the split (:class:`webframe.RequestHandler` has all three)."""
