"""Every Tornado private name the connection layers use, in one place, version-checked.

Each helper falls back to public behaviour (or says clearly what is missing)
when a Tornado release renames what it relies on.
"""

from __future__ import annotations

import asyncio
import contextvars
import http.client
import inspect
import sys
import time
from collections.abc import Awaitable, Coroutine, Generator
from types import MethodType
from typing import Any, Protocol

import tornado
import tornado.escape
import tornado.http1connection
import tornado.iostream
import tornado.template
import tornado.web
from tornado import httputil
from tornado.concurrent import future_set_exception_unless_cancelled
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters
from tornado.httpserver import HTTPServer
from tornado.iostream import BaseIOStream
from tornado.log import app_log

from . import framing

#: Tornado releases these helpers were checked against.
CHECKED_VERSIONS = ((6, 5), (6, 6))
TORNADO_VERSION = tuple(int(p) for p in tornado.version.split(".")[:2])

_Gzip: Any = getattr(tornado.http1connection, "_GzipMessageDelegate", None)


def gzip_delegate(
    delegate: httputil.HTTPMessageDelegate, chunk_size: int, max_body_size: int
) -> httputil.HTTPMessageDelegate:
    """Wrap ``delegate`` so a ``Content-Encoding: gzip`` body arrives decompressed
    (``HTTPServer(decompress_request=True)``)."""
    if _Gzip is None:  # pragma: no cover - a Tornado without the helper
        raise RuntimeError(
            f"decompress_request needs tornado.http1connection._GzipMessageDelegate, "
            f"missing in Tornado {tornado.version}"
        )
    try:
        wrapped: httputil.HTTPMessageDelegate = _Gzip(delegate, chunk_size, max_body_size)
    except TypeError:  # pragma: no cover - Tornado before 6.5 took no size limit
        wrapped = _Gzip(delegate, chunk_size)
    return wrapped


def feed_stream(stream: tornado.iostream.IOStream, data: bytes) -> None:
    """Put bytes already read from a socket in front of ``stream``'s read buffer,
    so a detached connection does not lose what the HTTP parser read past the
    request head (the first WebSocket frames of a fast client)."""
    if not data:
        return
    buffer = getattr(stream, "_read_buffer", None)
    if not isinstance(buffer, bytearray) or not hasattr(stream, "_read_buffer_size"):
        raise RuntimeError(  # pragma: no cover - a Tornado with another buffer layout
            f"cannot hand read-ahead bytes to IOStream in Tornado {tornado.version}"
        )
    buffer[:0] = data
    stream._read_buffer_size += len(data)


_normalize: Any = getattr(httputil, "_normalize_header", None)
_FAST_HEADERS = _normalize is not None and {"_as_list", "_combined_cache"} <= set(
    vars(httputil.HTTPHeaders())
)


def _del_needs_cache() -> bool:
    """True on a Tornado (6.5) whose ``HTTPHeaders.__delitem__`` also deletes the
    combined-value cache entry unconditionally: a mapping filled directly must then
    fill that cache too, or deleting a header raises KeyError."""
    headers = httputil.HTTPHeaders.__new__(httputil.HTTPHeaders)
    headers._as_list = {"X": ["1"]}
    headers._combined_cache = {}
    try:
        del headers["X"]
    except KeyError:
        return True
    return False


_FILL_CACHE = _FAST_HEADERS and _del_needs_cache()


def headers_from_parsed(raw: list[tuple[bytes, bytes]]) -> httputil.HTTPHeaders:
    """``HTTPHeaders`` from the (name, value) pairs of a head llhttp has validated.

    llhttp has checked the name bytes (token) and value bytes (no control
    characters), so Tornado's per-field regex checks in ``HTTPHeaders.add`` are
    skipped: the mapping is filled as ``add`` fills it. Values lose the
    surrounding spaces/tabs, as Tornado's parser strips them.
    """
    if not _FAST_HEADERS:  # pragma: no cover - another HTTPHeaders layout
        headers = httputil.HTTPHeaders()
        for name, value in raw:
            headers.add(name.decode("latin1"), value.decode("latin1").strip(" \t"))
        return headers
    as_list: dict[str, list[str]] = {}
    normalize = _normalize
    for name, value in raw:
        key = normalize(name.decode("latin1"))
        text = value.decode("latin1")
        if text and (text[-1] in " \t" or text[0] in " \t"):
            text = text.strip(" \t")
        values = as_list.get(key)
        if values is None:
            as_list[key] = [text]
        else:
            values.append(text)
    headers = httputil.HTTPHeaders.__new__(httputil.HTTPHeaders)
    headers._as_list = as_list
    headers._combined_cache = (
        {key: ",".join(values) for key, values in as_list.items()} if _FILL_CACHE else {}
    )
    return headers


