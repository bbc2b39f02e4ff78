"""Cookies (webframe/cookies.py): safe defaults, refusal of injection, signed cookies
with key rotation, and the demo's /preferences page that keeps a theme in a cookie."""

from __future__ import annotations

import http.cookies
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import tornado.testing
import tornado.web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from webframe import Application, RequestHandler, Settings
from webframe.cookies import CookieAttributeError
from webframe.testing import TEST_SECRET, Client, CookieJar, WebTestCase, test_settings

OLD = "old-secret-" + "o" * 24
NEW = "new-secret-" + "n" * 24


class CookieHandler(RequestHandler):
    """GET /cookie?opts={json}: set_cookie("c", "v", **opts); reports a ValueError."""

    def get(self) -> None:
        opts = json.loads(self.get_argument("opts", "{}"))
        name = opts.pop("name", "c")
        value = opts.pop("value", "v")
        try:
            self.set_cookie(name, value, **opts)
        except ValueError as exc:
            self.set_status(400)
            self.write(str(exc))
            return
        self.write("set")


class SignedHandler(RequestHandler):
    """GET /signed: the value of the signed cookie ``s``; ?set=x signs and sets it."""

    def get(self) -> None:
        if self.get_argument("set", None) is not None:
            self.set_signed_cookie("s", self.get_argument("set"))
        value = self.get_signed_cookie("s")
        self.write({"value": value.decode() if value is not None else None})


def make_app(settings: Settings | None = None) -> Application:
    return Application(
        [("/cookie", CookieHandler), ("/signed", SignedHandler)],
        settings or test_settings(),
    )


def handler_for(
    app: Application, protocol: str = "http", cookie: str | None = None
) -> CookieHandler:
    """A handler for a request that never touches the network (any protocol)."""
    headers = HTTPHeaders({"Host": "example.test"})
    if cookie is not None:
        headers["Cookie"] = cookie
    request = HTTPServerRequest(
        start_line=RequestStartLine("GET", "/cookie", "HTTP/1.1"),
        headers=headers,
        connection=mock.Mock(),
    )
    request.protocol = protocol
    return CookieHandler(app, request)


def header_of(handler: tornado.web.RequestHandler, name: str) -> str:
    morsels = handler._new_cookie  # type: ignore[attr-defined]
    return str(morsels[name].OutputString())


def attrs(header: str) -> dict[str, str]:
    """The attributes of one Set-Cookie header, lower-cased names (flags map to "")."""
    result: dict[str, str] = {}
    for part in header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        result[key.lower()] = value
    return result


# Defaults and overrides -----------------------------------------------------------------


def test_defaults_on_http() -> None:
    h = handler_for(make_app())
    h.set_cookie("c", "v")
    a = attrs(header_of(h, "c"))
    assert "httponly" in a
    assert a["samesite"] == "Lax"
    assert a["path"] == "/"
    assert "secure" not in a


def test_secure_by_default_on_https() -> None:
    h = handler_for(make_app(), protocol="https")
    h.set_cookie("c", "v")
    assert "secure" in attrs(header_of(h, "c"))


def test_secure_cookies_setting_marks_http_cookies_secure() -> None:
    h = handler_for(make_app(test_settings(secure_cookies=True)))
    h.set_cookie("c", "v")
    assert "secure" in attrs(header_of(h, "c"))


def test_every_default_can_be_overridden() -> None:
    h = handler_for(make_app(test_settings(secure_cookies=True)), protocol="https")
    h.set_cookie("c", "v", httponly=False, samesite="strict", path="/app", secure=False)
    a = attrs(header_of(h, "c"))
    assert "httponly" not in a and "secure" not in a
    assert a["samesite"] == "Strict" and a["path"] == "/app"
    h.set_cookie("d", "v", samesite=None, domain="example.test", max_age=60)
    a = attrs(header_of(h, "d"))
    assert "samesite" not in a and a["domain"] == "example.test" and a["max-age"] == "60"
    h.set_cookie("e", "v", samesite="None")  # allowed: the request is HTTPS
    assert attrs(header_of(h, "e"))["samesite"] == "None"


def test_samesite_none_needs_secure_and_unknown_samesite_refused() -> None:
    h = handler_for(make_app())
    with pytest.raises(ValueError, match="secure"):
        h.set_cookie("c", "v", samesite="None")
    with pytest.raises(ValueError, match="samesite"):
        h.set_cookie("c", "v", samesite="Lax; Secure")


@pytest.mark.parametrize("char", [";", "\r", "\n", "\x00", "\x01", "\x1f", "\x7f", "\r\nX-Evil: 1"])
@pytest.mark.parametrize("attribute", ["name", "value", "domain", "path", "comment"])
def test_injection_refused_naming_the_attribute(char: str, attribute: str) -> None:
    h = handler_for(make_app())
    args: dict[str, Any] = {"name": "c", "value": "v", attribute: "x" + char + "y"}
    with pytest.raises(ValueError) as info:
        h.set_cookie(**args)
    assert f"cookie {attribute} " in str(info.value)
    assert "c" not in getattr(h, "_new_cookie", {})


