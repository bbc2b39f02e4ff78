"""The HTTP side of sessions: ``self.session``, flash messages, session-bound XSRF.

Stores know nothing of HTTP (see :mod:`webframe.sessions`); this mixin loads the
session from the signed cookie, saves it before the response headers leave, and
turns store failures into a 503.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar

from tornado.concurrent import Future
from tornado.iostream import StreamClosedError

from .cookies import CookieMixin
from .errors import ServiceUnavailableError, XSRFError
from .sessions import CookieAction, Session, SessionStoreError, is_valid_session_id

if TYPE_CHECKING:
    from .sessions import SessionStore

log = logging.getLogger("webframe.sessions")

FLASH_PREFIX = "_flash."
#: a fresh session that carries an XSRF token must be stored so the token stays valid.
XSRF_ANCHOR = "_xsrf"
_UNSET: Any = object()
_XSRF_RAW = 32


_SID_CACHE_SIZE = 10_000


def _raw_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header (the last one wins, as in
    Tornado's parser); None if absent or escaped (then Tornado's parser decides)."""
    if not header or name not in header:
        return None
    found = None
    for part in header.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            found = value
    if found is not None and found.startswith('"'):
        # Signed values are sent quoted (they hold '='); escapes are left to Tornado.
        if len(found) < 2 or not found.endswith('"') or "\\" in found:
            return None
        return found[1:-1]
    return found


def _signed_timestamp(raw: str) -> float | None:
    """The signing time in a Tornado v2 signed value (``2|1:0|10:<time>|...``)."""
    fields = raw.split("|")
    if len(fields) < 3 or fields[0] != "2":
        return None
    _length, _colon, stamp = fields[2].partition(":")
    return float(stamp) if stamp.isdigit() else None


class _StoreFailureLog:
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


store_failures = _StoreFailureLog()
#: flash messages on their way back to the store after a failed page.
_putting_back: set[Future[None]] = set()


class SessionStoreUnavailableError(ServiceUnavailableError):
    """503: the session store failed; already reported through ``store_failures``."""


def _unavailable() -> ServiceUnavailableError:
    return SessionStoreUnavailableError(
        "The session store is unavailable, so this page cannot be shown right now. "
        "Please try again in a moment.",
        headers={"Retry-After": "5"},
    )