def header_fields(headers: httputil.HTTPHeaders) -> dict[str, list[str]]:
    """Name -> values of ``headers`` (names in Tornado's Http-Header-Case): the
    mapping itself when Tornado's layout is known (read it, do not write it), else
    a copy made through the public API."""
    if _FAST_HEADERS and type(headers) is httputil.HTTPHeaders:
        fields: dict[str, list[str]] = headers._as_list
        return fields
    copy: dict[str, list[str]] = {}
    for name, value in headers.get_all():
        copy.setdefault(httputil._normalize_header(name) if _normalize else name, []).append(value)
    return copy


# -- Tornado's own connection layer (HTTP1Connection), for app.py's handler delegate ----


def _names_in(function: Any, *names: str) -> bool:
    """Whether ``function``'s code refers to every one of ``names`` (how a private
    attribute set in ``__init__`` is detected without making an instance)."""
    code = getattr(function, "__code__", None)
    return code is not None and all(name in code.co_names for name in names)


def _parameters(function: Any) -> list[str] | None:
    """The parameter names of ``function`` (None if it is missing)."""
    if function is None:
        return None
    return list(inspect.signature(function).parameters)


#: the Tornado version this process runs, as ``tornado.version_info``.
VERSION_INFO: tuple[int, ...] = tuple(tornado.version_info)

try:
    from tornado.web import _HandlerDelegate
except ImportError as exc:  # pragma: no cover - a Tornado without it
    raise ImportError(
        f"webframe needs tornado.web._HandlerDelegate (Tornado 6.5 to 6.6), missing in "
        f"Tornado {tornado.version}: install a Tornado version webframe supports"
    ) from exc
#: Tornado's per-request delegate (``Application.get_handler_delegate`` returns one);
#: webframe's own subclasses it: no public class offers its routing and execution.
HandlerDelegate = _HandlerDelegate


def add_body_chunk(delegate: HandlerDelegate, data: bytes) -> None:
    """Keep a piece of a non-streamed body as Tornado's delegate keeps it (``chunks``:
    a ``bytearray`` from Tornado 6.6, a list of pieces joined at the end before)."""
    chunks = delegate.chunks
    if isinstance(chunks, list):
        chunks.append(data)
    else:
        chunks += data


def drop_body_chunks(delegate: HandlerDelegate) -> None:
    """Forget the body pieces ``delegate`` kept so far (a refused body)."""
    delegate.chunks = type(delegate.chunks)()


#: ``HTTPServerRequest._body_future``: what a streaming handler's ``_execute`` awaits
#: before calling the method (set by the delegate's ``headers_received`` in Tornado 5, 6).
CAN_FAIL_BODY = _names_in(HandlerDelegate.headers_received, "_body_future")


def fail_body(request: httputil.HTTPServerRequest, error: BaseException) -> bool:
    """Make the streaming handler waiting for ``request``'s body fail with ``error``
    (its own ``write_error`` answers, its clean-up runs). False when this Tornado has
    no such future; the caller then answers through a fresh handler."""
    future = getattr(request, "_body_future", None) if CAN_FAIL_BODY else None
    if future is None:
        return False
    future_set_exception_unless_cancelled(future, error)
    return True


def prepare_for_send_error(
    handler: tornado.web.RequestHandler, application: tornado.web.Application
) -> None:
    """Give a handler that will not run ``_execute`` (built to answer an error before
    any body was read) the output transforms ``_execute`` would have given it."""
    handler._transforms = [t(handler.request) for t in application.transforms]


def handler_finished(handler: tornado.web.RequestHandler) -> bool:
    """Whether ``handler`` has finished its answer (``RequestHandler._finished``)."""
    return bool(getattr(handler, "_finished", False))


