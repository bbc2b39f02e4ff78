"""Application: settings → Tornado settings, the route table, body limits, in-flight tracking."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import tornado.web
from tornado import httpserver, httputil

from .errors import ConfigurationError
from .routing import RouteSpec, RouteTable
from .routing import cache as route_cache
from .server import tornado_impl
from .server.delegate import RequestDelegate
from .sessions import SessionStore, open_store
from .settings import Settings
from .signing import resolve_cookie_secret
from .startup import (
    check_paths,
    default_root_path,
    session_store_url,
    tornado_options,
    upload_storage,
)
from .storage import Storage

__all__ = ["Application", "access_log", "default_root_path", "log"]

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
        check_paths(s, given.template_path)
        self.route_table = RouteTable(routes)
        self.inflight: set[httputil.HTTPServerRequest] = set()
        self._limits: dict[type, int] = {}
        self._on_close: list[Callable[[], Awaitable[None]]] = []
        self._store: SessionStore | None = None
        self.session_store_url = session_store_url(s)
        #: where uploads are kept (the ``upload_storage`` setting); closed by :meth:`aclose`.
        self.upload_storage: Storage = upload_storage(s)
        self._on_close.append(self.upload_storage.close)
        secret, version = resolve_cookie_secret(s)
        options = tornado_options(s, secret, version)
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

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        """Called by the connection for each request: Tornado's routing delegate, with
        the request object built without the checks whose answer is already known."""
        delegate = tornado_impl.routing_delegate(self, server_conn, request_conn)
        if delegate is None:
            return super().start_request(server_conn, request_conn)
        return delegate

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
        return RequestDelegate(self, request, target_class, target_kwargs, path_args, path_kwargs)

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
