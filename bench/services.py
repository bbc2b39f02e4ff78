"""Services a scenario needs besides its two servers (throwaway redis-servers).

A service is a context manager taking the scenario's folder and yielding values the
server arguments may use (``{redis_url}``, ``{cluster_url}``); it stops what it
started, by PID, also when the scenario fails. When the service cannot run here it
raises :class:`ScenarioSkipped` with a note saying why and how to fix it: the
scenario is reported as skipped, not as failed. PostgreSQL and SeaweedFS are in
:mod:`bench.dbservices`; :func:`both` runs several services for one scenario.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.procs import free_port, pin_prefixes, server_env

Service = Callable[[Path], contextlib.AbstractContextManager[dict[str, str]]]


class ScenarioSkipped(Exception):
    """The scenario cannot run on this machine; the message says why."""


def stop_child(proc: subprocess.Popen[bytes], timeout: float = 5) -> None:
    """SIGTERM our own child, SIGKILL it if it lingers (by its PID only)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    what: str,
    log: Path,
    timeout: float = 15,
) -> None:
    """Poll ``ready`` until it is true; RuntimeError with the log's tail if ``proc``
    exits first or ``timeout`` passes."""  # fmt: skip
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not become ready:\n{tail}")
        time.sleep(0.05)


def both(*services: Service) -> Service:
    """One service running ``services`` in order (stopped in reverse), values merged."""

    @contextlib.contextmanager
    def run(workdir: Path) -> Iterator[dict[str, str]]:
        with contextlib.ExitStack() as stack:
            values: dict[str, str] = {}
            for service in services:
                values.update(stack.enter_context(service(workdir)))
            yield values

    return run


def _redis_client_installed() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import redis.asyncio"],
        env=server_env(),
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _redis_command(port: int, command: bytes) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(command + b"\r\n")
            return sock.recv(4096)
    except OSError:
        return b""


def _find_redis(program: str = "redis-server") -> str:
    binary = shutil.which(program)
    if binary is None:
        raise ScenarioSkipped(
            f"{program} is not installed (apt-get install redis-server); "
            "the redis session scenarios were skipped"
        )
    if not _redis_client_installed():
        raise ScenarioSkipped(
            "the redis client is not installed (pip install 'webframe[redis]'); "
            "the redis session scenarios were skipped"
        )
    return binary


def _start_redis(binary: str, port: int, folder: Path, *extra: str) -> subprocess.Popen[bytes]:
    """redis-server on ``port``, pinned with the servers (CPU 1 belongs to the load
    generator; the store is part of the server side's cost); taskset execs it, so
    the PID is redis-server's own."""
    server_pin, _ = pin_prefixes()
    folder.mkdir(parents=True)
    cmd = [
        *server_pin, binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(folder), "--daemonize", "no", *extra,
    ]  # fmt: skip
    with open(folder / "redis.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: _redis_command(port, b"PING").startswith(b"+PONG"),
            proc, f"redis-server on port {port}", folder / "redis.log", timeout=10,
        )  # fmt: skip
    except BaseException:
        stop_child(proc)
        raise
    return proc


@contextlib.contextmanager
def redis_service(workdir: Path) -> Iterator[dict[str, str]]:
    """A redis-server on a free loopback port, pinned with the servers; yields
    ``{"redis_url": ...}`` and stops it by its own PID afterwards."""
    binary = _find_redis()
    port = free_port()
    proc = _start_redis(binary, port, workdir / "redis")
    try:
        yield {"redis_url": f"redis://127.0.0.1:{port}/0"}
    finally:
        stop_child(proc)


def _bus_port_free(port: int) -> bool:
    if port + 10000 >= 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            return False
    return True


def _cluster_ports(count: int) -> list[int]:
    """``count`` distinct free ports whose cluster bus port (+10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports and _bus_port_free(port):
            ports.append(port)
    return ports


@contextlib.contextmanager
def redis_cluster_service(workdir: Path, masters: int = 3) -> Iterator[dict[str, str]]:
    """A Redis Cluster of ``masters`` masters (no replicas) on loopback, built with
    ``redis-cli --cluster create``; yields ``{"cluster_url": "redis+cluster://..."}``
    and stops every node by its own PID afterwards."""
    binary = _find_redis()
    cli = shutil.which("redis-cli")
    if cli is None:
        raise ScenarioSkipped("redis-cli is not installed (apt-get install redis-tools)")
    ports = _cluster_ports(masters)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            procs.append(
                _start_redis(
                    binary, port, workdir / f"cluster-{port}",
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000",
                )
            )  # fmt: skip
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            out = (created.stdout + created.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"redis-cli --cluster create failed:\n{out}")
        for port, proc in zip(ports, procs, strict=True):
            wait_until(
                lambda p=port: b"cluster_state:ok" in _redis_command(p, b"CLUSTER INFO"),
                proc, f"cluster node {port}", workdir / f"cluster-{port}" / "redis.log", 30,
            )  # fmt: skip
        hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
        yield {"cluster_url": f"redis+cluster://{hosts}"}
    finally:
        for proc in procs:
            stop_child(proc)
