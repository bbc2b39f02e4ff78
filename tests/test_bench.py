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
