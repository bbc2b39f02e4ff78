"""Shared fixtures: the demo app for pytest-tornado, and the services switch."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.sessions.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parent.parent

#: CI sets this so that a missing service (redis-server, chromium, wrk) fails loudly.
REQUIRE_SERVICES = os.environ.get("WEBFRAME_REQUIRE_SERVICES") == "1"


def need_program(name: str, install: str) -> str:
    """Path of ``name``, or skip (fail in CI) saying how to install it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: {install}"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (WEBFRAME_REQUIRE_SERVICES=1 forbids skipping)")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The demo application with test settings (pytest-tornado serves it)."""
    from handlers import DEMO_DEFAULTS, make_app
    from webframe.testing import test_settings

    settings = test_settings(**{**DEMO_DEFAULTS, "instance_path": str(tmp_path / "instance")})
    return make_app(settings)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole run (skips if it is not installed)."""
    from tests.sessions.postgres_server import PostgresServer

    with PostgresServer() as server:
        yield server


_demo_databases = 0


@pytest.fixture(params=["sqlite", "postgresql"])
def demo_database(request: pytest.FixtureRequest) -> str:
    """The demo's ``database_url``: "" (SQLite in the instance folder), or a fresh
    PostgreSQL database on the shared test server."""
    global _demo_databases
    if request.param == "sqlite":
        return ""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    _demo_databases += 1
    name = f"demo_{os.getpid()}_{_demo_databases}"
    subprocess.run(
        [
            os.path.join(server.bindir, "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            server.url,
            "-c",
            f"CREATE DATABASE {name}",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return server.url.rpartition("/")[0] + "/" + name
