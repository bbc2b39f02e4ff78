"""A real, throwaway redis-server for tests: start, stop, restart, pause and resume it.

Usage::

    from tests.redis_server import RedisServer

    with RedisServer() as server:        # skips the test if redis-server is missing
        store = RedisStore(server.url)
        server.stop(); server.start()    # restart on the same port
        server.pause(); server.resume()  # SIGSTOP / SIGCONT

Set WEBFRAME_REQUIRE_SERVICES=1 (CI does) to fail instead of skip when
redis-server is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType

import pytest

__all__ = ["RedisServer", "find_redis_server", "free_port"]

START_TIMEOUT = 10.0


def find_redis_server() -> str:
    """Return the path of redis-server, or skip (fail under WEBFRAME_REQUIRE_SERVICES=1)."""
    path = shutil.which("redis-server")
    if path is None:
        message = "redis-server not installed: apt-get install redis-server"
        if os.environ.get("WEBFRAME_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (required because WEBFRAME_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on a loopback port, owned (and killed) by this object."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = find_redis_server()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._dir = tempfile.mkdtemp(prefix="webframe-redis-")
        self._log_path = os.path.join(self._dir, "redis.log")
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart) the server on `self.port` and wait until it answers PING."""
        if self.running:
            return self
        with open(self._log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    self.host,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self._dir,
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.paused = False
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.ping():
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self._log_tail()}")

    def ping(self, timeout: float = 0.5) -> bool:
        """Return True if the server answers PING within `timeout` seconds."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Shut the server down (it can be started again with `start`)."""
        if self.process is None:
            return
        if self.paused:
            self.resume()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def kill(self) -> None:
        """Kill the server by its own PID, without a graceful shutdown."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None
        self.paused = False

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are accepted but never answered."""
        assert self.process is not None and self.process.poll() is None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """Unfreeze a paused server (SIGCONT)."""
        if self.process is not None and self.paused:
            os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def flushall(self) -> None:
        """Empty every database (between tests sharing one server)."""
        with socket.create_connection((self.host, self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            if not sock.recv(64).startswith(b"+OK"):
                raise RuntimeError("FLUSHALL failed")

    def close(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as log:
                return "".join(log.readlines()[-20:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Last resort: never leave a stray server behind (by our own PID only).
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            if getattr(self, "paused", False):
                os.kill(process.pid, signal.SIGCONT)
            process.kill()
