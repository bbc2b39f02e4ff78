"""The route table: every accepted form of route, in order, with names for reversing."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import tornado.routing
import tornado.web
from tornado.util import import_object

from ..errors import ConfigurationError
from ..server import tornado_impl
from .converters import CONVERTERS
from .patterns import REGEX_QUANTIFIER, Route, is_webframe_pattern, refuse_flask_syntax

__all__ = ["RouteSpec", "RouteTable"]

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
        refuse_flask_syntax(pattern)
        if is_webframe_pattern(pattern):
            self._add_route(Route(pattern, handler, kwargs, name))
            return
        rest = REGEX_QUANTIFIER.sub("", pattern.replace("\\{", "").replace("\\}", ""))
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
            refuse_flask_syntax(pattern)
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
        if fn is None or tornado_impl.is_unimplemented(fn):
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
