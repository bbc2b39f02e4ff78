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
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

try:
    from tests.support.services import ServiceProcess, find_program, free_port
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from support.services import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        ServiceProcess,
        find_program,
        free_port,
    )

__all__ = [
    "RedisCluster",
    "RedisServer",
    "SentinelGroup",
    "find_program",
    "find_redis_server",
    "free_port",
    "online_replicas",
]

START_TIMEOUT = 10.0


def find_redis_server() -> str:
    """Return the path of redis-server, or skip (fail under WEBFRAME_REQUIRE_SERVICES=1)."""
    return find_program("redis-server", "redis-server")


class RedisServer(ServiceProcess):
    """One redis-server process on a loopback port, owned (and killed) by this object."""

    def __init__(
        self,
        port: int | None = None,
        args: tuple[str, ...] = (),
        *,
        sentinel_conf: str | None = None,
        bus: bool = False,
    ) -> None:
        self.binary = find_redis_server()
        super().__init__("webframe-redis-", "redis.log")
        self.port = port or free_port(bus=bus)
        #: extra command-line options (``--replicaof``, cluster settings...).
        self.args = args
        #: with a config text: run as a sentinel (``redis-server <file> --sentinel``).
        self.sentinel_conf = sentinel_conf
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> RedisServer:
        """Start (or restart) the server on `self.port` and wait until it answers PING."""
        if self.running:
            return self
        command = [self.binary]
        if self.sentinel_conf is not None:
            conf = os.path.join(self._dir, "sentinel.conf")
            if not os.path.exists(conf):  # a restarted sentinel keeps what it learnt
                with open(conf, "w", encoding="utf-8") as f:
                    f.write(self.sentinel_conf)
            command += [conf, "--sentinel"]
        else:
            # A replica's first sync starts at once (the default waits 5 s for others).
            command += ["--repl-diskless-sync-delay", "0"]
        self._launch(
            [
                *command,
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
                *self.args,
            ]
        )
        self.paused = False
        if self._wait_until(self.ping, START_TIMEOUT, 0.02):
            return self
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

    def stop(self) -> None:
        """Shut the server down (it can be started again with `start`)."""
        if self.paused:
            self.resume()
        self._stop(signal.SIGTERM, 5)

    def kill(self) -> None:
        """Kill the server by its own PID, without a graceful shutdown."""
        super().kill()
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

    def __del__(self) -> None:
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None and getattr(self, "paused", False):
            os.kill(process.pid, signal.SIGCONT)
        super().__del__()


def _client(host: str, port: int) -> Any:
    import redis

    return redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=2)


