"""Services a scenario needs besides its two servers (a throwaway redis-server).

A service is a context manager taking the scenario's folder and yielding values the
server arguments may use (``{redis_url}``); it stops what it started, by PID. When
the service cannot run here it raises :class:`ScenarioSkipped` with a note saying
why and how to fix it: the scenario is reported as skipped, not as failed.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.procs import free_port, pin_prefixes, server_env


class ScenarioSkipped(Exception):
    """The scenario cannot run on this machine; the message says why."""


def _redis_client_installed() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import redis.asyncio"],
        env=server_env(),
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_service(workdir: Path) -> Iterator[dict[str, str]]:
    """A redis-server on a free loopback port, pinned with the servers; yields
    ``{"redis_url": ...}`` and stops it by its own PID afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ScenarioSkipped(
            "redis-server is not installed (apt-get install redis-server); "
            "the redis session scenarios were skipped"
        )
    if not _redis_client_installed():
        raise ScenarioSkipped(
            "the redis client is not installed (pip install 'webframe[redis]'); "
            "the redis session scenarios were skipped"
        )
    port = free_port()
    # Same CPU as the Python servers: the store is part of the server side's cost,
    # and CPU 1 belongs to wrk.
    server_pin, _ = pin_prefixes()
    folder = workdir / "redis"
    folder.mkdir()
    cmd = [
        *server_pin,
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
        "--daemonize",
        "no",
    ]
    with open(folder / "redis.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start on port {port}:\n{tail}")
            time.sleep(0.02)
        yield {"redis_url": f"redis://127.0.0.1:{port}/0"}
    finally:
        # taskset execs redis-server, so this PID is redis-server's own.
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
