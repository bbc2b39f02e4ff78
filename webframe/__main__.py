"""The ``webframe`` command (also ``python -m webframe``).

``webframe new NAME`` creates a project; ``webframe routes module:make_app`` lists the
routes of an app. Serving is not this command's job: a project's ``run.py`` calls
:func:`webframe.cli.main`.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import tornado.routing
import tornado.web

from . import __version__
from .app import Application
from .errors import ConfigurationError
from .routing import RouteMatcher
from .scaffold import ProjectError, create_project
from .settings import Settings


class CommandError(Exception):
    """A ``webframe`` command cannot do what it was asked; the message says why."""


_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")


def build_parser() -> argparse.ArgumentParser:
    """The ``webframe`` command's arguments: the ``new`` and ``routes`` subcommands."""
    parser = argparse.ArgumentParser(prog="webframe", description="webframe's project tools.")
    parser.add_argument("--version", action="version", version=f"webframe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    new = sub.add_parser("new", help="create a project folder with webframe's layout")
    new.add_argument("name", help="project name, also the new folder's name")
    new.add_argument(
        "--directory", default=".", help="where to create the folder (default: here)"
    )
    routes = sub.add_parser("routes", help="list an app's routes, names, methods and handlers")
    routes.add_argument(
        "app",
        help="module:make_app (a function taking Settings) or module:app (an Application); "
        "module alone means module:make_app",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (2 for a usage or configuration error)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "new":
            path = create_project(args.name, args.directory)
            print(f"created {path}/. Next:")
            print(f"  cd {path}")
            print("  pip install -e . && python run.py        # serve it")
            print("  pip install -e '.[test]' && pytest       # test it")
            return 0
        app = load_app(args.app)
        print(format_routes(route_rows(app)))
        return 0
    except (CommandError, ConfigurationError, ProjectError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def load_app(spec: str) -> Application:
    """Import ``module:attribute`` (current folder first, as ``flask --app`` does) and
    return the Application it names or builds."""
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "make_app"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name!r}: {exc}") from None
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise CommandError(f"{module_name!r} has no {attribute!r}") from None
    if isinstance(target, Application):
        return target
    if not callable(target):
        raise CommandError(f"{spec} is neither an Application nor a factory")
    # Built only to read its routes: a throwaway secret, sessions and instance folder.
    instance = tempfile.mkdtemp(prefix="webframe-routes-")
    settings = Settings(
        cookie_secret="webframe-routes-" + "0" * 24,
        session_store="memory://",
        instance_path=instance,
        access_log=False,
    )
    app = target(settings)
    if not isinstance(app, Application):
        raise CommandError(f"{spec} returned {type(app).__name__}, not an Application")
    return app


def _handler_methods(handler: Any) -> list[str]:
    if not inspect.isclass(handler) or not issubclass(handler, tornado.web.RequestHandler):
        return []
    allowed = getattr(handler, "allowed_methods", None)
    if callable(allowed):
        return list(allowed())
    base = tornado.web.RequestHandler
    return [
        m
        for m in _METHODS
        if m in handler.SUPPORTED_METHODS
        and getattr(handler, m.lower(), None) is not getattr(base, m.lower(), None)
    ]


def route_rows(app: Application) -> list[tuple[str, str, str, str]]:
    """``(pattern, name, methods, handler)`` for every rule of ``app``, in match order."""
    rows = []
    for rule in app.wildcard_router.rules:
        matcher = rule.matcher
        if isinstance(matcher, RouteMatcher):
            pattern = matcher.route.pattern
        elif isinstance(matcher, tornado.routing.PathMatches):
            pattern = matcher.regex.pattern
        else:
            pattern = repr(matcher)
        handler = rule.target
        label = (
            f"{handler.__module__}.{handler.__qualname__}"
            if inspect.isclass(handler)
            else repr(handler)
        )
        name = getattr(rule, "name", None) or ""
        rows.append((pattern, name, ", ".join(_handler_methods(handler)), label))
    return rows


def format_routes(rows: list[tuple[str, str, str, str]]) -> str:
    """The rows as an aligned text table with a header line."""
    table = [("Route", "Name", "Methods", "Handler"), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = []
    for row in table:
        cells = [row[i].ljust(widths[i]) for i in range(3)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
