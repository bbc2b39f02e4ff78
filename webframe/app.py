"""Application: settings → Tornado settings, the route table, body limits, in-flight tracking."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import tornado.web
from tornado import httpserver, httputil
from tornado.http1connection import HTTP1Connection
from tornado.log import gen_log

from .errors import ConfigurationError, HTTPError
from .handler import NotFoundHandler
from .routing import RouteSpec, RouteTable
from .routing import cache as route_cache
from .server import framing, tornado_impl
from .sessions import SessionStore, open_store
from .settings import Settings
from .signing import resolve_cookie_secret
from .storage import Storage

log = logging.getLogger("webframe")
#: Tornado's own access logger, so existing log configuration keeps working.
access_log = logging.getLogger("tornado.access")

#: seconds between purges of expired sessions.
_PURGE_INTERVAL = 600.0


class Application(tornado.web.Application):
    """A Tornado Application built from a route table and :class:`Settings`.

    ``routes`` takes any mix of the forms :class:`~webframe.routing.RouteTable`
    accepts (decorated classes, modules, ``(pattern, handler)`` tuples, Tornado
    rules). ``root_path`` is the folder relative paths in the settings are read
    against; by default the project folder of the code that builds the app (see
    :func:`default_root_path`). Extra keyword arguments are passed to Tornado as
    settings.

    Start-up checks raise :class:`~webframe.ConfigurationError`: a ``template_path``
    other than the default that is not a folder, a route whose placeholders a
    handler method cannot take, a session store URL that does not parse, an SQLite
    session database in a folder that does not exist.
    """

    def __init__(
        self,
        routes: Iterable[RouteSpec] = (),
        settings: Settings | None = None,
        *,
        root_path: str | os.PathLike[str] | None = None,
        **tornado_settings: Any,
    ) -> None:
        #: the folder relative ``template_path``, ``static_path``, ``instance_path`` and
        #: ``upload_path`` are read against (see :func:`default_root_path`).
        root = default_root_path() if root_path is None else os.path.abspath(root_path)
        self.root_path = root
        given = settings if settings is not None else Settings()
        self.wf_settings = s = given.resolve_paths(root)
        _check_paths(s, given.template_path)
        self.route_table = RouteTable(routes)
        self.inflight: set[httputil.HTTPServerRequest] = set()
        self._limits: dict[type, int] = {}
        self._on_close: list[Callable[[], Awaitable[None]]] = []
        self._store: SessionStore | None = None
        self.session_store_url = _session_store_url(s)
        #: where uploads are kept (the ``upload_storage`` setting); closed by :meth:`aclose`.
        self.upload_storage: Storage = _upload_storage(s)
        self._on_close.append(self.upload_storage.close)
        secret, version = resolve_cookie_secret(s)
        options: dict[str, Any] = {
            "debug": s.debug,
            # Code reloading is the CLI's business; an app built in tests never re-execs.
            "autoreload": False,
            "cookie_secret": secret,
            "template_path": s.template_path,
            "xsrf_cookies": s.xsrf,
            "default_handler_class": NotFoundHandler,
            "autoescape": "xhtml_escape",
            "static_url_prefix": s.static_url_prefix,
        }
        if version is not None:
            options["key_version"] = version
        if s.static_path and os.path.isdir(s.static_path):
            options["static_path"] = s.static_path
        options.update(tornado_settings)
        super().__init__(self.route_table.rules(), **options)

    @property
    def session_store(self) -> SessionStore:
        """The session store, opened on first use (so each worker process has its own)."""
        if self._store is None:
            s = self.wf_settings
            store = open_store(
                self.session_store_url,
                idle_timeout=s.session_idle_timeout,
                absolute_timeout=s.session_absolute_timeout,
                timeout=s.session_timeout,
            )
            self._store = store
            self.add_close_callback(store.close)
        return self._store

    def start_background_tasks(self) -> None:
        """Start the periodic purge of expired sessions, and of expired resumable
        uploads when the app has a tus route; called by the server (the CLI does it in
        each worker) with the loop running. ``aclose()`` stops them."""
        self.session_store.start_purger(_PURGE_INTERVAL)
        from webframe.tus.purger import start_app_purgers

        start_app_purgers(self)

    def add_close_callback(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Register ``callback`` to be awaited by :meth:`aclose` (last registered, first run)."""
        self._on_close.append(callback)

    async def aclose(self) -> None:
        """Release what the app holds (session store connections); called at shutdown."""
        while self._on_close:
            callback = self._on_close.pop()
            try:
                await callback()
            except Exception:
                log.exception("error while closing the application")

    def listen(
        self, port: int, address: str | None = None, **kwargs: Any
    ) -> httpserver.HTTPServer:
        """Serve on ``port`` (as Tornado's ``listen``) with the connection layer of the
        ``http_impl`` setting, or of an ``http_impl=`` argument; other keyword
        arguments are ``HTTPServer``'s and ``bind_sockets``'s. Returns the server."""
        from .server import HTTPToolsServer

        impl = kwargs.pop("http_impl", self.wf_settings.http_impl)
        if impl == "tornado":
            return super().listen(port, address, **kwargs)
        if impl != "httptools":
            raise ConfigurationError("http_impl", f"{impl!r} is not 'httptools' or 'tornado'")
        names = ("family", "backlog", "flags", "reuse_port")
        bind = {k: kwargs.pop(k) for k in names if k in kwargs}
        server = HTTPToolsServer(self, **kwargs)
        server.listen(port, address, **bind)
        return server

    # Positional-only so that a route parameter may itself be called 'name'.
    def reverse_url(self, name: str, /, *args: Any, **params: Any) -> str:  # type: ignore[override]
        """URL path of the route ``name``; friendly routes take typed keyword params."""
        if name in self.route_table.by_name:
            if args:
                raise TypeError(f"route {name!r} takes keyword parameters only")
            return self.route_table.reverse(name, **params)
        return super().reverse_url(name, *args)

    def get_handler_delegate(
        self,
        request: httputil.HTTPServerRequest,
        target_class: type[tornado.web.RequestHandler],
        target_kwargs: dict[str, Any] | None = None,
        path_args: list[bytes] | None = None,
        path_kwargs: dict[str, bytes] | None = None,
    ) -> tornado_impl.HandlerDelegate:
        """Called by Tornado for each routed request; returns webframe's delegate, which
        answers body-limit and framing errors before the handler reads any body."""
        return _Delegate(self, request, target_class, target_kwargs, path_args, path_kwargs)

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado_impl.HandlerDelegate:
        """Called by Tornado's routing for each request: a literal route (``/page``)
        comes from a per-app cache, anything else from Tornado's rule walk."""
        hit = route_cache.lookup(self, request.path)
        if hit is not None:
            return self.get_handler_delegate(request, hit[0], hit[1])
        return super().find_handler(request, **kwargs)

    def body_limit(self, handler_class: type) -> int:
        """The body limit of ``handler_class`` (cached per class)."""
        try:
            return self._limits[handler_class]
        except KeyError:
            fn = getattr(handler_class, "body_size_limit", None)
            limit = int(fn(self.wf_settings)) if fn else self.wf_settings.max_body_size
            self._limits[handler_class] = limit
            return limit

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        """Called once per finished request: in-flight bookkeeping, then the Tornado
        setting ``log_function(handler)`` if given, else (unless ``access_log`` is off)
        one line on Tornado's ``tornado.access`` logger, in Tornado's format: INFO
        below 400, WARNING below 500, ERROR otherwise."""
        self.inflight.discard(handler.request)
        log_function = self.settings.get("log_function")
        if log_function is not None:
            log_function(handler)
            return
        if not self.wf_settings.access_log:
            return
        status = handler.get_status()
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        if access_log.isEnabledFor(level):
            req = handler.request
            access_log.log(
                level,
                "%d %s %s (%s) %.2fms",
                status,
                req.method,
                req.uri,
                req.remote_ip,
                1000.0 * req.request_time(),
            )


