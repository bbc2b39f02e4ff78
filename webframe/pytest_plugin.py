"""pytest fixtures (loaded automatically through the ``pytest11`` entry point).

They build on pytest-tornado (``pip install 'webframe[testing]'``). Define a
``webframe_app`` fixture (or pytest-tornado's ``app``) returning your Application,
then ask for ``webframe_client`` — an async :class:`~webframe.testing.Client` with a
cookie jar — inside ``@pytest.mark.gen_test`` tests::

    @pytest.fixture
    def webframe_app():
        return make_app(test_settings())

    @pytest.mark.gen_test
    async def test_home(webframe_client):
        response = await webframe_client.get("/")
        assert response.code == 200

The names ``client`` and ``second_client`` still work for one release and warn.
The plugin also hides the deprecation warnings pytest-tornado causes on recent
pytest and Tornado versions, which a user of webframe can do nothing about.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import pytest

from .testing import Client

INSTALL_HINT = "pip install 'webframe[testing]' (or: pip install pytest-tornado)"

#: warnings filters (``-W`` syntax) for what pytest-tornado itself triggers.
TORNADO_PLUGIN_FILTERS = (
    "ignore::DeprecationWarning:pytest_tornado.*",
    "ignore:.*old-style configuration options:pytest.PytestDeprecationWarning",
    "ignore:make_current is deprecated:DeprecationWarning",
    "ignore:clear_current is deprecated:DeprecationWarning",
    "ignore:There is no current event loop:DeprecationWarning",
)

if "pytest_tornado.plugin" not in sys.modules:
    # Loaded before pytest-tornado's entry point: its hook registration, which warns
    # about old-style hook marks, happens inside pytest's warning capture still open.
    warnings.filterwarnings(
        "ignore", message=".*old-style configuration options", module="pytest_tornado"
    )


class WebframeFixtureDeprecationWarning(DeprecationWarning):
    """A fixture name of webframe's pytest plugin that will be removed (use the new one)."""


def pytest_configure(config: pytest.Config) -> None:
    """Called once at start-up: adds the warning filters and, without pytest-tornado,
    the ``gen_test`` marker, so a test fails on the fixture's clear message instead."""
    for line in TORNADO_PLUGIN_FILTERS:
        config.addinivalue_line("filterwarnings", line)
    if not config.pluginmanager.hasplugin("tornado"):
        config.addinivalue_line(
            "markers", f"gen_test: run a coroutine test (needs pytest-tornado: {INSTALL_HINT})"
        )


def _tornado_fixture(request: pytest.FixtureRequest, name: str) -> Any:
    """pytest-tornado's fixture ``name``, or a failure saying what to install."""
    if not request.config.pluginmanager.hasplugin("tornado"):
        pytest.fail(
            f"{request.fixturename} needs pytest-tornado, which is not installed: "
            f"{INSTALL_HINT}",
            pytrace=False,
        )
    return request.getfixturevalue(name)


@pytest.fixture
def webframe_app() -> Any:
    """Your Application: override this fixture (or define pytest-tornado's ``app``)."""
    pytest.fail(
        "define a webframe_app fixture that returns your Application, e.g. "
        "make_app(webframe.testing.test_settings())",
        pytrace=False,
    )


@pytest.fixture
def app(webframe_app: Any) -> Any:
    """The app pytest-tornado serves: ``webframe_app`` unless a project defines ``app``."""
    return webframe_app


@pytest.fixture
def webframe_client(request: pytest.FixtureRequest) -> Client:
    """A browser-like client (cookies, XSRF, multipart) for the app pytest-tornado serves."""
    return Client(_tornado_fixture(request, "http_client"), _tornado_fixture(request, "base_url"))


@pytest.fixture
def webframe_second_client(request: pytest.FixtureRequest) -> Client:
    """Another, independent browser (its own cookies) against the same app."""
    return Client(_tornado_fixture(request, "http_client"), _tornado_fixture(request, "base_url"))


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"the {old!r} fixture is deprecated and will be removed in the next release; "
        f"use {new!r}",
        WebframeFixtureDeprecationWarning,
        stacklevel=2,
    )


@pytest.fixture
def client(webframe_client: Client) -> Client:
    """Deprecated alias of ``webframe_client`` (kept for one release)."""
    _deprecated("client", "webframe_client")
    return webframe_client


@pytest.fixture
def second_client(webframe_second_client: Client) -> Client:
    """Deprecated alias of ``webframe_second_client`` (kept for one release)."""
    _deprecated("second_client", "webframe_second_client")
    return webframe_second_client
