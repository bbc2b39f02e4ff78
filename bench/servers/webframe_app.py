"""The webframe benchmark server, built only from webframe's public API.

``python -m bench.servers.webframe_app --scenario NAME [--static-dir DIR] [run.py flags]``:
every flag other than ``--scenario``/``--static-dir`` (``--port``, ``--loop``,
``--instance-path``...) goes to :func:`webframe.cli.main`, as for ``run.py``.
"""

from __future__ import annotations

import sys
from typing import Any

import webframe
from bench.servers.common import (
    COOKIE_SECRET,
    COUNTER_PATH,
    HELLO,
    LOGIN_PATH,
    TEMPLATES,
    TEXT_TYPE,
    bench_args,
    page_context,
)
from webframe import Application, RequestHandler, Settings, route
from webframe.cli import main as serve


@route("/")
class HelloHandler(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", TEXT_TYPE)
        self.write(HELLO)


@route("/page")
class PageHandler(RequestHandler):
    def get(self) -> None:
        self.render("page.html", **page_context())


@route("/echo")
class EchoHandler(RequestHandler):
    def check_xsrf_cookie(self) -> None:
        # Same as the Tornado twin: a JSON API route needs no XSRF token.
        return None

    def post(self) -> None:
        data = self.get_json()
        self.json(data)  # Content-Type: application/json; charset=UTF-8, as the twin


class SessionReadHandler(RequestHandler):
    """GET / for a client with a session: reads it, answers like hello."""

    uses_session = True

    def get(self) -> None:
        self.session.get("n")
        self.set_header("Content-Type", TEXT_TYPE)
        self.write(HELLO)


class SessionWriteHandler(RequestHandler):
    """GET / for a client with a session: increments its counter, answers like hello."""

    uses_session = True

    def get(self) -> None:
        self.session["n"] = self.session.get("n", 0) + 1
        self.set_header("Content-Type", TEXT_TYPE)
        self.write(HELLO)


@route(LOGIN_PATH)
class LoginBenchHandler(RequestHandler):
    """Starts the session the load sends the cookie of (as a login would)."""

    def get(self) -> None:
        self.session["user"] = {"id": 1, "name": "bench"}
        self.session["n"] = 0
        self.set_header("Content-Type", TEXT_TYPE)
        self.write("ok")


@route(COUNTER_PATH)
class CounterHandler(RequestHandler):
    """The session's counter, to check that write runs changed it."""

    uses_session = True

    def get(self) -> None:
        self.set_header("Content-Type", TEXT_TYPE)
        self.write(str(self.session.get("n")))


ROUTES: dict[str, list[Any]] = {
    "hello": [HelloHandler],
    "page": [PageHandler],
    "json": [EchoHandler],
    "static": [],
    "session-read": [("/", SessionReadHandler), LoginBenchHandler, CounterHandler],
    "session-write": [("/", SessionWriteHandler), LoginBenchHandler, CounterHandler],
}


def server_defaults(static_dir: str | None) -> dict[str, Any]:
    """The settings every benchmark server starts from (its flags may override them);
    also used by ``bench/inproc_sessions.py`` so the two cannot drift apart."""
    return {
        "cookie_secret": COOKIE_SECRET,
        "access_log": False,
        "debug": False,
        "xsrf": True,
        "template_path": TEMPLATES,
        # An empty static_path serves no static files (the Tornado twin has none either).
        "static_path": static_dir or "",
    }


def main(argv: list[str] | None = None) -> int:
    ns, rest = bench_args(argv)
    print(f"bench: webframe {webframe.__version__} from {webframe.__file__}", flush=True)

    def make_app(settings: Settings) -> Application:
        return Application(ROUTES[ns.scenario], settings)

    return serve(make_app, rest, server_defaults(ns.static_dir))


if __name__ == "__main__":
    sys.exit(main())
