"""Exact-path route cache: a request for a literal route skips Tornado's rule walk.

Tornado finds a request's handler by trying each rule's regex in order, through two
routers. For routes whose pattern is a plain path (``/``, ``/page``) the answer
depends on the path alone, so it is looked up in a dict instead — but only where the
walk would give the same handler: no earlier rule may match that path, and the
router must have Tornado's default layout (no host-specific ``add_handlers``). Any
rule with a matcher other than Tornado's ``PathMatches`` (or webframe's subclass)
ends the cacheable part of the table. The table is rebuilt when rules are added.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import tornado.routing
import tornado.web
from tornado.util import re_unescape

from .patterns import RouteMatcher

Route = tuple[type[tornado.web.RequestHandler], "dict[str, Any] | None"]
_MATCHERS = (tornado.routing.PathMatches, RouteMatcher)


def literal_path(pattern: str) -> str | None:
    """The one path ``pattern`` (a route regex ending in ``$``) matches, or None if it
    matches more than one (groups, wildcards, character classes, flags...)."""
    core = pattern[1:] if pattern.startswith("^") else pattern
    if not core.endswith("$") or core.endswith("\\$"):
        return None
    core = core[:-1]
    try:
        path = re_unescape(core)
    except ValueError:
        return None
    return path if re.escape(path) == core else None


def build(app: tornado.web.Application) -> dict[str, Route]:
    """Path -> (handler class, its kwargs) for the literal routes no earlier rule shadows."""
    table: dict[str, Route] = {}
    top = app.default_router.rules
    if (
        len(top) != 1
        or type(top[0].matcher) is not tornado.routing.AnyMatches
        or top[0].target is not app.wildcard_router
    ):
        return table
    earlier: list[re.Pattern[str]] = []
    for rule in app.wildcard_router.rules:
        matcher = rule.matcher
        if type(matcher) not in _MATCHERS:
            break  # a matcher that may look at more than the path: stop here
        regex: re.Pattern[str] = matcher.regex
        path = literal_path(regex.pattern)
        target = rule.target
        if (
            path is not None
            and path not in table
            and inspect.isclass(target)
            and issubclass(target, tornado.web.RequestHandler)
            and not any(r.match(path) for r in earlier)
        ):
            table[path] = (target, rule.target_kwargs or None)
        earlier.append(regex)
    return table


def lookup(app: tornado.web.Application, path: str) -> Route | None:
    """The cached route for ``path`` (None: walk the rules as Tornado does)."""
    top = app.default_router.rules
    rules = app.wildcard_router.rules
    key = (id(top), len(top), id(rules), len(rules))
    cached: tuple[Any, dict[str, Route]] | None = getattr(app, "_wf_route_cache", None)
    if cached is None or cached[0] != key:
        cached = (key, build(app))
        app._wf_route_cache = cached  # type: ignore[attr-defined]
    return cached[1].get(path)
