"""The test client serves the app on the layer it is served on elsewhere: httptools by
default, Tornado's ``HTTPServer`` when the app's ``http_impl`` (or
``WEBFRAME_HTTP_IMPL``) says ``tornado`` — in ``WebTestCase`` and behind the pytest
fixtures (``webframe_client``, pytest-tornado's ``http_client``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import pytest
import tornado.web
from tornado.httpserver import HTTPServer

from webframe import Application, RequestHandler, route
from webframe.server import HTTPToolsServer
from webframe.testing import WebTestCase, test_settings
from webframe.testing.servers import test_http_impl


@route("/layer")
class Layer(RequestHandler):
    """Says which connection class carried the request."""

    def get(self) -> None:
        self.xsrf_token  # noqa: B018 (sets the XSRF cookie the client sends back)
        self.write(type(self.request.connection).__name__)

    def post(self) -> None:
        self.write(type(self.request.connection).__name__ + ":" + self.request.body.decode())


class PlainLayer(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(type(self.request.connection).__name__)


class LayerChecks:
    """What each layer case checks (a mixin: not a test case of its own)."""

    xsrf_path = "/layer"
    settings: ClassVar[dict[str, Any]] = {}
    #: WEBFRAME_HTTP_IMPL while the server is made ("": unset).
    env: ClassVar[str] = ""
    expected: ClassVar[str] = "HTTPToolsConnection"

    def setUp(self: Any) -> None:
        patcher = mock.patch.dict(os.environ, {"WEBFRAME_HTTP_IMPL": self.env})
        patcher.start()
        self.addCleanup(patcher.stop)
        super().setUp()  # makes the server

    def get_app(self) -> Any:
        return Application([Layer], test_settings(**self.settings))

    def test_served_on_the_expected_layer(self: Any) -> None:
        assert self.get("/layer").body.decode() == self.expected
        answer = self.post("/layer", form={"x": "1"})
        assert answer.code == 200, answer.body
        assert answer.body.decode() == self.expected + ":x=1"
        is_httptools = isinstance(self.http_server, HTTPToolsServer)
        assert is_httptools == (self.expected == "HTTPToolsConnection")


class DefaultLayerTest(LayerChecks, WebTestCase):
    """No setting, no environment: httptools."""


class TornadoSettingTest(LayerChecks, WebTestCase):
    settings = {"http_impl": "tornado"}
    expected = "HTTP1Connection"


class EnvironmentTest(LayerChecks, WebTestCase):
    env = "tornado"
    expected = "HTTP1Connection"


class PlainTornadoAppTest(WebTestCase):
    """An app without webframe's settings is served on httptools too."""

    xsrf_path = None

    def setUp(self) -> None:
        patcher = mock.patch.dict(os.environ, {"WEBFRAME_HTTP_IMPL": ""})
        patcher.start()
        self.addCleanup(patcher.stop)
        super().setUp()

    def get_app(self) -> Any:
        return tornado.web.Application([("/layer", PlainLayer)])

    def test_plain_app_on_httptools(self) -> None:
        assert isinstance(self.http_server, HTTPToolsServer)
        assert self.get("/layer").body == b"HTTPToolsConnection"


def test_layer_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBFRAME_HTTP_IMPL", raising=False)
    default = Application([Layer], test_settings())
    tornado_app = Application([Layer], test_settings(http_impl="tornado"))
    assert test_http_impl(default) == "httptools"
    assert test_http_impl(tornado_app) == "tornado"
    assert test_http_impl(object()) == "httptools"
    monkeypatch.setenv("WEBFRAME_HTTP_IMPL", "tornado")
    assert test_http_impl(default) == "tornado"
    monkeypatch.setenv("WEBFRAME_HTTP_IMPL", "httptools")
    assert test_http_impl(tornado_app) == "httptools"
    monkeypatch.setenv("WEBFRAME_HTTP_IMPL", "h2")
    with pytest.raises(ValueError, match="WEBFRAME_HTTP_IMPL='h2'"):
        test_http_impl(default)


def test_tornado_layer_server_class(monkeypatch: pytest.MonkeyPatch) -> None:
    from webframe.testing.servers import test_server

    monkeypatch.delenv("WEBFRAME_HTTP_IMPL", raising=False)
    server = test_server(Application([Layer], test_settings(http_impl="tornado")))
    assert isinstance(server, HTTPServer) and not isinstance(server, HTTPToolsServer)


# The pytest fixtures, as a user's project sees them (a folder of its own, run by pytest).

USER_TEST = """
import pytest
from webframe import Application, RequestHandler, route
from webframe.testing import test_settings

@route("/layer")
class Layer(RequestHandler):
    def get(self):
        self.write(type(self.request.connection).__name__)

@pytest.fixture
def webframe_app():
    return Application([Layer], test_settings({settings}))

@pytest.mark.gen_test
async def test_client(webframe_client):
    r = await webframe_client.get("/layer")
    print("LAYER", r.body.decode())
    assert r.body == b"{expected}"

@pytest.mark.gen_test
async def test_tornado_fixtures(http_client, base_url, http_server):
    r = await http_client.fetch(base_url + "/layer")
    assert r.body == b"{expected}"
    assert type(http_server).__name__ == "{server}"
"""


@pytest.mark.parametrize(
    ("settings", "env", "expected", "server"),
    [
        ("", "", "HTTPToolsConnection", "HTTPToolsServer"),
        ("http_impl='tornado'", "", "HTTP1Connection", "HTTPServer"),
        ("", "tornado", "HTTP1Connection", "HTTPServer"),
    ],
    ids=["default", "setting-tornado", "env-tornado"],
)
@pytest.mark.parametrize("order", ["autoload", "webframe-first", "pytest-tornado-first"])
def test_pytest_fixtures_serve_on_the_apps_layer(
    tmp_path: Path, settings: str, env: str, expected: str, server: str, order: str
) -> None:
    source = USER_TEST.format(settings=settings, expected=expected, server=server)
    (tmp_path / "test_user.py").write_text(source)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environ["WEBFRAME_HTTP_IMPL"] = env
    args = ["-p", "no:cacheprovider"]
    if order != "autoload":
        # Entry points load in an order that differs between machines; -p with
        # autoloading off fixes each order here.
        environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        names = ["webframe.pytest_plugin", "pytest_tornado.plugin"]
        for name in names if order == "webframe-first" else names[::-1]:
            args += ["-p", name]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=tmp_path, capture_output=True, text=True, env=environ, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


USER_TLS_TEST = """
import os
import pytest
import tornado.test
from webframe import Application, RequestHandler, route
from webframe.testing import test_settings

@route("/layer")
class Layer(RequestHandler):
    def get(self):
        self.write(type(self.request.connection).__name__ + " " + self.request.protocol)

@pytest.fixture
def webframe_app():
    return Application([Layer], test_settings())

@pytest.fixture
def ssl_options():
    folder = os.path.dirname(tornado.test.__file__)
    return {"certfile": os.path.join(folder, "test.crt"),
            "keyfile": os.path.join(folder, "test.key")}

@pytest.mark.gen_test
async def test_tls(https_client, base_url, https_server):
    assert base_url.startswith("https://")
    r = await https_client.fetch(base_url + "/layer", validate_cert=False)
    assert r.body == b"HTTPToolsConnection https"
    assert type(https_server).__name__ == "HTTPToolsServer"
"""


def test_pytest_https_fixtures_serve_on_httptools(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TLS_TEST)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    environ.pop("WEBFRAME_HTTP_IMPL", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, env=environ, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
