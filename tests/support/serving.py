"""An app started by its own serve command in a subprocess, for the CLI and serve tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: the app the serve tests start: a slow route and a quick one.
SLOW_APP = ROOT / "tests" / "apps" / "slow_app.py"
#: what ``serve`` prints once it listens: the base URL.
SERVING = re.compile(r"serving on (http://\S+)/")


def start_app(
    args: list[str],
    tmp_path: Path,
    env: dict[str, str],
    app: Path = SLOW_APP,
    unset: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[str], str]:
    """Run ``app`` with ``--port 0`` and ``args`` and the environment ``env`` over this
    process's, less the variables named in ``unset`` (``WEBFRAME_INSTANCE_PATH`` is
    ``tmp_path``); return the process and the base URL it printed, or fail the test if it
    did not start within 15 s."""
    full = {**os.environ, **env, "WEBFRAME_INSTANCE_PATH": str(tmp_path)}
    for name in unset:
        full.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, str(app), "--port", "0", *args],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.time() + 15
    while time.time() < deadline:
        line = proc.stdout.readline()
        m = SERVING.search(line)
        if m:
            return proc, m.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("server did not start")
