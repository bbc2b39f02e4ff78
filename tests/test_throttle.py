"""webframe.throttle and the demo's login throttling: counts kept in the session store,
429 + Retry-After over the limit, a refused login runs nothing, limits hold across nodes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil
from tornado.httpclient import HTTPResponse

import handlers.account as account
from handlers import DEMO_DEFAULTS, make_app
from webframe import Application, RateLimiter, ServiceUnavailableError, TooManyRequestsError
from webframe.sessions import MemoryStore
from webframe.testing import Client, test_settings
from webframe.throttle import enforce

from .support.clock import FakeClock

try:
    from tests.redis_server import RedisServer
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from redis_server import RedisServer  # type: ignore[no-redef,import-not-found,unused-ignore]

PASSWORD = "correct horse battery"


def Clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


# -------------------------------------------------------------- the helper alone


def test_limiter_refuses_over_the_limit_until_the_window_ends() -> None:
    async def main() -> None:
        clock = Clock()
        store = MemoryStore(clock=clock)
        limiter = RateLimiter("login-test", limit=3, window=60, message="Slow down.")
        try:
            for _ in range(3):
                await enforce(store, (limiter, "alice"))
            clock.now += 15
            with pytest.raises(TooManyRequestsError) as refused:
                await enforce(store, (limiter, "alice"))
            error = refused.value
            assert error.status_code == 429
            assert error.headers == {"Retry-After": "45"}
            assert error.message == "Slow down. Try again in 45 seconds."
            await enforce(store, (limiter, "bob"))  # another key has its own count
            assert (await limiter.peek(store, "alice")).value == 4  # refusals count too
            clock.now += 45
            await enforce(store, (limiter, "alice"))  # a new window
            await limiter.reset(store, "alice")
            assert (await limiter.peek(store, "alice")).value == 0
        finally:
            await store.close()

    asyncio.run(main())


def test_the_longest_wait_of_the_limits_over_is_reported() -> None:
    async def main() -> None:
        store = MemoryStore(clock=Clock())
        short = RateLimiter("short", limit=1, window=10, message="Short.")
        long = RateLimiter("long", limit=1, window=600, message="Long.")
        try:
            await enforce(store, (short, "k"), (long, "k"))
            with pytest.raises(TooManyRequestsError) as refused:
                await enforce(store, (short, "k"), (long, "k"))
            assert refused.value.headers["Retry-After"] == "600"
            assert refused.value.message == "Long. Try again in 10 minutes."
        finally:
            await store.close()

    asyncio.run(main())


def test_store_keys_are_hashed_never_the_name_in_clear() -> None:
    limiter = RateLimiter("login-account", limit=5, window=60)
    key = limiter.counter_key("Zoë with spaces and a very long name " * 20)
    assert re.fullmatch(r"throttle:login-account:[0-9a-f]{40}", key)
    assert limiter.counter_key("alice") != limiter.counter_key("Alice")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "", "limit": 1, "window": 1},
        {"name": "has space", "limit": 1, "window": 1},
        {"name": "Upper", "limit": 1, "window": 1},
        {"name": "ok", "limit": 0, "window": 1},
        {"name": "ok", "limit": 1.5, "window": 1},
        {"name": "ok", "limit": 1, "window": 0},
        {"name": "ok", "limit": 1, "window": float("nan")},
    ],
)
def test_bad_limiter_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


def test_a_failing_store_is_a_503_not_a_500() -> None:
    from webframe.sessions.redis import RedisStore

    async def main() -> None:
        store = RedisStore("redis://127.0.0.1:1/0", timeout=0.3)
        try:
            with pytest.raises(ServiceUnavailableError) as failed:
                await enforce(store, (RateLimiter("x", limit=1, window=1), "k"))
            assert failed.value.status_code == 503 and "Retry-After" in failed.value.headers
        finally:
            await store.close()

    asyncio.run(main())


# ------------------------------------------------------------ the demo's login


class Recorder:
    """Counts the side effects of a login attempt: user lookups and password hashes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashes = 0
        self.lookups = 0
        real_hash = account.hash_password

        async def counting_hash(password: str, salt: bytes) -> bytes:
            self.hashes += 1
            return await real_hash(password, salt)

        monkeypatch.setattr(account, "hash_password", counting_hash)
        self.monkeypatch = monkeypatch

    def watch(self, app: Application) -> None:
        db = app.settings["demo_db"]
        real_lookup = db.user_by_name

        async def counting_lookup(username: str) -> Any:
            self.lookups += 1
            return await real_lookup(username)

        self.monkeypatch.setattr(db, "user_by_name", counting_lookup)


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        account,
        "LOGIN_BY_ACCOUNT",
        RateLimiter("login-account", limit=3, window=300, message="Too many for this account."),
    )
    monkeypatch.setattr(
        account,
        "LOGIN_BY_ADDRESS",
        RateLimiter("login-address", limit=6, window=300, message="Too many from here."),
    )


@pytest.fixture
def app(tmp_path: Path, io_loop: Any) -> Iterator[Application]:
    settings = test_settings(**{**DEMO_DEFAULTS, "instance_path": str(tmp_path / "instance")})
    application = make_app(settings)
    yield application
    io_loop.run_sync(application.aclose)


