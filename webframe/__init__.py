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
from .routing import Route, RouteTable, route
from .settings import Settings

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
    "RequestHandler",
    "Route",
    "RouteTable",
    "ServiceUnavailableError",
    "Settings",
    "UnsupportedMediaTypeError",
    "XSRFError",
    "__version__",
    "route",
]
