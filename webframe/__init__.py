"""webframe: a class-based web framework on Tornado."""

from __future__ import annotations

from .app import Application
from .errors import (
    BadRequestError,
    ConfigurationError,
    ForbiddenError,
    HTTPError,
    InsufficientStorageError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    XSRFError,
)
from .handler import RequestHandler
from .multipart import UploadedFile, UploadLimits
from .routing import Route, RouteTable, route
from .settings import Settings
from .sizes import format_size
from .throttle import RateLimiter, TooManyRequestsError
from .tus import ResumableUploadHandler
from .uploads import UploadHandler

__version__ = "0.1.0"

__all__ = [
    "Application",
    "BadRequestError",
    "ConfigurationError",
    "ForbiddenError",
    "HTTPError",
    "InsufficientStorageError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimiter",
    "RequestHandler",
    "ResumableUploadHandler",
    "Route",
    "RouteTable",
    "ServiceUnavailableError",
    "Settings",
    "TooManyRequestsError",
    "UnsupportedMediaTypeError",
    "UploadHandler",
    "UploadLimits",
    "UploadedFile",
    "XSRFError",
    "__version__",
    "format_size",
    "route",
]