class _Delegate(tornado_impl.HandlerDelegate):
    """Tornado's handler delegate plus webframe's framing checks and body limit.

    A declared Content-Length over the limit (the route's, or the server's
    ``max_body_size`` if stricter) is refused with 413 before anything reaches the
    handler; a chunked body is stopped the moment it crosses the limit. A streaming
    handler may raise an HTTPError from ``data_received``: the body is no longer
    passed on and the handler answers with that error.

    Once a request is refused before its body was read, no byte after its head is
    ever parsed as a request: a body of unambiguous framing and at most ``DRAIN``
    bytes is read and dropped (the connection is kept); otherwise the answer says
    ``Connection: close`` and the connection ends with it. On Tornado's own
    ``HTTP1Connection`` a :class:`~webframe.server.tornado_impl.Wire` enforces that for
    every early answer, the handler's own (an XSRF 403 or a 415 from an upload route's
    ``prepare``) too.
    """

    _received = 0
    _limit = 0
    _route_limit = 0
    _started = False
    _error: HTTPError | None = None
    _answered = False
    _drain_left = 0
    _wire: tornado_impl.Wire | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        app: Application = self.application  # type: ignore[assignment]
        app.inflight.add(self.request)
        # Most requests (GET, HEAD) carry no body: nothing to check or limit.
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            self._started = True
            return super().headers_received(start_line, headers)
        connection = self.request.connection
        self._route_limit = route_limit = app.body_limit(self.handler_class)
        self._limit = limit = framing.body_limit(route_limit, framing.server_body_cap(connection))
        if connection is not None:
            connection.set_max_body_size(framing.UNLIMITED)  # type: ignore[attr-defined]
        expect = headers.get("Expect", "").lower() == "100-continue"
        wire = None
        if isinstance(connection, HTTP1Connection) and tornado_impl.CAN_GUARD:
            self._wire = wire = tornado_impl.Wire(connection, self, expect)
        # A streaming handler may lift the server's cap for its request in prepare()
        # (Tornado's connection.set_max_body_size): its declared size is checked
        # against the server's cap once prepare() has run.
        later = self.stream_request_body and wire is not None and limit < route_limit
        error, declared, malformed = framing.check_framing(headers, route_limit if later else limit)
        if malformed is not None:
            gen_log.info("Malformed HTTP message from %s: %s", self.request.remote_ip, malformed)
        if wire is not None and malformed is None:
            wire.remaining = None if "Transfer-Encoding" in headers else declared
        if error is None:
            if self.stream_request_body and declared >= framing.BIG_BODY:
                _read_big(self.request, getattr(self.handler_class, "reuses_body_buffer", False))
            self._started = True
            prepared = super().headers_received(start_line, headers)
            if later and declared > limit:
                return self._check_declared(prepared, declared)
            return prepared
        self._reject(error)
        if error.status_code == 413 and framing.can_drain(declared, expect):
            # One valid Content-Length of a size worth reading: answer now, then read
            # and drop exactly that body, and keep the connection.
            self._answer(close=False)
        else:
            # The body's end is unknown, too far, or the client waits for a 100 it will
            # not get: Tornado reads no body once these headers are gone, the answer
            # says Connection: close and the connection ends with it.
            for name in ("Content-Length", "Transfer-Encoding", "Expect"):
                if name in headers:
                    del headers[name]
            self._answer(close=True)
        return None

    async def _check_declared(self, prepared: Awaitable[None] | None, declared: int) -> None:
        """After a streaming handler's prepare(): refuse a declared body over the limit
        then in force (the server's cap, unless prepare() set the request's own)."""
        if prepared is not None:
            await prepared
        if (
            declared > self._limit
            and self._error is None
            and not tornado_impl.handler_finished(self.handler)
        ):
            self._reject(framing.too_large(declared, self._limit))
            self._answer(close=declared > framing.DRAIN)

    def execute(self) -> Awaitable[None] | None:
        """Called once the request may run (after the head when streaming, else after
        the body); the handler runs at once and needs a Task only if it suspends."""
        return tornado_impl.execute_eagerly(self)

    def limit_set(self, size: int) -> None:
        """The handler set its request's body limit (``set_max_body_size``): it replaces
        the server's cap; the route's own limit still applies."""
        self._limit = min(self._route_limit, size)

    def data_received(self, data: bytes) -> Awaitable[None] | None:
        wire = self._wire
        if wire is not None:
            wire.remaining_less(len(data))
            if wire.finished_early:
                return None  # answered before the body was read: the rest is dropped
        if self._error is not None:
            # Refused mid-body: read and drop up to DRAIN more bytes so the answer can
            # keep the connection; past that, answer now and close.
            self._drain_left -= len(data)
            if self._drain_left < 0 and not self._answered:
                self._answer(close=True)
            return None
        self._received += len(data)
        if self._received > self._limit:
            self._reject(framing.too_large_streamed(self._limit))
            return None
        if not self.stream_request_body:
            tornado_impl.add_body_chunk(self, data)
            return None
        try:
            result = self.handler.data_received(data)
        except HTTPError as exc:
            self._reject(exc)
            return None
        if result is None:
            return None
        return self._await_chunk(result)

    async def _await_chunk(self, result: Awaitable[None]) -> None:
        try:
            await result
        except HTTPError as exc:
            self._reject(exc)

    def finish(self) -> None:
        wire = self._wire
        if wire is not None and wire.body_complete():
            return  # answered before the body was read; the body is dropped
        if self._error is None:
            hook = (
                getattr(self.handler, "on_body_complete", None)
                if self.stream_request_body and self._started
                else None
            )
            if hook is not None:
                try:
                    hook()
                except Exception as exc:
                    # The handler is waiting for its body: it answers this error itself.
                    if tornado_impl.fail_body(self.request, exc):
                        return
                    raise
            super().finish()
        elif not self._answered:
            self._answer(close=False)

    def on_connection_close(self) -> None:
        self.application.inflight.discard(self.request)  # type: ignore[attr-defined]
        if self._started:
            super().on_connection_close()

    def _reject(self, error: HTTPError) -> None:
        """Stop passing the body on; ``error`` is answered once the body is drained."""
        self._error = error
        self._drain_left = framing.DRAIN
        tornado_impl.drop_body_chunks(self)

    def _answer(self, close: bool) -> None:
        """Send the error; ``close``: with ``Connection: close``, ending the connection."""
        error = self._error
        assert error is not None
        self._answered = True
        if close:
            error.headers["Connection"] = "close"
            if self._wire is not None:
                self._wire.mode = tornado_impl.CLOSE
        # A streaming handler waiting for its body fails with the error, so its own
        # write_error answers and its clean-up hooks run.
        if self._started and self.stream_request_body and tornado_impl.fail_body(
            self.request, error
        ):
            return
        handler = self.handler_class(self.application, self.request, **self.handler_kwargs)
        tornado_impl.prepare_for_send_error(handler, self.application)
        self.handler = handler
        handler.send_error(error.status_code, exc_info=(type(error), error, None))


