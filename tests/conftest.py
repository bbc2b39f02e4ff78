"""Shared fixtures: the demo app for pytest-tornado, and the services switch."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

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
