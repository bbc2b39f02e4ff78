"""Sessions against the real demo server (``python run.py --no-debug``) in subprocesses:
several worker processes, restarts with SQLite and Redis, and secret rotation."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import ROOT
from .redis_server import RedisServer

pytestmark = pytest.mark.slow

OLD_SECRET = "live-old-secret-" + "a" * 24
NEW_SECRET = "live-new-secret-" + "b" * 24
PASSWORD = "correct horse battery"


class Server:
    """One ``python run.py`` process (and its workers), stopped by its own PID."""

    def __init__(self, tmp_path: Path, secret: str, args: list[str], env: dict[str, str]) -> None:
        self.log_path = tmp_path / f"server-{time.monotonic_ns()}.log"
        full_env = {
            **os.environ,
            "WEBFRAME_COOKIE_SECRET": secret,
            "WEBFRAME_INSTANCE_PATH": str(tmp_path / "instance"),
            "WEBFRAME_ACCESS_LOG": "0",
            **env,
        }
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "run.py", "--no-debug", "--port", "0", *args],
                cwd=ROOT,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = re.search(r"serving on (http://\S+)/", self.log())
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """Start servers with ``servers.append(Server(...))``; all are stopped at the end."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start(
    servers: list[Server],
    tmp_path: Path,
    *args: str,
    secret: str = OLD_SECRET,
    env: dict[str, str] | None = None,
) -> Server:
    server = Server(tmp_path, secret, list(args), env or {})
    servers.append(server)
    return server


def form_post(browser: requests.Session, url: str, data: dict[str, str]) -> requests.Response:
    token = browser.cookies.get("_xsrf")
    assert token, "the form page gave no XSRF token"
    return browser.post(url, data={**data, "_xsrf": token}, allow_redirects=False, timeout=10)


def register(server: Server, browser: requests.Session, username: str = "alice") -> None:
    assert browser.get(server.url + "/register", timeout=10).status_code == 200
    r = form_post(browser, server.url + "/register", {"username": username, "password": PASSWORD})
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == "/profile"


def profile_user(server: Server, cookies: requests.cookies.RequestsCookieJar) -> str | None:
    """GET /profile on a new connection; the user it greets, or None if sent to log in."""
    r = requests.get(server.url + "/profile", cookies=cookies, allow_redirects=False, timeout=10)
    assert r.status_code in (200, 302), (r.status_code, r.text[:500])
    if r.status_code == 302:
        assert r.headers["Location"].startswith("/login"), r.headers["Location"]
        return None
    m = re.search(r"<h1>Hello, ([^<]*)</h1>", r.text)
    assert m is not None, r.text[:500]
    return m.group(1)


def session_cookies(browser: requests.Session) -> requests.cookies.RequestsCookieJar:
    jar = requests.cookies.RequestsCookieJar()
    jar.set("session", browser.cookies.get("session"))
    return jar


def test_two_processes_share_sqlite_sessions(servers: list[Server], tmp_path: Path) -> None:
    server = start(servers, tmp_path, "--processes", "2")
    browser = requests.Session()
    register(server, browser)
    cookies = session_cookies(browser)
    # A new connection per request, so either worker may answer each one.
    users = [profile_user(server, cookies) for _ in range(50)]
    assert users == ["alice"] * 50
    assert "Traceback" not in server.log()


@pytest.fixture
def live_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:  # skips when redis-server is missing (fails in CI)
        yield server


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_logged_in_session_survives_restart(
    request: pytest.FixtureRequest, servers: list[Server], tmp_path: Path, store: str
) -> None:
    args: list[str] = []
    if store == "redis":
        redis: RedisServer = request.getfixturevalue("live_redis")
        args = ["--session-store", redis.url]
    first = start(servers, tmp_path, *args)
    browser = requests.Session()
    register(first, browser)
    cookies = session_cookies(browser)
    assert profile_user(first, cookies) == "alice"
    first.stop()
    assert first.proc.returncode == 0, first.log()

    second = start(servers, tmp_path, *args)
    assert profile_user(second, cookies) == "alice"
    # A logout on the new server ends the session for good.
    browser.get(second.url + "/profile", timeout=10)
    r = form_post(browser, second.url + "/logout", {})
    assert r.status_code == 302
    assert profile_user(second, cookies) is None


def test_rotated_secret_keeps_sessions_unknown_secret_starts_fresh(
    servers: list[Server], tmp_path: Path
) -> None:
    first = start(servers, tmp_path, secret=OLD_SECRET)
    browser = requests.Session()
    register(first, browser)
    cookies = session_cookies(browser)
    first.stop()

    rotated = json.dumps({"1": OLD_SECRET, "2": NEW_SECRET})
    second = start(servers, tmp_path, secret=rotated, env={"WEBFRAME_COOKIE_SECRET_VERSION": "2"})
    assert profile_user(second, cookies) == "alice"
    # A cookie signed now uses the new key (version 2) and also works.
    r = requests.get(second.url + "/login", timeout=10)
    assert "|1:2|" in r.cookies.get("session", "")
    second.stop()

    third = start(servers, tmp_path, secret="an-unrelated-secret-" + "c" * 20)
    r = requests.get(third.url + "/profile", cookies=cookies, allow_redirects=True, timeout=10)
    assert r.status_code == 200
    assert "<h1>Log in</h1>" in r.text
    r = requests.get(third.url + "/", cookies=cookies, timeout=10)
    assert r.status_code == 200
    assert "Traceback" not in third.log()
