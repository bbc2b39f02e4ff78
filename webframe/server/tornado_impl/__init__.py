"""Every Tornado private name webframe uses lives in this package, version-gated.

Each helper falls back to public behaviour (or says clearly what is missing) when a
Tornado release renames what it relies on. The package's modules are the only
places in webframe that touch Tornado's private names:

- :mod:`.probe`: the running Tornado, and how the gates look into its code;
- :mod:`.headers`: ``HTTPHeaders`` filled and read directly;
- :mod:`.iostream`: ``IOStream``'s read buffer, ``HTTP1Connection``'s close flag,
  ``HTTPServer``'s connection parameters, the gzip body delegate;
- :mod:`.handlers`: ``_HandlerDelegate`` and ``RequestHandler`` state;
- :mod:`.fastpath`: cheaper steps of the per-request path (``__init__``, ``set_header``,
  ``finish``);
- :mod:`.requests`: ``HTTPServerRequest`` built directly, ``_RoutingDelegate``;
- this module: the gates a test or the bench may switch off (``CAN_FAIL_BODY``,
  ``CAN_READ_INTO``, ``HAS_DELIVER_BODY``, ``CAN_EXECUTE_EAGERLY``, ``CAN_CLEAR_FAST``)
  and the helpers that read them, so that setting one here takes effect.

Code that needs no private name sits beside the package: the refusal guard in
:mod:`webframe.server.wire`, the eager first step in :mod:`webframe.server.eager`,
the template escaping in :mod:`webframe.escaping`.
"""

from __future__ import annotations

import asyncio
import http.client
import inspect
import time
from collections.abc import Awaitable
from types import MethodType
from typing import Any

import tornado
import tornado.web
from tornado import httputil
from tornado.concurrent import future_set_exception_unless_cancelled
from tornado.http1connection import HTTP1Connection
from tornado.iostream import BaseIOStream
from tornado.log import app_log

from ...escaping import template_utf8, template_xhtml_escape
from .. import eager, framing
from .fastpath import (
    CAN_FINISH_FAST,
    CAN_INIT_FAST,
    CAN_SET_HEADER_FAST,
    build_ui,
    finish,
    init_handler,
    set_header,
)
from .handlers import (
    TEMPLATE_ENCODER,
    TEMPLATE_SPEEDUPS,
    HandlerDelegate,
    add_body_chunk,
    drop_body_chunks,
    handle_request_exception,
    handler_finished,
    headers_written,
    is_unimplemented,
    parse_body,
    prepare_for_send_error,
    reason_phrase,
    set_handler_finished,
)
from .headers import FAST_HEADERS, header_fields, headers_from_parsed, headers_of
from .iostream import (
    CAN_GUARD,
    close_after_answer,
    connection_parameters,
    drop_read_buffer,
    feed_stream,
    gzip_delegate,
)
from .probe import CHECKED_VERSIONS, TORNADO_VERSION, VERSION_INFO, names_in, parameters
from .requests import CAN_BUILD_REQUEST, new_request, routing_delegate

__all__ = [
    "CAN_BUILD_REQUEST",
    "CAN_CLEAR_FAST",
    "CAN_EXECUTE_EAGERLY",
    "CAN_FAIL_BODY",
    "CAN_FINISH_FAST",
    "CAN_GUARD",
    "CAN_INIT_FAST",
    "CAN_READ_INTO",
    "CAN_SET_HEADER_FAST",
    "CHECKED_VERSIONS",
    "HAS_DELIVER_BODY",
    "TEMPLATE_ENCODER",
    "TEMPLATE_SPEEDUPS",
    "TORNADO_VERSION",
    "VERSION_INFO",
    "HandlerDelegate",
    "add_body_chunk",
    "build_ui",
    "clear_response",
    "close_after_answer",
    "connection_parameters",
    "drop_body_chunks",
    "drop_read_buffer",
    "execute_eagerly",
    "fail_body",
    "feed_stream",
    "finish",
    "gzip_delegate",
    "handle_request_exception",
    "handler_finished",
    "header_fields",
    "headers_from_parsed",
    "headers_written",
    "init_handler",
    "is_unimplemented",
    "new_request",
    "parse_body",
    "prepare_for_send_error",
    "read_fixed_body_into",
    "reason_phrase",
    "reuse_body_buffer",
    "routing_delegate",
    "set_handler_finished",
    "set_header",
    "template_utf8",
    "template_xhtml_escape",
]

