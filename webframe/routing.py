"""Friendly route patterns (``/files/{file_id:int}``), the ``@route`` decorator, reversing."""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, TypeVar
from urllib.parse import quote, unquote_to_bytes

import tornado.routing
import tornado.web
from tornado.httputil import HTTPServerRequest

from .errors import ConfigurationError

T = TypeVar("T", bound=type)


class Converter:
    """Turns one path segment pattern into a typed value and back."""

    regex = r"[^/]+"
    #: True when ``to_python`` returns something other than the raw text.
    typed = False

    def to_python(self, raw: bytes) -> Any:
        """Called on a match with the unquoted bytes; returns the value the method gets."""
        return raw

    def to_url(self, name: str, value: Any) -> str:
        """Called by ``reverse``; returns the quoted URL text or raises TypeError/ValueError."""
        if not isinstance(value, str):
            raise TypeError(f"parameter {name!r} must be a str, got {type(value).__name__}")
        if not value or "/" in value:
            raise ValueError(f"parameter {name!r} must be one non-empty path segment")
        return quote(value, safe="")


class IntConverter(Converter):
    # Bounded so a 10,000-digit segment cannot reach int() (and its digit limit).
    regex = r"[0-9]{1,18}"
    typed = True

    def to_python(self, raw: bytes) -> int:
        return int(raw)

    def to_url(self, name: str, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"parameter {name!r} must be an int, got {type(value).__name__}")
        if not 0 <= value < 10**18:
            raise ValueError(f"parameter {name!r} must be between 0 and 10**18 - 1")
        return str(value)


class PathConverter(Converter):
    # Any number of segments, but never a '..' segment: no route sees a traversal.
    regex = r"(?!\.\.(?:/|$))(?:[^/]+)(?:/(?!\.\.(?:/|$))[^/]+)*"

    def to_url(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"parameter {name!r} must be a str, got {type(value).__name__}")
        parts = value.split("/")
        if not value or any(p in ("", "..") for p in parts):
            raise ValueError(f"parameter {name!r} must be a relative path without '..' or '//'")
        return quote(value, safe="/")


class UUIDConverter(Converter):
    regex = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    typed = True

    def to_python(self, raw: bytes) -> uuid.UUID:
        return uuid.UUID(raw.decode("ascii"))

    def to_url(self, name: str, value: Any) -> str:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            try:
                return str(uuid.UUID(value))
            except ValueError:
                raise ValueError(f"parameter {name!r} is not a UUID: {value!r}") from None
        raise TypeError(f"parameter {name!r} must be a UUID, got {type(value).__name__}")


CONVERTERS: dict[str, Converter] = {
    "str": Converter(),
    "int": IntConverter(),
    "path": PathConverter(),
    "uuid": UUIDConverter(),
}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")


