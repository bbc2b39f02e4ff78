"""The HTTP side of a session: ``self.session`` loaded from the signed cookie and
saved before the response headers leave.

Stores know nothing of HTTP (see :mod:`webframe.sessions`). This mixin reads the
session ID from the signed cookie, loads the session once, saves it (only if it
changed) before the headers go out, and turns store failures into a 503. Flash
messages (:mod:`webframe.sessions.flash`) and the session-bound XSRF token
(:mod:`webframe.xsrf`) build on it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

from tornado.concurrent import Future
from tornado.iostream import StreamClosedError

from ..cookies import CookieMixin
from ..errors import ServiceUnavailableError
from ..server import tornado_impl
from .cookieids import VerifiedCookies, raw_cookie, signed_timestamp
from .session import CookieAction, Session
from .store import WOULD_BLOCK, SessionStoreError, is_valid_session_id

if TYPE_CHECKING:
    from .store import SessionStore

__all__ = [
    "ResponseEnd",
    "SessionMixin",
    "SessionStoreUnavailableError",
    "StoreFailureLog",
    "store_failures",
    "store_unavailable",
]

log = logging.getLogger("webframe.sessions")

_UNSET: Any = object()
#: where the application keeps its `VerifiedCookies` (its own attribute, set on first use).
_VERIFIED_ATTR = "_webframe_verified_cookies"


class StoreFailureLog:
    """Logs store failures at most once per ``interval`` seconds, counting the rest."""

    def __init__(self, interval: float = 30.0) -> None:
        self.interval = interval
        self.last = 0.0
        self.suppressed = 0

    def report(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            more = f" ({self.suppressed} more since the last report)" if self.suppressed else ""
            log.error("session store unavailable: %s%s", exc, more)
            self.last = now
            self.suppressed = 0
        else:
            self.suppressed += 1


store_failures = StoreFailureLog()


class SessionStoreUnavailableError(ServiceUnavailableError):
    """503: the session store failed; already reported through ``store_failures``."""


def store_unavailable() -> ServiceUnavailableError:
    """The 503 answered when the session store fails."""
    return SessionStoreUnavailableError(
        "The session store is unavailable, so this page cannot be shown right now. "
        "Please try again in a moment.",
        headers={"Retry-After": "5"},
    )


class ResponseEnd(enum.Enum):
    """Where the end of a response that has a session stands: one state, moved only
    forward by ``finish()`` and the tasks it starts (and back to OPEN once flashes
    were claimed for a page)."""

    #: finish() and flush() still look whether the session must be saved first.
    OPEN = "open"
    #: the end waits for the store (the save, or flashes being taken): Tornado sees the
    #: request as finished, and a finish() now returns the same future.
    WAITING = "waiting"
    #: the wait is over: the real finish (or the error page) is running.
    ENDING = "ending"
    #: finish() found nothing to save: the flush it makes need not look again.
    SETTLED = "settled"


# Read on every request: module globals, found faster than the Enum's attributes.
_OPEN = ResponseEnd.OPEN
_WAITING = ResponseEnd.WAITING
_SETTLED = ResponseEnd.SETTLED


class SessionMixin(CookieMixin):
    """Adds ``self.session`` to a handler, saved before the headers leave.

    Used through :class:`webframe.RequestHandler`, with flash messages and XSRF.
    """

    #: load the session in ``prepare`` (needed to use ``self.session`` synchronously
    #: when the client has a session cookie; pages showing the user or flashes set it).
    uses_session: ClassVar[bool] = False

    _session: Session | None = None
    #: the store the session was loaded from (spares asking the application again).
    _loaded_store: SessionStore | None = None
    #: the one save of this request, once started (later callers wait for it).
    _commit_task: Future[None] | None = None
    _cookie_sid_value: Any = _UNSET
    _end = _OPEN
    #: what the response waits for while ``_end`` is WAITING or ENDING.
    _final: Future[None] | None = None
    #: the flash messages this page shows (an error page after a failed save shows none).
    _flashes: list[tuple[str, str]] | None = None

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Called for an exception that ends the request; store outages are logged by the
        rate-limited ``store_failures`` instead of once per request."""
        if isinstance(value, SessionStoreUnavailableError):
            return
        super().log_exception(typ, value, tb)

    # Loading ------------------------------------------------------------------

    @property
    def session_store(self) -> SessionStore:
        """The application's session store."""
        store: SessionStore = self.application.session_store  # type: ignore[attr-defined]
        return store

    def session_id_from_cookie(self) -> str | None:
        """The session ID in the verified, signed cookie, or None (never from the URL)."""
        if self._cookie_sid_value is _UNSET:
            self._cookie_sid_value = self._read_session_cookie()
        result: str | None = self._cookie_sid_value
        return result

    def _read_session_cookie(self) -> str | None:
        """The verified session ID in the request's cookie; verified signatures are
        remembered (see :mod:`webframe.sessions.cookieids`), their age checked each time."""
        # self.request.headers["Cookie"], without building the combined-value cache.
        values = tornado_impl.header_fields(self.request.headers).get("Cookie")
        if not values:
            return None
        header = values[0] if len(values) == 1 else ",".join(values)
        if not header:
            return None
        app_dict = self.application.__dict__
        verified: VerifiedCookies | None = app_dict.get(_VERIFIED_ATTR)
        if verified is None:
            verified = app_dict.setdefault(_VERIFIED_ATTR, VerifiedCookies())
        now = time.time()
        # verified.from_header(header, now), inline: this runs on every request.
        known = verified.by_header.get(header)
        if known is not None and now < known[1]:
            return known[0]
        s = self.wf_settings
        raw = raw_cookie(header, s.session_cookie)
        if raw is None and s.session_cookie in self.request.cookies:
            raw = self.request.cookies[s.session_cookie].value  # quoted or escaped
        if not raw:
            return None
        hit = verified.from_value(raw)
        if hit is not None:
            sid, valid_until = hit
            if now >= valid_until:
                return None
            verified.remember(header, raw, sid, valid_until)
            return sid
        max_age_days = s.session_absolute_timeout / 86400 + 1
        value = self.get_signed_cookie(s.session_cookie, raw, max_age_days)
        if value is None:
            return None
        text = value.decode("ascii", "replace")
        if not is_valid_session_id(text):
            return None
        signed_at = signed_timestamp(raw)
        if signed_at is not None:
            verified.remember(header, raw, text, signed_at + max_age_days * 86400)
        return text

    async def load_session(self) -> Session:
        """Load the session once (a store call only if the client has a session cookie).

        Raises a 503 :class:`ServiceUnavailableError` if the store is down.
        """
        if self._session is None:
            sid = self.session_id_from_cookie()
            store = self._loaded_store = self.session_store
            interval = self.wf_settings.session_touch_interval
            if sid is None:
                self._session = Session.fresh(store.clock(), touch_interval=interval)
            else:
                try:
                    self._session = await Session.open(store, sid, touch_interval=interval)
                except SessionStoreError as exc:
                    store_failures.report(exc)
                    raise store_unavailable() from None
        return self._session

    @property
    def session(self) -> Session:
        """The request's session, a mutable mapping of JSON values.

        Loaded by ``prepare`` when ``uses_session`` is set, or by ``await
        self.load_session()``; without a session cookie a fresh one is started here.
        """
        if self._session is None:
            if self.session_id_from_cookie() is not None:
                raise RuntimeError(
                    f"{type(self).__name__}: the session is not loaded yet; set "
                    "uses_session = True on the handler or call await self.load_session()"
                )
            store = self.session_store
            self._session = Session.fresh(
                store.clock(), touch_interval=self.wf_settings.session_touch_interval
            )
        return self._session

    def prepare(self) -> Awaitable[None] | None:
        """Called before the method; loads the session when ``uses_session`` is set,
        without awaiting when the store can answer at once (`SessionStore.load_nowait`)."""
        if not self.uses_session or self._session is not None:
            return None
        sid = self._cookie_sid_value
        app = self.application
        if sid is _UNSET:
            # A remembered Cookie header (see `_read_session_cookie`), looked up inline.
            verified: VerifiedCookies | None = app.__dict__.get(_VERIFIED_ATTR)
            values = tornado_impl.header_fields(self.request.headers).get("Cookie")
            known = None
            if verified is not None and values is not None and len(values) == 1:
                known = verified.by_header.get(values[0])
            if known is not None and time.time() < known[1]:
                sid = known[0]
            else:
                sid = self._read_session_cookie()
            self._cookie_sid_value = sid
        store: SessionStore = app.session_store  # type: ignore[attr-defined]
        self._loaded_store = store
        interval = app.wf_settings.session_touch_interval  # type: ignore[attr-defined]
        if sid is None:
            self._session = Session.fresh(store.clock(), touch_interval=interval)
            return None
        # The ID came from a verified cookie and passed is_valid_session_id there.
        record = store.load_nowait_checked(sid)
        if record is WOULD_BLOCK:
            return self._prepare_session()
        if record is not None:
            self._session = Session.stored(sid, record, interval)
        else:
            self._session = Session.loaded(store, sid, None, touch_interval=interval)
        return None

    async def _prepare_session(self) -> None:
        await self.load_session()

    def get_current_user(self) -> Any:
        """The ``user`` stored in the session by the login code, or None."""
        return self._session.get("user") if self._session is not None else None

    # Saving before the headers leave -----------------------------------------

    def _session_pending(self) -> bool:
        """True while the session still has to be saved before the headers go out."""
        if self._commit_task is not None:
            return not self._commit_task.done()  # saving now: wait for it
        session = self._session
        if session is None or tornado_impl.headers_written(self):
            return False
        store = self._loaded_store
        if store is None:
            store = self.session_store
        return session.needs_commit(store.clock(), store.idle_timeout)

    def _commit_once(self) -> Future[None]:
        """Save the session once per request; a second caller waits for the same save."""
        if self._commit_task is None:
            self._commit_task = asyncio.ensure_future(self._commit_session())
        return self._commit_task

    async def _commit_session(self) -> None:
        """Save what changed and set or clear the cookie (skipped on a 5xx)."""
        session = self._session
        if session is None or self.get_status() >= 500:
            return
        try:
            action = await session.commit(self.session_store)
        except SessionStoreError as exc:
            store_failures.report(exc)
            raise store_unavailable() from None
        s = self.wf_settings
        if action is CookieAction.SET:
            self.set_signed_cookie(
                s.session_cookie, session.sid, expires_days=s.session_absolute_timeout / 86400
            )
        elif action is CookieAction.CLEAR:
            self.clear_cookie(s.session_cookie)
        self._session_cookie_changed(action)

    def _session_cookie_changed(self, action: CookieAction) -> None:
        """Called after a save, with what it did to the session cookie (a hook for
        cookies derived from the session ID, such as the XSRF one)."""

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Future[None]:
        """Finish the response; a changed session is saved first (asynchronously)."""
        end = self._end
        if end is _OPEN:
            session = self._session
            if session is None:
                return super().finish(chunk)  # the common case: no session in this request
            store = self._loaded_store
            if self._commit_task is None and store is not None:
                # _session_pending(), inline for a loaded session not being saved yet.
                pending = session.needs_commit(
                    store.clock(), store.idle_timeout
                ) and not tornado_impl.headers_written(self)
            else:
                pending = self._session_pending()
            if pending:
                if chunk is not None:
                    self.write(chunk)
                return self._wait_for_store(self._commit_then_finish())
            self._end = _SETTLED
        elif end is _WAITING:
            if chunk is not None:
                self.write(chunk)
            assert self._final is not None
            return self._final
        return super().finish(chunk)

    def _wait_for_store(self, step: Coroutine[Any, Any, None]) -> Future[None]:
        """Start ``step``, which ends the response after a store call; returns its future."""
        self._end = ResponseEnd.WAITING
        final = self._final = asyncio.ensure_future(step)
        # Finished as far as Tornado is concerned: the method is not called after a
        # finish() in prepare, and late write()s fail as they would without a session.
        tornado_impl.set_handler_finished(self, True)
        return final

    def _stop_waiting(self) -> None:
        """The store call is over; the response ends through the real finish()."""
        self._end = ResponseEnd.OPEN
        self._final = None

    async def _commit_then_finish(self) -> None:
        try:
            await self._commit_once()
        except ServiceUnavailableError as exc:
            self._end = ResponseEnd.ENDING
            tornado_impl.set_handler_finished(self, False)
            self._flashes = []
            self.clear()
            self.send_error(503, exc_info=(type(exc), exc, None))
            return
        except Exception as exc:
            self._end = ResponseEnd.ENDING
            self._fail(exc)
            return
        self._end = ResponseEnd.ENDING
        tornado_impl.set_handler_finished(self, False)
        try:
            await super().finish()
        except StreamClosedError:
            pass  # the client went away while the session was being saved
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """Answer an error raised in a background step of finish/render (Tornado never
        sees those tasks: without this the client would wait until it times out)."""
        tornado_impl.set_handler_finished(self, tornado_impl.headers_written(self))
        try:
            raise exc
        except Exception as e:
            # Logs it and sends the error page (a 5xx: the session is not saved).
            tornado_impl.handle_request_exception(self, e)

    def flush(self, include_footers: bool = False) -> Future[None]:
        """Send what is buffered; before the first flush a changed session is saved."""
        if self._session is not None and self._end is not _SETTLED and self._session_pending():
            return asyncio.ensure_future(self._commit_then_flush(include_footers))
        return super().flush(include_footers)

    async def _commit_then_flush(self, include_footers: bool) -> None:
        # A flush() that is not awaited is followed by finish(): both wait for one save.
        await self._commit_once()
        await super().flush(include_footers)
