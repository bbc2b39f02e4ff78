"""Route patterns (``/files/{file_id:int}``): reading them, refusing what cannot be
read one way, the :class:`Route` they make, its matcher and the ``@route`` decorator."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import tornado.routing
import tornado.web
from tornado.httputil import HTTPServerRequest

from ..errors import ConfigurationError
from .converters import CONVERTERS, Converter, PathConverter

__all__ = [
    "REGEX_QUANTIFIER",
    "Route",
    "RouteMatcher",
    "is_webframe_pattern",
    "refuse_flask_syntax",
    "route",
]

T = TypeVar("T", bound=type)

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
#: Flask/Werkzeug's ``<name>`` / ``<conv:name>`` (not a regex's ``(?P<name>``).
_FLASK = re.compile(r"(?<!\(\?P)<(?:([A-Za-z_][A-Za-z0-9_]*):)?([A-Za-z_][A-Za-z0-9_]*)>")
#: what only a regular expression means: groups, classes, escapes, anchors, alternation.
_REGEX_SYNTAX = re.compile(r"[()\[\]\\^$|]")
#: a regex repetition such as ``{4}`` or ``{1,3}`` (the only braces a Tornado regex has).
REGEX_QUANTIFIER = re.compile(r"(?<!\\)\{(?:[0-9]+(?:,[0-9]*)?|,[0-9]+)\}")
_FLASK_CONVERTERS = {"string": "str", "int": "int", "path": "path", "uuid": "uuid"}


def _placeholder(param: str, conv: str | None) -> str:
    return f"{{{param}}}" if conv in (None, "str") else f"{{{param}:{conv}}}"


def refuse_flask_syntax(pattern: str) -> None:
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
    if any(c in text for c in "*+?") or REGEX_QUANTIFIER.search(text):
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
        refuse_flask_syntax(pattern)
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
        spec.matcher = RouteMatcher(self)
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


class RouteMatcher(tornado.routing.PathMatches):
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