# -- a streaming handler's body failing with an error --------------------------------

#: ``HTTPServerRequest._body_future``: what a streaming handler's ``_execute`` awaits
#: before calling the method (set by the delegate's ``headers_received`` in Tornado 5, 6).
CAN_FAIL_BODY = names_in(HandlerDelegate.headers_received, "_body_future")


def fail_body(request: httputil.HTTPServerRequest, error: BaseException) -> bool:
    """Make the streaming handler waiting for ``request``'s body fail with ``error``
    (its own ``write_error`` answers, its clean-up runs). False when this Tornado has
    no such future; the caller then answers through a fresh handler."""
    future = getattr(request, "_body_future", None) if CAN_FAIL_BODY else None
    if future is None:
        return False
    future_set_exception_unless_cancelled(future, error)
    return True


# -- a Content-Length body read into one reused buffer --------------------------------

#: ``HTTP1Connection._read_fixed_body(content_length, delegate)``: the coroutine that
#: reads a Content-Length body, replaced per request by the reused-buffer reader.
CAN_READ_INTO = parameters(getattr(HTTP1Connection, "_read_fixed_body", None)) == [
    "self",
    "content_length",
    "delegate",
] and hasattr(BaseIOStream, "read_into")
#: ``HTTP1Connection._deliver_body(delegate, data)`` (Tornado 6.6 on): how a body piece
#: reaches the delegate. Before it (6.5.x) the reader delivers as 6.5's
#: ``_read_fixed_body`` does: only while the answer is not finished
#: (``_write_finished``), a delegate's error logged and raised on.
HAS_DELIVER_BODY = VERSION_INFO >= (6, 6) and parameters(
    getattr(HTTP1Connection, "_deliver_body", None)
) == ["self", "delegate", "data"]
_CAN_DELIVER_OURSELVES = names_in(HTTP1Connection.__init__, "_write_finished")


def reuse_body_buffer(connection: httputil.HTTPConnection | None) -> bool:
    """Have ``connection`` read this request's Content-Length body straight into one
    reused buffer (see :func:`read_fixed_body_into`). False when that is not possible
    (not Tornado's ``HTTP1Connection``, or a Tornado without the internals it needs):
    the caller falls back to Tornado's own reads."""
    if not (
        isinstance(connection, HTTP1Connection)
        and CAN_READ_INTO
        and (HAS_DELIVER_BODY or _CAN_DELIVER_OURSELVES)
    ):
        return False
    # For this request only: Tornado makes a connection object per request, and the
    # override also removes itself once it runs.
    connection._read_fixed_body = MethodType(  # type: ignore[method-assign]
        read_fixed_body_into, connection
    )
    return True


async def _deliver(
    connection: HTTP1Connection, delegate: httputil.HTTPMessageDelegate, data: bytearray
) -> None:
    """One body piece to ``delegate``: Tornado's ``_deliver_body`` where it exists, else
    what Tornado 6.5's ``_read_fixed_body`` does inline."""
    if HAS_DELIVER_BODY:
        await connection._deliver_body(delegate, data)  # type: ignore[arg-type]
        return
    if connection._write_finished:
        return  # answered already: the rest of the body is read and dropped
    try:
        result = delegate.data_received(data)  # type: ignore[arg-type]
        if result is not None:
            await result
    except Exception:
        # Logged here and raised on, as Tornado's _ExceptionLoggingContext does.
        app_log.error("Uncaught exception", exc_info=True)
        raise


async def read_fixed_body_into(
    self: HTTP1Connection, content_length: int, delegate: httputil.HTTPMessageDelegate
) -> None:
    """``HTTP1Connection._read_fixed_body`` reading into one reused buffer.

    Each piece is the whole buffer (a bytearray of ``BODY_BUFFER_MIN`` to
    ``BODY_BUFFER`` bytes, sized by :func:`framing.next_buffer_size`; the last piece an
    exact-size one), so consumers that need ``bytes`` methods (the multipart parser's
    ``find``) get them without a copy.
    """
    del self._read_fixed_body  # back to the class's method for the next request
    stream = self.stream
    clock = asyncio.get_running_loop().time
    buffer = bytearray(framing.first_buffer_size(content_length))
    while content_length > 0:
        if content_length < len(buffer):
            buffer = bytearray(content_length)
        started = clock()
        read = stream.read_into(buffer)
        waited = not read.done()  # type: ignore[attr-defined]
        await read
        took = clock() - started
        content_length -= len(buffer)
        await _deliver(self, delegate, buffer)
        if not waited:
            # The piece was already buffered: let other connections run, as Tornado does.
            await asyncio.sleep(0)
        size = len(buffer)
        new = framing.next_buffer_size(size, waited, took, content_length)
        if new != size:
            buffer = bytearray(new)


