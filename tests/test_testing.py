"""The test client: cookie jar rules, redirects keep cookies, XSRF, multipart encoder."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from python_multipart.multipart import parse_options_header  # noqa: F401  (dependency present)
from tornado.httputil import parse_body_arguments

from webframe import Application, RequestHandler, route
from webframe.testing import CookieJar, MultipartEncoder, WebTestCase, test_settings

from .support.clock import FakeClock


def Clock() -> FakeClock:
    return FakeClock(1_000_000.0)


def test_jar_path_rules() -> None:
    jar = CookieJar()
    jar.update("http://h/account/login", ["a=1; Path=/account", "b=2", "c=3; Path=/"])
    # b had no Path: its default is the request's directory, /account.
    assert jar.header_for("http://h/account/profile") == "a=1; b=2; c=3"
    assert jar.header_for("http://h/accounting") == "c=3"
    assert jar.header_for("http://h/") == "c=3"


def test_jar_expiry_and_deletion() -> None:
    clock = Clock()
    jar = CookieJar(clock)
    jar.update("http://h/", ["s=1; Max-Age=10", "t=2; Expires=Wed, 21 Oct 2099 07:28:00 GMT"])
    assert jar.get("s") == "1" and jar.get("t") == "2"
    clock.now += 11
    assert jar.get("s") is None  # Max-Age ran out
    jar.update("http://h/", ["t=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"])
    assert "t" not in jar  # a past Expires deletes
    jar.update("http://h/", ["u=1", "u=; Max-Age=0"])
    assert "u" not in jar
    assert len(jar) == 0


def test_jar_max_age_beats_expires_and_attributes_kept() -> None:
    clock = Clock()
    jar = CookieJar(clock)
    jar.update(
        "http://h/",
        ['v="quoted"; Max-Age=100; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; '
         "SameSite=Lax"],
    )
    c = jar.cookie("v")
    assert c is not None and c.value == "quoted" and c.httponly and c.secure
    assert c.samesite == "Lax"


def test_jar_ignores_garbage() -> None:
    jar = CookieJar()
    jar.update("http://h/", ["novalue", "=x", "ok=1; Max-Age=abc"])
    assert jar.header_for("http://h/") == "ok=1"


def test_multipart_encoder_parses_with_tornado(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x00\x01" * 100_000)
    enc = MultipartEncoder(
        {"title": "héllo", "tags": ["a", "b"]},
        {
            "doc": ("notes.txt", b"line1\r\nline2", "text/plain"),
            "data": [("big.bin", big), ("stream.bin", io.BytesIO(b"xyz"))],
        },
    )
    body = enc.to_bytes()
    assert len(body) == enc.length
    args: dict[str, list[bytes]] = {}
    files: dict[str, list] = {}  # type: ignore[type-arg]
    parse_body_arguments(enc.content_type, body, args, files)
    assert args["title"] == ["héllo".encode()]
    assert args["tags"] == [b"a", b"b"]
    assert files["doc"][0]["body"] == b"line1\r\nline2"
    assert files["doc"][0]["content_type"] == "text/plain"
    assert [f["filename"] for f in files["data"]] == ["big.bin", "stream.bin"]
    assert files["data"][0]["body"] == big.read_bytes()


@route("/set")
class SetHandler(RequestHandler):
    def get(self) -> None:
        self.set_cookie("flavour", self.get_argument("v", "plain"))
        self.redirect("/show")


@route("/show")
class ShowHandler(RequestHandler):
    def get(self) -> None:
        self.write(self.get_cookie("flavour", "none"))


@route("/forget")
class ForgetHandler(RequestHandler):
    def get(self) -> None:
        self.clear_cookie("flavour")
        self.write("forgotten")


@route("/form")
class FormHandler(RequestHandler):
    def get(self) -> None:
        self.write(self.xsrf_form_html())

    def post(self) -> None:
        self.write("posted " + self.get_body_argument("x"))


class ClientTest(WebTestCase):
    xsrf_path = "/form"

    def get_app(self) -> Application:
        return Application([SetHandler, ShowHandler, ForgetHandler, FormHandler], test_settings())

    def test_cookie_set_on_redirect_is_kept(self) -> None:
        r = self.fetch("/set?v=mint", follow_redirects=True)
        assert r.code == 200 and r.body == b"mint"
        assert self.cookies.get("flavour") == "mint"
        assert self.fetch("/show").body == b"mint"
        self.fetch("/forget")
        assert self.fetch("/show").body == b"none"

    def test_without_following_redirects(self) -> None:
        r = self.fetch("/set?v=x")
        assert r.code == 302 and r.headers["Location"] == "/show"

    def test_xsrf_sent_automatically(self) -> None:
        r = self.fetch("/form", method="POST", form={"x": "1"})
        assert r.code == 200 and r.body == b"posted 1"
        r = self.fetch("/form", method="POST", form={"x": "1"}, xsrf=False)
        assert r.code == 403

    def test_clients_are_independent(self) -> None:
        self.fetch("/set?v=one", follow_redirects=True)
        other = self.new_client()
        assert self.fetch("/show", client=other).body == b"none"


# The same app, pytest style, with pytest-tornado's fixtures and webframe's ``webframe_client``.


@pytest.fixture
def webframe_app() -> Application:
    return Application([SetHandler, ShowHandler, ForgetHandler, FormHandler], test_settings())


@pytest.fixture
def app(webframe_app: Application) -> Application:
    # tests/conftest.py serves the demo as ``app``; this module serves its own app.
    return webframe_app


@pytest.mark.gen_test
async def test_pytest_client_keeps_cookies(webframe_client, webframe_second_client) -> None:  # type: ignore[no-untyped-def]
    webframe_client.xsrf_path = "/form"
    r = await webframe_client.get("/set?v=lemon", follow_redirects=True)
    assert r.body == b"lemon"
    assert (await webframe_second_client.get("/show")).body == b"none"
    r = await webframe_client.post("/form", form={"x": "2"})
    assert r.body == b"posted 2"


def test_redirects_are_returned_unless_asked_to_follow() -> None:
    # The README's promise: following (with cookies) is opt-in, follow_redirects=True.
    import inspect

    from webframe.testing import Client

    assert inspect.signature(Client.fetch).parameters["follow_redirects"].default is False


# The plugin as a user's project sees it: a project folder of its own, run by pytest.

USER_TEST = """
import pytest
from webframe import Application, RequestHandler, route
from webframe.testing import test_settings