@pytest.mark.parametrize("name", ["a b", "a=b", "a,b", "a\"b", "", "x;y", "x\r\ny", "x\x7f"])
def test_bad_cookie_name_is_both_value_error_and_cookie_error(name: str) -> None:
    # Tornado raises http.cookies.CookieError for a bad name; webframe used ValueError.
    h = handler_for(make_app())
    with pytest.raises(http.cookies.CookieError) as info:
        h.set_cookie(name, "v")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, CookieAttributeError)
    assert "Invalid cookie attribute name" in str(info.value)
    assert name not in getattr(h, "_new_cookie", {})


@pytest.mark.parametrize("attribute", ["domain", "path", "samesite"])
def test_bad_cookie_attribute_is_a_cookie_error_too(attribute: str) -> None:
    h = handler_for(make_app())
    with pytest.raises(http.cookies.CookieError, match=f"Invalid cookie attribute {attribute}"):
        h.set_cookie("c", "v", **{attribute: "a b"})


class CatchingHandler(RequestHandler):
    """GET /catch?name=...: sets a cookie, answering 400 on Tornado's CookieError."""

    def get(self) -> None:
        try:
            self.set_cookie(self.get_argument("name"), "v")
        except http.cookies.CookieError as exc:
            self.set_status(400)
            self.write(f"refused: {exc}")
            return
        self.write("set")


class CookieErrorOverHTTPTest(WebTestCase):
    xsrf_path = None

    def get_app(self) -> Application:
        return Application([("/catch", CatchingHandler)], test_settings())

    def test_handler_catching_cookie_error_answers_itself(self) -> None:
        r = self.get("/catch?name=a%3Bb")
        assert r.code == 400 and r.body.startswith(b"refused: Invalid cookie attribute name")
        assert "Set-Cookie" not in r.headers
        assert self.get("/catch?name=ok").body == b"set"


@pytest.mark.parametrize("attribute", ["value", "path"])
def test_injection_refused_in_signed_and_cleared_cookies(attribute: str) -> None:
    h = handler_for(make_app())
    with pytest.raises(ValueError, match=f"cookie {attribute}"):
        if attribute == "value":
            h.set_cookie("c", b"a;b")
        else:
            h.set_signed_cookie("c", "fine", path="/x\r\nSet-Cookie: evil=1")
    with pytest.raises(ValueError, match="cookie path"):
        h.clear_cookie("c", path="/;Secure")


# Over HTTP: X-Forwarded-Proto counts only with xheaders ------------------------------------


class XHeadersTest(WebTestCase):
    xsrf_path = None

    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"xheaders": True}

    def test_forwarded_https_gives_secure(self) -> None:
        r = self.get("/cookie", headers={"X-Forwarded-Proto": "https"})
        [header] = r.headers.get_list("Set-Cookie")
        assert "secure" in attrs(header)
        r = self.get("/cookie")
        [header] = r.headers.get_list("Set-Cookie")
        assert "secure" not in attrs(header)

    def test_bad_value_over_http_is_reported(self) -> None:
        r = self.get("/cookie", params={"opts": json.dumps({"value": "a\r\nb"})})
        assert r.code == 400 and b"cookie value" in r.body
        assert r.headers.get_list("Set-Cookie") == []


class NoXHeadersTest(WebTestCase):
    xsrf_path = None

    def get_app(self) -> Application:
        return make_app()

    def test_forwarded_proto_ignored_without_xheaders(self) -> None:
        r = self.get("/cookie", headers={"X-Forwarded-Proto": "https"})
        [header] = r.headers.get_list("Set-Cookie")
        a = attrs(header)
        assert "secure" not in a and "httponly" in a and a["samesite"] == "Lax"


# Signed cookies and key rotation -------------------------------------------------------------


def sign(app: Application, value: str, name: str = "s") -> str:
    h = handler_for(app)
    return h.create_signed_value(name, value).decode()


def read(app: Application, cookie: str, name: str = "s") -> str | None:
    h = handler_for(app, cookie=f"{name}={cookie}")
    value = h.get_signed_cookie(name)
    return value.decode() if value is not None else None


def rotated(version: int | None = 2) -> Application:
    return make_app(test_settings(cookie_secret={1: OLD, 2: NEW}, cookie_secret_version=version))


