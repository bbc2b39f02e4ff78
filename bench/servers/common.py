"""What both benchmark servers share, so that they answer byte for byte alike."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TEMPLATES = str(Path(__file__).resolve().parent.parent / "templates")
#: a fixed secret: signing costs the same on both sides and runs are repeatable.
COOKIE_SECRET = "bench-cookie-secret-0123456789abcdef0123456789abcdef"

HELLO = "Hello, world"
TEXT_TYPE = "text/plain; charset=UTF-8"
JSON_TYPE = "application/json; charset=UTF-8"

STATIC_NAME = "blob.bin"
STATIC_SIZE = 10 * 1024

SCENARIOS = (
    "hello",
    "page",
    "json",
    "static",
    "session-read",
    "session-write",
    "upload",
    "upload-sha256",
)

#: session scenarios: GET LOGIN_PATH starts the session the load then sends the cookie
#: of; GET COUNTER_PATH answers the session's counter "n" (checked after write runs).
LOGIN_PATH = "/login-bench"
COUNTER_PATH = "/session-n"
#: the raw-Tornado upload route (POST or PUT; the body bytes go to one file).
UPLOAD_PATH = "/upload"


def page_context() -> dict[str, Any]:
    """The values ``page.html`` is rendered with (some need escaping, as real data does)."""
    return {
        "title": "Orders & invoices",
        "user": "Ada <admin>",
        "items": [
            {"id": i, "name": f"Item #{i} <{i % 3}>", "price": i * 1.25, "tags": ["a", "b&c"]}
            for i in range(20)
        ],
    }


def write_static(folder: Path) -> Path:
    """Create the static file both servers serve (deterministic bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATIC_NAME
    path.write_bytes(bytes(i % 251 for i in range(STATIC_SIZE)))
    return path


def bench_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse the bench-only flags; the rest is left for the server's own parser."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--scenario", required=True, choices=SCENARIOS)
    p.add_argument("--static-dir", help="folder holding the static file (static scenario)")
    p.add_argument("--upload-dir", help="where the raw upload server writes bodies (upload)")
    return p.parse_known_args(argv)
