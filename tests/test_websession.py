"""Sessions over HTTP (webframe/sessions/mixin.py, sessions/flash.py, xsrf.py), against
memory://, SQLite and Redis.

Each test drives a small app through the browser-like test client; the app's store is
wrapped to count calls and runs on a fake clock, so expiry needs no sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.store_doubles import CountingStore, FakeClock
from webframe import Application, HTTPError, RequestHandler, websession
from webframe.sessions import SessionStore, open_store
from webframe.testing import TEST_SECRET, Client, CookieJar, WebTestCase, test_settings

from .redis_server import RedisServer
from .support.sessions import session_id

IDLE = 100.0
ABSOLUTE = 1000.0
TOUCH = 10.0
UNAVAILABLE = "session store is unavailable"

# Helpers ------------------------------------------------------------------------------


def install_store(app: Application, clock: Callable[[], float] | None = None) -> CountingStore:
    """Open the app's configured store on ``clock``, wrapped in a CountingStore."""
    s = app.wf_settings
    kwargs: dict[str, Any] = {
        "idle_timeout": s.session_idle_timeout,
        "absolute_timeout": s.session_absolute_timeout,
        "timeout": s.session_timeout,
    }
    if clock is not None:
        kwargs["clock"] = clock
    store = CountingStore(open_store(app.session_store_url, **kwargs))
    app._store = store
    app.add_close_callback(store.close)
    return store


def set_cookie_headers(response: HTTPResponse, name: str | None = None) -> list[str]:
    headers = response.headers.get_list("Set-Cookie")
    return [h for h in headers if name is None or h.startswith(name + "=")]


def cookie_expired(header: str) -> bool:
    """True if a Set-Cookie header tells the browser to drop the cookie now."""
    jar = CookieJar()
    name = header.split("=", 1)[0]
    jar.set(name, "placeholder")
    jar.update("http://localhost/", [header])
    return name not in jar


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# The app under test ----------------------------------------------------------------

PAGE = """<!doctype html><title>page</title>
{% for category, text in get_flashed_messages() %}
<p class="flash {{ category }}">{{ text }}</p>
{% end %}
<form method="post" action="/form">{% module xsrf_form_html() %}</form>
"""
ERROR = "<!doctype html><title>{{ status }}</title><p class=message>{{ message }}</p>\n"


class Gate:
    """Lets a test hold requests after they loaded their session, then release them."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.waiting = 0

    async def wait(self) -> None:
        self.waiting += 1
        await self.event.wait()


class Base(RequestHandler):
    @property
    def gate(self) -> Gate:
        gate: Gate = self.application.settings["gate"]
        return gate


class PageHandler(Base):
    """GET /: a page with flashes and the XSRF form field (it needs the session)."""

    uses_session = True

    def get(self) -> None:
        self.render("page.html")


class UntouchedHandler(Base):
    """Never touches the session."""

    def get(self) -> None:
        self.write("untouched")


class ShowHandler(Base):
    """GET /show: the session's data as JSON (read only)."""

    async def get(self) -> None:
        session = await self.load_session()
        data = {k: v for k, v in session.items() if not k.startswith("_")}
        self.write({"data": data, "new": session.new, "sid": session.sid})


class SetHandler(Base):
    """GET /set?k=..&v=..&then=...: set one key, then answer in the way asked."""

    async def get(self) -> None:
        session = await self.load_session()
        if self.get_argument("wait", ""):
            await self.gate.wait()
        session[self.get_argument("k")] = self.get_argument("v")
        then = self.get_argument("then", "write")
        if then == "write":
            self.write("ok")
        elif then == "redirect":
            self.redirect("/show")
        elif then == "render":
            self.render("page.html")
        elif then == "error":
            raise HTTPError("refused on purpose", status=int(self.get_argument("status")))
        elif then == "crash":
            raise RuntimeError("crash on purpose")
        elif then == "stream":
            self.write("first chunk;")
            await self.flush()
            self.write("second chunk")
        elif then == "stream_noawait":
            self.write("first chunk;")
            self.flush()  # not awaited, as many handlers do
            self.write("second chunk")
        else:
            raise AssertionError(then)


class LoginHandler(Base):
    async def get(self) -> None:
        session = await self.load_session()
        session.regenerate()
        session["user"] = self.get_argument("user")
        self.write("logged in")


class LogoutHandler(Base):
    async def get(self) -> None:
        session = await self.load_session()
        session.invalidate()
        self.write("logged out")