def _wait(what: str, check: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # not up yet: asked again until the deadline
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def online_replicas(master: RedisServer) -> int:
    """How many replicas `master` streams writes to (state=online: a replica whose
    link is "up" may still be waiting for the master to start streaming)."""
    info = _client(master.host, master.port).info("replication")
    return sum(
        1
        for name, value in info.items()
        if name.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    )


class SentinelGroup:
    """A master, its replicas and a quorum of sentinels watching it, on loopback ports.

    ``down_after_ms`` and ``failover_timeout_ms`` are small so that a test can
    watch a failover happen in a few seconds.
    """

    service = "webframe"

    def __init__(
        self,
        replicas: int = 1,
        sentinels: int = 3,
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
    ) -> None:
        find_redis_server()
        self.master = RedisServer()
        self.replicas = [
            RedisServer(args=("--replicaof", "127.0.0.1", str(self.master.port)))
            for _ in range(replicas)
        ]
        quorum = sentinels // 2 + 1
        conf = (
            "sentinel resolve-hostnames no\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} {quorum}\n"
            f"sentinel down-after-milliseconds {self.service} {down_after_ms}\n"
            f"sentinel failover-timeout {self.service} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        self.sentinels = [RedisServer(sentinel_conf=conf) for _ in range(sentinels)]

    @property
    def servers(self) -> list[RedisServer]:
        return [self.master, *self.replicas, *self.sentinels]

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/{db}"

    def start(self) -> SentinelGroup:
        """Start every process; return once the replicas are in sync and every
        sentinel knows the replicas and the other sentinels (a failover can happen)."""
        try:
            for server in self.servers:
                server.start()
            for replica in self.replicas:
                _wait(
                    f"replica {replica.port} to sync",
                    lambda r=replica: (
                        _client(r.host, r.port).info("replication").get("master_link_status")
                        == "up"
                    ),
                )
            _wait(
                "the master to stream to its replicas",
                lambda: online_replicas(self.master) == len(self.replicas),
            )
            want = len(self.sentinels) - 1
            for sentinel in self.sentinels:

                def ready(s: RedisServer = sentinel) -> bool:
                    state = _client(s.host, s.port).sentinel_master(self.service)
                    return int(state["num-other-sentinels"]) >= want and int(
                        state["num-slaves"]
                    ) >= len(self.replicas)

                _wait(f"sentinel {sentinel.port} to see the group", ready, timeout=30)
        except BaseException:
            self.close()
            raise
        return self

    def current_master(self) -> RedisServer:
        """The server the sentinels now call master."""
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            try:
                _host, port = _client(
                    sentinel.host, sentinel.port
                ).sentinel_get_master_addr_by_name(self.service)
            except Exception:  # ask the next sentinel
                continue
            for server in [self.master, *self.replicas]:
                if server.port == int(port):
                    return server
        raise RuntimeError("no sentinel answers for the master")

    def wait_for_new_master(self, old: RedisServer, timeout: float = 30) -> RedisServer:
        """Block until the sentinels have promoted a server other than `old`."""
        found: list[RedisServer] = []

        def promoted() -> bool:
            master = self.current_master()
            if master is old:
                return False
            role = _client(master.host, master.port).execute_command("ROLE")
            found[:] = [master]
            return bool(role[0] == b"master")

        _wait("the sentinels to promote a replica", promoted, timeout)
        return found[0]

    def flushall(self) -> None:
        self.current_master().flushall()

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def __enter__(self) -> SentinelGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class RedisCluster:
    """A Redis Cluster of `masters` masters with `replicas` replicas each, on loopback.

    Built with ``redis-cli --cluster create``; ``node_timeout_ms`` is small so
    that a failed master is replaced within a few seconds.
    """

    def __init__(self, masters: int = 3, replicas: int = 0, *, node_timeout_ms: int = 1000) -> None:
        find_redis_server()
        self.cli = find_program("redis-cli", "redis-tools")
        self.replicas_per_master = replicas
        args = (
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            "--cluster-require-full-coverage",
            "no",
        )
        self.nodes = [RedisServer(args=args, bus=True) for _ in range(masters * (1 + replicas))]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])

    def start(self) -> RedisCluster:
        """Start the nodes, create the cluster, and wait until every node says it is ok."""
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                [
                    self.cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{n.port}" for n in self.nodes),
                    "--cluster-replicas",
                    str(self.replicas_per_master),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            for node in self.nodes:
                _wait(
                    f"cluster node {node.port} to be ok",
                    lambda n=node: (
                        b"cluster_state:ok"
                        in _client(n.host, n.port).execute_command("CLUSTER", "INFO")
                    ),
                    timeout=30,
                )
            if self.replicas_per_master:
                _wait("every replica to sync", self._replicas_synced, timeout=30)
        except BaseException:
            self.close()
            raise
        return self

    def _replicas_synced(self) -> bool:
        online = sum(online_replicas(master) for master in self.masters())
        return online == len(self.nodes) - len(self.masters())

    def role(self, node: RedisServer) -> str:
        role = _client(node.host, node.port).execute_command("ROLE")
        return bytes(role[0]).decode()

    def masters(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.running and self.role(n) == "master"]

    def replicas(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.running and self.role(n) != "master"]

    def master_of_key(self, key: str) -> RedisServer:
        """The node that serves `key`'s slot as master, per a live master's slot map."""
        return self.holders_of_key(key)[0]

    def holders_of_key(self, key: str) -> list[RedisServer]:
        """The master of `key`'s slot, then its replicas (each replica's ROLE names its
        master at once; CLUSTER SLOTS lists replicas only once gossip has spread)."""
        ask = _client(self.masters()[0].host, self.masters()[0].port)
        slot = int(ask.execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, *holders in ask.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                port = int(holders[0][1])
                master = next(n for n in self.nodes if n.port == port)
                replicas = [
                    n
                    for n in self.replicas()
                    if int(_client(n.host, n.port).execute_command("ROLE")[2]) == port
                ]
                return [master, *replicas]
        raise RuntimeError(f"no master serves {key!r}")

    def flushall(self) -> None:
        for node in self.masters():
            node.flushall()

    def dbsize(self) -> int:
        return sum(int(_client(n.host, n.port).dbsize()) for n in self.masters())

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
