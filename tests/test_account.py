"""The demo's accounts (handlers/account.py) over HTTP: register, log in, profile,
log out, flash messages in the layout, safe ``next`` redirects, password storage."""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from handlers import DEMO_DEFAULTS, make_app
from handlers.account import BAD_LOGIN, SCRYPT
from handlers.base import PageHandler
from webframe import Application, ConfigurationError
from webframe.testing import Client, test_settings

from .support.sessions import session_id

PASSWORD = "correct horse battery"
# The app fixture is requested by the client fixture at run time: name the database
# fixture here so that every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("demo_database")
EVIL_NEXT = [
    "//evil.example/x",
    "https://evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    " //evil.example",
    "javascript:alert(1)",
    "http:/evil.example",
    "///evil.example",
]


class FlashPage(PageHandler):
    """Test-only: flash the ``msg`` argument, then redirect home."""

    def get(self) -> None:
        self.flash(self.get_argument("msg"), "error")
        self.redirect("/")


@pytest.fixture
def app(tmp_path: Path, io_loop: Any, demo_database: str) -> Any:
    # Every test runs on SQLite and on PostgreSQL (the several-node setup).
    settings = test_settings(**{**DEMO_DEFAULTS, "instance_path": str(tmp_path / "instance")})
    application = make_app(settings, database_url=demo_database)
    application.wildcard_router.add_rules([(r"/test/flash", FlashPage)])
    yield application
    io_loop.run_sync(application.aclose)


def text(r: HTTPResponse) -> str:
    return r.body.decode()


async def register(
    client: Client, username: str = "alice", password: str = PASSWORD
) -> HTTPResponse:
    assert (await client.get("/register")).code == 200
    return await client.post("/register", form={"username": username, "password": password})


async def login(
    client: Client, username: str = "alice", password: str = PASSWORD, next_url: str | None = None
) -> HTTPResponse:
    assert (await client.get("/login")).code == 200
    form = {"username": username, "password": password}
    if next_url is not None:
        form["next"] = next_url
    return await client.post("/login", form=form)


def logged_in_as(page: str) -> str | None:
    m = re.search(r'<a href="/profile"[^>]*>([^<]*)</a>', page)
    return m.group(1) if m else None


@pytest.mark.gen_test
async def test_register_logs_in_and_welcomes_once(client: Client, app: Application) -> None:
    r = await register(client)
    assert r.code == 302 and r.headers["Location"] == "/profile"
    r = await client.get("/profile")
    page = text(r)
    assert r.code == 200 and "<h1>Hello, alice</h1>" in page
    assert logged_in_as(page) == "alice"
    assert page.count("Welcome, alice! Your account is ready.") == 1
    assert 'class="flash flash-success"' in page
    assert "Welcome, alice!" not in text(await client.get("/profile"))


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("a", PASSWORD, "Choose a username"),
        ("bad name!", PASSWORD, "Choose a username"),
        ("bob", "short", "Choose a password"),
        ("alice", PASSWORD, "That username is taken"),
        ("ALICE", PASSWORD, "That username is taken"),
    ],
)
async def test_register_refusals(
    client: Client, second_client: Client, username: str, password: str, message: str
) -> None:
    await register(second_client)  # alice exists
    r = await register(client, username, password)
    assert r.code == 400
    assert message in text(r) and 'role="alert"' in text(r)
    assert logged_in_as(text(await client.get("/"))) is None


@pytest.mark.gen_test
async def test_login_issues_a_new_session_id(
    client: Client, second_client: Client, app: Application
) -> None:
    await register(second_client)
    assert (await client.get("/login")).code == 200
    before = session_id(client.cookies)  # the login form's XSRF token anchors a session
    assert before is not None
    r = await client.post("/login", form={"username": "alice", "password": PASSWORD})
    assert r.code == 302 and r.headers["Location"] == "/"
    after = session_id(client.cookies)
    assert after is not None and after != before
    assert await app.session_store.load(before) is None
    record = await app.session_store.load(after)
    assert record is not None and record.data["user"]["name"] == "alice"
    page = text(await client.get("/"))
    assert logged_in_as(page) == "alice" and "Welcome back, alice." in page


@pytest.mark.gen_test
async def test_wrong_password_and_unknown_user_look_the_same(
    client: Client, second_client: Client
) -> None:
    await register(second_client)
    wrong = await login(client, "alice", "not the password")
    unknown = await login(client, "nobody", PASSWORD)
    malformed = await login(client, "<x>", PASSWORD)
    for r in (wrong, unknown, malformed):
        assert r.code == 400
        page = text(r)
        assert page.count(BAD_LOGIN) == 1
        assert 'class="flash flash-error" role="alert"' in page
        assert logged_in_as(page) is None
    assert wrong.body.replace(b"alice", b"").count(b"<li") == unknown.body.replace(
        b"nobody", b""
    ).count(b"<li")
    assert BAD_LOGIN not in text(await client.get("/login"))  # shown once only
    r = await client.get("/profile")
    assert r.code == 302


