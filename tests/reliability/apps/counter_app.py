"""A tiny app for the load test: /count adds one to a counter in the session and returns
it; /peek returns it without changing it. Serve with ``python counter_app.py --no-debug``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from webframe import Application, RequestHandler, Settings, route
from webframe.cli import main


@route("/count")
class CountHandler(RequestHandler):
    uses_session = True

    def get(self) -> None:
        value = int(self.session.get("n", 0)) + 1
        self.session["n"] = value
        self.write(str(value))


@route("/peek")
class PeekHandler(RequestHandler):
    uses_session = True

    def get(self) -> None:
        self.write(str(self.session.get("n", 0)))


def make_app(settings: Settings) -> Application:
    return Application([CountHandler, PeekHandler], settings)


if __name__ == "__main__":
    sys.exit(main(make_app))
