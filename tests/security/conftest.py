"""Fixtures of the security suite: the demo app in process (pytest-tornado, SQLite
sessions) and the demo as a real ``run.py --no-debug`` subprocess with a logged-in user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._support import DemoUser, ServerProcess, assert_alive, assert_no_temp_files, register


@pytest.fixture
def app(tmp_path: Path) -> Any:
    """The demo application with SQLite sessions and uploads in ``tmp_path``."""
    from handlers import DEMO_DEFAULTS, make_app
    from webframe.testing import test_settings

    instance = tmp_path / "instance"
    settings = test_settings(
        **{
            **DEMO_DEFAULTS,
            "instance_path": str(instance),
            "session_store": "sqlite:///" + str(tmp_path / "sessions.db"),
        }
    )
    return make_app(settings)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The demo app served by ``python run.py --no-debug`` (shared by the suite)."""
    server = ServerProcess(tmp_path_factory.mktemp("demo-instance"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def demo_user(demo: ServerProcess) -> DemoUser:
    return register(demo.url)


@pytest.fixture
def live(demo: ServerProcess) -> Iterator[ServerProcess]:
    """The shared demo server; after the test it must still answer, with no temp files."""
    if not demo.running():
        pytest.fail("the shared demo server died in an earlier test:\n" + demo.log()[-3000:])
    yield demo
    assert demo.running(), "the server process died:\n" + demo.log()[-3000:]
    assert_alive(demo.url)
    assert_no_temp_files(demo.temp_dir)
