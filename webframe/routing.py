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
from tornado.util import import_object

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


class SignedIntConverter(IntConverter):
    """``{n:signed}``: an int that may be negative (``int`` itself takes no sign, so
    ``/items/-1`` is a 404 there rather than a surprise for code expecting an index)."""

    regex = r"-?[0-9]{1,18}"

    def to_url(self, name: str, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"parameter {name!r} must be an int, got {type(value).__name__}")
        if not -(10**18) < value < 10**18:
            raise ValueError(f"parameter {name!r} must be between -(10**18 - 1) and 10**18 - 1")
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
    "signed": SignedIntConverter(),
    "path": PathConverter(),
    "uuid": UUIDConverter(),
}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
#: Flask/Werkzeug's ``<name>`` / ``<conv:name>`` (not a regex's ``(?P<name>``).
_FLASK = re.compile(r"(?<!\(\?P)<(?:([A-Za-z_][A-Za-z0-9_]*):)?([A-Za-z_][A-Za-z0-9_]*)>")
#: what only a regular expression means: groups, classes, escapes, anchors, alternation.
_REGEX_SYNTAX = re.compile(r"[()\[\]\\^$|]")
#: a regex repetition such as ``{4}`` or ``{1,3}`` (the only braces a Tornado regex has).
_QUANTIFIER = re.compile(r"(?<!\\)\{(?:[0-9]+(?:,[0-9]*)?|,[0-9]+)\}")
_FLASK_CONVERTERS = {"string": "str", "int": "int", "path": "path", "uuid": "uuid"}


def _placeholder(param: str, conv: str | None) -> str:
    return f"{{{param}}}" if conv in (None, "str") else f"{{{param}:{conv}}}"


def _refuse_flask(pattern: str) -> None:
    """Stop start-up for Flask's ``<id>`` syntax, showing webframe's spelling."""
    if _FLASK.search(pattern) is None:
        return

    def spell(m: re.Match[str]) -> str:
        conv = m.group(1)
        return _placeholder(m.group(2), _FLASK_CONVERTERS.get(conv, conv) if conv else None)

    raise ConfigurationError(
        "routes",
        f"pattern {pattern!r} uses Flask's <name> syntax, which webframe does not read; "
        f"write {_FLASK.sub(spell, pattern)!r} (converters: {', '.join(sorted(CONVERTERS))})",
    )


