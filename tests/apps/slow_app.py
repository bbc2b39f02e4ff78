"""A tiny app for CLI tests: /slow answers after ?s= seconds (graceful-stop checks)."""

from __future__ import annotations

import asyncio
import sys

from webframe import Application, RequestHandler, Settings, route
from webframe.cli import main


@route("/slow")
class SlowHandler(RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(float(self.get_argument("s", "1")))
        self.write("finished")


@route("/")
class HomeHandler(RequestHandler):
    def get(self) -> None:
        self.write("home")


def make_app(settings: Settings) -> Application:
    return Application([SlowHandler, HomeHandler], settings)


if __name__ == "__main__":
    sys.exit(main(make_app))
