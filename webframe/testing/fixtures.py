"""pytest-tornado's ``http_server`` and ``https_server``, on the app's test layer.

pytest-tornado's own fixtures build Tornado's ``HTTPServer``; these build the server
:func:`webframe.testing.servers.test_server` gives (httptools unless the app's
``http_impl`` or ``WEBFRAME_HTTP_IMPL`` says ``tornado``), so ``webframe_client``,
``http_client`` and ``base_url`` reach the app on the layer it is served on elsewhere.
:mod:`webframe.pytest_plugin` registers this module after every installed plugin, so
its fixtures take the place of pytest-tornado's (a project's conftest still wins).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from .servers import test_server

__all__ = ["http_server", "https_server"]


def _serve(
    request: pytest.FixtureRequest,
    io_loop: IOLoop,
    sock: socket.socket,
    **options: Any,
) -> HTTPServer:
    app = request.getfixturevalue(request.config.option.app_fixture)
    server = test_server(app, **options)
    server.add_socket(sock)
    start: Callable[[], Any] | None = getattr(server, "start_serving", None)
    if start is not None:
        io_loop.run_sync(start)

    def stop() -> None:
        server.stop()
        io_loop.run_sync(
            server.close_all_connections, timeout=request.config.option.async_test_timeout
        )

    request.addfinalizer(stop)
    return server


@pytest.fixture
def http_server(
    request: pytest.FixtureRequest, io_loop: IOLoop, _unused_port: tuple[socket.socket, int]
) -> HTTPServer:
    """The app (pytest-tornado's ``app`` fixture, ``webframe_app`` by default) served on
    its test layer."""
    return _serve(request, io_loop, _unused_port[0])


@pytest.fixture
def https_server(
    request: pytest.FixtureRequest, io_loop: IOLoop, _unused_port: tuple[socket.socket, int]
) -> HTTPServer:
    """As ``http_server``, over TLS (pytest-tornado's ``ssl_options`` fixture)."""
    ssl_options = request.getfixturevalue(request.config.option.ssl_options_fixture)
    return _serve(request, io_loop, _unused_port[0], ssl_options=ssl_options)
