"""Serve the webframe demo: ``python run.py [--port 8888] [--debug] [--processes N]``.

The demo runs in debug mode unless told otherwise (``--no-debug``), so that it
works with no configuration; production needs ``WEBFRAME_COOKIE_SECRET``.
"""

from __future__ import annotations

import sys

from handlers import DEMO_DEFAULTS, make_app
from webframe.cli import main

if __name__ == "__main__":
    sys.exit(main(make_app, defaults={**DEMO_DEFAULTS, "debug": True}))
