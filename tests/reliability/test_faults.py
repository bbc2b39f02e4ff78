"""Faults under a running demo (``run.py --no-debug`` subprocess): Redis stopped and
restarted mid-load, Redis frozen, the upload disk full, uploads cut off by clients,
slow clients, and SIGTERM with uploads and session writes in flight."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REQUIRE_SERVICES
from tests.redis_server import RedisServer
from tests.security._support import (
    DemoUser,
    ServerProcess,
    ThreadedServer,
    assert_alive,
    assert_no_temp_files,
    assert_refused,
    closing,
    multipart_head,
    part,
    raw_request,
    read_response,
    register,
    request_bytes,
)

pytestmark = pytest.mark.slow

B = b"reliability-boundary-q1"


def upload_body(data: bytes, name: str = "f.bin") -> bytes:
    return part(B, "files", data, name, "application/octet-stream") + closing(B)


def upload_head(user: DemoUser, length: int) -> bytes:
    headers = {
        **user.auth_headers(),
        "Accept": "application/json",
        "Content-Type": multipart_head(B.decode()),
        "Content-Length": str(length),
    }
    return request_bytes("POST", "/files", headers, b"", content_length=False)


def upload(server: Any, user: DemoUser, data: bytes, name: str = "f.bin") -> Any:
    body = upload_body(data, name)
    return raw_request(server.port, upload_head(user, len(body)) + body, timeout=30)


# ------------------------------------------------------------------- Redis


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_demo(redis: RedisServer, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"WEBFRAME_SESSION_STORE": redis.url, "WEBFRAME_SESSION_TIMEOUT": "0.5"}
    server = ServerProcess(tmp_path / "instance", env=env).start()
    yield server
    server.kill()


class Load:
    """A few threads requesting a session page in a loop, recording (status, seconds)."""

    def __init__(self, url: str, cookie: str, threads: int = 4) -> None:
        self.url, self.cookie = url, cookie
        self.results: list[tuple[float, int, float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with requests.Session() as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    r = http.get(
                        self.url + "/profile",
                        headers={"Cookie": self.cookie, "Accept": "application/json"},
                        timeout=10,
                        allow_redirects=False,
                    )
                    status, text = r.status_code, r.text
                except requests.RequestException as exc:
                    status, text = 0, repr(exc)
                self.results.append((started, status, time.monotonic() - started, text[:200]))
                time.sleep(0.01)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def wait_for(predicate: Any, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_redis_stopped_mid_load_then_restarted(
    redis: RedisServer, redis_demo: ServerProcess
) -> None:
    user = register(redis_demo.url)
    with Load(redis_demo.url, user.cookie_header()) as load:
        time.sleep(1.0)
        redis.stop()
        down_at = time.monotonic()
        time.sleep(2.5)
        redis.start()
        up_at = time.monotonic()
        recovered = wait_for(
            lambda: requests.get(redis_demo.url + "/about", timeout=5).status_code == 200, 10
        )
        time.sleep(1.0)
    assert recovered, "webframe did not recover after Redis came back"
    statuses = {s for _, s, _, _ in load.results}
    assert statuses <= {200, 302, 503}, statuses
    during = [r for r in load.results if down_at + 0.2 < r[0] < up_at - 0.2]
    assert during and all(s == 503 for _, s, _, _ in during), {s for _, s, _, _ in during}
    assert max(e for _, _, e, _ in during) < 2.0, "503 answers were not fast"
    assert all("session store" in t for _, s, _, t in during if s == 503)
    # Without restarting webframe: new sessions work (the old one died with Redis' data).
    fresh = register(redis_demo.url)
    assert fresh.http.get(redis_demo.url + "/profile", timeout=5).status_code == 200
    assert redis_demo.running()


def test_redis_frozen_gives_timeouts_not_hangs(
    redis: RedisServer, redis_demo: ServerProcess
) -> None:
    user = register(redis_demo.url)
    headers = {"Cookie": user.cookie_header(), "Accept": "application/json"}
    redis.pause()
    try:
        results: list[tuple[int, float]] = []

        def one() -> None:
            started = time.monotonic()
            r = requests.get(redis_demo.url + "/profile", headers=headers, timeout=15)
            results.append((r.status_code, time.monotonic() - started))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert len(results) == 8
        assert all(s == 503 for s, _ in results), results
        assert max(e for _, e in results) < 3.0, results
        # Pages without a session cookie need no store: still served.
        assert_alive(redis_demo.url)
    finally:
        redis.resume()
    assert wait_for(
        lambda: (
            requests.get(redis_demo.url + "/profile", headers=headers, timeout=5).status_code == 200
        ),
        10,
    ), "no recovery after SIGCONT"


# --------------------------------------------------------------- disk full


def _mount_tmpfs(folder: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the ENOSPC monkeypatch variant still runs)")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    if r.returncode != 0:
        message = f"cannot mount a tmpfs here: {r.stderr.strip()}"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (WEBFRAME_REQUIRE_SERVICES=1, running as root)")
        pytest.skip(message)


def test_disk_full_during_upload_tmpfs(tmp_path: Path) -> None:
    mount = tmp_path / "uploads"
    mount.mkdir()
    _mount_tmpfs(mount, "2m")
    server = None
    try:
        server = ServerProcess(tmp_path / "instance", env={"WEBFRAME_UPLOAD_PATH": str(mount)})
        server.start()
        user = register(server.url)
        data = os.urandom(1200 * 1024)
        first = upload(server, user, data)
        assert first.status == 201, first.text
        resp = upload(server, user, os.urandom(1200 * 1024))
        assert resp.elapsed < 10
        assert_refused(resp, 507, message="full")
        assert_no_temp_files(mount / ".tmp")
        assert_alive(server.url)
        # Free the space: uploads work again, with no restart.
        url = json.loads(first.body)["files"][0]["url"]
        r = user.http.delete(
            server.url + url,
            headers={"X-XSRFToken": user.xsrf},
            timeout=10,
            allow_redirects=False,
        )
        assert r.status_code in (204, 302), r.status_code
        again = upload(server, user, data)
        assert again.status == 201, again.text
        assert json.loads(again.body)["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    finally:
        if server is not None:
            server.kill()
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=20)


def test_disk_full_during_upload_injected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC injected into the temp-file writes (works without root)."""
    from handlers import DEMO_DEFAULTS, make_app
    from webframe.testing import test_settings
    from webframe.uploads import tempfile as temp_files

    full = threading.Event()
    real_write = temp_files.TempFile.write

    def write(self: Any, data: Any) -> None:
        if full.is_set():
            raise temp_files.storage_error(OSError(errno.ENOSPC, "No space left on device"))
        real_write(self, data)

    monkeypatch.setattr(temp_files.TempFile, "write", write)
    uploads = tmp_path / "uploads"

    def make() -> Any:
        settings = test_settings(
            **{**DEMO_DEFAULTS, "instance_path": str(tmp_path / "i"), "upload_path": str(uploads)}
        )
        return make_app(settings)

    with ThreadedServer(make) as server:
        user = register(server.url)
        full.set()
        resp = upload(server, user, os.urandom(300 * 1024))
        assert_refused(resp, 507, message="full")
        assert_no_temp_files(uploads / ".tmp")
        assert requests.get(server.url + "/about", timeout=5).status_code == 200
        full.clear()
        assert upload(server, user, b"fits now").status == 201