# -- running a handler without a Task when it does not suspend -------------------------

_ORIGINAL_EXECUTE = HandlerDelegate.execute
#: ``_HandlerDelegate.execute`` builds the handler, the transforms and (streaming) the
#: ``_prepared_future``, then wraps ``handler._execute(...)`` in a Task; checked in 6.5/6.6.
CAN_EXECUTE_EAGERLY = (
    names_in(_ORIGINAL_EXECUTE, "handler_class", "transforms", "_prepared_future", "_execute")
    and inspect.iscoroutinefunction(tornado.web.RequestHandler._execute)
    and eager.CAN_RUN_EAGERLY
)


def execute_eagerly(delegate: Any) -> Awaitable[None] | None:
    """``_HandlerDelegate.execute`` that runs ``handler._execute`` at once, up to its
    first suspension, and only then makes a Task for the rest
    (:func:`webframe.server.eager.run_eagerly`).

    A synchronous handler (``def get``) answers with no Task, no loop turn and no
    done callback. Exceptions behave as in Tornado: ``_execute`` handles its own;
    anything escaping it ends in a future whose failure the loop logs. Tornado's
    ``execute`` runs instead when called from inside a task (Tornado's own
    connection layer), when the template or static caches are off (debug; it resets
    them per request), or on a Tornado whose ``execute`` differs.
    """
    app = delegate.application
    settings = app.settings
    if (
        not CAN_EXECUTE_EAGERLY
        or not settings.get("compiled_template_cache", True)
        or not settings.get("static_hash_cache", True)
        or asyncio.current_task() is not None
    ):
        result: Awaitable[None] | None = _ORIGINAL_EXECUTE(delegate)
        return result
    loop = asyncio.get_running_loop()
    request = delegate.request
    handler = delegate.handler = delegate.handler_class(app, request, **delegate.handler_kwargs)
    transforms = [t(request) for t in app.transforms]
    if delegate.stream_request_body:
        handler._prepared_future = loop.create_future()
    eager.run_eagerly(
        loop, handler._execute(transforms, *delegate.path_args, **delegate.path_kwargs)
    )
    return handler._prepared_future  # type: ignore[no-any-return]


# -- a cheaper RequestHandler.clear() -------------------------------------------------

#: ``RequestHandler.clear`` as checked in Tornado 6.5/6.6: new ``HTTPHeaders`` with
#: Server/Content-Type/Date, ``set_default_headers()``, then body and status reset.
CAN_CLEAR_FAST = FAST_HEADERS and sorted(tornado.web.RequestHandler.clear.__code__.co_names) == [
    "HTTPHeaders", "_headers", "_reason", "_status_code", "_write_buffer", "format_timestamp",
    "httputil", "responses", "set_default_headers", "time", "tornado", "version",
]  # fmt: skip
_SERVER = f"TornadoServer/{tornado.version}"
_OK = http.client.responses[200]
_date: list[Any] = [0, ""]


def clear_response(handler: tornado.web.RequestHandler) -> bool:
    """Do what ``RequestHandler.clear`` does (same headers, same order of steps),
    with the Date text made once per second and the header mapping filled directly.
    False (nothing done) on a Tornado whose ``clear`` differs."""
    if not CAN_CLEAR_FAST:
        return False
    now = int(time.time())
    if _date[0] != now:
        _date[1] = httputil.format_timestamp(now)
        _date[0] = now
    handler._headers = headers_of(
        {
            "Server": [_SERVER],
            "Content-Type": ["text/html; charset=UTF-8"],
            "Date": [_date[1]],
        }
    )
    handler.set_default_headers()
    handler._write_buffer = []
    handler._status_code = 200
    handler._reason = _OK
    return True
