"""The webframe demo app: pages, an account area and a private file locker."""

from __future__ import annotations

from pathlib import Path

from webframe import Application, Settings

from . import account, files, pages
from .base import DemoDB

#: the demo's folders. They are relative, so they are read against the app's root
#: folder, which for a factory inside the ``handlers`` package is the project folder
#: (the one holding run.py): the demo finds them wherever it is started from.
DEMO_DEFAULTS = {
    "template_path": "templates",
    "static_path": "static",
    "instance_path": "instance",
}


def make_app(settings: Settings) -> Application:
    """Build the demo application for ``settings``."""
    app = Application(
        [pages, account, files],
        settings,
        login_url="/login",
        default_handler_class=pages.NotFoundPage,
    )
    # Paths are read from the app's settings: relative ones are resolved by now.
    app.settings["demo_db"] = DemoDB(Path(app.wf_settings.instance_path) / "demo.db")
    return app
