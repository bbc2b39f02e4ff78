"""Header injection (CR/LF in redirects, cookies, status reasons), open redirects via
``next``, and markup in usernames, flash messages, file names and error messages."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest
import requests

from webframe import Application, HTTPError, RequestHandler, route
from webframe.testing import Client, test_settings

from ..support.accounts import PASSWORD, register
from ._support import (
    ThreadedServer,
    TornadoResponse,
    assert_refused,
    raw_request,
    request_bytes,
)

SCRIPT = "<script>alert(1)</script>"
MARKUP = ['"><script>alert(1)</script>', "<img src=x onerror=alert(1)>", SCRIPT]
DANGEROUS = ("<script>alert", "<img src=x", '"><script', '"><img', "<b>bold")


def assert_no_markup(body: bytes | str) -> None:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    for bad in DANGEROUS:
        assert bad not in text, f"unescaped {bad!r} in page"


def assert_local_redirect(r: Any, base: str) -> None:
    assert r.code in (302, 303), (r.code, r.body[:200])
    location = r.headers["Location"]
    assert not any(ord(c) < 0x20 or c in "\\\x7f" for c in location), repr(location)
    assert not location.startswith(("//", "/\\")), location
    resolved = urlsplit(urljoin(base + "/login", location))
    assert resolved.netloc == urlsplit(base).netloc, f"redirect off-site: {location!r}"
    assert resolved.scheme == "http"


# ----------------------------------------------------------------- redirects

OFFSITE = [
    "//evil.example/..",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http:evil.example",
    "HTTPS://evil.example/",
    "/\t/evil.example",
    "/\r\n/evil.example",
    " //evil.example",
    "///evil.example",
    "/..//evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "//evil.example%2F..",
    "/\x00/evil.example",
    "//\\evil.example",
    "/\u3002/evil.example",
    "https:/\\evil.example",
]


@pytest.mark.gen_test(timeout=60)
async def test_login_next_never_redirects_off_site(client: Client, base_url: str) -> None:
    await register(client, "redirector")
    await client.post("/logout")
    for target in OFFSITE:
        assert (await client.get("/login?next=" + quote(target, safe=""))).code == 200
        r = await client.post(
            "/login", form={"username": "redirector", "password": PASSWORD, "next": target}
        )
        assert_local_redirect(r, base_url)
        await client.post("/logout")


@pytest.mark.gen_test(timeout=30)
async def test_crlf_in_next_does_not_inject_headers(client: Client, base_url: str) -> None:
    await register(client, "crlfnext")
    await client.post("/logout")
    for target in (
        "/\r\nSet-Cookie: evil=1",
        "/profile\nX-Injected: 1",
        "/%0d%0aSet-Cookie:evil=1",
    ):
        r = await client.get("/login?next=" + quote(target, safe=""))
        assert r.code == 200
        assert "evil" not in str(r.headers) and "X-Injected" not in r.headers
        r = await client.post(
            "/login", form={"username": "crlfnext", "password": PASSWORD, "next": target}
        )
        assert_local_redirect(r, base_url)
        assert "evil=1" not in str(r.headers.get_list("Set-Cookie"))
        assert "X-Injected" not in r.headers
        await client.post("/logout")


@pytest.mark.gen_test(timeout=30)
async def test_markup_in_next_is_escaped_in_the_login_form(client: Client) -> None:
    for payload in MARKUP:
        r = await client.get("/login?next=" + quote("/" + payload, safe=""))
        assert r.code == 200
        assert_no_markup(r.body)


# --------------------------------------------------------------------- cookies


@pytest.mark.gen_test(timeout=30)
async def test_theme_cookie_cannot_carry_injection(client: Client) -> None:
    await client.get("/preferences")
    for theme in (
        "dark\r\nSet-Cookie: evil=1",
        "dark; Domain=evil.example",
        "dark%0d%0aSet-Cookie:evil=1",
    ):
        r = await client.post(
            "/preferences", form={"theme": theme}, headers={"Accept": "text/html"}
        )
        assert_refused(TornadoResponse(r), 400, message="Choose one of the themes")
        assert all("evil" not in h for h in r.headers.get_list("Set-Cookie"))
        assert "theme=" not in str(r.headers.get_list("Set-Cookie"))


@route("/set-cookie-probe")
class CookieProbe(RequestHandler):
    """Tries each unsafe cookie part and reports what set_cookie did."""

    def get(self) -> None:
        attempts: dict[str, dict[str, Any]] = {
            "value-crlf": {"name": "a", "value": "x\r\nSet-Cookie: evil=1"},
            "value-lf": {"name": "a", "value": "x\nX: y"},
            "value-semicolon": {"name": "a", "value": "x; Domain=evil.example"},
            "value-nul": {"name": "a", "value": "x\x00y"},
            "name-crlf": {"name": "a\r\nX: y", "value": "v"},
            "name-semicolon": {"name": "a;b", "value": "v"},
            "domain-crlf": {"name": "a", "value": "v", "domain": "x\r\nX: y"},
            "domain-semicolon": {"name": "a", "value": "v", "domain": "x; Secure"},
            "path-crlf": {"name": "a", "value": "v", "path": "/\r\nX: y"},
            "path-semicolon": {"name": "a", "value": "v", "path": "/; Domain=evil.example"},
            "samesite-bogus": {"name": "a", "value": "v", "samesite": "Lax\r\nX: y"},
            "extra-attribute-crlf": {"name": "a", "value": "v", "comment": "x\r\nX: y"},
            "bytes-value-crlf": {"name": "a", "value": b"x\r\nX: y"},
        }
        results = {}
        for key, kwargs in attempts.items():
            try:
                self.set_cookie(**kwargs)
            except ValueError as exc:
                results[key] = "ValueError: " + str(exc)
            except Exception as exc:
                results[key] = f"{type(exc).__name__}: {exc}"
            else:
                results[key] = "accepted"
        if hasattr(self, "_new_cookie"):
            del self._new_cookie  # the probe's cookies are not sent
        self.write(results)


@route("/reason-probe")
class ReasonProbe(RequestHandler):
    def get(self) -> None:
        how = self.get_argument("how")
        reason = "Bad\r\nSet-Cookie: evil=1"
        if how == "set_status":
            self.set_status(400, reason)
            self.finish("body")
        else:
            raise HTTPError("A message.", status=400, reason=reason)


@route("/redirect-probe")
class RedirectProbe(RequestHandler):
    def get(self) -> None:
        self.redirect(self.get_argument("to"))


def _probe_app() -> Application:
    return Application([CookieProbe, ReasonProbe, RedirectProbe], test_settings())


@pytest.fixture(scope="module")
def probe() -> Any:
    with ThreadedServer(_probe_app) as server:
        yield server


def test_set_cookie_refuses_every_unsafe_part(probe: ThreadedServer) -> None:
    r = requests.get(probe.url + "/set-cookie-probe", timeout=10)
    assert r.status_code == 200
    results = r.json()
    wrong = {k: v for k, v in results.items() if not v.startswith("ValueError")}
    assert not wrong, wrong
    assert "evil" not in str(r.headers)


@pytest.mark.parametrize("how", ["set_status", "http_error"])
def test_crlf_in_a_status_reason_does_not_inject(probe: ThreadedServer, how: str) -> None:
    resp = raw_request(probe.port, request_bytes("GET", f"/reason-probe?how={how}", {}), timeout=10)
    assert resp.status in (400, 500), resp.raw[:300]
    assert "set-cookie" not in resp.headers, resp.raw[:300]
    first_line = resp.raw.split(b"\r\n", 1)[0]
    assert b"evil" not in first_line and b"\n" not in first_line
    assert b"\r\nSet-Cookie: evil" not in resp.raw
    assert "Traceback" not in resp.text


def test_crlf_in_a_redirect_target_does_not_inject(probe: ThreadedServer) -> None:
    for target in ("/ok\r\nSet-Cookie: evil=1", "/ok\nX-Injected: 1", "/ok\rX-Injected: 1"):
        resp = raw_request(
            probe.port,
            request_bytes("GET", "/redirect-probe?to=" + quote(target, safe=""), {}),
            timeout=10,
        )
        assert resp.status in (302, 400, 500), resp.raw[:300]
        assert "set-cookie" not in resp.headers and "x-injected" not in resp.headers
        assert "Traceback" not in resp.text


# ---------------------------------------------------------------------- markup


@pytest.mark.gen_test(timeout=30)
async def test_markup_usernames_are_refused_and_escaped(client: Client) -> None:
    for name in MARKUP:
        assert (await client.get("/register")).code == 200
        r = await client.post("/register", form={"username": name, "password": PASSWORD})
        assert r.code == 400
        assert_no_markup(r.body)
        assert b"&lt;" in r.body  # shown back, escaped
        assert (await client.get("/login")).code == 200
        r = await client.post("/login", form={"username": name, "password": PASSWORD})
        assert r.code == 400
        assert_no_markup(r.body)


@pytest.mark.gen_test(timeout=30)
async def test_markup_file_names_are_escaped_everywhere(client: Client) -> None:
    await register(client, "markupfiles")
    assert (await client.get("/files")).code == 200
    names = [p + ".txt" for p in MARKUP] + ["a.txt" + SCRIPT]
    for name in names:
        # A browser form post: the flash message names the file on the next page.
        r = await client.post(
            "/files",
            files={"files": (name, b"hello", "text/plain")},
            headers={"Accept": "text/html"},
        )
        assert r.code == 302, r.body[:300]
        page = await client.get("/files")
        assert page.code == 200
        assert_no_markup(page.body)
    r = await client.get("/files", headers={"Accept": "application/json"})
    listing = await client.post(
        "/files",
        files={"files": ("<b>bold</b>.txt", b"x", "text/plain")},
        headers={"Accept": "application/json"},
    )
    stored = json.loads(listing.body)["files"][0]
    assert "<" not in stored["name"] and ">" not in stored["name"]
    r = await client.get(stored["url"])
    assert r.code == 200
    disposition = r.headers["Content-Disposition"]
    assert "<" not in disposition and "\r" not in disposition and "\n" not in disposition
    # Delete with a form: the "Deleted ..." flash is rendered on the next page.
    token = client.cookies.get("_xsrf")
    assert token
    r = await client.post(
        stored["url"], form={"_method": "DELETE"}, headers={"Accept": "text/html"}
    )
    assert r.code == 302
    page = await client.get("/files")
    assert_no_markup(page.body)


@pytest.mark.gen_test(timeout=30)
async def test_markup_in_error_messages_is_escaped(client: Client) -> None:
    await register(client, "markuperrors")
    assert (await client.get("/files")).code == 200
    # _method values are echoed in the 400 message.
    r = await client.post("/files/1", form={"_method": SCRIPT}, headers={"Accept": "text/html"})
    assert r.code in (400, 404)
    assert_no_markup(r.body)
    # get_json echoes the Content-Type.
    r = await client.post(
        "/api/notes", body='{"text": 1}', headers={"Content-Type": SCRIPT, "Accept": "text/html"}
    )
    assert r.code == 400
    assert_no_markup(r.body)
    for path in ("/" + quote(SCRIPT), "/hello/" + quote(SCRIPT), "/files/" + quote(SCRIPT)):
        r = await client.get(path, headers={"Accept": "text/html"})
        assert r.code in (200, 302, 404)
        assert_no_markup(r.body)