class FlashHandler(Base):
    async def get(self) -> None:
        await self.load_session()
        self.flash(self.get_argument("msg"), self.get_argument("category", "info"))
        self.redirect(self.get_argument("to", "/"))


class BrokenPageHandler(Base):
    """GET /broken: a page whose template fails (after flashes were claimed)."""

    uses_session = True

    def get(self) -> None:
        self.render("broken.html")


class FormHandler(Base):
    """POST /form (XSRF protected); DELETE too, reachable with ``_method``."""

    uses_session = True

    def post(self) -> None:
        self.write("posted")

    def delete(self) -> None:
        self.write("deleted")


ROUTES = [
    ("/", PageHandler),
    ("/untouched", UntouchedHandler),
    ("/show", ShowHandler),
    ("/set", SetHandler),
    ("/login", LoginHandler),
    ("/logout", LogoutHandler),
    ("/flash", FlashHandler),
    ("/form", FormHandler),
    ("/broken", BrokenPageHandler),
]


def build_app(tmp_path: Path, store_url: str, **overrides: Any) -> Application:
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "page.html").write_text(PAGE)
    (templates / "error.html").write_text(ERROR)
    (templates / "broken.html").write_text("{{ no_such_name }}")
    values: dict[str, Any] = {
        "session_store": store_url,
        "template_path": str(templates),
        "instance_path": str(tmp_path / "instance"),
        "session_idle_timeout": IDLE,
        "session_absolute_timeout": ABSOLUTE,
        "session_touch_interval": TOUCH,
    }
    values.update(overrides)
    return Application(ROUTES, test_settings(**values), gate=Gate())


# Stores ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flushall()
    return server.url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(
    request: pytest.FixtureRequest, tmp_path: Path, store_url: str, io_loop: Any
) -> Iterator[Application]:
    if store_url == "private redis":
        # A server of its own (the test stops it) and a short store timeout.
        server: RedisServer = request.getfixturevalue("private_redis")
        application = build_app(tmp_path, server.url, session_timeout=0.5)
    else:
        application = build_app(tmp_path, store_url)
    yield application
    io_loop.run_sync(application.aclose)


@pytest.fixture
def store(app: Application, clock: FakeClock) -> CountingStore:
    return install_store(app, clock)


@pytest.fixture
def client(store: CountingStore, http_client: AsyncHTTPClient, base_url: str) -> Client:
    return Client(http_client, base_url)


def body(response: HTTPResponse) -> Any:
    return json.loads(response.body)


async def corrupt(store: SessionStore, sid: str, store_url: str, tmp_path: Path) -> None:
    """Overwrite the stored record of ``sid`` with data that is not JSON."""
    if store_url.startswith("memory"):
        store._records[sid].blob = "{not json"  # type: ignore[attr-defined]
    elif store_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(tmp_path / "sessions.db")) as conn:
            conn.execute("UPDATE webframe_sessions SET data = ? WHERE sid = ?", ("{nope", sid))
            conn.commit()
    else:
        client = store._client  # type: ignore[attr-defined]
        await client.hset(store.key_prefix + sid, "k:broken", b"{not json")  # type: ignore[attr-defined]


# Lazy loading, new/modified, save only when changed -------------------------------------


@pytest.mark.gen_test
async def test_untouched_handler_makes_no_store_call_and_sets_no_cookie(
    client: Client, store: CountingStore
) -> None:
    r = await client.get("/untouched")
    assert r.code == 200 and r.body == b"untouched"
    assert set_cookie_headers(r) == []
    # Even with a live session cookie: nothing is loaded, nothing is written.
    await client.get("/set?k=a&v=1")
    store.calls.clear()
    r = await client.get("/untouched")
    assert r.code == 200
    assert set_cookie_headers(r) == []
    assert store.calls == []


@pytest.mark.gen_test
async def test_fresh_session_is_new_and_stored_only_once_changed(
    client: Client, store: CountingStore
) -> None:
    r = await client.get("/show")
    assert body(r)["new"] is True and body(r)["data"] == {}
    assert store.calls == []  # no cookie: nothing to load, nothing changed
    assert set_cookie_headers(r, "session") == []

    r = await client.get("/set?k=colour&v=blue")
    assert r.code == 200
    assert store.names() == ["save"]
    [cookie] = set_cookie_headers(r, "session")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    sid = session_id(client.cookies)
    assert sid is not None and store.calls[0][1] == sid

    store.calls.clear()
    r = await client.get("/show")
    assert body(r) == {"data": {"colour": "blue"}, "new": False, "sid": sid}
    assert store.names() == ["load"]  # read only: no save, no touch within the interval
    assert set_cookie_headers(r, "session") == []


