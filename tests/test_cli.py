"""The serve command as a real subprocess: flags, refusals, graceful SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from .support.serving import SLOW_APP as APP
from .support.serving import start_app

SECRET_ENV = {"WEBFRAME_COOKIE_SECRET": "cli-test-secret-" + "x" * 20, "WEBFRAME_ACCESS_LOG": "0"}


def start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    return start_app(args, tmp_path, SECRET_ENV)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def test_sigterm_lets_inflight_request_finish(tmp_path: Path) -> None:
    proc, url = start([], tmp_path)
    try:
        result: dict[str, object] = {}

        def slow() -> None:
            with urllib.request.urlopen(url + "/slow?s=1.5", timeout=10) as r:
                result["body"] = r.read()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)  # the request is in flight
        proc.send_signal(signal.SIGTERM)
        t.join(10)
        assert result.get("body") == b"finished"
        assert proc.wait(10) == 0
        # Once stopped it accepts nothing new.
        with pytest.raises(OSError):
            urllib.request.urlopen(url + "/", timeout=2)
    finally:
        stop(proc)


def test_sigint_with_two_processes_stops_all(tmp_path: Path) -> None:
    proc, url = start(["--processes", "2"], tmp_path)
    try:
        for _ in range(20):
            with urllib.request.urlopen(url + "/", timeout=5) as r:
                assert r.read() == b"home"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--processes", "2", "--debug"], "use --processes 1 with --debug"),
        (["--processes", "2", "--session-store", "memory://"], "memory:// keeps sessions"),
        (["--port", "99999"], "'port'"),
    ],
)
def test_refused_combinations(args: list[str], message: str, tmp_path: Path) -> None:
    env = {**os.environ, **SECRET_ENV, "WEBFRAME_INSTANCE_PATH": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, str(APP), *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert message in r.stderr


def test_missing_secret_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBFRAME_")}
    env["WEBFRAME_INSTANCE_PATH"] = str(tmp_path)
    r = subprocess.run(
        [sys.executable, str(APP), "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert "WEBFRAME_COOKIE_SECRET" in r.stderr


def test_bad_flag_value(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(APP), "--port", "abc"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert "--port" in r.stderr
