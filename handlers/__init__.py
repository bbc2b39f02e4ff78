"""The webframe demo app: pages, an account area and a private file locker."""

from __future__ import annotations

from pathlib import Path

from webframe import Application, Settings

from . import account, files, pages
from .base import DemoDB

ROOT = Path(__file__).resolve().parent.parent

#: where the demo keeps its templates, static files and instance data by default.
DEMO_DEFAULTS = {
    "template_path": str(ROOT / "templates"),
    "static_path": str(ROOT / "static"),
    "instance_path": str(ROOT / "instance"),
}


def make_app(settings: Settings) -> Application:
    """Build the demo application for ``settings``."""
    db = DemoDB(Path(settings.instance_path) / "demo.db")
    return Application([pages, account, files], settings, login_url="/login", demo_db=db)