#: What the refusal guard relies on: ``HTTP1Connection._disconnect_on_finish`` (close
#: after this answer) and the ``BaseIOStream`` read buffer (``_read_buffer``,
#: ``_read_buffer_size``, ``_user_read_buffer``, ``_after_user_read_buffer``), emptied
#: when the connection closes. Checked against Tornado 6.5 and 6.6; without them (another
#: Tornado), refused requests still end their connection (``Connection: close``), the
#: guard is not installed and the plain Tornado path runs.
CAN_GUARD = _names_in(HTTP1Connection.__init__, "_disconnect_on_finish") and _names_in(
    BaseIOStream.__init__,
    "_read_buffer",
    "_read_buffer_size",
    "_user_read_buffer",
    "_after_user_read_buffer",
)


def close_after_answer(connection: HTTP1Connection) -> None:
    """Have Tornado close ``connection`` when the answer being written finishes (it
    would otherwise keep it for the next request)."""
    connection._disconnect_on_finish = True


def drop_read_buffer(stream: BaseIOStream | None) -> None:
    """Forget what ``stream`` read from its socket that nobody consumed yet.

    Tornado's ``IOStream.close()`` keeps its read buffer, and a read started after the
    close is still served from it: the request loop would parse the bytes that followed
    a refused head. Emptied, every later read fails with StreamClosedError.
    """
    if stream is None or not CAN_GUARD:
        return
    if stream._user_read_buffer:
        # A read_into() is filling the caller's buffer; the extra bytes wait here.
        stream._after_user_read_buffer = None
    else:
        stream._read_buffer = bytearray()
    stream._read_buffer_size = 0


class LimitedDelegate(Protocol):
    """The delegate a :class:`Wire` reports to (webframe's handler delegate)."""

    def limit_set(self, size: int) -> None:
        """The handler set its request's body limit (``set_max_body_size``)."""


#: the fate of a connection whose answer started before its body was complete.
DRAIN_MODE = "drain"
CLOSE = "close"


class Wire:
    """Tornado's ``HTTP1Connection`` of one request with a body, kept to the rule that
    no byte after the head of a request answered before its body was read is ever
    parsed as a request.

    It wraps the connection's ``write_headers``, ``finish`` and ``close`` (for this
    request only: Tornado makes a connection object per request). An answer whose
    headers go out before the body is complete decides the connection's fate: if the
    rest of the body has a known length of at most ``framing.DRAIN`` bytes (and the client
    is not waiting for a ``100 Continue``), the connection is kept and, once the answer
    is finished, the rest of the body is read and dropped, the answer's end held back
    until then (Tornado would close otherwise); if not, the answer gets
    ``Connection: close``, and when Tornado closes the connection after it, the bytes
    it had already buffered are dropped with it, so nothing is parsed after the head.
    """

    __slots__ = (
        "_close",
        "_finish",
        "_write_headers",
        "connection",
        "delegate",
        "done",
        "expect",
        "finished_early",
        "got_body",
        "mode",
        "remaining",
    )

    def __init__(
        self, connection: HTTP1Connection, delegate: LimitedDelegate, expect: bool
    ) -> None:
        self.connection = connection
        self.delegate = delegate
        #: body bytes still to come; None: unknown (chunked, or framing refused).
        self.remaining: int | None = None
        self.expect = expect
        self.got_body = False
        self.done = False
        #: None until an answer starts before the body is complete.
        self.mode: str | None = None
        #: the answer finished before the body: the rest is dropped as it arrives.
        self.finished_early = False
        self._write_headers = connection.write_headers
        self._finish = connection.finish
        self._close = connection.close
        connection.write_headers = self.write_headers  # type: ignore[method-assign]
        connection.finish = self.finish  # type: ignore[method-assign]
        connection.close = self.close  # type: ignore[method-assign]
        connection.set_max_body_size = self.set_max_body_size  # type: ignore[method-assign]

    def set_max_body_size(self, max_body_size: int) -> None:
        # Tornado's own cap stays lifted: the delegate counts and answers 413.
        self.delegate.limit_set(max_body_size)

    def remaining_less(self, size: int) -> None:
        self.got_body = True
        if self.remaining is not None:
            self.remaining -= size

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        if not self.done and self.mode is None:
            waiting = self.expect and not self.got_body
            self.mode = DRAIN_MODE if framing.can_drain(self.remaining, waiting) else CLOSE
        if self.mode == CLOSE:
            headers["Connection"] = "close"
        return self._write_headers(start_line, headers, chunk)

    def finish(self) -> None:
        if self.mode == CLOSE:
            # Tornado decides to close only if the body is still unread at this point.
            close_after_answer(self.connection)
        elif not self.done and self.mode == DRAIN_MODE:
            # Ended by body_complete(), once the rest of the body has been dropped.
            self.finished_early = True
            return
        self._finish()

    def body_complete(self) -> bool:
        """Called when the whole body has been read; True if it was answered before."""
        self.done = True
        if self.finished_early:
            self._finish()
            return True
        return False

    def close(self) -> None:
        drop_read_buffer(self.connection.stream)
        self._close()


