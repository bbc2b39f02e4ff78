"""wrk load for the session scenarios: every request carries one session's cookie.

Before measuring, :meth:`SessionLoad.bind` starts a session on server A (one GET of
``LOGIN_PATH``, as a login would) and the bound load sends its cookie with every
request to both servers (B, plain hello, ignores it). All wrk connections share that
one session. For write scenarios :meth:`BoundSessionLoad.verify` reads the session's
counter after each run of A and reports a problem if it did not increase (losing no
writes under concurrency is the tests' job; this is a sanity check).

With ``both=True`` (A and B are the same handler on two stores, e.g. Redis Cluster
vs one Redis) a session is started on each server and each gets its own cookie.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

from bench.procs import ServerProcess
from bench.servers.common import COUNTER_PATH, LOGIN_PATH
from bench.wrk import WrkLoad, WrkResult

SESSION_COOKIE = "session"


def start_session(port: int, login_path: str = LOGIN_PATH) -> str:
    """GET ``login_path``; the ``Cookie`` header value carrying the new session."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", login_path)
        resp = conn.getresponse()
        resp.read()
        cookies: SimpleCookie = SimpleCookie()
        for header in resp.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
    finally:
        conn.close()
    if resp.status != 200 or SESSION_COOKIE not in cookies:
        raise RuntimeError(
            f"GET {login_path} answered {resp.status} without a {SESSION_COOKIE!r} cookie"
        )
    # As a browser sends it back: the value exactly as set (quoted if it was).
    return f"{SESSION_COOKIE}={cookies[SESSION_COOKIE].coded_value}"


def read_counter(port: int, cookie: str, path: str = COUNTER_PATH) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": cookie})
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace").strip()
    finally:
        conn.close()
    try:
        return int(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class SessionLoad:
    """GET ``path`` with the cookie of a session started on A; ``write``: check the
    session counter went up after every run of A."""

    path: str = "/"
    write: bool = False
    #: start a session on B too and send B its own cookie (B uses a session store).
    both: bool = False

    def bind(self, a: ServerProcess, b: ServerProcess) -> BoundSessionLoad:
        cookie = start_session(a.port)
        wrk = WrkLoad(self.path, headers=(("Cookie", cookie),))
        bound = BoundSessionLoad(wrk, a.url, a.port, cookie, self.write)
        if self.both:
            bound.others[b.url] = WrkLoad(self.path, headers=(("Cookie", start_session(b.port)),))
        return bound


@dataclass
class BoundSessionLoad:
    """A :class:`SessionLoad` with its cookie: what the runner measures with."""

    wrk: WrkLoad
    a_url: str
    a_port: int
    cookie: str
    write: bool
    counter: list[int | None] = field(default_factory=list)
    #: the load for another server (its own session cookie), by base URL.
    others: dict[str, WrkLoad] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.wrk.path

    @property
    def method(self) -> str:
        return self.wrk.method

    @property
    def body(self) -> str | None:
        return self.wrk.body

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return self.wrk.headers

    def run(
        self,
        base_url: str,
        duration: int,
        connections: int,
        workdir: Path,
        pin: list[str],
        wrk: str,
    ) -> WrkResult:
        if self.write and base_url == self.a_url and not self.counter:
            self.counter.append(read_counter(self.a_port, self.cookie))
        load = self.others.get(base_url, self.wrk)
        return load.run(base_url, duration, connections, workdir, pin, wrk)

    def verify(self, base_url: str) -> list[str]:
        """After a measured run: problems with the session (write scenarios, A only)."""
        if not self.write or base_url != self.a_url:
            return []
        before = self.counter[-1] if self.counter else None
        now = read_counter(self.a_port, self.cookie)
        self.counter.append(now)
        if now is None:
            return ["the session counter could not be read after a write run"]
        if before is not None and now <= before:
            return [f"the session counter did not increase during a write run ({before} -> {now})"]
        return []

    def summary(self) -> dict[str, object]:
        return {"session_counter": self.counter} if self.write else {}