def _as_placeholders(pattern: str) -> str | None:
    """A regex route spelt with webframe placeholders (each group becomes ``{argN}``),
    or None when the regex does more than capture path segments."""
    out: list[str] = []
    depth = count = 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            if depth == 0:
                if pattern[i + 1] not in "./-_~":
                    return None
                out.append(pattern[i + 1])
            i += 2
            continue
        if c == "(":
            if depth == 0:
                count += 1
                named = re.match(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>", pattern[i:])
                out.append(f"{{{named.group(1)}}}" if named else f"{{arg{count}}}")
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0:
            out.append(c)
        i += 1
    text = "".join(out)
    if text.startswith("^"):
        text = text[1:]
    if text.endswith("$"):
        text = text[:-1]
    if depth != 0 or not text.startswith("/") or _REGEX_SYNTAX.search(text):
        return None
    if any(c in text for c in "*+?") or _QUANTIFIER.search(text):
        return None
    return text


def _as_regex(pattern: str) -> str:
    """A webframe pattern spelt as a Tornado regex (each placeholder a named group)."""

    def group(m: re.Match[str]) -> str:
        conv = CONVERTERS.get(m.group(2) or "str", CONVERTERS["str"])
        return f"(?P<{m.group(1)}>{conv.regex})"

    return _PARAM.sub(group, pattern)


def is_webframe_pattern(pattern: str) -> bool:
    """True when ``pattern`` holds a ``{name}`` or ``{name:conv}`` placeholder."""
    return _PARAM.search(pattern) is not None


class Route:
    """One webframe pattern bound to one handler class, with an optional name for
    reversing; regex syntax or Flask's ``<id>`` stops start-up with a ConfigurationError."""

    def __init__(
        self,
        pattern: str,
        handler: type[tornado.web.RequestHandler],
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        _refuse_flask(pattern)
        if _REGEX_SYNTAX.search(_PARAM.sub("", pattern)):
            raise ConfigurationError("routes", _regex_in_route(pattern))
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


def _regex_in_route(pattern: str) -> str:
    """The start-up message for regex syntax where a webframe pattern is expected."""
    spelt = _as_placeholders(pattern)
    if is_webframe_pattern(pattern):
        example = repr(spelt) if spelt else "'/users/{user_id:int}'"
        return (
            f"pattern {pattern!r} mixes {{name}} placeholders with regular-expression "
            f"syntax, so it cannot be read one way. Write it with placeholders only "
            f"(e.g. {example}), or as a Tornado regex in a (pattern, Handler) tuple: "
            f"r'{_as_regex(pattern)}' (name every group: when any group has a name, "
            "Tornado passes only the named ones)"
        )
    hint = f"write {spelt!r} (or with a converter, e.g. '{{arg1:int}}')" if spelt else ""
    return (
        f"pattern {pattern!r} is a regular expression, but Route and @route take "
        "webframe patterns; "
        + (hint + ", or " if hint else "")
        + "give the regex as a (pattern, Handler) tuple or tornado.web.url(pattern, Handler)"
    )


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

    ``pattern`` is a webframe pattern: ``{name}`` / ``{name:conv}`` placeholders,
    all other text literal. A regular expression is refused at import time with
    the spelling to use (give regexes as Tornado tuples or ``tornado.web.url``).

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
    a module (its decorated classes, in definition order); a Tornado tuple
    ``(pattern, handler[, kwargs[, name]])``; a Tornado ``URLSpec``
    (``tornado.web.url(...)``) or ``Rule``.

    How a pattern is read: one with a ``{name}`` or ``{name:conv}`` placeholder is a
    webframe pattern (literal text matched exactly, typed parameters, keyword
    ``reverse_url``). Any other pattern in a tuple, ``url()`` or ``Rule`` keeps its
    Tornado meaning: a regular expression whose groups become positional (or, when
    named, keyword) arguments, reversed by Tornado's ``reverse_url(name, *args)``.
    A plain literal such as ``/about`` reads the same both ways; a literal with
    regex characters does not (``/sitemap.xml`` also matches ``/sitemapXxml``, as
    in Tornado): escape them (``/sitemap\\.xml``) or use ``@route``, where text is
    always literal. :class:`Route` and ``@route`` take webframe patterns only.

    Patterns that cannot be read one way stop start-up with a
    :class:`~webframe.ConfigurationError` showing the right spelling: Flask's
    ``<id>``, placeholders mixed with regex groups, a regex given to ``@route``,
    braces that are neither a placeholder nor a regex repetition, an invalid regex.
    Two routes with the same name are refused too.
    """

    def __init__(self, items: Iterable[RouteSpec] = ()) -> None:
        self.routes: list[Route | tornado.routing.Rule] = []
        self.by_name: dict[str, Route] = {}
        self._names: set[str] = set()
        for item in items:
            self.add(item)

    def add(self, item: RouteSpec) -> None:
        """Add one item (see the class docstring for the forms)."""
        if isinstance(item, Route):
            self._add_route(item)
        elif isinstance(item, tornado.routing.Rule):
            self._add_rule(item)
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
        elif isinstance(item, tuple | list) and 2 <= len(item) <= 4:
            self._add_tuple(*item)
        else:
            raise ConfigurationError("routes", f"cannot make a route of {item!r}")

    def _add_tuple(
        self,
        pattern: Any,
        handler: Any,
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(handler, str):
            handler = import_object(handler)  # Tornado accepts "module.Class" too
        if not isinstance(pattern, str):
            # (Matcher, target, ...): Tornado's own form, used as given.
            self._add_rule(tornado.routing.Rule(pattern, handler, kwargs, name))
            return
        _refuse_flask(pattern)
        if is_webframe_pattern(pattern):
            self._add_route(Route(pattern, handler, kwargs, name))
            return
        rest = _QUANTIFIER.sub("", pattern.replace("\\{", "").replace("\\}", ""))
        if "{" in rest or "}" in rest:
            raise ConfigurationError(
                "routes",
                f"pattern {pattern!r} has a brace that is neither a {{name}} / {{name:conv}} "
                "placeholder nor a regex repetition such as {4}; a placeholder is "
                "'{user_id}' or '{user_id:int}' (converters: "
                f"{', '.join(sorted(CONVERTERS))}); a literal brace in a regex is '\\{{'",
            )
        try:
            spec = tornado.web.url(pattern, handler, kwargs, name)
        except re.error as exc:
            raise ConfigurationError(
                "routes", f"pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from None
        self._add_rule(spec)

    def _add_rule(self, rule: tornado.routing.Rule) -> None:
        matcher = rule.matcher
        target = rule.target
        if type(matcher) is tornado.routing.PathMatches:
            pattern = matcher.regex.pattern
            _refuse_flask(pattern)
            core = pattern[1:] if pattern.startswith("^") else pattern
            core = core[:-1] if core.endswith("$") else core
            if (
                is_webframe_pattern(core)
                and inspect.isclass(target)
                and issubclass(target, tornado.web.RequestHandler)
            ):
                # url("/u/{id:int}", H): braces mark a webframe pattern here too.
                self._add_route(Route(core, target, rule.target_kwargs, rule.name))
                return
        self._claim_name(rule.name)
        self.routes.append(rule)

    def _add_route(self, r: Route) -> None:
        _check_signatures(r)
        self._claim_name(r.name)
        if r.name is not None:
            self.by_name[r.name] = r
        self.routes.append(r)

    def _claim_name(self, name: str | None) -> None:
        if name is None:
            return
        if name in self._names:
            raise ConfigurationError("routes", f"two routes are named {name!r}")
        self._names.add(name)

    def rules(self) -> list[tornado.routing.Rule]:
        """Tornado rules, in order."""
        return [r.rule() if isinstance(r, Route) else r for r in self.routes]

    def reverse(self, name: str, /, **params: Any) -> str:
        """Path of the webframe route called ``name``; KeyError if none, TypeError for
        bad params (Tornado regex routes are reversed by ``Application.reverse_url``)."""
        try:
            r = self.by_name[name]
        except KeyError:
            raise KeyError(f"no route is named {name!r}") from None
        return r.reverse(**params)


def _check_signatures(r: Route) -> None:
    """Stop start-up when a method of ``r.handler`` cannot take the route's parameters
    (``{n:int}`` with ``def get(self, num)``), rather than a TypeError on each request."""
    handler = r.handler
    if not (inspect.isclass(handler) and issubclass(handler, tornado.web.RequestHandler)):
        return
    for method in handler.SUPPORTED_METHODS:
        fn = getattr(handler, method.lower(), None)
        if fn is None or fn is tornado.web.RequestHandler._unimplemented_method:
            continue
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue  # a builtin or C method: nothing to read
        try:
            sig.bind(None, **dict.fromkeys(r.converters))
        except TypeError:
            params = "".join(", " + _param_text(p) for p in list(sig.parameters.values())[1:])
            given = ", ".join(f"{name}=..." for name in r.converters) or "no parameters"
            raise ConfigurationError(
                "routes",
                f"pattern {r.pattern!r} calls {handler.__name__}.{method.lower()}"
                f"(self{params}) with {given}, which it does not accept: name the "
                "method's parameters after the pattern's placeholders",
            ) from None


def _param_text(p: inspect.Parameter) -> str:
    """A parameter as written, without its annotation: ``num``, ``page=1``, ``**kw``."""
    if p.kind is p.VAR_POSITIONAL:
        return "*" + p.name
    if p.kind is p.VAR_KEYWORD:
        return "**" + p.name
    return p.name if p.default is p.empty else f"{p.name}={p.default!r}"