@pytest.mark.gen_test
async def test_profile_requires_login_and_comes_back(client: Client, second_client: Client) -> None:
    await register(second_client)
    r = await client.get("/profile")
    assert r.code == 302 and r.headers["Location"] == "/login?next=%2Fprofile"
    r = await client.get(r.headers["Location"])
    assert '<input type="hidden" name="next" value="/profile">' in text(r)
    r = await client.post(
        "/login", form={"username": "alice", "password": PASSWORD, "next": "/profile"}
    )
    assert r.code == 302 and r.headers["Location"] == "/profile"
    r = await client.get("/profile")
    assert r.code == 200 and "<h1>Hello, alice</h1>" in text(r)


@pytest.mark.gen_test
async def test_next_never_leaves_the_site(client: Client, second_client: Client) -> None:
    await register(second_client)
    for evil in EVIL_NEXT:
        r = await client.get("/login", params={"next": evil})
        assert r.code == 200
        assert '<input type="hidden" name="next" value="/">' in text(r), evil
        r = await login(client, next_url=evil)
        assert r.code == 302, evil
        assert r.headers["Location"] == "/", evil
        await client.post("/logout")
    # A local path with a query is kept.
    r = await login(client, next_url="/preferences?tab=1")
    assert r.headers["Location"] == "/preferences?tab=1"


@pytest.mark.gen_test
async def test_logout_invalidates_session(client: Client, app: Application) -> None:
    await register(client)
    sid = session_id(client.cookies)
    cookie = client.cookies.get("session")
    assert sid is not None and cookie is not None
    r = await client.post("/logout")
    assert r.code == 302 and r.headers["Location"] == "/"
    assert await app.session_store.load(sid) is None
    page = text(await client.get("/"))
    assert "You have been logged out." in page and logged_in_as(page) is None
    assert (await client.get("/profile")).code == 302
    replay = Client(client.http_client, client.base_url)
    replay.cookies.set("session", cookie)
    r = await replay.get("/profile")
    assert r.code == 302 and r.headers["Location"].startswith("/login")


@pytest.mark.gen_test
async def test_logout_needs_the_xsrf_token(client: Client) -> None:
    await register(client)
    r = await client.post("/logout", xsrf=False)
    assert r.code == 403 and "security token" in text(r)
    assert logged_in_as(text(await client.get("/"))) == "alice"


@pytest.mark.gen_test
async def test_layout_exposes_xsrf_meta_only_when_logged_in(client: Client) -> None:
    page = text(await client.get("/"))
    assert 'name="xsrf-token"' not in page
    await register(client)
    page = text(await client.get("/"))
    m = re.search(r'<meta name="xsrf-token" content="([^"]+)">', page)
    assert m is not None
    client.cookies.delete("_xsrf")  # a script only has the meta tag
    r = await client.post("/logout", headers={"X-XSRFToken": m.group(1)}, xsrf=False)
    assert r.code == 302
    assert logged_in_as(text(await client.get("/"))) is None


@pytest.mark.gen_test
async def test_flash_in_layout_is_escaped(client: Client) -> None:
    r = await client.get(
        "/test/flash", params={"msg": "<script>alert('x')</script>"}, follow_redirects=True
    )
    page = text(r)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert '<ul class="flashes"' in page
    assert "&lt;script&gt;" not in text(await client.get("/"))


@pytest.mark.gen_test
async def test_passwords_stored_with_scrypt_and_per_user_salt(
    client: Client, second_client: Client, app: Application
) -> None:
    await register(client, "alice")
    await register(second_client, "bob")
    db = app.settings["demo_db"]
    alice, bob = await db.user_by_name("alice"), await db.user_by_name("bob")
    for row in (alice, bob):
        assert PASSWORD.encode() not in bytes(row["password_hash"])
        assert len(row["salt"]) >= 16 and len(row["password_hash"]) == 32
        expected = hashlib.scrypt(PASSWORD.encode(), salt=row["salt"], **SCRYPT)
        assert bytes(row["password_hash"]) == expected
    assert alice["salt"] != bob["salt"] and alice["password_hash"] != bob["password_hash"]
    assert SCRYPT["n"] >= 2**14


@pytest.mark.gen_test(timeout=20)
async def test_an_unreachable_demo_database_is_a_503_with_a_message(tmp_path: Path) -> None:
    from tornado.httpclient import AsyncHTTPClient
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = test_settings(**{**DEMO_DEFAULTS, "instance_path": str(tmp_path / "instance")})
    application = make_app(settings, database_url=f"postgresql://nobody@127.0.0.1:{port}/demo")
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(application)
    server.add_sockets(sockets)
    http = AsyncHTTPClient(force_instance=True)
    try:
        client = Client(http, f"http://127.0.0.1:{sockets[0].getsockname()[1]}")
        assert (await client.get("/register")).code == 200  # no database needed
        r = await client.post("/register", form={"username": "alice", "password": PASSWORD})
        assert r.code == 503 and r.headers["Retry-After"] == "5"
        assert "The accounts database is unavailable right now" in text(r)
        assert "Traceback" not in text(r) and str(port) not in text(r)
    finally:
        http.close()
        server.stop()
        await application.aclose()


def test_a_demo_database_url_of_another_kind_stops_start_up(tmp_path: Path) -> None:
    settings = test_settings(**{**DEMO_DEFAULTS, "instance_path": str(tmp_path / "instance")})
    with pytest.raises(ConfigurationError, match=r"DEMO_DATABASE_URL.*postgresql://") as err:
        make_app(settings, database_url="mysql://user:secret@db/demo")
    assert "secret" not in str(err.value)  # the password is never echoed