def _read_big(request: httputil.HTTPServerRequest, reuse: bool) -> None:
    """Read a large streamed body from the socket in big pieces (Tornado allocates a
    fresh buffer of ``read_chunk_size`` per read, so small requests keep 64 KiB).

    ``reuse``: the handler takes its body pieces as one reused ``bytearray``
    (see ``RequestHandler.reuses_body_buffer``): the socket is read straight into
    it, with none of Tornado's per-read allocation and two copies.
    """
    connection = request.connection
    if reuse:
        if tornado_impl.reuse_body_buffer(connection):
            return
        # The httptools layer's connection fills the buffer itself, by the same policy.
        own = getattr(connection, "reuse_body_buffer", None)
        if own is not None and own(
            framing.BODY_BUFFER_MIN, framing.BODY_BUFFER, framing.FAST_FILL, framing.SLOW_FILL
        ):
            return
    stream = getattr(connection, "stream", None)
    if stream is None:
        return
    if getattr(stream, "read_chunk_size", framing.BIG_READ) < framing.BIG_READ:
        stream.read_chunk_size = framing.BIG_READ


def default_root_path() -> str:
    """The root folder of an app built without ``root_path``: where the code calling
    ``Application(...)`` lives.

    It is the folder of that caller's source file; when that folder is a package (it
    has an ``__init__.py``), the folder holding the outermost package instead, which
    in webframe's layout (``handlers/`` beside ``templates/``, ``static/`` and
    ``instance/``) is the project folder. webframe's own frames are skipped, so a
    factory in ``handlers/__init__.py`` or a test in ``tests/`` both give the project
    folder. With no source file (an interactive session), the current directory.
    """
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] == (
        "webframe"
    ):
        frame = frame.f_back  # type: ignore[assignment]
    filename = frame.f_globals.get("__file__") if frame is not None else None
    if not isinstance(filename, str) or not filename:
        return os.getcwd()
    folder = os.path.dirname(os.path.abspath(filename))
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def _check_paths(s: Settings, template_path: str) -> None:
    """Refuse a template folder (``template_path`` as given, before resolving) other
    than the default, or an SQLite session folder, that does not exist."""
    from .sessions.registry import scheme_of

    if (
        template_path
        and template_path != Settings.template_path
        and not os.path.isdir(s.template_path)
    ):
        raise ConfigurationError(
            "template_path",
            f"the folder {s.template_path} does not exist (a relative template_path is "
            "read against the app's root folder: give an absolute path, or root_path= "
            "to Application)",
        )
    url = s.session_store or ""
    if scheme_of(url) == "sqlite":
        rest = url.partition("://")[2]
        path = rest[1:].partition("?")[0] if rest.startswith("/") else ""
        if path and path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise ConfigurationError(
                    "session_store",
                    f"the folder {folder} of the SQLite database does not exist; create it, "
                    "or leave session_store unset for sessions.db in the instance folder",
                )


def _upload_storage(s: Settings) -> Storage:
    """The storage of the ``upload_storage`` setting; by default the upload folder
    (created when the first upload arrives, as before)."""
    from .storage import from_url
    from .storage.local import LocalStorage

    if s.upload_storage is None:
        return LocalStorage(s.upload_dir, create=False)
    return from_url(s.upload_storage)


def _session_store_url(s: Settings) -> str:
    """The store URL (default: SQLite in the instance folder), checked at start-up
    against the one scheme table (`webframe.sessions.registry`)."""
    from .sessions.registry import check_store_url, scheme_of

    url = s.session_store or "sqlite:///" + os.path.abspath(
        os.path.join(s.instance_path, "sessions.db")
    )
    if s.session_redis_wait:
        if not scheme_of(url).startswith("redis"):
            raise ConfigurationError(
                "session_redis_wait",
                "needs a Redis session_store (redis://, rediss://, redis+sentinel:// or "
                "redis+cluster://: Redis WAIT for replicas); set it to 0 for other stores",
            )
        url += ("&" if "?" in url else "?") + f"wait_replicas={s.session_redis_wait}"
    try:
        check_store_url(url)
    except (ValueError, ImportError) as exc:
        raise ConfigurationError("session_store", str(exc)) from None
    return url
