"""``python run.py``: parse flags into Settings, check them, bind, and hand the sockets to
:mod:`webframe.server.serve` (workers, serving, the graceful stop)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import tornado.netutil

from .errors import ConfigurationError
from .server.serve import AppFactory, create_server, run_worker, run_workers
from .sessions.registry import valid_schemes
from .settings import Settings

__all__ = ["AppFactory", "build_parser", "check_serving", "create_server", "main", "parse_settings"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command-line flags; every flag overrides its ``WEBFRAME_*`` variable."""
    p = argparse.ArgumentParser(prog=prog, description="Serve a webframe application.")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 8888; 0 picks a free one)")
    p.add_argument(
        "--debug",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reload code and templates on change, show tracebacks (never in production)",
    )
    p.add_argument(
        "--processes", type=int, help="worker processes (default 1; 0 = one per CPU core)"
    )
    p.add_argument(
        "--xheaders",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trust X-Forwarded-For/-Proto from a reverse proxy (off by default)",
    )
    p.add_argument(
        "--loop", choices=("asyncio", "uvloop"), help="event loop (uvloop: webframe[fast])"
    )
    p.add_argument(
        "--http",
        dest="http_impl",
        choices=("httptools", "tornado"),
        help="HTTP connection layer (default httptools; tornado: Tornado's own HTTPServer)",
    )
    p.add_argument("--session-store", help="session store URL: " + valid_schemes())
    p.add_argument("--instance-path", help="folder for the dev secret, session db and uploads")
    p.add_argument(
        "--upload-storage",
        help="where uploads are kept: file:///path or s3://bucket/prefix (AWS_* variables)",
    )
    return p


def parse_settings(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    prog: str | None = None,
) -> Settings:
    """Settings from CLI flags > environment > ``defaults`` > webframe's defaults."""
    args = build_parser(prog).parse_args(argv)
    settings = Settings.from_sources(vars(args), env, defaults)
    check_serving(settings)
    return settings


def check_serving(s: Settings) -> None:
    """Refuse combinations of settings that cannot work together."""
    if s.processes != 1 and s.debug:
        raise ConfigurationError(
            "processes", "--debug reloads code in one process; use --processes 1 with --debug"
        )
    if s.processes != 1 and (s.session_store or "").startswith("memory:"):
        raise ConfigurationError(
            "session_store",
            "memory:// keeps sessions inside one process, so workers would not share them; "
            "use the SQLite default or redis:// with --processes",
        )
    if s.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "loop", "uvloop is not installed: pip install 'webframe[fast]'"
            ) from None


def main(
    make_app: AppFactory,
    argv: Sequence[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> int:
    """Entry point of ``run.py``: returns the process exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = parse_settings(argv, defaults=defaults, prog="run.py")
        # Build one app up front so bad settings fail before binding or forking.
        make_app(settings)
        sockets = tornado.netutil.bind_sockets(settings.port, settings.host)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 2
    port = sockets[0].getsockname()[1]
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    workers = settings.processes or (os.cpu_count() or 1)
    plural = "es" if workers != 1 else ""
    debug = "on" if settings.debug else "off"
    print(
        f"webframe: serving on http://{host}:{port}/ ({workers} process{plural}, debug {debug})",
        flush=True,
    )
    if workers == 1:
        return run_worker(make_app, settings, sockets)
    return run_workers(make_app, settings, sockets, workers)
