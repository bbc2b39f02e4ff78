"""Choosing the layer (setting, flag, environment) and stopping gracefully on both:
SIGTERM finishes in-flight requests, closes idle keep-alive connections at once."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tornado.httpserver import HTTPServer

from webframe import Application, Settings
from webframe.cli import create_server, parse_settings
from webframe.errors import ConfigurationError
from webframe.server import HTTPToolsServer
from webframe.testing import test_settings

from ..support.serving import start_app


def test_httptools_is_the_default_and_tornado_can_be_chosen() -> None:
    assert Settings().http_impl == "httptools"
    assert parse_settings([], env={}).http_impl == "httptools"
    assert parse_settings(["--http", "tornado"], env={}).http_impl == "tornado"
    assert parse_settings([], env={"WEBFRAME_HTTP_IMPL": "tornado"}).http_impl == "tornado"
    # The flag wins over the environment.
    chosen = parse_settings(["--http", "httptools"], env={"WEBFRAME_HTTP_IMPL": "tornado"})
    assert chosen.http_impl == "httptools"


def test_a_bad_layer_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ConfigurationError, match=r"http_impl.*'h2'"):
        parse_settings([], env={"WEBFRAME_HTTP_IMPL": "h2"})
    with pytest.raises(ConfigurationError, match="http_impl"):
        Settings(http_impl="uvicorn")
    with pytest.raises(SystemExit):
        parse_settings(["--http", "nope"], env={})


def test_create_server_builds_the_chosen_layer() -> None:
    app = Application([], test_settings())
    server = create_server(app, test_settings())
    assert isinstance(server, HTTPToolsServer)
    assert server.header_timeout == 30.0 and server.max_header_size == 64 * 1024
    other = create_server(app, test_settings(http_impl="tornado"))
    assert type(other) is HTTPServer


def start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """slow_app on the default layer (the test's environment does not choose it)."""
    env = {"WEBFRAME_COOKIE_SECRET": "serve-test-secret-" + "x" * 20, "WEBFRAME_ACCESS_LOG": "0"}
    proc, url = start_app(args, tmp_path, env, unset=("WEBFRAME_HTTP_IMPL",))
    return proc, int(url.rsplit(":", 1)[1])


def read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            piece = sock.recv(65536)
            if not piece:
                break
            out += piece
    except TimeoutError:
        out += b"<timeout>"
    return out


@pytest.mark.parametrize("layer", ["httptools", "tornado"])
def test_sigterm_finishes_inflight_and_closes_idle(layer: str, tmp_path: Path) -> None:
    proc, port = start(["--http", layer], tmp_path)
    try:
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        idle.settimeout(5)
        assert b"home" in idle.recv(65536)
        busy = socket.create_connection(("127.0.0.1", port))
        busy.sendall(b"GET /slow?s=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        result: dict[str, bytes] = {}
        reader = threading.Thread(target=lambda: result.update(busy=read_all(busy, 8)))
        reader.start()
        time.sleep(0.3)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        idle_rest = read_all(idle, 5)
        idle_closed_after = time.monotonic() - stopped
        reader.join(10)
        assert result["busy"].startswith(b"HTTP/1.1 200") and result["busy"].endswith(b"finished")
        assert proc.wait(10) == 0
        assert idle_rest == b""
        if layer == "httptools":
            # Idle connections go at once, the in-flight answer says the connection ends.
            assert idle_closed_after < 0.8, idle_closed_after
            assert b"Connection: close" in result["busy"]
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).sendall(b"x")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_processes_share_the_sockets_on_the_httptools_layer(tmp_path: Path) -> None:
    store = "sqlite:///" + str(tmp_path / "s.db")
    proc, port = start(["--processes", "2", "--session-store", store], tmp_path)
    try:
        answers = set()
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answers.add(read_all(s, 5).split(b"\r\n")[0])
        assert answers == {b"HTTP/1.1 200 OK"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
