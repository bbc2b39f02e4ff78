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

The app is served on the connection layer of its ``http_impl`` setting (httptools by
default; ``WEBFRAME_HTTP_IMPL=tornado`` in the environment for Tornado's
``HTTPServer``): the plugin replaces pytest-tornado's ``http_server`` and
``https_server`` with :mod:`webframe.testing.fixtures`.

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

_OLD_STYLE_HOOKS = ".*old-style configuration options"
#: the name the server fixtures (webframe.testing.fixtures) are registered under.
SERVER_FIXTURES = "webframe-server-fixtures"


def _is_tornado_hook_warning(record: object) -> bool:
    return (
        isinstance(record, warnings.WarningMessage)
        and "pytest_tornado" in str(record.filename)
        and "old-style configuration options" in str(record.message)
    )


def _quiet_pytest_tornado_registration() -> None:
    """Keep pytest-tornado's warnings about its hook marks out of the report.

    pytest loads plugins inside ``warnings.catch_warnings(record=True)`` and reports
    what was recorded afterwards. Loaded before pytest-tornado, this plugin adds a
    filter so the warnings are never recorded; loaded after it, they are already in
    the record list (the one ``catch_warnings`` appends to), and are taken out of it.
    """
    if "pytest_tornado.plugin" not in sys.modules:
        warnings.filterwarnings("ignore", message=_OLD_STYLE_HOOKS, module="pytest_tornado")
        return
    sink = getattr(warnings, "_showwarnmsg_impl", None)
    records = getattr(sink, "__self__", None)
    if isinstance(records, list):
        records[:] = [r for r in records if not _is_tornado_hook_warning(r)]


_quiet_pytest_tornado_registration()


class WebframeFixtureDeprecationWarning(DeprecationWarning):
    """A fixture name of webframe's pytest plugin that will be removed (use the new one)."""


def pytest_configure(config: pytest.Config) -> None:
    """Called once at start-up: adds the warning filters and, without pytest-tornado,
    the ``gen_test`` marker, so a test fails on the fixture's clear message instead."""
    for line in TORNADO_PLUGIN_FILTERS:
        config.addinivalue_line("filterwarnings", line)
    if not _has_pytest_tornado(config):
        config.addinivalue_line(
            "markers", f"gen_test: run a coroutine test (needs pytest-tornado: {INSTALL_HINT})"
        )
    elif not config.pluginmanager.has_plugin(SERVER_FIXTURES):
        # Registered after every installed plugin (configure runs once all are loaded),
        # so its http_server/https_server replace pytest-tornado's: the app is served
        # on its own connection layer (httptools by default), not Tornado's HTTPServer.
        from .testing import fixtures

        config.pluginmanager.register(fixtures, SERVER_FIXTURES)


def _has_pytest_tornado(config: pytest.Config) -> bool:
    """True if pytest-tornado is loaded (by its entry point, or by ``-p``)."""
    return any(
        getattr(plugin, "__name__", None) == "pytest_tornado.plugin"
        for plugin in config.pluginmanager.get_plugins()
    )


def _tornado_fixture(request: pytest.FixtureRequest, name: str) -> Any:
    """pytest-tornado's fixture ``name``, or a failure saying what to install."""
    if not _has_pytest_tornado(request.config):
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