# ------------------------------------------------------ uploads cut off


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("reliability-demo")).start()
    yield server
    server.kill()


def _fd_settled(server: ServerProcess, baseline: int, timeout: float = 8.0) -> int:
    count = server.fd_count()
    deadline = time.monotonic() + timeout
    while count > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        count = server.fd_count()
    return count


def test_200_uploads_cut_off_half_way(demo: ServerProcess) -> None:
    user = register(demo.url)
    body = upload_body(os.urandom(256 * 1024))
    head = upload_head(user, len(body))
    assert upload(demo, user, b"warm-up").status == 201
    assert_alive(demo.url)
    baseline = _fd_settled(demo, 10**6, 0)
    time.sleep(0.3)
    baseline = demo.fd_count()
    errors: list[BaseException] = []

    def cut(i: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", demo.port), timeout=10) as sock:
                sock.sendall(head + body[: len(body) // 2])
                time.sleep(0.05)
                if i % 2:  # half of them reset the connection instead of closing it
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
        except OSError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for batch in range(10):
        threads = [threading.Thread(target=cut, args=(batch * 20 + i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    assert not errors, errors[:3]
    assert_no_temp_files(demo.temp_dir, wait=8)
    after = _fd_settled(demo, baseline)
    assert after <= baseline, f"file descriptors: {baseline} before, {after} after"
    assert_alive(demo.url)
    assert upload(demo, user, b"still works").status == 201


# ------------------------------------------------------------ slow clients

TIMEOUTS = {
    "WEBFRAME_IDLE_CONNECTION_TIMEOUT": "1.5",
    "WEBFRAME_HEADER_TIMEOUT": "1",
    "WEBFRAME_BODY_TIMEOUT": "2",
}


@pytest.fixture(scope="module")
def timed_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("slow-clients"), env=TIMEOUTS).start()
    yield server
    server.kill()


def closed_after(
    sock: socket.socket, trickle: bytes = b"", every: float = 1.0, limit: float = 10
) -> float:
    """Seconds until the server closes ``sock`` (sending ``trickle`` a byte at a time)."""
    started = time.monotonic()
    sock.settimeout(0.05)
    sent = 0
    next_send = started
    while time.monotonic() - started < limit:
        if trickle and sent < len(trickle) and time.monotonic() >= next_send:
            try:
                sock.send(trickle[sent : sent + 1])
            except OSError:
                return time.monotonic() - started
            sent += 1
            next_send += every
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
        if not data:
            return time.monotonic() - started
    return float("inf")


def test_slow_clients_are_cut_at_the_timeouts(timed_demo: ServerProcess) -> None:
    user = register(timed_demo.url)
    results: dict[str, float] = {}
    latencies: list[float] = []
    stop = threading.Event()

    def idle() -> None:
        with socket.create_connection(("127.0.0.1", timed_demo.port)) as s:
            results["idle"] = closed_after(s)

    def idle_after_request() -> None:
        with socket.create_connection(("127.0.0.1", timed_demo.port)) as s:
            s.sendall(request_bytes("GET", "/about", {}))
            assert read_response(s, time.monotonic() + 5).status == 200
            results["keepalive"] = closed_after(s)

    def slow_headers() -> None:
        with socket.create_connection(("127.0.0.1", timed_demo.port)) as s:
            s.sendall(b"GET /about HTTP/1.1\r\n")
            results["headers"] = closed_after(s, b"X-Slow: " + b"a" * 50, every=0.5)

    def slow_body() -> None:
        body = upload_body(b"z" * 1000)
        with socket.create_connection(("127.0.0.1", timed_demo.port)) as s:
            s.sendall(upload_head(user, len(body)) + body[:200])
            results["body"] = closed_after(s, body[200:260], every=0.5)

    def others() -> None:
        while not stop.is_set():
            started = time.monotonic()
            assert requests.get(timed_demo.url + "/about", timeout=5).status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.1)

    extra_idle = [socket.create_connection(("127.0.0.1", timed_demo.port)) for _ in range(30)]
    watcher = threading.Thread(target=others)
    watcher.start()
    threads = [
        threading.Thread(target=f) for f in (idle, idle_after_request, slow_headers, slow_body)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    stop.set()
    watcher.join(10)
    for s in extra_idle:
        s.close()
    assert 0.8 < results["idle"] < 3.5, results
    assert 0.8 < results["keepalive"] < 3.5, results
    assert 0.5 < results["headers"] < 3.0, results
    assert 1.5 < results["body"] < 4.5, results
    assert latencies and max(latencies) < 1.0, max(latencies or [0])
    assert_no_temp_files(timed_demo.temp_dir)
    assert_alive(timed_demo.url)


# ----------------------------------------------------------------- SIGTERM


def test_sigterm_with_uploads_and_session_writes_in_flight(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "instance", env={"WEBFRAME_SHUTDOWN_TIMEOUT": "2"}).start()
    try:
        user = register(server.url)
        writers = [register(server.url) for _ in range(3)]
        finishing_data = os.urandom(400 * 1024)
        finishing = upload_body(finishing_data, "finishing.bin")
        stalled = upload_body(os.urandom(400 * 1024), "stalled.bin")
        outcome: dict[str, Any] = {}
        term_sent = threading.Event()
        stop_writes = threading.Event()
        write_results: list[int] = []

        def finish_after_term() -> None:
            with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s:
                s.sendall(upload_head(user, len(finishing)) + finishing[: len(finishing) // 2])
                term_sent.wait(10)
                time.sleep(0.4)
                s.sendall(finishing[len(finishing) // 2 :])
                outcome["finishing"] = read_response(s, time.monotonic() + 10)

        def stall() -> None:
            with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s:
                s.sendall(upload_head(user, len(stalled)) + stalled[: len(stalled) // 2])
                outcome["stalled"] = read_response(s, time.monotonic() + 12)

        def write_session(w: DemoUser) -> None:
            while not stop_writes.is_set():
                try:
                    r = w.http.post(
                        server.url + "/preferences",
                        data={"theme": "dark", "_xsrf": w.xsrf},
                        timeout=5,
                        allow_redirects=False,
                    )
                    write_results.append(r.status_code)
                except requests.RequestException:
                    write_results.append(0)
                    return

        threads = [threading.Thread(target=finish_after_term), threading.Thread(target=stall)]
        threads += [threading.Thread(target=write_session, args=(w,)) for w in writers]
        for t in threads:
            t.start()
        time.sleep(0.5)
        server.proc.send_signal(15)  # type: ignore[union-attr]
        term_sent.set()
        code = server.proc.wait(15)  # type: ignore[union-attr]
        stop_writes.set()
        for t in threads:
            t.join(15)
        assert code == 0, server.log()[-2000:]
    finally:
        server.kill()
    # The upload that finished during the grace period completed.
    fin = outcome["finishing"]
    assert fin.status == 201, (fin.status, fin.text[:300])
    stored = json.loads(fin.body)["files"][0]
    assert stored["sha256"] == hashlib.sha256(finishing_data).hexdigest()
    # The stalled one was cut off: no answer or an error, never a 2xx.
    assert outcome["stalled"].status is None or outcome["stalled"].status >= 500
    assert set(write_results) <= {302, 0, 503}, set(write_results)
    # No half file: every stored file is a complete, recorded upload; no temp left.
    assert_no_temp_files(server.temp_dir, wait=0)
    with sqlite3.connect(server.instance / "demo.db") as db:
        rows = {
            r[0]: (r[1], r[2]) for r in db.execute("SELECT stored_name, size, sha256 FROM files")
        }
    on_disk = {p.name: p for p in (server.upload_path / "users").rglob("*") if p.is_file()}
    assert set(on_disk) == set(rows), (sorted(on_disk), sorted(rows))
    for name, path in on_disk.items():
        size, sha = rows[name]
        content = path.read_bytes()
        assert len(content) == size and hashlib.sha256(content).hexdigest() == sha, name
    # No corrupt session.
    with sqlite3.connect(server.instance / "sessions.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for (data,) in db.execute("SELECT data FROM webframe_sessions"):
            assert isinstance(json.loads(data), dict)