HITS = []

@route("/")
class Home(RequestHandler):
    def get(self):
        HITS.append(1)
        self.set_cookie("seen", "yes")
        self.redirect("/again")

@route("/again")
class Again(RequestHandler):
    def get(self):
        self.write("seen=" + self.get_cookie("seen", "no"))

@pytest.fixture
def webframe_app():
    return Application([Home, Again], test_settings())

@pytest.mark.gen_test
async def test_home({fixture}):
    r = await {fixture}.get("/", follow_redirects=True)
    assert r.body == b"seen=yes"
    assert HITS == [1]
"""


def run_user_project(
    tmp_path: Path, fixture: str, *args: str, autoload: bool = True
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(USER_TEST.replace("{fixture}", fixture))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_plugin_namespaced_fixtures_and_no_pytest_tornado_warnings(tmp_path: Path) -> None:
    done = run_user_project(tmp_path, "webframe_client")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "warning" not in done.stdout.lower(), done.stdout  # pytest-tornado's are filtered


@pytest.mark.parametrize(
    "order",
    [
        ["webframe.pytest_plugin", "pytest_tornado.plugin"],
        ["pytest_tornado.plugin", "webframe.pytest_plugin"],
    ],
    ids=["webframe-first", "pytest-tornado-first"],
)
def test_plugin_filters_pytest_tornado_warnings_in_either_load_order(
    tmp_path: Path, order: list[str]
) -> None:
    # Entry points load in the order the installed distributions are found, which
    # differs between machines; -p with autoloading off fixes each order here.
    args = [arg for name in order for arg in ("-p", name)]
    done = run_user_project(tmp_path, "webframe_client", *args, autoload=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "warning" not in done.stdout.lower(), done.stdout


def test_plugin_old_fixture_name_still_works_and_warns(tmp_path: Path) -> None:
    done = run_user_project(tmp_path, "client")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WebframeFixtureDeprecationWarning" in done.stdout
    assert "use 'webframe_client'" in done.stdout


def test_plugin_without_pytest_tornado_says_what_to_install(tmp_path: Path) -> None:
    done = run_user_project(tmp_path, "webframe_client", "-p", "no:tornado")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "webframe_client needs pytest-tornado" in done.stdout
    assert "pip install 'webframe[testing]'" in done.stdout
    assert "1 error" in done.stdout


def test_plugin_without_an_app_fixture_says_what_to_define(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        "import pytest\n@pytest.mark.gen_test\nasync def test_x(webframe_client):\n    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "define a webframe_app fixture" in done.stdout