async def register(client: Client, username: str) -> None:
    assert (await client.get("/register")).code == 200
    r = await client.post("/register", form={"username": username, "password": PASSWORD})
    assert r.code == 302, r.body[:300]
    assert (await client.post("/logout")).code == 302


async def login(client: Client, username: str, password: str) -> HTTPResponse:
    assert (await client.get("/login")).code == 200
    return await client.post("/login", form={"username": username, "password": password})


async def logged_in(client: Client) -> bool:
    return (await client.get("/profile")).code == 200


@pytest.mark.gen_test(timeout=30)
@pytest.mark.usefixtures("limits")
async def test_login_over_the_account_limit_is_429_and_runs_nothing(
    webframe_client: Client, app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register(webframe_client, "alice")
    recorder = Recorder(monkeypatch)
    recorder.watch(app)
    for _ in range(3):
        assert (await login(webframe_client, "alice", "wrong password")).code == 400
    assert (recorder.lookups, recorder.hashes) == (3, 3)

    # Over the limit, even the right password is refused, and nothing else runs.
    r = await login(webframe_client, "ALICE", PASSWORD)  # names are counted case-blind
    assert r.code == 429
    wait = int(r.headers["Retry-After"])
    assert 290 <= wait <= 300
    assert b"Too many for this account. Try again in 5 minutes." in r.body
    assert (recorder.lookups, recorder.hashes) == (3, 3)
    assert not await logged_in(webframe_client)

    # A script asking for JSON gets the same refusal as JSON.
    r = await webframe_client.post(
        "/login",
        form={"username": "alice", "password": PASSWORD},
        headers={"Accept": "application/json"},
    )
    assert r.code == 429 and r.headers["Retry-After"]
    assert json.loads(r.body)["error"]["status"] == 429
    assert (recorder.lookups, recorder.hashes) == (3, 3)

    # Another account from the same address is still allowed (under the address limit).
    await register(webframe_client, "bob")
    assert (await login(webframe_client, "bob", PASSWORD)).code == 302


@pytest.mark.gen_test(timeout=30)
@pytest.mark.usefixtures("limits")
async def test_a_successful_login_clears_the_account_count(webframe_client: Client) -> None:
    await register(webframe_client, "alice")
    for _ in range(2):
        assert (await login(webframe_client, "alice", "wrong password")).code == 400
    assert (await login(webframe_client, "alice", PASSWORD)).code == 302
    assert (await webframe_client.post("/logout")).code == 302
    for _ in range(3):
        assert (await login(webframe_client, "alice", "wrong password")).code == 400
    assert (await login(webframe_client, "alice", "wrong password")).code == 429


@pytest.mark.gen_test(timeout=30)
@pytest.mark.usefixtures("limits")
async def test_one_address_trying_many_names_hits_the_address_limit(
    webframe_client: Client, app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(monkeypatch)
    recorder.watch(app)
    for n in range(6):
        assert (await login(webframe_client, f"user{n}", "whatever password")).code == 400
    r = await login(webframe_client, "user-new", "whatever password")
    assert r.code == 429
    assert b"Too many from here." in r.body
    assert (recorder.lookups, recorder.hashes) == (6, 6)


# ------------------------------------------------------- two nodes, one Redis


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.mark.gen_test(timeout=60)
@pytest.mark.usefixtures("limits")
async def test_the_limit_holds_across_two_nodes_sharing_redis(
    redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis.flushall()
    recorder = Recorder(monkeypatch)
    instance = str(tmp_path / "instance")
    nodes: list[tuple[Application, tornado.httpserver.HTTPServer, Client]] = []
    http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    try:
        for _ in range(2):  # two app instances: separate processes' worth of state
            settings = test_settings(
                **{**DEMO_DEFAULTS, "instance_path": instance, "session_store": redis.url}
            )
            app = make_app(settings)
            recorder.watch(app)
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            server = tornado.httpserver.HTTPServer(app)
            server.add_sockets(sockets)
            port = sockets[0].getsockname()[1]
            nodes.append((app, server, Client(http, f"http://127.0.0.1:{port}")))
        a, b = nodes[0][2], nodes[1][2]
        await register(a, "alice")
        recorder.hashes = recorder.lookups = 0

        # Attempts alternate between the nodes; each node alone has seen fewer than 3.
        for client in (a, b, a):
            assert (await login(client, "alice", "wrong password")).code == 400
        assert (recorder.lookups, recorder.hashes) == (3, 3)
        for client in (b, a):
            r = await login(client, "alice", PASSWORD)
            assert r.code == 429, r.body[:200]
            assert int(r.headers["Retry-After"]) > 0
        assert (recorder.lookups, recorder.hashes) == (3, 3)
        # The counts are in Redis, next to the sessions, and expire on their own.
        keys = [k async for k in _scan(redis.url, "webframe:counter:*")]
        assert len(keys) == 2  # one per account, one per address
    finally:
        for app, server, _client in nodes:
            server.stop()
            await app.aclose()
        http.close()


async def _scan(url: str, pattern: str) -> Any:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        async for key in client.scan_iter(match=pattern):
            assert 0 < await client.pttl(key) <= 300_000
            yield key
    finally:
        await client.aclose()
