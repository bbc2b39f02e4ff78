"""Sessions survive the loss of a Redis host: SIGKILL the master under a steady load.

Real topologies, started per test on loopback ports: 1 master + replicas + 3
sentinels, and a 3-master Redis Cluster with a replica per master.  A webframe
app serves a few clients that each write a new key to their session every
~100 ms, and a page that needs no session.  While the master is gone, requests
needing a session get 503 (never a 500), pages without a session keep
working, and once a replica is promoted everything recovers without a
restart; every write acknowledged after the kill is in the store at the end.

The measured failover windows are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil

from webframe import Application, RequestHandler
from webframe.sessions import open_store
from webframe.testing import test_settings

try:
    from tests.redis_server import RedisCluster, RedisServer, SentinelGroup
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from redis_server import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        RedisCluster,
        RedisServer,
        SentinelGroup,
    )

pytestmark = pytest.mark.slow

STORE_TIMEOUT = 0.5  # session_timeout: how fast a request needing the store gets its 503
LOAD_SECONDS = 15.0
#: The load goes on past LOAD_SECONDS while 503s are still coming, until SETTLE seconds
#: pass without one, but never past HARD_LIMIT: a sentinel whose election split retries
#: only after 2 x failover-timeout, and a loaded CI machine adds its own delays, so a fixed
#: load time would end some runs before the recovery it is there to observe.
SETTLE = 2.0
HARD_LIMIT = 45.0
KILL_AT = 3.0
CLIENTS = 4
PAUSE = 0.1  # between one client's requests
#: The longest failover the tests accept (sentinel: down-after 1 s + election;
#: cluster: node timeout 1 s + election); measured values are printed.
MAX_WINDOW = 10.0


class WriteHandler(RequestHandler):
    """Sets one session key per request and answers with the session's ID."""

    uses_session = True

    def get(self) -> None:
        key = self.get_query_argument("key")
        self.session[key] = self.get_query_argument("value")
        self.json({"sid": self.session.sid})


class PlainHandler(RequestHandler):
    """Needs no session: must keep answering while the store is down."""

    def get(self) -> None:
        self.write("ok")


@dataclass
class Outcome:
    """What one request got, on the test's monotonic clock."""

    client: int
    started: float
    ended: float
    status: int
    key: str = ""
    value: str = ""
    sid: str = ""


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    plain: list[Outcome] = field(default_factory=list)
    killed_at: float = 0.0
    last_bad: float = 0.0  # when the latest non-200 answer came, 0.0 before any

    def timeline(self) -> str:
        """Answers per second after the kill ("+4s 200x3 503x5"): shown when a check fails."""
        seconds: dict[int, dict[int, int]] = {}
        for o in self.outcomes:
            if o.started >= self.killed_at:
                slot = seconds.setdefault(int(o.started - self.killed_at), {})
                slot[o.status] = slot.get(o.status, 0) + 1
        return "; ".join(
            f"+{t}s " + " ".join(f"{code}x{n}" for code, n in sorted(counts.items()))
            for t, counts in sorted(seconds.items())
        )


def cookie_of(response: tornado.httpclient.HTTPResponse) -> str | None:
    for header in response.headers.get_list("Set-Cookie"):
        if header.startswith("session="):
            return header.split(";", 1)[0]
    return None


async def run_load(
    store_url: str,
    kill: Callable[[], None],
    settings: dict[str, Any] | None = None,
    on_first_sid: Callable[[int, str], None] | None = None,
) -> Load:
    """Serve a webframe app on the store, drive it for LOAD_SECONDS, `kill` at KILL_AT."""
    app = Application(
        [("/write", WriteHandler), ("/plain", PlainHandler)],
        test_settings(
            session_store=store_url,
            session_timeout=STORE_TIMEOUT,
            xsrf=False,
            **(settings or {}),
        ),
    )
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=CLIENTS + 2)
    load = Load()
    start = time.monotonic()
    base = f"http://127.0.0.1:{port}"

    async def fetch(path: str, headers: dict[str, str]) -> tornado.httpclient.HTTPResponse:
        return await client.fetch(
            base + path, headers=headers, raise_error=False, request_timeout=10
        )

    def going() -> bool:
        now = time.monotonic()
        if now - start < LOAD_SECONDS:
            return True
        return now - start < HARD_LIMIT and now - load.last_bad < SETTLE

    async def user(n: int) -> None:
        cookie: str | None = None
        seq = 0
        while going():
            seq += 1
            key, value = f"k{seq}", f"c{n}-{seq}"
            began = time.monotonic()
            r = await fetch(f"/write?key={key}&value={value}", {"Cookie": cookie or ""})
            outcome = Outcome(n, began, time.monotonic(), r.code, key, value)
            if r.code == 200:
                outcome.sid = json.loads(r.body)["sid"]
                if cookie is None and on_first_sid is not None:
                    on_first_sid(n, outcome.sid)
                cookie = cookie_of(r) or cookie
            else:
                body = r.body.decode(errors="replace")
                assert r.code == 503, f"{r.code} (only 503 is acceptable): {body[:300]}"
                assert "Traceback" not in body
                load.last_bad = time.monotonic()
            load.outcomes.append(outcome)
            await asyncio.sleep(PAUSE)

    async def plain() -> None:
        while going():
            began = time.monotonic()
            r = await fetch("/plain", {})
            load.plain.append(Outcome(-1, began, time.monotonic(), r.code))
            await asyncio.sleep(0.1)

    async def killer() -> None:
        await asyncio.sleep(KILL_AT)
        load.killed_at = time.monotonic()
        kill()

    try:
        await asyncio.gather(*(user(n) for n in range(CLIENTS)), plain(), killer())
    finally:
        client.close()
        server.stop()
        await app.aclose()
    return load


