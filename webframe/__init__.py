"""webframe: a class-based web framework on Tornado."""

from __future__ import annotations

from .app import Application
from .errors import (
    BadRequestError,
    BadUploadError,
    ConfigurationError,
    ForbiddenError,
    HTTPError,
    InsufficientStorageError,
    InternalServerError,
    MethodNotAllowedError,
    NotFoundError,
    NotSupportedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    UploadError,
    UploadStorageError,
    UploadTooLargeError,
    UploadTypeError,
    XSRFError,
)
from .handler import RequestHandler
from .routing import Route, RouteTable, route
from .settings import Settings
from .throttle import RateLimiter
from .tus import ResumableUploadHandler
from .units import format_size
from .uploads import UploadedFile, UploadHandler, UploadLimits

__version__ = "0.1.0"

__all__ = [
    "Application",
    "BadRequestError",
    "BadUploadError",
    "ConfigurationError",
    "ForbiddenError",
    "HTTPError",
    "InsufficientStorageError",
    "InternalServerError",
    "MethodNotAllowedError",
    "NotFoundError",
    "NotSupportedError",
    "PayloadTooLargeError",
    "RateLimiter",
    "RequestHandler",
    "RequestTimeoutError",
    "ResumableUploadHandler",
    "Route",
    "RouteTable",
    "ServiceUnavailableError",
    "Settings",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "UploadError",
    "UploadHandler",
    "UploadLimits",
    "UploadStorageError",
    "UploadTooLargeError",
    "UploadTypeError",
    "UploadedFile",
    "XSRFError",
    "__version__",
    "format_size",
    "route",
]