#: ``HTTP1Connection._read_fixed_body(content_length, delegate)``: the coroutine that
#: reads a Content-Length body, replaced per request by the reused-buffer reader.
CAN_READ_INTO = _parameters(getattr(HTTP1Connection, "_read_fixed_body", None)) == [
    "self",
    "content_length",
    "delegate",
] and hasattr(BaseIOStream, "read_into")
#: ``HTTP1Connection._deliver_body(delegate, data)`` (Tornado 6.6 on): how a body piece
#: reaches the delegate. Before it (6.5.x) the reader delivers as 6.5's
#: ``_read_fixed_body`` does: only while the answer is not finished
#: (``_write_finished``), a delegate's error logged and raised on.
HAS_DELIVER_BODY = VERSION_INFO >= (6, 6) and _parameters(
    getattr(HTTP1Connection, "_deliver_body", None)
) == ["self", "delegate", "data"]
_CAN_DELIVER_OURSELVES = _names_in(HTTP1Connection.__init__, "_write_finished")


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


# -- RequestHandler state webframe's mixins read or steer ----------------------------

#: ``RequestHandler._finished`` / ``_headers_written`` (set in ``__init__``),
#: ``_handle_request_exception`` and ``_unimplemented_method``: no public API says
#: whether the headers went out, lets a session save hold ``finish()`` back, or names
#: the "method not implemented" placeholder. Checked against Tornado 6.5 and 6.6; a
#: Tornado without them is refused at import, naming what is missing.
_HANDLER_NAMES = ("_finished", "_headers_written")
if not _names_in(tornado.web.RequestHandler.__init__, *_HANDLER_NAMES) or not all(
    hasattr(tornado.web.RequestHandler, n)
    for n in ("_handle_request_exception", "_unimplemented_method")
):  # pragma: no cover - a Tornado with another RequestHandler
    raise ImportError(
        f"webframe needs RequestHandler._finished, _headers_written, "
        f"_handle_request_exception and _unimplemented_method (Tornado 6.5 to 6.6), "
        f"not all found in Tornado {tornado.version}"
    )


def headers_written(handler: tornado.web.RequestHandler) -> bool:
    """Whether ``handler``'s response headers have been sent (``flush`` ran)."""
    return bool(handler._headers_written)


def set_handler_finished(handler: tornado.web.RequestHandler, finished: bool) -> None:
    """Mark ``handler`` finished (a later ``finish()``/``write()`` is refused) or not.

    The session mixin marks a handler finished while its ``finish()`` waits for the
    store, so nothing else is written meanwhile, and unmarks it to finish for real.
    """
    handler._finished = finished


def handle_request_exception(handler: tornado.web.RequestHandler, error: BaseException) -> None:
    """Answer ``error`` as Tornado answers an exception raised by a handler method
    (log it, then ``send_error``/``write_error``)."""
    handler._handle_request_exception(error)


def is_unimplemented(method: object) -> bool:
    """Whether ``method`` is Tornado's placeholder for an HTTP method a handler does
    not define (``RequestHandler.get`` and the others, which answer 405)."""
    return method is tornado.web.RequestHandler._unimplemented_method


def connection_parameters(server: HTTPServer) -> HTTP1ConnectionParameters:
    """The parameters ``server`` gives each connection it makes (``HTTPServer``'s
    ``conn_params``, filled from its constructor's arguments)."""
    params: HTTP1ConnectionParameters = server.conn_params
    return params


def reason_phrase(handler: tornado.web.RequestHandler) -> str:
    """The reason phrase ``handler`` will send (``set_status``'s, else the standard
    one for its status): Tornado keeps it in ``_reason`` with no public getter."""
    return str(handler._reason)