class SessionMixin(CookieMixin):
    """Adds ``self.session``, ``flash()``, ``get_flashed_messages()`` and a session-bound
    XSRF token to a handler. Used through :class:`webframe.RequestHandler`."""

    #: load the session in ``prepare`` (needed to use ``self.session`` synchronously
    #: when the client has a session cookie; pages showing the user or flashes set it).
    uses_session: ClassVar[bool] = False

    _session: Session | None = None
    _session_committed = False
    _commit_task: Future[None] | None = None
    _cookie_sid_value: Any = _UNSET
    _final: Future[None] | None = None
    _final_running = False
    #: finish() found nothing to save: the flush it makes need not look again.
    _session_settled = False
    _flashes: list[tuple[str, str]] | None = None
    #: flashes this request took from the store, (session ID, {key: value}), while
    #: they may still have to go back (the page failed before anything was sent).
    _taken_flashes: tuple[str, dict[str, Any]] | None = None
    _flashes_read = False
    _xsrf_sid: str | None = None

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
            s = self.wf_settings
            sid: str | None = None
            raw = _raw_cookie(self.request.headers.get("Cookie"), s.session_cookie)
            if raw is None and s.session_cookie in self.request.cookies:
                raw = self.request.cookies[s.session_cookie].value  # quoted or escaped
            if raw:
                sid = self._verified_sid(raw, s.session_absolute_timeout / 86400 + 1)
            self._cookie_sid_value = sid
        result: str | None = self._cookie_sid_value
        return result

    def _verified_sid(self, raw: str, max_age_days: float) -> str | None:
        """The session ID signed in ``raw``, or None; verified signatures are cached.

        Checking the HMAC is a large part of a session read; the same cookie arrives on
        every request of a session, so the result is kept per exact cookie text (and
        the signature's age is still checked on every use).
        """
        cache: dict[str, tuple[str, float]] = self.application.__dict__.setdefault(
            "_webframe_sid_cache", {}
        )
        hit = cache.get(raw)
        now = time.time()
        if hit is not None:
            return hit[0] if now < hit[1] else None
        value = self.get_signed_cookie(self.wf_settings.session_cookie, raw, max_age_days)
        if value is None:
            return None
        text = value.decode("ascii", "replace")
        if not is_valid_session_id(text):
            return None
        signed_at = _signed_timestamp(raw)
        if signed_at is not None:
            if len(cache) >= _SID_CACHE_SIZE:
                cache.clear()
            cache[raw] = (text, signed_at + max_age_days * 86400)
        return text

    async def load_session(self) -> Session:
        """Load the session once (a store call only if the client has a session cookie).

        Raises a 503 :class:`ServiceUnavailableError` if the store is down.
        """
        if self._session is None:
            sid = self.session_id_from_cookie()
            store = self.session_store
            interval = self.wf_settings.session_touch_interval
            if sid is None:
                self._session = Session.fresh(store.clock(), touch_interval=interval)
            else:
                try:
                    self._session = await Session.open(store, sid, touch_interval=interval)
                except SessionStoreError as exc:
                    store_failures.report(exc)
                    raise _unavailable() from None
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
        """Called before the method; loads the session when ``uses_session`` is set."""
        if self.uses_session and self._session is None:
            return self._prepare_session()
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
        if session is None or self._session_committed or self._headers_written:
            return False
        store = self.session_store
        return session.needs_commit(store.clock(), store.idle_timeout)

    def _commit_once(self) -> Future[None]:
        """Save the session once per request; a second caller waits for the same save."""
        if self._commit_task is None:
            self._commit_task = asyncio.ensure_future(self._commit_session())
        return self._commit_task

    async def _commit_session(self) -> None:
        """Save what changed and set or clear the cookie (skipped on a 5xx)."""
        self._session_committed = True
        session = self._session
        if session is None or self._status_code >= 500:
            return
        try:
            action = await session.commit(self.session_store)
        except SessionStoreError as exc:
            store_failures.report(exc)
            raise _unavailable() from None
        s = self.wf_settings
        if action is CookieAction.SET:
            self.set_signed_cookie(
                s.session_cookie, session.sid, expires_days=s.session_absolute_timeout / 86400
            )
        elif action is CookieAction.CLEAR:
            self.clear_cookie(s.session_cookie)
        self._refresh_xsrf_cookie(action)

    def _refresh_xsrf_cookie(self, action: CookieAction) -> None:
        """After the session ID changed (login, logout, expiry), replace the XSRF
        cookie: the token it holds belonged to the old ID and would be refused."""
        session = self._session
        if session is None or action is CookieAction.NONE:
            return
        name = self._xsrf_cookie_name()
        if name not in self.request.cookies and self._xsrf_sid is None:
            return
        if self._xsrf_sid == session.sid:
            return  # the token of this response already belongs to the new ID
        if action is CookieAction.SET:
            self._xsrf_sid = session.sid
            self._set_xsrf_cookie(self._masked_xsrf_token(session.sid))
        else:
            # Same attributes as when set (a __Host- cookie is only cleared with Secure).
            kwargs = {
                k: v
                for k, v in self._xsrf_cookie_kwargs().items()
                if k.lower() not in ("expires", "max_age", "expires_days")
            }
            self.clear_cookie(name, **{"samesite": "Strict", **kwargs})

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Future[None]:
        """Finish the response; a changed session is saved first (asynchronously)."""
        if self._session is None and self._final is None:
            return super().finish(chunk)  # the common case: no session in this request
        if self._final is not None and not self._final_running:
            if chunk is not None:
                self.write(chunk)
            return self._final
        if self._final is None and self._session_pending():
            if chunk is not None:
                self.write(chunk)
            self._final = asyncio.ensure_future(self._commit_then_finish())
            # Finished as far as Tornado is concerned: the method is not called after a
            # finish() in prepare, and late write()s fail as they would without a session.
            self._finished = True
            return self._final
        self._session_settled = True
        return super().finish(chunk)

    async def _commit_then_finish(self) -> None:
        try:
            await self._commit_once()
        except ServiceUnavailableError as exc:
            self._final_running = True
            self._finished = False
            self._flashes = []
            self.clear()
            self.send_error(503, exc_info=(type(exc), exc, None))
            return
        except Exception as exc:
            self._final_running = True
            self._fail(exc)
            return
        self._final_running = True
        self._finished = False
        try:
            await super().finish()
        except StreamClosedError:
            pass  # the client went away while the session was being saved
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """Answer an error raised in a background step of finish/render (Tornado never
        sees those tasks: without this the client would wait until it times out)."""
        self._finished = self._headers_written
        try:
            raise exc
        except Exception as e:
            # Logs it and sends the error page (a 5xx: the session is not saved).
            self._handle_request_exception(e)

    def flush(self, include_footers: bool = False) -> Future[None]:
        """Send what is buffered; before the first flush a changed session is saved."""
        if self._session is not None and not self._session_settled and self._session_pending():
            return asyncio.ensure_future(self._commit_then_flush(include_footers))
        return super().flush(include_footers)

    async def _commit_then_flush(self, include_footers: bool) -> None:
        # A flush() that is not awaited is followed by finish(): both wait for one save.
        await self._commit_once()
        await super().flush(include_footers)

    # Flash messages ---------------------------------------------------------

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
            and self._final is None
            and self._session is not None
            and any(k.startswith(FLASH_PREFIX) for k in self._session)
        ):
            self._final = asyncio.ensure_future(self._claim_then_render(template_name, kwargs))
            self._finished = True  # see finish()
            return self._final
        return super().render(template_name, **kwargs)

    async def _claim_then_render(self, template_name: str, kwargs: dict[str, Any]) -> None:
        try:
            await self._claim_flashes()
            self._final = None
            self._finished = False
            await super().render(template_name, **kwargs)
        except Exception as exc:
            self._final = None
            if self._headers_written:
                self._taken_flashes = None  # the page went out: they were shown
            # Whether the error page shows them decides if they go back (on_finish).
            self._flashes_read = False
            self._fail(exc)
        else:
            self._taken_flashes = None

    def on_finish(self) -> None:
        """After the response: flashes taken for a page that failed before anything was
        sent, and that the error page did not show either, go back to the store."""
        taken, self._taken_flashes = self._taken_flashes, None
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

    # XSRF bound to the session ------------------------------------------------

    def _xsrf_keys(self) -> list[bytes]:
        secret = self.application.settings["cookie_secret"]
        values = list(secret.values()) if isinstance(secret, dict) else [secret]
        current = self.application.settings.get("key_version")
        if isinstance(secret, dict) and current in secret:
            values.remove(secret[current])
            values.insert(0, secret[current])
        return [v.encode() if isinstance(v, str) else v for v in values]

    def _xsrf_raw(self, sid: str, key: bytes) -> bytes:
        return hmac.new(key, b"webframe-xsrf|" + sid.encode(), hashlib.sha256).digest()

    @property
    def xsrf_token(self) -> bytes:
        """The anti-forgery token of this session (masked afresh on each page).

        It is also set in the (HttpOnly) ``_xsrf`` cookie (named by Tornado's
        ``xsrf_cookie_name`` setting, with ``xsrf_cookie_kwargs``), which HTTP clients such as
        :class:`webframe.testing.Client` echo in ``X-XSRFToken``; page scripts read the
        ``xsrf-token`` meta tag instead. A visitor with no session gets one, stored, so the
        token stays valid across tabs.
        """
        if not hasattr(self, "_xsrf_token"):
            sid = self._session.sid if self._session is not None else None
            if sid is None:
                sid = self.session_id_from_cookie()
            if sid is None or (self._session is not None and self._session.new):
                session = self.session
                session[XSRF_ANCHOR] = 1
                sid = session.sid
            token = self._masked_xsrf_token(sid)
            self._xsrf_token = token
            self._xsrf_sid = sid
            current = self.request.cookies.get(self._xsrf_cookie_name())
            if current is None or not self._xsrf_valid(current.value, sid):
                self._set_xsrf_cookie(token)
        return self._xsrf_token

    def _xsrf_cookie_name(self) -> str:
        # Tornado's setting; the form field stays ``_xsrf`` whatever the cookie's name.
        name: str = self.application.settings.get("xsrf_cookie_name", "_xsrf")
        return name

    def _xsrf_cookie_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = self.application.settings.get("xsrf_cookie_kwargs") or {}
        return kwargs

    def _set_xsrf_cookie(self, token: bytes) -> None:
        """Set the XSRF cookie: SameSite=Strict, HttpOnly, then Tornado's
        ``xsrf_cookie_kwargs`` setting on top (it may override both)."""
        options: dict[str, Any] = {"samesite": "Strict", **self._xsrf_cookie_kwargs()}
        self.set_cookie(self._xsrf_cookie_name(), token, **options)

    def _masked_xsrf_token(self, sid: str) -> bytes:
        raw = self._xsrf_raw(sid, self._xsrf_keys()[0])
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(raw))
        return base64.urlsafe_b64encode(mask + masked).rstrip(b"=")

    def _xsrf_valid(self, token: str, sid: str) -> bool:
        try:
            data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return False
        if len(data) != 4 + _XSRF_RAW:
            return False
        mask, masked = data[:4], data[4:]
        raw = bytes(b ^ mask[i % 4] for i, b in enumerate(masked))
        return any(hmac.compare_digest(raw, self._xsrf_raw(sid, k)) for k in self._xsrf_keys())

    def check_xsrf_cookie(self) -> None:
        """Called before ``prepare`` on unsafe methods: the token (``X-XSRFToken`` header
        or ``_xsrf`` form field; never the query string) must belong to this session."""
        token = (
            self.request.headers.get("X-Xsrftoken")
            or self.request.headers.get("X-Csrftoken")
            or _body_token(self)
        )
        if not token:
            raise XSRFError(
                "The request has no security token (_xsrf form field or X-XSRFToken header); "
                "reload the page and try again."
            )
        sid = self.session_id_from_cookie()
        if sid is None or not self._xsrf_valid(token, sid):
            raise XSRFError(
                "The security token does not belong to your session (it may have expired); "
                "reload the page and try again."
            )


def _body_token(handler: SessionMixin) -> str | None:
    values = handler.request.body_arguments.get("_xsrf")
    if not values:
        return None
    return values[0].decode("latin-1")