def test_new_cookies_signed_with_current_key() -> None:
    app = rotated()
    value = sign(app, "hello")
    assert tornado.web.get_signature_key_version(value) == 2
    assert read(app, value) == "hello"
    assert read(make_app(test_settings(cookie_secret={2: NEW})), value) == "hello"
    assert (
        read(make_app(test_settings(cookie_secret={1: OLD}, cookie_secret_version=1)), value)
        is None
    )
    # The version setting picks the key (here the old one is still current).
    assert tornado.web.get_signature_key_version(sign(rotated(1), "x")) == 1
    # Without the setting, the highest version signs.
    assert tornado.web.get_signature_key_version(sign(rotated(None), "x")) == 2


def test_cookie_from_before_rotation_still_verifies() -> None:
    # Signed when the old key was version 1 of a mapping ...
    before = make_app(test_settings(cookie_secret={1: OLD}))
    assert read(rotated(), sign(before, "v1")) == "v1"
    # ... or when it was the only, plain secret (no key version in the cookie).
    plain = make_app(test_settings(cookie_secret=OLD))
    assert read(rotated(), sign(plain, "plain")) == "plain"


def test_unknown_or_tampered_signature_rejected() -> None:
    app = rotated()
    stranger = make_app(test_settings(cookie_secret="someone-else-" + "z" * 20))
    assert read(app, sign(stranger, "x")) is None
    good = sign(app, "x")
    assert read(app, good[:-1] + ("0" if good[-1] != "0" else "1")) is None
    assert read(app, good[: len(good) // 2]) is None
    # A cookie claiming a version we do not have.
    v3 = make_app(test_settings(cookie_secret={3: OLD}))
    assert read(app, sign(v3, "x")) is None
    # A plain-secret cookie signed with another key is not accepted by any version.
    assert read(app, sign(make_app(test_settings(cookie_secret=TEST_SECRET)), "x")) is None


class SessionPage(RequestHandler):
    async def get(self) -> None:
        session = await self.load_session()
        if self.get_argument("set", None):
            session["who"] = self.get_argument("set")
        self.write({"who": session.get("who")})


async def fetch_with(app: Application, jar: CookieJar, path: str) -> Any:
    """Serve ``app`` on a fresh port, GET ``path`` with ``jar``, stop the server."""
    sock, port = tornado.testing.bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        client = Client(AsyncHTTPClient(), f"http://127.0.0.1:{port}", jar=jar)
        response = await client.get(path)
        assert response.code == 200
        return json.loads(response.body)
    finally:
        server.stop()
        await app.aclose()


@pytest.mark.gen_test
async def test_session_survives_rotation_over_http(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'sessions.db'}"

    def build(**secret: Any) -> Application:
        return Application([("/s", SessionPage)], test_settings(session_store=store, **secret))

    jar = CookieJar()
    assert await fetch_with(build(cookie_secret=OLD), jar, "/s?set=alice") == {"who": "alice"}
    rotated_app = build(cookie_secret={1: OLD, 2: NEW}, cookie_secret_version=2)
    assert await fetch_with(rotated_app, jar, "/s") == {"who": "alice"}
    # An entirely unknown secret: a fresh session, not an error.
    assert await fetch_with(build(cookie_secret=NEW), jar, "/s") == {"who": None}


# The demo's /preferences page ----------------------------------------------------------------


@pytest.mark.gen_test
async def test_preferences_set_reload_clear(client: Any) -> None:
    r = await client.get("/preferences")
    assert r.code == 200
    assert 'id="current-theme">light</strong> (default)' in r.body.decode()
    assert 'class="theme-light"' in r.body.decode()

    r = await client.post("/preferences", form={"theme": "dark", "action": "save"})
    assert r.code == 302 and r.headers["Location"] == "/preferences"
    [theme] = [h for h in r.headers.get_list("Set-Cookie") if h.startswith("theme=")]
    a = attrs(theme)
    assert "httponly" in a and a["samesite"] == "Lax" and a["path"] == "/"
    assert client.cookies.get("theme") == "dark"

    r = await client.get("/preferences")
    page = r.body.decode()
    assert 'id="current-theme">dark</strong>' in page and "(default)" not in page
    assert 'class="theme-dark"' in page
    assert "Theme set to dark." in page
    assert "Theme set to dark." not in (await client.get("/preferences")).body.decode()

    r = await client.post("/preferences", form={"action": "clear"})
    assert r.code == 302
    assert "theme" not in client.cookies
    page = (await client.get("/preferences")).body.decode()
    assert 'id="current-theme">light</strong> (default)' in page
    assert "Theme preference cleared." in page


@pytest.mark.gen_test
async def test_preferences_refuses_unknown_theme_and_forged_cookie(client: Any) -> None:
    assert (await client.get("/preferences")).code == 200  # the form gives the XSRF token
    r = await client.post("/preferences", form={"theme": "evil;x", "action": "save"})
    assert r.code == 400
    assert b"Choose one of the themes" in r.body
    assert "theme" not in client.cookies
    client.cookies.set("theme", "x\\u0022onload")
    page = (await client.get("/preferences")).body.decode()
    assert 'class="theme-light"' in page and "onload" not in page
