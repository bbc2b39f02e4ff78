"""RequestHandler: all HTTP methods, a correct 405/HEAD/OPTIONS, JSON, and readable errors."""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import tornado.web
from tornado.escape import json_encode, xhtml_escape

from . import files
from .errors import (
    BadRequestError,
    HTTPError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    default_message,
)
from .server import tornado_impl
from .sessions.flash import FlashMixin
from .tornado_steps import TornadoSteps
from .xsrf import XSRFMixin

if TYPE_CHECKING:
    from .settings import Settings
    from .storage import Storage

log = logging.getLogger("webframe")

_BASE = tornado.web.RequestHandler
_OVERRIDABLE = ("PUT", "PATCH", "DELETE")
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class RequestHandler(XSRFMixin, FlashMixin, TornadoSteps):
    """Base class for every webframe handler; it *is* a Tornado RequestHandler.

    Implement any of ``get``/``post``/``put``/``patch``/``delete``. HEAD is answered
    from ``get``, OPTIONS automatically, and a 405 always names the allowed methods.
    When overriding :meth:`prepare`, call ``super().prepare()`` first (it applies
    the ``_method`` override of HTML forms).
    """

    SUPPORTED_METHODS = _METHOD_ORDER
    #: path parameters arrive converted (``{id:int}`` gives an int).
    accepts_typed_path_args: ClassVar[bool] = True
    #: largest request body this handler accepts, in bytes; None: ``settings.max_body_size``.
    max_body_size: ClassVar[int | None] = None
    #: template rendered for error pages (falls back to a plain page if missing).
    error_template: ClassVar[str] = "error.html"
    #: for ``stream_request_body`` handlers: ``data_received`` may be given one
    #: reused ``bytearray`` for large bodies (read from the socket straight into it,
    #: no copies). Its content is only valid during the call: copy what you keep.
    reuses_body_buffer: ClassVar[bool] = False

    _allowed_cache: ClassVar[dict[type, tuple[str, ...]]] = {}

    @classmethod
    def body_size_limit(cls, settings: Settings) -> int:
        """Called once per request before the body is read; returns the byte limit."""
        return cls.max_body_size if cls.max_body_size is not None else settings.max_body_size

    @classmethod
    def allowed_methods(cls) -> tuple[str, ...]:
        """The methods this handler answers, in a stable order (for ``Allow``)."""
        try:
            return cls._allowed_cache[cls]
        except KeyError:
            pass
        have = {
            m
            for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
            if getattr(cls, m.lower()) is not getattr(_BASE, m.lower())
        }
        if "GET" in have or cls.head is not RequestHandler.head:
            have.add("HEAD")
        have.add("OPTIONS")
        # Methods a handler adds through SUPPORTED_METHODS (a WebDAV verb, say) and
        # implements are allowed too, after the standard ones.
        extra = [
            m
            for m in cls.SUPPORTED_METHODS
            if m not in _METHOD_ORDER and callable(getattr(cls, m.lower(), None))
        ]
        allowed = (*(m for m in _METHOD_ORDER if m in have), *extra)
        cls._allowed_cache[cls] = allowed
        return allowed

    def clear(self) -> None:
        """Called when the handler is built and before an error page: resets headers
        (calling ``set_default_headers``), body and status, as Tornado's ``clear``."""
        if not tornado_impl.clear_response(self):
            super().clear()

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Called for each path and query argument; typed path values pass unchanged."""
        # Typed path parameters ({id:int}, {id:uuid}) arrive already converted.
        if not isinstance(value, bytes | str):
            return value
        return super().decode_argument(value, name)

    # Positional-only so that a route parameter may itself be called 'name'.
    def reverse_url(self, name: str, /, *args: Any, **params: Any) -> str:  # type: ignore[override]
        """URL path of the route ``name`` (typed keyword params for ``{param}`` routes)."""
        return self.application.reverse_url(name, *args, **params)

    def safe_next_url(self, name: str = "next", default: str = "/") -> str:
        """The local URL given in argument ``name``, or ``default`` if it is missing or
        could lead to another site (``//host``, ``/\\host``, a scheme, control bytes)."""
        value = self.get_argument(name, "")
        return value if is_local_url(value) else default

    def check_xsrf_cookie(self) -> None:
        """Called before ``prepare`` on unsafe methods; a method the handler lacks is a 405
        whatever the token (so clients learn ``Allow`` rather than a misleading 403)."""
        method = self.request.method
        if method == "POST" and "_method" in self.request.body_arguments:
            # A form's PUT/PATCH/DELETE: prepare() dispatches it (or answers 400/405).
            method = self.get_body_argument("_method", "").upper()
        if method not in self.allowed_methods() and method in _METHOD_ORDER:
            raise MethodNotAllowedError(
                f"The {self.request.method} method is not allowed here; "
                f"use {', '.join(self.allowed_methods())}.",
                quiet=True,
            )
        super().check_xsrf_cookie()

    def prepare(self) -> Awaitable[None] | None:
        """Called before the method; applies ``_method`` (forms' PUT/PATCH/DELETE)."""
        if self.request.method == "POST" and "_method" in self.request.body_arguments:
            wanted = self.get_body_argument("_method", "").upper()
            if wanted not in _OVERRIDABLE:
                raise BadRequestError(
                    f"_method must be one of {', '.join(_OVERRIDABLE)}, not {wanted[:20]!r}."
                )
            # XSRF was already checked for the POST; dispatch now goes to put/patch/delete.
            self.request.method = wanted
        return super().prepare()

    async def head(self, *args: Any, **kwargs: Any) -> None:
        """HEAD from GET: same status and headers, Tornado drops the body."""
        if "GET" not in self.allowed_methods():
            raise MethodNotAllowedError(quiet=True)
        result = self.get(*args, **kwargs)
        if result is not None:
            await result

    def options(self, *args: Any, **kwargs: Any) -> None:
        """Answer OPTIONS with 204 and ``Allow``."""
        self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.set_status(204)
        self.finish()

    def send_file(
        self,
        path: str | Path,
        *,
        root: str | Path,
        filename: str | None = None,
        as_attachment: bool = False,
        content_type: str | None = None,
    ) -> Awaitable[None]:
        """Stream the file ``path`` (never outside ``root``) as the response; await it.

        Ranges, ETag/Last-Modified/304 and Content-Disposition are handled; see
        :func:`webframe.files.send_file`.
        """
        return files.send_file(
            self,
            path,
            root=root,
            filename=filename,
            as_attachment=as_attachment,
            content_type=content_type,
        )

    def send_stored(
        self,
        key: str,
        *,
        filename: str | None = None,
        as_attachment: bool = False,
        content_type: str | None = None,
        presigned: bool = False,
        storage: Storage | None = None,
    ) -> Awaitable[None]:
        """Stream the object ``key`` of the app's ``upload_storage`` (or ``storage``); await it.

        The answers of :meth:`send_file` (ranges, 304, Content-Disposition);
        ``presigned=True`` redirects (307) to a short-lived URL of the storage where
        it can sign one. See :func:`webframe.files.send_stored`.
        """
        source = storage if storage is not None else self.application.upload_storage  # type: ignore[attr-defined]
        return files.send_stored(
            self,
            source,
            key,
            filename=filename,
            as_attachment=as_attachment,
            content_type=content_type,
            presigned=presigned,
        )

    # JSON -----------------------------------------------------------------

    def json(self, obj: Any, status: int = 200) -> Awaitable[None]:
        """Send ``obj`` as the JSON response with ``status`` and finish the request."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        return self.finish(json_encode(obj))

    def get_json(self, *, max_size: int | None = None) -> Any:
        """Parse the request body as JSON.

        Raises 400 when the Content-Type is not JSON or the body is not valid JSON,
        413 when the body is larger than ``max_size`` (default ``max_json_size``).
        """
        ctype = self.request.headers.get("Content-Type", "")
        mime = ctype.split(";", 1)[0].strip().lower()
        if mime != "application/json" and not (
            mime.startswith("application/") and mime.endswith("+json")
        ):
            raise BadRequestError(
                "Expected a JSON body sent with Content-Type: application/json, "
                f"got {ctype[:60]!r}."
                if ctype
                else "Expected a JSON body sent with "
                "Content-Type: application/json; the request has no Content-Type."
            )
        limit = max_size if max_size is not None else self.wf_settings.max_json_size
        body = self.request.body
        if len(body) > limit:
            raise PayloadTooLargeError(
                f"The JSON body is {len(body)} bytes; at most {limit} bytes are accepted."
            )
        try:
            return json.loads(body, parse_constant=_no_constants)
        except json.JSONDecodeError as exc:
            raise BadRequestError(
                f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from None
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BadRequestError(f"The body is not valid JSON: {exc}.") from None

    # Errors ---------------------------------------------------------------

    def wants_json(self) -> bool:
        """True when the client prefers a JSON answer to an HTML page."""
        accept = self.request.headers.get("Accept", "")
        if "json" in accept:
            html = accept.find("html")
            return html < 0 or accept.find("json") < html
        ctype = self.request.headers.get("Content-Type", "")
        return "json" in ctype and "html" not in accept

    def error_message(self, status_code: int, exc: BaseException | None) -> str:
        """The message shown to the client for an error (never a traceback)."""
        if isinstance(exc, HTTPError):
            return exc.message
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message and status_code < 500:
            # Tornado's own 4xx messages (missing argument, XSRF) explain the problem.
            try:
                return str(exc.log_message % exc.args)
            except (TypeError, ValueError):
                return str(exc.log_message)
        return default_message(status_code) or tornado_impl.reason_phrase(self)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Called by ``send_error``; renders ``error.html`` or JSON ``{"error": {...}}``."""
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        message = self.error_message(status_code, exc)
        headers = dict(exc.headers) if isinstance(exc, HTTPError) else {}
        if status_code == 405:
            allow = ", ".join(self.allowed_methods())
            headers["Allow"] = allow
            if not isinstance(exc, HTTPError):
                message = f"The {self.request.method} method is not allowed here; use {allow}."
        for name, value in headers.items():
            self.set_header(name, value)
        if bodyless_status(status_code):
            # 1xx, 204 and 304 must not have a body (Tornado refuses to send one).
            self.finish()
            return
        tb = None
        if exc_info and status_code >= 500 and self.settings.get("serve_traceback"):
            tb = "".join(traceback.format_exception(*exc_info))
        if self.wants_json():
            error: dict[str, Any] = {"status": status_code, "message": message}
            if tb:
                error["traceback"] = tb
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(json_encode({"error": error}))
            return
        try:
            if not self._has_error_template():
                raise _NoTemplate()
            self.render(
                self.error_template,
                status=status_code,
                reason=tornado_impl.reason_phrase(self),
                message=message,
                traceback=tb,
            )
        except Exception as render_exc:
            if not isinstance(render_exc, _NoTemplate):
                log.exception("error template %r failed; sent a plain page", self.error_template)
            reason = tornado_impl.reason_phrase(self)
            self.clear()
            self.set_status(status_code, reason)
            for name, value in headers.items():
                self.set_header(name, value)
            page = (
                f"<!doctype html><title>{status_code} {xhtml_escape(reason)}</title>"
                f"<h1>{status_code} {xhtml_escape(reason)}</h1><p>{xhtml_escape(message)}</p>"
            )
            if tb:
                page += f"<pre>{xhtml_escape(tb)}</pre>"
            self.finish(page)

    def _has_error_template(self) -> bool:
        key = (self.get_template_path(), self.error_template)
        found = _TEMPLATE_EXISTS.get(key)
        if found is None:
            found = key[0] is not None and os.path.isfile(os.path.join(key[0], key[1]))
            _TEMPLATE_EXISTS[key] = found
        return found

    def get_template_namespace(self) -> dict[str, Any]:
        """Called by ``render``; adds webframe's defaults to Tornado's namespace."""
        ns = super().get_template_namespace()
        # Tornado's escaping and output encoding, byte for byte, in fewer calls.
        ns.update(tornado_impl.TEMPLATE_SPEEDUPS)
        ns["settings"] = self.wf_settings
        ns["debug"] = self.wf_settings.debug
        ns["get_flashed_messages"] = self.get_flashed_messages
        return ns


class NotFoundHandler(RequestHandler):
    """Answers every request that matched no route with the 404 page."""

    def check_xsrf_cookie(self) -> None:
        # An unknown URL is a 404 whatever the method; there is nothing to protect.
        return None

    def check_trusted_origin(self, origin: str) -> bool:
        # As Tornado's ErrorHandler: nothing runs here, so a cross-site POST to an
        # unknown URL is a 404, not a 403 from cross_origin_protection.
        return True

    def prepare(self) -> None:
        # Quiet like Tornado's own 404: the access log already has the request.
        raise NotFoundError(quiet=True)


def is_local_url(url: str) -> bool:
    """True if ``url`` is a path on this site (safe as a redirect target)."""
    if not url.startswith("/") or url.startswith(("//", "/\\")):
        return False
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in url):
        return False
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc


class _NoTemplate(Exception):
    """The app has no error template: answer with the built-in plain page."""


_TEMPLATE_EXISTS: dict[tuple[str | None, str], bool] = {}


def bodyless_status(status_code: int) -> bool:
    """True for the statuses whose response must not have a body (as Tornado decides)."""
    return status_code in (204, 304) or 100 <= status_code < 200


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")
