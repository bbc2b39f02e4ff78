"""Error types that carry their HTTP status and a message safe to show a client."""

from __future__ import annotations

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


class PayloadTooLargeError(HTTPError):
    """413: the body is larger than this route accepts."""

    status = 413
    default_message = "The request body is too large."


class UnsupportedMediaTypeError(HTTPError):
    """415: the body's type is not one this route accepts."""

    status = 415
    default_message = "This type of content is not accepted here."


class ServiceUnavailableError(HTTPError):
    """503: a backing service (such as the session store) is down."""

    status = 503
    default_message = "The service is temporarily unavailable; try again shortly."


class InsufficientStorageError(HTTPError):
    """507: the server has no room left to store the request."""

    status = 507
    default_message = "The server has no room left to store this upload."


class ConfigurationError(ValueError):
    """A setting has an invalid value; raised at start-up, the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"setting {setting!r}: {problem}")
