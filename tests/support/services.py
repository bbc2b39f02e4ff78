"""What every throwaway test server (redis-server, postgres, weed) does the same way.

A service is one child process on loopback ports, with its own temporary
folder and log file, owned by the object that started it: it is waited for
until it answers, stopped or killed by its own PID only, and its folder is
removed on `close`. The subclasses say how to start it and when it is ready.

Set WEBFRAME_REQUIRE_SERVICES=1 (CI does) to fail instead of skip when a
program is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import pytest

__all__ = ["ServiceProcess", "find_program", "free_port", "free_ports", "missing"]

_S = TypeVar("_S", bound="ServiceProcess")


def missing(message: str) -> NoReturn:
    """Skip the test for a missing service (fail under WEBFRAME_REQUIRE_SERVICES=1)."""
    if os.environ.get("WEBFRAME_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (required because WEBFRAME_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def find_program(name: str, package: str) -> str:
    """Return the path of `name`, or skip (fail under WEBFRAME_REQUIRE_SERVICES=1)."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not installed: apt-get install {package}")
    return path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(bus: bool = False) -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    With `bus`, port + 10000 (a redis cluster node's bus port) was free too.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if not bus or (port + 10000 < 65536 and _port_free(port + 10000)):
            return port


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


class ServiceProcess:
    """One server process with a temporary folder and a log, killed only by its own PID."""

    #: how many log lines an error message shows.
    log_lines = 20

    def __init__(self, prefix: str, log_name: str) -> None:
        self.host = "127.0.0.1"
        self._dir = tempfile.mkdtemp(prefix=prefix)
        self._log_path = os.path.join(self._dir, log_name)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self: _S) -> _S:
        """Start the server and wait until it answers (each service says how)."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _launch(self, command: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
        """Start `command` with its output appended to the log; it becomes `self.process`."""
        with open(self._log_path, "ab") as log:
            process: subprocess.Popen[bytes] = subprocess.Popen(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **popen,
            )
        self.process = process
        return process

    def _wait_until(self, ready: Callable[[], bool], timeout: float, interval: float) -> bool:
        """Poll `ready` until it says True (True), or the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if ready():
                return True
            time.sleep(interval)
        return False

    def _stop(self, sig: int, timeout: float) -> None:
        """Send `sig` and wait; kill if it is still running after `timeout` seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def kill(self) -> None:
        """Kill the server by its own PID, without a graceful shutdown."""
        self._stop(signal.SIGKILL, 10)

    def close(self) -> None:
        """Kill the server and remove its folder."""
        self.kill()
        self._remove_dir()

    def _remove_dir(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            with open(self._log_path, encoding="utf-8", errors="replace") as log:
                return "".join(log.readlines()[-self.log_lines :])
        except OSError:
            return "(no log)"

    def __enter__(self: _S) -> _S:
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
            process.kill()
