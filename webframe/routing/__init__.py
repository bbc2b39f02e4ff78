"""Friendly route patterns (``/files/{file_id:int}``), the ``@route`` decorator, reversing.

Converters are in :mod:`webframe.routing.converters`, pattern reading, :class:`Route`
and ``@route`` in :mod:`webframe.routing.patterns`, and :class:`RouteTable` in
:mod:`webframe.routing.table`; import them from here.
"""

from __future__ import annotations

from .converters import (
    CONVERTERS,
    Converter,
    IntConverter,
    PathConverter,
    SignedIntConverter,
    UUIDConverter,
)
from .patterns import Route, RouteMatcher, is_webframe_pattern, route
from .table import RouteSpec, RouteTable

__all__ = [
    "CONVERTERS",
    "Converter",
    "IntConverter",
    "PathConverter",
    "Route",
    "RouteMatcher",
    "RouteSpec",
    "RouteTable",
    "SignedIntConverter",
    "UUIDConverter",
    "is_webframe_pattern",
    "route",
]
