"""Error types that carry their HTTP status and a message safe to show a client.

This is webframe's one error vocabulary: each class names a status and carries the
default message for it, and :func:`default_message` gives that message for a bare
status (an error page sent with no exception behind it).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import tornado.web


class HTTPError(tornado.web.HTTPError):
    """An error answered with ``status`` and ``message``.

    Unlike Tornado's ``log_message`` (which is for the log), ``message`` is written
    for the client: it says what was wrong and, where possible, how to fix it.
    Subclasses fix the status; raise them from handlers or hooks. Like Tornado's,
    an error is logged as a warning on ``tornado.general`` when raised from a
    handler; ``quiet=True`` skips that (the access log still has the request).
    """

    status: int = 500
    default_message = "The server could not complete the request."

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        quiet: bool = False,
        **kwargs: Any,
    ) -> None:
        code = status if status is not None else self.status
        self.message = message if message is not None else self.default_message
        self.headers = dict(headers or {})
        # Tornado formats log_message with %-args; escape stray percent signs.
        # quiet: no log_message, so Tornado logs no warning (as for its own 404/405).
        log_message = None if quiet else self.message.replace("%", "%%")
        super().__init__(code, log_message, **kwargs)


class BadRequestError(HTTPError):
    """400: the request is malformed."""

    status = 400
    default_message = "The request could not be understood."


class UnauthorizedError(HTTPError):
    """401: the page needs a logged-in user."""

    status = 401
    default_message = "You need to log in to see this page."


class ForbiddenError(HTTPError):
    """403: the request is refused."""

    status = 403
    default_message = "You are not allowed to do this."


class XSRFError(ForbiddenError):
    """403: the anti-forgery token is missing or does not match the session."""

    default_message = "The form's security token is missing or invalid; reload the page and retry."


class NotFoundError(HTTPError):
    """404: nothing lives at this address (also used to hide what the user may not see)."""

    status = 404
    default_message = "The page you asked for does not exist."


class MethodNotAllowedError(HTTPError):
    """405: the resource does not implement the request method."""

    status = 405
    default_message = "This method is not allowed here."


class RequestTimeoutError(HTTPError):
    """408: the request did not arrive in time."""

    status = 408
    default_message = "The request took too long to arrive."


class PayloadTooLargeError(HTTPError):
    """413: the body is larger than this route accepts."""

    status = 413
    default_message = "The request body is too large."


class UnsupportedMediaTypeError(HTTPError):
    """415: the body's type is not one this route accepts."""

    status = 415
    default_message = "This type of content is not accepted here."


class TooManyRequestsError(HTTPError):
    """429: too many attempts; ``Retry-After`` says when to try again."""

    status = 429
    default_message = "Too many attempts; wait a moment and try again."


class InternalServerError(HTTPError):
    """500: the server failed; the details go to the log, never to the client."""

    default_message = "Something went wrong on our side. It has been logged."


class NotSupportedError(HTTPError):
    """501: the server does not implement what the request asks for."""

    status = 501
    default_message = "The server does not support this."


class ServiceUnavailableError(HTTPError):
    """503: a backing service (such as the session store) is down."""

    status = 503
    default_message = "The service is temporarily unavailable; try again shortly."


class InsufficientStorageError(HTTPError):
    """507: the server has no room left to store the request."""

    status = 507
    default_message = "The server has no room left to store this upload."


class UploadError(HTTPError):
    """400: an upload was refused; the base of the upload errors, each with its own status."""

    status = 400
    default_message = "The upload was refused."


class BadUploadError(BadRequestError, UploadError):
    """400: the body is not well-formed multipart/form-data."""


class UploadTooLargeError(PayloadTooLargeError, UploadError):
    """413: a limit of ``UploadLimits`` was exceeded."""


class UploadTypeError(UnsupportedMediaTypeError, UploadError):
    """415: a file's extension or content type is not allowed."""


class UploadStorageError(InsufficientStorageError, UploadError):
    """507: the upload could not be stored (disk full, I/O error)."""


#: the message for each status that has an error class here, by status.
DEFAULT_MESSAGES: Mapping[int, str] = MappingProxyType(
    {
        cls.status: cls.default_message
        for cls in (
            BadRequestError,
            UnauthorizedError,
            ForbiddenError,
            NotFoundError,
            MethodNotAllowedError,
            RequestTimeoutError,
            PayloadTooLargeError,
            UnsupportedMediaTypeError,
            TooManyRequestsError,
            InternalServerError,
            NotSupportedError,
            ServiceUnavailableError,
            InsufficientStorageError,
        )
    }
)


def default_message(status: int) -> str | None:
    """The client message for ``status`` when no error says more, or None if there is none."""
    return DEFAULT_MESSAGES.get(status)


class ConfigurationError(ValueError):
    """A setting has an invalid value; raised at start-up, the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"setting {setting!r}: {problem}")
