"""The benchmark harness still runs: a quick ``hello`` run gives a ratio and no errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _need_wrk() -> None:
    if shutil.which("wrk") is not None:
        return
    message = "wrk is not installed (apt-get install wrk); the benchmark harness needs it"
    if os.environ.get("WEBFRAME_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and WEBFRAME_REQUIRE_SERVICES=1")
    pytest.skip(message)


def test_quick_hello_run(tmp_path: Path) -> None:
    _need_wrk()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "hello", "--output", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| hello |" in proc.stdout
    data = json.loads((tmp_path / "latest.json").read_text())
    [hello] = data["scenarios"]
    assert hello["name"] == "hello"
    assert hello["ratio"] > 0
    assert hello["errors"] == 0
    assert hello["problems"] == []
    assert hello["a"]["rps_median"] > 0 and hello["b"]["rps_median"] > 0
    assert hello["a"]["rss_peak_kib"] and hello["b"]["rss_peak_kib"]


def test_unknown_scenario_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "unknown scenario(s) nope" in proc.stderr


def test_wrk_report_parsing() -> None:
    from bench.wrk import parse_output

    text = """Running 1s test @ http://127.0.0.1:1/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   750.00us  100.00us   2.00ms   90.00%
    Req/Sec     3.40k   100.00     3.60k    80.00%
  Latency Distribution
     50%  700.00us
     75%    0.90ms
     90%    1.10ms
     99%    1.50s
  3400 requests in 1.00s, 500.00KB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:   3398.50
Transfer/sec:    499.00KB
"""
    r = parse_output(text)
    assert r.rps == 3398.5
    assert r.requests == 3400
    assert r.latency_avg_ms == pytest.approx(0.75)
    assert r.latency_ms == pytest.approx({"50": 0.7, "75": 0.9, "90": 1.1, "99": 1500.0})
    assert r.errors == {"connect": 1, "read": 2, "write": 0, "timeout": 3, "status": 4}
    assert r.error_count == 10


def test_quick_session_and_upload_runs(tmp_path: Path) -> None:
    """A session-write run sends the session cookie (its counter goes up); an upload
    run posts through the demo's route and every stored file is intact."""
    _need_wrk()
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install curl); upload scenarios need it")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "session-write-memory,upload-1g",
            "--output",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| session-write-memory |" in proc.stdout
    assert " MB/s |" in proc.stdout and " req/s |" in proc.stdout
    data = json.loads((tmp_path / "latest.json").read_text())
    session, upload = data["scenarios"]
    assert session["errors"] == 0 and session["problems"] == []
    counter = session["session_counter"]
    assert counter[0] is not None and counter[-1] > counter[0]
    assert upload["kind"] == "upload" and upload["unit"] == "MB/s"
    assert upload["errors"] == 0 and upload["problems"] == []
    assert upload["a"]["mbps_median"] > 0 and upload["b"]["mbps_median"] > 0
    assert {c["what"]: c["ok"] for c in upload["checks"]}["files intact (SHA-256)"]
    assert upload["a"]["rss_peak_kib"] and upload["b"]["rss_peak_kib"]


def test_report_units_and_skipped() -> None:
    from bench.report import markdown

    side = {
        "label": "x",
        "error_count": 0,
        "errors": {},
        "rss_peak_kib": 1024,
        "rps_median": 1000.0,
        "cpu_us_per_request_median": 50.0,
        "latency_p50_ms": 1.0,
        "latency_p99_ms": 2.0,
    }
    up = {
        **side,
        "mbps": [500.0],
        "mbps_median": 500.0,
        "cpu_s_per_gib_median": 1.5,
        "wall_s_median": 2.0,
        "rss_lifetime_peak_kib": 2048,
    }
    common = {"ratios": [0.5], "ratio": 0.5, "cpu_ratio": 0.5, "errors": 0, "problems": []}
    data = {
        "meta": {
            "webframe": "0",
            "git_commit": "abc",
            "tornado": "6",
            "python": "3",
            "wrk": "wrk",
            "rounds": 1,
            "duration_s": 1,
            "connections": 8,
            "warmup_s": 0,
            "server_cpu_pin": None,
        },
        "scenarios": [
            {"name": "hello", "a": side, "b": side, "target": 0.97, "verdict": "MISS", **common},
            {
                "name": "upload-1g",
                "kind": "upload",
                "unit": "MB/s",
                "a": up,
                "b": up,
                "target": 0.8,
                "rss_target_mib": 64,
                "verdict": "MISS",
                "rounds": 1,
                "file_size": 2**20,
                "files_per_round": 1,
                "checks": [
                    {"what": "files intact (SHA-256)", "value": True, "target": True, "ok": True}
                ],
                **common,
            },
            {"name": "session-read-redis", "skipped": "redis-server is not installed"},
        ],
    }
    text = markdown(data)
    assert "| 1000 req/s |" in text
    assert "| 500.0 MB/s |" in text and "1.50 s/GiB" in text and "A RSS < 64 MiB" in text
    assert "| session-read-redis | | | | | | | SKIPPED |" in text
    assert "- session-read-redis: skipped: redis-server is not installed" in text
