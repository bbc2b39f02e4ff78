"""The services the benchmark starts (bench/services.py, bench/dbservices.py) answer while
their scenario runs and are gone afterwards, also when it fails; the scale-out scenarios
run end to end in --quick mode."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bench.dbservices import postgres_service, seaweed_service
from bench.services import ScenarioSkipped, both, redis_cluster_service, redis_service
from bench.uploadresult import GiB, Upload, side_result

REPO = Path(__file__).resolve().parent.parent


class Boom(Exception):
    pass


def _answers(url: str) -> bool:
    """Something accepts connections at the (first) address of ``url``."""
    address = urlsplit(url).netloc.rpartition("@")[2].split(",")[0]
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still has a PID until reaped; the services reap what they start.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    return False


def _run(service: Callable[[Path], Any], tmp_path: Path, fail: bool) -> dict[str, str]:
    seen: dict[str, str] = {}
    try:
        with service(tmp_path) as values:
            seen.update(values)
            for key, value in values.items():
                if key.endswith("_url") and "://" in value and not value.startswith("s3://"):
                    assert _answers(value), f"{key} {value} does not answer"
            if fail:
                raise Boom
    except ScenarioSkipped as exc:
        pytest.skip(str(exc))
    except Boom:
        assert fail
    return seen


def test_both_runs_services_in_order_and_stops_them_in_reverse(tmp_path: Path) -> None:
    events: list[str] = []

    def make(name: str) -> Callable[[Path], Any]:
        @contextlib.contextmanager
        def service(workdir: Path) -> Iterator[dict[str, str]]:
            events.append(f"start {name}")
            try:
                yield {name: str(workdir)}
            finally:
                events.append(f"stop {name}")

        return service

    with pytest.raises(Boom), both(make("a"), make("b"))(tmp_path) as values:
        assert values == {"a": str(tmp_path), "b": str(tmp_path)}
        raise Boom
    assert events == ["start a", "start b", "stop b", "stop a"]


@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize(
    "service",
    [redis_service, redis_cluster_service, postgres_service],
    ids=["redis", "redis-cluster", "postgresql"],
)
def test_store_services_answer_then_are_gone(
    service: Callable[[Path], Any], fail: bool, tmp_path: Path
) -> None:
    values = _run(service, tmp_path, fail)
    urls = [v for k, v in values.items() if k.endswith("_url")]
    assert urls
    for url in urls:
        assert not _answers(url), f"{url} still answers after the scenario"


def test_cluster_service_gives_every_master(tmp_path: Path) -> None:
    values = _run(redis_cluster_service, tmp_path, fail=False)
    assert values["cluster_url"].startswith("redis+cluster://")
    assert len(values["cluster_url"].split("//")[1].split(",")) == 3


@pytest.mark.parametrize("fail", [False, True])
def test_seaweed_service_has_the_bucket_then_is_gone(fail: bool, tmp_path: Path) -> None:
    pid: list[int] = []

    @contextlib.contextmanager
    def checked(workdir: Path) -> Iterator[dict[str, str]]:
        with seaweed_service(workdir) as values:
            pid.append(int(values["storage_pid"]))
            from bench.dbservices import BUCKET, s3_client

            client = s3_client(values["aws_endpoint_url"])
            client.head_bucket(Bucket=BUCKET)
            yield values

    values = _run(checked, tmp_path, fail)
    assert values["s3_url"].startswith("s3://")
    assert pid and not _pid_alive(pid[0])


def test_upload_results_split_user_and_system_cpu() -> None:
    ups = [
        Upload(2.0, GiB, 1.5, [201], [""], [], user_s=1.0, sys_s=0.5, storage_cpu_s=4.0),
        Upload(1.0, GiB // 2, 1.0, [201], [""], [], user_s=0.25, sys_s=0.75),
    ]
    assert ups[1].user_s_per_gib == 0.5 and ups[1].sys_s_per_gib == 1.5

    class Proc:
        cmd = ["python"]

    side = side_result("A", Proc(), ups)  # type: ignore[arg-type]
    assert side["user_s_per_gib"] == [1.0, 0.5]
    assert side["sys_s_per_gib"] == [0.5, 1.5]
    assert side["user_s_per_gib_median"] == 0.75
    assert side["storage_cpu_s_per_gib"] == [4.0]


def test_quick_scale_out_scenarios(tmp_path: Path) -> None:
    """The three scenarios of issue 16 run end to end (or are skipped with a reason)."""
    names = "session-read-redis-cluster,session-read-postgresql,upload-1g-s3"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", names, "--output", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    data = json.loads((tmp_path / "latest.json").read_text())
    results = {r["name"]: r for r in data["scenarios"]}
    assert set(results) == set(names.split(","))
    ran = [r for r in results.values() if "skipped" not in r]
    for r in ran:
        assert "failed" not in r, proc.stderr
        assert r["errors"] == 0 and r["problems"] == [], r
    if "session-read-postgresql" in [r["name"] for r in ran]:
        r = results["session-read-postgresql"]
        assert r["a"]["rps_median"] > 0 and r["b"]["rps_median"] > 0
    if "upload-1g-s3" in [r["name"] for r in ran]:
        r = results["upload-1g-s3"]
        assert r["storage"] == {"A": "s3", "B": "local"}
        assert {c["what"]: c["ok"] for c in r["checks"]}["files intact (SHA-256)"]
        assert r["a"]["storage_cpu_s_per_gib_median"] > 0