@pytest.mark.gen_test
async def test_unchanged_value_and_changed_value(client: Client, store: CountingStore) -> None:
    await client.get("/set?k=a&v=1")
    store.calls.clear()
    await client.get("/set?k=b&v=2")
    assert store.names() == ["load", "save"]
    r = await client.get("/show")
    assert body(r)["data"] == {"a": "1", "b": "2"}


# Saved before the headers go out, whatever way the response ends ----------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("then", "code"),
    [
        ("redirect", 302),
        ("render", 200),
        ("error&status=404", 404),
        ("error&status=400", 400),
        ("stream", 200),
        ("stream_noawait", 200),
    ],
)
async def test_saved_before_headers(
    client: Client, store: CountingStore, then: str, code: int
) -> None:
    r = await client.get(f"/set?k=key&v=kept&then={then}")
    assert r.code == code
    assert len(set_cookie_headers(r, "session")) == 1
    assert store.names() == ["save"]  # once, before the headers
    if then.startswith("stream"):
        assert r.body == b"first chunk;second chunk"
    if then.startswith("error"):
        assert b"refused on purpose" in r.body
    r = await client.get("/show")
    assert body(r)["data"] == {"key": "kept"}


@pytest.mark.gen_test
@pytest.mark.parametrize("then", ["crash", "error&status=503", "error&status=500"])
async def test_not_saved_on_5xx(client: Client, store: CountingStore, then: str) -> None:
    await client.get("/set?k=before&v=1")
    store.calls.clear()
    r = await client.get(f"/set?k=after&v=2&then={then}")
    assert r.code >= 500
    assert b"Traceback" not in r.body
    assert "save" not in store.names()
    assert set_cookie_headers(r, "session") == []
    r = await client.get("/show")
    assert body(r)["data"] == {"before": "1"}


@pytest.mark.gen_test
async def test_crash_on_fresh_session_writes_nothing(client: Client, store: CountingStore) -> None:
    r = await client.get("/set?k=a&v=1&then=crash")
    assert r.code == 500
    assert store.calls == []
    assert "session" not in client.cookies


# Login and logout --------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_regenerate_issues_new_id_and_old_id_holds_nothing(
    client: Client, store: CountingStore
) -> None:
    await client.get("/set?k=cart&v=3")
    old = session_id(client.cookies)
    old_cookie = client.cookies.get("session")
    assert old is not None
    r = await client.get("/login?user=alice")
    new = session_id(client.cookies)
    assert r.code == 200 and new is not None and new != old
    assert await store.inner.load(old) is None  # fixation: the planted ID is worthless
    record = await store.inner.load(new)
    assert record is not None and record.data == {"cart": "3", "user": "alice"}
    # A client still holding the old cookie gets an empty session.
    attacker = Client(client.http_client, client.base_url)
    assert old_cookie is not None
    attacker.cookies.set("session", old_cookie)
    r = await attacker.get("/show")
    assert body(r)["data"] == {} and body(r)["sid"] != old


@pytest.mark.gen_test
async def test_invalidate_deletes_server_side_and_expires_cookie(
    client: Client, store: CountingStore
) -> None:
    await client.get("/login?user=alice")
    sid = session_id(client.cookies)
    old_cookie = client.cookies.get("session")
    assert sid is not None and old_cookie is not None
    r = await client.get("/logout")
    assert r.code == 200
    assert ("delete", sid) in store.calls
    assert await store.inner.load(sid) is None
    [cleared] = set_cookie_headers(r, "session")
    assert cookie_expired(cleared)
    assert "session" not in client.cookies
    # Replaying the old cookie gives an empty session (and clears it again).
    client.cookies.set("session", old_cookie)
    r = await client.get("/show")
    assert body(r)["data"] == {} and body(r)["new"] is True


