"""``RequestHandler``, ``_HandlerDelegate`` and ``HTTPServerRequest`` state that
webframe's delegate, mixins, templates and connection layer read or steer, with no
public API for it."""

from __future__ import annotations

from typing import Any

import tornado
import tornado.template
import tornado.web
from tornado import httputil

from ...escaping import template_utf8, template_xhtml_escape
from .probe import names_in

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


def prepare_for_send_error(
    handler: tornado.web.RequestHandler, application: tornado.web.Application
) -> None:
    """Give a handler that will not run ``_execute`` (built to answer an error before
    any body was read) the output transforms ``_execute`` would have given it."""
    handler._transforms = [t(handler.request) for t in application.transforms]


#: ``RequestHandler._finished`` / ``_headers_written`` (set in ``__init__``),
#: ``_handle_request_exception`` and ``_unimplemented_method``: no public API says
#: whether the headers went out, lets a session save hold ``finish()`` back, or names
#: the "method not implemented" placeholder. Checked against Tornado 6.5 and 6.6; a
#: Tornado without them is refused at import, naming what is missing.
_HANDLER_NAMES = ("_finished", "_headers_written")
if not names_in(tornado.web.RequestHandler.__init__, *_HANDLER_NAMES) or not all(
    hasattr(tornado.web.RequestHandler, n)
    for n in ("_handle_request_exception", "_unimplemented_method")
):  # pragma: no cover - a Tornado with another RequestHandler
    raise ImportError(
        f"webframe needs RequestHandler._finished, _headers_written, "
        f"_handle_request_exception and _unimplemented_method (Tornado 6.5 to 6.6), "
        f"not all found in Tornado {tornado.version}"
    )


def handler_finished(handler: tornado.web.RequestHandler) -> bool:
    """Whether ``handler`` has finished its answer (``RequestHandler._finished``)."""
    return bool(getattr(handler, "_finished", False))


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


def reason_phrase(handler: tornado.web.RequestHandler) -> str:
    """The reason phrase ``handler`` will send (``set_status``'s, else the standard
    one for its status): Tornado keeps it in ``_reason`` with no public getter."""
    return str(handler._reason)


def parse_body(request: httputil.HTTPServerRequest) -> None:
    """Fill ``request``'s ``body_arguments``, ``files`` and ``arguments`` from its
    ``body``, as Tornado does once a whole body has been read
    (``HTTPServerRequest._parse_body``; the same steps through the public
    ``parse_body_arguments`` on a Tornado without it)."""
    parse = getattr(request, "_parse_body", None)
    if parse is not None:
        parse()
        return
    httputil.parse_body_arguments(  # pragma: no cover - a Tornado without _parse_body
        request.headers.get("Content-Type", ""),
        request.body,
        request.body_arguments,
        request.files,
        request.headers,
    )
    for name, values in request.body_arguments.items():  # pragma: no cover - likewise
        request.arguments.setdefault(name, []).extend(values)


#: ``Template.generate`` names its output encoder ``_tt_utf8`` in the namespace that the
#: handler's template namespace then updates (checked in 6.5/6.6).
TEMPLATE_ENCODER = any(
    c == "_tt_utf8" or (isinstance(c, tuple) and "_tt_utf8" in c)
    for c in tornado.template.Template.generate.__code__.co_consts
)
#: what a webframe handler adds to its template namespace: same bytes, fewer calls.
TEMPLATE_SPEEDUPS: dict[str, Any] = {
    "escape": template_xhtml_escape,
    "xhtml_escape": template_xhtml_escape,
    **({"_tt_utf8": template_utf8} if TEMPLATE_ENCODER else {}),
}