# -- running a handler without a Task when it does not suspend -------------------------

_ORIGINAL_EXECUTE = HandlerDelegate.execute
#: asyncio's own bookkeeping of the running task (what ``current_task()`` reads).
_enter_task: Any = getattr(asyncio.tasks, "_enter_task", None)
_leave_task: Any = getattr(asyncio.tasks, "_leave_task", None)
#: ``_HandlerDelegate.execute`` builds the handler, the transforms and (streaming) the
#: ``_prepared_future``, then wraps ``handler._execute(...)`` in a Task; checked in 6.5/6.6.
CAN_EXECUTE_EAGERLY = _names_in(
    _ORIGINAL_EXECUTE, "handler_class", "transforms", "_prepared_future", "_execute"
) and inspect.iscoroutinefunction(tornado.web.RequestHandler._execute)
# Python 3.11: create_task(context=...) and Task.cancelling(), which the fast path needs.
CAN_EXECUTE_EAGERLY = (
    CAN_EXECUTE_EAGERLY
    and sys.version_info >= (3, 11)
    and _enter_task is not None
    and _leave_task is not None
)


def _log_failure(future: asyncio.Future[None]) -> None:
    # What Tornado's own done callback does: a failure reaches the loop's handler.
    if not future.cancelled():
        future.result()


class _GoOn(Coroutine[Any, Any, None]):
    """The rest of a handler's ``_execute`` after its first suspension, as a Task's
    coroutine: the first step hands the Task what the handler is waiting for; every
    later step, and any exception the Task throws (a cancellation, even before the
    first step), goes to the handler's coroutine."""

    __slots__ = ("_cancel", "_coro", "_pending", "_started")

    def __init__(
        self, coro: Coroutine[Any, Any, None], pending: Any, cancel: list[Any] | None
    ) -> None:
        self._coro = coro
        self._pending = pending
        self._cancel = cancel
        self._started = False

    def send(self, value: Any) -> Any:
        if self._started:
            return self._coro.send(value)
        self._started = True
        pending, self._pending = self._pending, None
        if self._cancel is not None:
            # Cancelled before it had a Task: as if cancelled while running in one.
            task = asyncio.current_task()
            if task is not None:
                task.cancel(*self._cancel)
        return pending

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._started = True
        self._pending = None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - the 3-argument form

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:  # pragma: no cover - Task steps it
        raise TypeError("run by a Task, not awaited")


