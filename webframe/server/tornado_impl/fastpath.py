"""Cheaper steps of ``tornado.web``'s per-request path, each the same answer as
Tornado's own: ``RequestHandler.set_header`` with the check of a header value made
once per distinct text, and ``RequestHandler.finish`` with its ETag and Content-Length
steps done in place.

Gated on the code checked in Tornado 6.5 and 6.6; anything else takes Tornado's way.
"""

from __future__ import annotations

import hashlib
from asyncio import Future
from typing import Any

import tornado.web
from tornado import httputil
from tornado.util import ObjectDict

from .headers import FAST_HEADERS, header_fields
from .probe import name_set

_BASE = tornado.web.RequestHandler
_CONVERT = _BASE._convert_header_value

#: ``set_header`` as checked: ``self._headers[name] = self._convert_header_value(value)``.
CAN_SET_HEADER_FAST = sorted(_BASE.set_header.__code__.co_names) == [
    "_convert_header_value",
    "_headers",
]
#: header texts ``_convert_header_value`` accepted (it returns a str unchanged), so the
#: regex check runs once per distinct text; emptied when it grows past ``_SAFE_MAX``.
_SAFE: set[str] = set()
_SAFE_MAX = 2048


def set_header(handler: tornado.web.RequestHandler, name: str, value: Any) -> bool:
    """``handler.set_header(name, value)`` as Tornado does it, with a str value
    already known to be valid (or an int) stored without the check. False (nothing
    done) where Tornado's ``set_header``/``_convert_header_value`` are not the ones
    checked: the caller then uses Tornado's."""
    if not CAN_SET_HEADER_FAST or type(handler)._convert_header_value is not _CONVERT:
        return False
    kind = type(value)
    if kind is str:
        if value not in _SAFE:
            value = _CONVERT(handler, value)  # raises on an unsafe value, as Tornado
            if len(_SAFE) >= _SAFE_MAX:
                _SAFE.clear()
            _SAFE.add(value)
    elif kind is int:
        value = str(value)
    else:
        value = _CONVERT(handler, value)
    handler._headers[name] = value
    return True


# -- RequestHandler.finish ----------------------------------------------------------

_FINISH_NAMES = name_set(
    "RuntimeError _break_cycles _clear_representation_headers _finished _headers "
    "_headers_written _log _status_code _write_buffer check_etag_header connection "
    "finish flush method on_finish request set_close_callback set_etag_header "
    "set_header set_status sum write"
)
#: ``finish`` as checked in 6.5.3 and 6.6 (6.6 adds ``_should_not_send_content``), with
#: ``set_etag_header``/``compute_etag``/``_log`` as Tornado wrote them.
CAN_FINISH_FAST = (
    FAST_HEADERS
    and frozenset(_BASE.finish.__code__.co_names) - {"_should_not_send_content"} == _FINISH_NAMES
    and sorted(_BASE.set_etag_header.__code__.co_names) == ["compute_etag", "set_header"]
    and sorted(_BASE.compute_etag.__code__.co_names)
    == ["_write_buffer", "hashlib", "hexdigest", "sha1", "update"]
    and sorted(_BASE._log.__code__.co_names) == ["application", "log_request"]
)


def finish(handler: tornado.web.RequestHandler, chunk: Any) -> Future[None] | None:
    """``handler.finish(chunk)`` as Tornado's does it, with its ETag and
    Content-Length steps done in place (the same hash, header and 304; the same hooks
    called: ``write``, ``check_etag_header``, ``flush``, ``on_finish``). None (nothing
    done) where it does not apply: the caller then runs Tornado's ``finish``."""
    cls = type(handler)
    if (
        not CAN_FINISH_FAST
        or handler._finished
        or cls.compute_etag is not _BASE.compute_etag
        or cls.set_etag_header is not _BASE.set_etag_header
        or cls._log is not _BASE._log
        or type(handler._headers) is not httputil.HTTPHeaders
    ):
        return None
    if chunk is not None:
        handler.write(chunk)
    if not handler._headers_written:
        headers = handler._headers
        fields = header_fields(headers)
        status = handler._status_code
        if status == 200 and handler.request.method in ("GET", "HEAD") and "Etag" not in fields:
            hasher = hashlib.sha1(usedforsecurity=False)  # Tornado's ETag hash
            for part in handler._write_buffer:
                hasher.update(part)
            headers["Etag"] = f'"{hasher.hexdigest()}"'  # hex digits: a valid header text
            if handler.check_etag_header():
                handler._write_buffer = []
                handler.set_status(304)
                return _BASE.finish(handler)  # Tornado's 304 (the ETag is set: kept)
        elif status in (204, 304) or 100 <= status < 200:
            return _BASE.finish(handler)  # Tornado's checks of a body-less status
        if "Content-Length" not in fields:
            headers["Content-Length"] = str(sum(map(len, handler._write_buffer)))
    connection: Any = handler.request.connection
    assert connection is not None
    connection.set_close_callback(None)
    future = handler.flush(include_footers=True)
    connection.finish()
    handler.application.log_request(handler)
    handler._finished = True
    handler.on_finish()
    handler._break_cycles()
    return future


# -- RequestHandler.__init__ ----------------------------------------------------------

#: ``__init__`` as checked in 6.5.3 and 6.6: the state, ``ui``, ``clear()``, the close
#: callback, ``initialize(**kwargs)``.
CAN_INIT_FAST = frozenset(_BASE.__init__.__code__.co_names) == name_set(
    "ObjectDict _UIModuleNamespace __init__ _auto_finish _finished _headers_written "
    "_prepared_future application clear connection initialize items on_connection_close "
    "request set_close_callback super ui ui_methods ui_modules"
)
_UIModules: Any = getattr(tornado.web, "_UIModuleNamespace", None)
#: handler class -> whether nothing but ``object`` follows Tornado's RequestHandler in
#: its MRO (Tornado's ``super().__init__()`` then does nothing).
_PLAIN: dict[type, bool] = {}


def init_handler(
    handler: tornado.web.RequestHandler,
    application: tornado.web.Application,
    request: httputil.HTTPServerRequest,
    kwargs: dict[str, Any],
) -> bool:
    """``RequestHandler.__init__`` as Tornado's, except that ``ui`` is left for the
    handler to build on first use (:func:`build_ui`). False (nothing done) where
    that does not apply: the caller runs Tornado's ``__init__``."""
    cls = type(handler)
    plain = _PLAIN.get(cls)
    if plain is None:
        mro = cls.__mro__
        plain = _PLAIN[cls] = mro[mro.index(_BASE) + 1 :] == (object,)
    if not (plain and CAN_INIT_FAST and _UIModules is not None):
        return False
    handler.application = application
    handler.request = request
    handler._headers_written = False
    handler._finished = False
    handler._auto_finish = True
    handler._prepared_future = None
    handler.clear()
    connection: Any = request.connection
    assert connection is not None
    connection.set_close_callback(handler.on_connection_close)
    handler.initialize(**kwargs)
    return True


def build_ui(handler: tornado.web.RequestHandler) -> ObjectDict:
    """The ``ui`` namespace Tornado's ``__init__`` gives a handler (its UI methods bound
    to it, ``modules`` and ``_tt_modules``)."""
    app = handler.application
    ui = ObjectDict((n, handler._ui_method(m)) for n, m in app.ui_methods.items())
    ui["_tt_modules"] = _UIModules(handler, app.ui_modules)
    ui["modules"] = ui["_tt_modules"]
    return ui