@dataclass
class Window:
    first_503: float  # seconds after the kill
    last_503: float
    recovered: float  # first 200 after the last 503, seconds after the kill
    failed: int
    total: int


def window(load: Load, clients: set[int] | None = None) -> Window:
    """The 503 span, relative to the kill; asserts every 503 came after it."""
    mine = [o for o in load.outcomes if clients is None or o.client in clients]
    bad = [o for o in mine if o.status != 200]
    assert all(o.ended >= load.killed_at for o in bad), "a 503 before the master was killed"
    if not bad:
        return Window(0.0, 0.0, 0.0, 0, len(mine))
    last = max(o.ended for o in bad)
    after = [o.ended for o in mine if o.status == 200 and o.started >= last]
    assert after, f"never recovered: no successful request after the last 503: {load.timeline()}"
    k = load.killed_at
    return Window(min(o.ended for o in bad) - k, last - k, min(after) - k, len(bad), len(mine))


def report(name: str, load: Load, w: Window, lost_before: int) -> None:
    print(
        f"\nFAILOVER {name}: {w.total} session requests, {w.failed} got 503; "
        f"503s from +{w.first_503:.2f}s to +{w.last_503:.2f}s after SIGKILL, "
        f"recovered at +{w.recovered:.2f}s; writes acknowledged before the kill "
        f"and lost: {lost_before}; pages without a session: "
        f"{sum(o.status == 200 for o in load.plain)}/{len(load.plain)} ok"
    )


async def check_kept(store_url: str, load: Load, clients: set[int] | None = None) -> int:
    """Assert every write acknowledged after the kill is stored; return how many
    acknowledged before it are missing (asynchronous replication may lose those)."""
    store = open_store(store_url, timeout=5.0, idle_timeout=3600, absolute_timeout=7200)
    lost_before = 0
    try:
        for o in load.outcomes:
            if o.status != 200 or (clients is not None and o.client not in clients):
                continue
            record = await store.load(o.sid)
            kept = record is not None and record.data.get(o.key) == o.value
            if o.started >= load.killed_at:
                assert kept, f"write {o.key}={o.value} acknowledged after the failover was lost"
            elif not kept:
                lost_before += 1
    finally:
        await store.close()
    return lost_before


def assert_served(load: Load) -> None:
    assert len(load.outcomes) >= 200, f"only {len(load.outcomes)} requests: load too light"
    assert all(o.status == 200 for o in load.plain), "a page without a session failed"


# -- Sentinel ------------------------------------------------------------------------------


def test_sentinel_failover_503_then_recovery_without_restart() -> None:
    with SentinelGroup(replicas=1, sentinels=3) as group:
        old = group.current_master()
        load = asyncio.run(run_load(group.url(), old.kill))
        new = group.wait_for_new_master(old, timeout=5)
        assert new is not old
        assert_served(load)
        w = window(load)
        assert w.failed > 0, "the kill was not noticed: the test measured nothing"
        assert w.recovered < MAX_WINDOW, load.timeline()
        lost = asyncio.run(check_kept(group.url(), load))
        report("sentinel (1 master + 1 replica + 3 sentinels)", load, w, lost)


def test_sentinel_with_session_redis_wait_keeps_every_acknowledged_write() -> None:
    # Two replicas: after the failover the new master still has one replica to WAIT for.
    with SentinelGroup(replicas=2, sentinels=3) as group:
        old = group.current_master()
        load = asyncio.run(run_load(group.url(), old.kill, {"session_redis_wait": 1}))
        group.wait_for_new_master(old, timeout=5)
        assert_served(load)
        w = window(load)
        # + the other replica's resync to the new master
        assert w.recovered < MAX_WINDOW + 5, load.timeline()
        lost = asyncio.run(check_kept(group.url(), load))
        report("sentinel + session_redis_wait=1 (2 replicas)", load, w, lost)
        assert lost == 0, f"{lost} writes acknowledged with WAIT were lost in the failover"


# -- Cluster -------------------------------------------------------------------------------


def test_cluster_failover_503_only_for_the_failed_masters_slots() -> None:
    with RedisCluster(masters=3, replicas=1) as cluster:
        victim: list[RedisServer] = []
        owners: dict[int, int] = {}

        def remember(client: int, sid: str) -> None:
            # The master serving each client's session: the slot is the hash tag's.
            owners[client] = cluster.master_of_key(f"{{{sid}}}").port

        def kill() -> None:
            target = next(n for n in cluster.nodes if n.port == owners[0])
            victim.append(target)
            target.kill()

        load = asyncio.run(run_load(cluster.url, kill, on_first_sid=remember))
        assert_served(load)
        hit = {c for c, port in owners.items() if port == owners[0]}
        w = window(load, hit)
        assert w.failed > 0, "the kill was not noticed: the test measured nothing"
        assert w.recovered < MAX_WINDOW, load.timeline()
        spared = set(owners) - hit
        if spared:
            others = window(load, spared)
            print(
                f"\nFAILOVER cluster, sessions on the other masters: "
                f"{others.failed} of {others.total} got 503"
            )
        lost = asyncio.run(check_kept(cluster.url, load))
        report("cluster (3 masters + 3 replicas), sessions on the killed master", load, w, lost)