class HandlerTask:
    """What ``asyncio.current_task()`` is in a handler that has not suspended yet.

    It stands for the Task the handler goes on in if it suspends: ``cancel()`` made
    before then cancels that Task as soon as it exists (so the handler gets Tornado's
    500 and ends cancelled); once the Task exists every call goes to it.
    """

    __slots__ = ("_cancel", "_done", "_task")

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._cancel: list[Any] | None = None
        self._done = False

    def _took_over(self, task: asyncio.Task[None]) -> None:
        self._task = task

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the handler (at its first suspension, as for a running Task)."""
        if self._task is not None:
            return self._task.cancel(msg)
        if self._done:
            return False
        self._cancel = [msg]
        return True

    def cancelling(self) -> int:
        """Pending cancellation requests (``Task.cancelling``)."""
        if self._task is not None:
            return int(self._task.cancelling())  # type: ignore[attr-defined]
        return 1 if self._cancel is not None else 0

    def uncancel(self) -> int:
        """Take back a cancellation request (``Task.uncancel``; ``asyncio.timeout``)."""
        if self._task is not None:
            return int(self._task.uncancel())  # type: ignore[attr-defined]
        self._cancel = None
        return 0

    def cancelled(self) -> bool:
        """Whether the handler ended cancelled."""
        return self._task is not None and self._task.cancelled()

    def done(self) -> bool:
        """Whether the handler has ended."""
        return self._task.done() if self._task is not None else self._done

    def __getattr__(self, name: str) -> Any:
        task = self._task
        if task is None:
            raise AttributeError(f"{name}: the handler has not suspended, it has no Task yet")
        return getattr(task, name)


def _first_step(
    loop: asyncio.AbstractEventLoop, stand_in: HandlerTask, coro: Coroutine[Any, Any, None]
) -> Any:
    _enter_task(loop, stand_in)
    try:
        return coro.send(None)
    finally:
        _leave_task(loop, stand_in)


def execute_eagerly(delegate: Any) -> Awaitable[None] | None:
    """``_HandlerDelegate.execute`` that runs ``handler._execute`` at once, up to its
    first suspension, and only then makes a Task for the rest.

    A synchronous handler (``def get``) answers with no Task, no loop turn and no
    done callback. As in a Task of its own, the handler runs in a copy of the
    context (a ContextVar it sets ends with the request) and ``current_task()`` is
    its own (a :class:`HandlerTask`, the Task once it suspends). Exceptions behave
    as in Tornado: ``_execute`` handles its own; anything escaping it ends in a
    future whose failure the loop logs. Tornado's ``execute`` runs instead when
    called from inside a task (Tornado's own connection layer), when the template or
    static caches are off (debug; it resets them per request), or on a Tornado whose
    ``execute`` differs.
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
    coro = handler._execute(transforms, *delegate.path_args, **delegate.path_kwargs)
    context = contextvars.copy_context()
    stand_in = HandlerTask()
    try:
        pending = context.run(_first_step, loop, stand_in, coro)
    except StopIteration:
        stand_in._done = True
        return handler._prepared_future  # type: ignore[no-any-return]
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        stand_in._done = True
        failed: asyncio.Future[None] = loop.create_future()
        failed.set_exception(exc)
        failed.add_done_callback(_log_failure)
        return handler._prepared_future  # type: ignore[no-any-return]
    go_on = _GoOn(coro, pending, stand_in._cancel)
    task = loop.create_task(go_on, context=context)  # type: ignore[call-arg]
    stand_in._took_over(task)
    task.add_done_callback(_log_failure)
    return handler._prepared_future  # type: ignore[no-any-return]


# -- a cheaper RequestHandler.clear() -------------------------------------------------

#: ``RequestHandler.clear`` as checked in Tornado 6.5/6.6: new ``HTTPHeaders`` with
#: Server/Content-Type/Date, ``set_default_headers()``, then body and status reset.
CAN_CLEAR_FAST = _FAST_HEADERS and sorted(tornado.web.RequestHandler.clear.__code__.co_names) == [
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
    headers = httputil.HTTPHeaders.__new__(httputil.HTTPHeaders)
    headers._as_list = {
        "Server": [_SERVER],
        "Content-Type": ["text/html; charset=UTF-8"],
        "Date": [_date[1]],
    }
    headers._combined_cache = (
        {"Server": _SERVER, "Content-Type": "text/html; charset=UTF-8", "Date": _date[1]}
        if _FILL_CACHE
        else {}
    )
    handler._headers = headers
    handler.set_default_headers()
    handler._write_buffer = []
    handler._status_code = 200
    handler._reason = _OK
    return True


# -- template output helpers: Tornado's bytes, fewer calls -----------------------------

_tornado_utf8 = tornado.escape.utf8
_tornado_xhtml_escape = tornado.escape.xhtml_escape


def template_utf8(value: Any) -> Any:
    """``tornado.escape.utf8`` with the common types first (bytes, str)."""
    cls = value.__class__
    if cls is bytes:
        return value
    if cls is str:
        return value.encode("utf-8")
    return _tornado_utf8(value)  # None, subclasses, and the TypeError for the rest


def template_xhtml_escape(value: Any) -> str:
    """``tornado.escape.xhtml_escape`` (``html.escape`` of the text) in one call."""
    cls = value.__class__
    if cls is bytes:
        text: str = value.decode("utf-8")
    elif cls is str:
        text = value
    else:
        return _tornado_xhtml_escape(value)
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )


#: ``Template.generate`` names its output encoder ``_tt_utf8`` in the namespace that the
#: handler's template namespace then updates (checked in 6.5/6.6).
_TEMPLATE_ENCODER = any(
    c == "_tt_utf8" or (isinstance(c, tuple) and "_tt_utf8" in c)
    for c in tornado.template.Template.generate.__code__.co_consts
)
#: what a webframe handler adds to its template namespace: same bytes, fewer calls.
TEMPLATE_SPEEDUPS: dict[str, Any] = {
    "escape": template_xhtml_escape,
    "xhtml_escape": template_xhtml_escape,
    **({"_tt_utf8": template_utf8} if _TEMPLATE_ENCODER else {}),
}