@pytest.mark.gen_test
async def test_session_id_never_taken_from_url(client: Client, store: CountingStore) -> None:
    await client.get("/set?k=secret&v=42")
    sid = session_id(client.cookies)
    signed = client.cookies.get("session")
    assert sid is not None and signed is not None
    other = Client(client.http_client, client.base_url)
    for query in (f"session={sid}", f"session={signed}", f"sid={sid}", f"_session={sid}"):
        r = await other.get(f"/show?{query}")
        assert body(r)["data"] == {} and body(r)["sid"] != sid, query
    r = await other.get(f"/set?k=x&v=1&session={sid}")
    assert session_id(other.cookies) != sid
    record = await store.inner.load(sid)
    assert record is not None and record.data == {"secret": "42"}


def _forgeries(sid: str, signed: str) -> dict[str, str]:
    other_key = tornado.web.create_signed_value("another-secret-" + "y" * 20, "session", sid)
    old = tornado.web.create_signed_value(
        TEST_SECRET, "session", sid, clock=lambda: time.time() - 30 * 86400
    )
    unknown = tornado.web.create_signed_value(TEST_SECRET, "session", "A" * 43)
    other_name = tornado.web.create_signed_value(TEST_SECRET, "user", sid)
    short = tornado.web.create_signed_value(TEST_SECRET, "session", sid[:20])
    tampered = signed[:-3] + ("000" if not signed.endswith("000") else "111")
    return {
        "bare id": sid,
        "signed with another key": other_key.decode(),
        "signature too old": old.decode(),
        "unknown id": unknown.decode(),
        "signed for another cookie": other_name.decode(),
        "short id": short.decode(),
        "tampered": tampered,
        "truncated": signed[: len(signed) // 2],
        "garbage": "2|1:0|10:abc|7:session|",
        "empty": '""',
    }


@pytest.mark.gen_test
async def test_forged_ids_give_a_fresh_session_never_a_500(
    client: Client, store: CountingStore
) -> None:
    await client.get("/set?k=owner&v=victim")
    sid = session_id(client.cookies)
    signed = client.cookies.get("session")
    assert sid is not None and signed is not None
    for label, value in _forgeries(sid, signed).items():
        forger = Client(client.http_client, client.base_url)
        forger.cookies.set("session", value)
        r = await forger.get("/show")
        assert r.code == 200, label
        assert body(r)["data"] == {} and body(r)["new"] is True, label
        assert body(r)["sid"] not in (sid, "A" * 43), label
        store.calls.clear()
        r = await forger.get("/set?k=mine&v=1")
        assert r.code == 200, label
        new = session_id(forger.cookies)
        assert new is not None and new not in (sid, "A" * 43), label
        assert [name for name, s in store.calls if name == "save"] == ["save"], label
        assert all(s == new for name, s in store.calls if name == "save"), label
    record = await store.inner.load(sid)
    assert record is not None and record.data == {"owner": "victim"}
    assert await store.inner.load("A" * 43) is None


# Expiry on a fake clock ---------------------------------------------------------------------


@pytest.mark.gen_test
async def test_idle_expiry_is_enforced_server_side(
    client: Client, store: CountingStore, clock: FakeClock
) -> None:
    await client.get("/set?k=a&v=1")
    clock.advance(IDLE - 1)
    assert body(await client.get("/show"))["data"] == {"a": "1"}  # and touched
    clock.advance(IDLE - 1)
    assert body(await client.get("/show"))["data"] == {"a": "1"}
    old = session_id(client.cookies)
    clock.advance(IDLE + 1)
    r = await client.get("/show")
    assert body(r)["data"] == {} and body(r)["new"] is True  # the cookie is still in the jar
    assert body(r)["sid"] != old
    await client.get("/set?k=b&v=2")
    new = session_id(client.cookies)
    assert new is not None and new != old
    assert old is not None and await store.inner.load(old) is None


@pytest.mark.gen_test
async def test_absolute_expiry_is_enforced_however_active(
    client: Client, store: CountingStore, clock: FakeClock
) -> None:
    await client.get("/set?k=a&v=1")
    for _ in range(int(ABSOLUTE // (IDLE / 2)) - 1):
        clock.advance(IDLE / 2)
        assert body(await client.get("/show"))["data"] == {"a": "1"}
    clock.advance(IDLE / 2 + 1)  # past the absolute limit, well inside the idle one
    r = await client.get("/show")
    assert body(r)["data"] == {}
    # A save for the expired session is not written back either.
    await client.get("/set?k=b&v=2")
    assert body(await client.get("/show"))["data"] == {"b": "2"}


@pytest.mark.gen_test
async def test_touch_at_most_once_per_interval(
    client: Client, store: CountingStore, clock: FakeClock
) -> None:
    await client.get("/set?k=a&v=1")
    store.calls.clear()
    for _ in range(5):
        clock.advance(TOUCH / 5 - 0.01)
        await client.get("/show")
    assert "touch" not in store.names()
    clock.advance(0.1)
    await client.get("/show")
    await client.get("/show")
    assert store.names().count("touch") == 1
    clock.advance(TOUCH)
    await client.get("/show")
    assert store.names().count("touch") == 2
    assert "save" not in store.names()


# Concurrency -----------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_concurrent_requests_changing_different_keys_both_persist(
    app: Application, client: Client, store: CountingStore
) -> None:
    await client.get("/set?k=start&v=0")
    gate: Gate = app.settings["gate"]
    both = asyncio.gather(client.get("/set?k=a&v=1&wait=1"), client.get("/set?k=b&v=2&wait=1"))
    await wait_for(lambda: gate.waiting == 2)  # both loaded the same old snapshot
    gate.event.set()
    r1, r2 = await both
    assert r1.code == r2.code == 200
    assert body(await client.get("/show"))["data"] == {"start": "0", "a": "1", "b": "2"}


@pytest.mark.gen_test
async def test_logout_not_undone_by_slow_request(
    app: Application, client: Client, store: CountingStore
) -> None:
    await client.get("/login?user=alice")
    sid = session_id(client.cookies)
    cookie = client.cookies.get("session")
    assert sid is not None and cookie is not None
    gate: Gate = app.settings["gate"]
    slow = asyncio.ensure_future(client.get("/set?k=late&v=1&wait=1"))
    await wait_for(lambda: gate.waiting == 1)
    r = await client.get("/logout")
    assert r.code == 200
    gate.event.set()
    r = await slow
    assert r.code == 200
    assert await store.inner.load(sid) is None
    replay = Client(client.http_client, client.base_url)
    replay.cookies.set("session", cookie)
    assert body(await replay.get("/show"))["data"] == {}


@pytest.mark.gen_test
async def test_corrupt_record_loads_empty_and_is_logged(
    client: Client,
    store: CountingStore,
    store_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await client.get("/set?k=a&v=1")
    sid = session_id(client.cookies)
    assert sid is not None
    await corrupt(store.inner, sid, store_url, tmp_path)
    with caplog.at_level(logging.WARNING, logger="webframe.sessions"):
        r = await client.get("/show")
    assert r.code == 200 and body(r)["data"] == {}
    assert any("corrupt" in rec.getMessage() for rec in caplog.records)
    assert sid not in caplog.text  # the ID is a credential: never logged in full
    r = await client.get("/set?k=b&v=2")
    assert r.code == 200
    assert body(await client.get("/show"))["data"] == {"b": "2"}


# Flash messages ---------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_flash_shown_exactly_once_after_redirect(
    client: Client, store: CountingStore
) -> None:
    r = await client.get("/flash?msg=Saved+it", follow_redirects=True)
    assert r.code == 200
    assert r.body.count(b"Saved it") == 1
    r = await client.get("/")
    assert b"Saved it" not in r.body


@pytest.mark.gen_test
async def test_flash_escaped(client: Client, store: CountingStore) -> None:
    r = await client.get(
        "/flash", params={"msg": "<script>alert(1)</script>"}, follow_redirects=True
    )
    assert b"<script>alert(1)" not in r.body
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in r.body


@pytest.mark.gen_test
async def test_flash_two_parallel_pages_exactly_one_shows_it(
    client: Client, store: CountingStore
) -> None:
    for round_ in range(3):
        msg = f"only-once-{round_}"
        r = await client.get(f"/flash?msg={msg}")
        assert r.code == 302
        second = Client(client.http_client, client.base_url, jar=client.cookies)
        r1, r2 = await asyncio.gather(client.get("/"), second.get("/"))
        assert r1.code == r2.code == 200
        assert (r1.body + r2.body).count(msg.encode()) == 1, round_
        assert msg.encode() not in (await client.get("/")).body


@pytest.mark.gen_test(timeout=10)
@pytest.mark.parametrize("flash", [False, True])
async def test_failing_page_answers_500_not_a_hang(
    client: Client, store: CountingStore, flash: bool
) -> None:
    if flash:
        await client.get("/flash?msg=pending")
    else:
        await client.get("/set?k=a&v=1")
    r = await client.get("/broken", request_timeout=5)
    assert r.code == 500
    assert b"no_such_name" not in r.body and b"Traceback" not in r.body
    r = await client.get("/", request_timeout=5)
    assert r.code == 200


@pytest.mark.gen_test(timeout=10)
async def test_flash_of_a_failed_page_comes_back_on_the_next(
    client: Client, store: CountingStore
) -> None:
    await client.get("/flash?msg=pending")
    r = await client.get("/broken", request_timeout=5)
    assert r.code == 500 and b"pending" not in r.body  # this error page shows no flashes
    # It went back to the store after the failed page (in the background): the next
    # page shows it, once.
    for _ in range(100):
        r = await client.get("/")
        if b"pending" in r.body:
            break
        await asyncio.sleep(0.01)
    assert r.body.count(b"pending") == 1
    r = await client.get("/")
    assert b"pending" not in r.body


@pytest.mark.gen_test(timeout=10)
async def test_flash_shown_by_the_error_page_is_not_shown_again(
    client: Client, store: CountingStore, tmp_path: Path
) -> None:
    (tmp_path / "templates" / "error.html").write_text(
        "<title>{{ status }}</title>{% for c, text in get_flashed_messages() %}"
        "<p class=flash>{{ text }}</p>{% end %}"
    )
    await client.get("/flash?msg=pending")
    r = await client.get("/broken", request_timeout=5)
    assert r.code == 500 and r.body.count(b"pending") == 1
    await asyncio.sleep(0.05)  # time for a put-back, were there one
    r = await client.get("/")
    assert b"pending" not in r.body


# Session-bound XSRF -------------------------------------------------------------------------------


async def _token(client: Client) -> str:
    token = await client.xsrf_token()
    assert token is not None
    return token


@pytest.mark.gen_test
async def test_xsrf(client: Client, store: CountingStore) -> None:
    token = await _token(client)
    # missing
    r = await client.post("/form", xsrf=False)
    assert r.code == 403 and b"security token" in r.body
    # in the body field, in the header
    r = await client.post("/form", form={"_xsrf": token}, xsrf=False)
    assert r.code == 200 and r.body == b"posted"
    r = await client.post("/form", headers={"X-XSRFToken": token}, xsrf=False)
    assert r.code == 200
    # only in the query string: not accepted
    r = await client.post(f"/form?_xsrf={token}", xsrf=False)
    assert r.code == 403
    # malformed
    for bad in ("x", "!!!!", token[:-2], token + "AA", "A" * 48, "é"):
        r = await client.post("/form", form={"_xsrf": bad}, xsrf=False)
        assert r.code == 403, bad
        assert b"does not belong to your session" in r.body, bad
    # from another session
    other = Client(client.http_client, client.base_url)
    other_token = await _token(other)
    r = await client.post("/form", form={"_xsrf": other_token}, xsrf=False)
    assert r.code == 403
    # _method cannot bypass the check; with the token it dispatches
    r = await client.post("/form", form={"_method": "DELETE"}, xsrf=False)
    assert r.code == 403
    r = await client.post(f"/form?_xsrf={token}", form={"_method": "DELETE"}, xsrf=False)
    assert r.code == 403
    r = await client.post("/form", form={"_method": "DELETE", "_xsrf": token}, xsrf=False)
    assert r.code == 200 and r.body == b"deleted"


@pytest.mark.gen_test
async def test_xsrf_token_changes_with_session_id(client: Client, store: CountingStore) -> None:
    token = await _token(client)
    await client.get("/login?user=alice")
    r = await client.post("/form", form={"_xsrf": token}, xsrf=False)
    assert r.code == 403  # the token belonged to the session before login
    # The login response replaced the _xsrf cookie with a token of the new session.
    assert client.cookies.get("_xsrf") != token
    r = await client.post("/form")
    assert r.code == 200
    # After logout the old token is refused and the cookie is gone.
    logged_in_token = client.cookies.get("_xsrf")
    await client.get("/logout")
    assert "_xsrf" not in client.cookies
    r = await client.post("/form", form={"_xsrf": logged_in_token or ""}, xsrf=False)
    assert r.code == 403


class TestXsrfCookieSettings:
    """Tornado's ``xsrf_cookie_name`` and ``xsrf_cookie_kwargs`` settings are honoured."""

    @pytest.fixture
    def app(self, tmp_path: Path, io_loop: Any) -> Iterator[Application]:
        base = build_app(tmp_path, "memory://")
        application = Application(
            ROUTES,
            base.wf_settings,
            gate=Gate(),
            xsrf_cookie_name="my_xsrf",
            xsrf_cookie_kwargs={"expires_days": 2, "samesite": "Lax"},
        )
        yield application
        io_loop.run_sync(application.aclose)

    @pytest.mark.gen_test
    async def test_cookie_named_and_shaped_by_the_settings(
        self, http_client: AsyncHTTPClient, base_url: str
    ) -> None:
        client = Client(http_client, base_url, xsrf_cookie="my_xsrf")
        r = await client.get("/")
        headers = set_cookie_headers(r, "my_xsrf")
        assert len(headers) == 1, r.headers.get_list("Set-Cookie")
        attrs = headers[0].lower()
        assert "samesite=lax" in attrs and "expires=" in attrs and "httponly" in attrs
        assert not set_cookie_headers(r, "_xsrf")
        token = client.cookies.get("my_xsrf")
        assert token is not None
        # The form field keeps its name (as in Tornado); the header works as well.
        r = await client.post("/form", form={"_xsrf": token}, xsrf=False)
        assert r.code == 200 and r.body == b"posted"
        assert (await client.post("/form")).code == 200
        # Login replaces the renamed cookie, logout clears it.
        r = await client.get("/login?user=alice")
        assert set_cookie_headers(r, "my_xsrf") and not set_cookie_headers(r, "_xsrf")
        assert client.cookies.get("my_xsrf") != token
        assert (await client.post("/form")).code == 200
        r = await client.get("/logout")
        assert [h for h in set_cookie_headers(r, "my_xsrf") if cookie_expired(h)]
        assert "my_xsrf" not in client.cookies


class XsrfCookieNameWebTestCase(WebTestCase):
    """WebTestCase reads the token from the cookie the app names."""

    def get_app(self) -> Application:
        folder = Path(tempfile.mkdtemp(prefix="webframe-xsrf-"))
        self.addCleanup(shutil.rmtree, folder, True)
        base = build_app(folder, "memory://")
        return Application(ROUTES, base.wf_settings, gate=Gate(), xsrf_cookie_name="csrftoken")

    def test_unsafe_methods_carry_the_token_of_the_renamed_cookie(self) -> None:
        assert self.post("/form").code == 200
        assert "csrftoken" in self.cookies and "_xsrf" not in self.cookies


# The store going away -----------------------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("store_url", ["private redis"])
async def test_redis_down_gives_503_and_recovers(
    private_redis: RedisServer,
    http_client: AsyncHTTPClient,
    base_url: str,
    app: Application,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Client(http_client, base_url)
    assert (await client.get("/set?k=a&v=1")).code == 200
    private_redis.stop()
    websession.store_failures.last = 0.0
    websession.store_failures.suppressed = 0
    fresh = Client(http_client, base_url)
    with caplog.at_level(logging.WARNING):
        for c, path in [
            (client, "/show"),
            (client, "/"),
            (fresh, "/set?k=b&v=2"),
            (fresh, "/set?k=b&v=2&then=render"),
            (client, "/set?k=c&v=3&then=redirect"),
            (client, "/set?k=c&v=3&then=stream"),
            (client, "/set?k=c&v=3&then=error&status=404"),
        ]:
            started = time.monotonic()
            r = await c.get(path)
            elapsed = time.monotonic() - started
            assert r.code == 503, path
            assert elapsed < 3.0, (path, elapsed)
            assert UNAVAILABLE in r.body.decode(), path
            assert r.headers.get("Retry-After") == "5"
            assert b"Traceback" not in r.body
            assert set_cookie_headers(r, "session") == []
        r = await client.get("/untouched")
        assert r.code == 200
    reports = [rec for rec in caplog.records if "unavailable" in rec.getMessage()]
    # Rate limited: one report, the rest counted; no warning per request either.
    assert [rec.name for rec in reports] == ["webframe.sessions"]
    assert websession.store_failures.suppressed >= 4
    assert not any(rec.exc_info for rec in caplog.records)

    private_redis.start()
    deadline = time.monotonic() + 10
    while (r := await client.get("/set?k=d&v=4")).code != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert r.code == 200
    assert body(await client.get("/show"))["data"] == {"d": "4"}  # redis restarted empty
