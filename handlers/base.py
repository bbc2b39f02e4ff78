"""The demo's base handler: the session for the layout, the theme, the database."""

from __future__ import annotations

from typing import Any, ClassVar

from webframe import RequestHandler

from .db import DemoDB

THEMES = ("light", "dark", "contrast")


class PageHandler(RequestHandler):
    """Every demo page: the session is loaded so the layout can show the user and
    flash messages; the theme preference comes from a plain cookie."""

    uses_session: ClassVar[bool] = True

    @property
    def db(self) -> DemoDB:
        db: DemoDB = self.application.settings["demo_db"]
        return db

    def theme(self) -> str:
        value = self.get_cookie("theme", "light")
        return value if value in THEMES else "light"

    def get_template_namespace(self) -> dict[str, Any]:
        ns = super().get_template_namespace()
        ns["theme"] = self.theme()
        return ns

