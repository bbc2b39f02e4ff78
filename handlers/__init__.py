"""The webframe demo app: pages, an account area and a private file locker."""

from __future__ import annotations

import os

from webframe import Application, ConfigurationError, Settings

from . import account, files, pages
from .db import DemoDB, open_demo_db

__all__ = ["DEMO_DEFAULTS", "DemoDB", "make_app"]

#: the demo's folders. They are relative, so they are read against the app's root
#: folder, which for a factory inside the ``handlers`` package is the project folder
#: (the one holding run.py): the demo finds them wherever it is started from.
DEMO_DEFAULTS = {
    "template_path": "templates",
    "static_path": "static",
    "instance_path": "instance",
}


def make_app(settings: Settings, *, database_url: str | None = None) -> Application:
    """Build the demo application for ``settings``.

    Its tables live in PostgreSQL when ``database_url`` (default: the
    ``DEMO_DATABASE_URL`` environment variable) is a ``postgresql://`` URL, so
    several nodes share them; otherwise in ``instance/demo.db`` (SQLite).
    """
    url = database_url if database_url is not None else os.environ.get("DEMO_DATABASE_URL")
    app = Application(
        [pages, account, files],
        settings,
        login_url="/login",
        default_handler_class=pages.NotFoundPage,
    )
    # Paths are read from the app's settings: relative ones are resolved by now.
    try:
        db = open_demo_db(url, app.wf_settings.instance_path)
    except ValueError as exc:
        raise ConfigurationError("DEMO_DATABASE_URL", str(exc)) from None
    app.settings["demo_db"] = db
    app.add_close_callback(db.close)
    return app