class Route:
    """One pattern bound to one handler class, with an optional name for reversing."""

    def __init__(
        self,
        pattern: str,
        handler: type[tornado.web.RequestHandler],
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if not pattern.startswith("/"):
            raise ConfigurationError("routes", f"pattern {pattern!r} must start with '/'")
        self.pattern = pattern
        self.handler = handler
        self.kwargs = kwargs or {}
        self.name = name
        self.converters: dict[str, Converter] = {}
        self._pieces: list[str | tuple[str, Converter]] = []
        regex = ["^"]
        pos = 0
        for m in _PARAM.finditer(pattern):
            literal = pattern[pos : m.start()]
            if "{" in literal or "}" in literal:
                raise ConfigurationError("routes", f"pattern {pattern!r} has a stray brace")
            regex.append(re.escape(literal))
            self._pieces.append(literal)
            param, conv_name = m.group(1), m.group(2) or "str"
            if conv_name not in CONVERTERS:
                raise ConfigurationError(
                    "routes",
                    f"pattern {pattern!r}: unknown converter {conv_name!r} "
                    f"(known: {', '.join(sorted(CONVERTERS))})",
                )
            if param in self.converters:
                raise ConfigurationError("routes", f"pattern {pattern!r} repeats {{{param}}}")
            conv = CONVERTERS[conv_name]
            self.converters[param] = conv
            self._pieces.append((param, conv))
            regex.append(f"(?P<{param}>{conv.regex})")
            pos = m.end()
        tail = pattern[pos:]
        if "{" in tail or "}" in tail:
            raise ConfigurationError("routes", f"pattern {pattern!r} has a stray brace")
        regex.append(re.escape(tail) + "$")
        self._pieces.append(tail)
        self.regex = re.compile("".join(regex))

    def reverse(self, **params: Any) -> str:
        """Build this route's path from ``params``; wrong names or types raise TypeError."""
        missing = set(self.converters) - set(params)
        extra = set(params) - set(self.converters)
        if missing or extra:
            raise TypeError(
                f"route {self.name or self.pattern!r} takes {sorted(self.converters)}; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        out = []
        for piece in self._pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                param, conv = piece
                out.append(conv.to_url(param, params[param]))
        return "".join(out)

    def rule(self) -> tornado.routing.URLSpec:
        """The Tornado rule serving this route."""
        spec = tornado.routing.URLSpec(self.regex.pattern, self.handler, self.kwargs, self.name)
        spec.matcher = _RouteMatcher(self)
        return spec

    def __repr__(self) -> str:
        return f"Route({self.pattern!r}, {self.handler.__name__}, name={self.name!r})"


class _RouteMatcher(tornado.routing.PathMatches):
    """Matches like Tornado's PathMatches, then converts parameters to their types."""

    def __init__(self, route: Route) -> None:
        super().__init__(route.regex)
        self.route = route
        # Plain Tornado handlers expect bytes; only webframe handlers take typed values.
        self._typed = getattr(route.handler, "accepts_typed_path_args", False)

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        m = self.regex.match(request.path)
        if m is None:
            return None
        if not self.regex.groups:
            return {}
        kwargs: dict[str, Any] = {}
        for name, raw in m.groupdict().items():
            value = unquote_to_bytes(raw)
            conv = self.route.converters[name]
            if isinstance(conv, PathConverter) and b"/../" in b"/" + value + b"/":
                # %2e%2e becomes '..' only after the regex saw it: refuse it here too.
                return None
            kwargs[name] = conv.to_python(value) if self._typed and conv.typed else value
        return {"path_args": [], "path_kwargs": kwargs}

    def reverse(self, *args: Any) -> str | None:
        return None


def route(pattern: str, name: str | None = None, **kwargs: Any) -> Callable[[T], T]:
    """Class decorator: serve the decorated handler at ``pattern``.

    Can be stacked to serve one handler at several patterns. ``kwargs`` go to the
    handler's ``initialize``. The application collects decorated classes when it is
    given the class itself or the module that defines it.
    """

    def decorate(cls: T) -> T:
        own = cls.__dict__.get("webframe_routes")
        routes: list[Route] = list(own) if own else []
        # Decorators apply bottom-up; keep the order they were written in.
        routes.insert(0, Route(pattern, cls, kwargs, name))
        cls.webframe_routes = routes  # type: ignore[attr-defined]
        return cls

    return decorate


RouteSpec = Any


class RouteTable:
    """The application's ordered list of routes, built from any mix of forms.

    Accepted items: a :class:`Route`; a handler class decorated with :func:`route`;
    a module (its decorated classes, in definition order); a tuple
    ``(pattern, handler[, kwargs[, name]])`` whose pattern uses ``{param}`` syntax;
    a Tornado ``URLSpec``/``Rule`` (used as given).
    """

    def __init__(self, items: Iterable[RouteSpec] = ()) -> None:
        self.routes: list[Route | tornado.routing.Rule] = []
        self.by_name: dict[str, Route] = {}
        for item in items:
            self.add(item)

    def add(self, item: RouteSpec) -> None:
        """Add one item (see the class docstring for the forms)."""
        if isinstance(item, Route):
            self._add_route(item)
        elif isinstance(item, tornado.routing.Rule):
            self.routes.append(item)
        elif isinstance(item, ModuleType):
            classes = [
                obj
                for obj in vars(item).values()
                if inspect.isclass(obj)
                and obj.__module__ == item.__name__
                and "webframe_routes" in obj.__dict__
            ]
            # A module's namespace keeps definition order: no need to read its source.
            for cls in classes:
                self.add(cls)
        elif inspect.isclass(item):
            found = item.__dict__.get("webframe_routes")
            if not found:
                raise ConfigurationError(
                    "routes", f"{item.__name__} has no @route(...) decorator; give a pattern"
                )
            for r in found:
                self._add_route(r)
        elif isinstance(item, tuple) and 2 <= len(item) <= 4:
            self._add_route(Route(*item))
        else:
            raise ConfigurationError("routes", f"cannot make a route of {item!r}")

    def _add_route(self, r: Route) -> None:
        if r.name is not None:
            if r.name in self.by_name:
                raise ConfigurationError("routes", f"two routes are named {r.name!r}")
            self.by_name[r.name] = r
        self.routes.append(r)

    def rules(self) -> list[tornado.routing.Rule]:
        """Tornado rules, in order."""
        return [r.rule() if isinstance(r, Route) else r for r in self.routes]

    def reverse(self, name: str, /, **params: Any) -> str:
        """Path of the route called ``name``; KeyError if none, TypeError for bad params."""
        try:
            r = self.by_name[name]
        except KeyError:
            raise KeyError(f"no route is named {name!r}") from None
        return r.reverse(**params)
