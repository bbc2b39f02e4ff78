"""What a run records about itself: versions, commit measured, CPU pinning, load."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from typing import TYPE_CHECKING, Any

from bench.procs import REPO, pin_prefixes

if TYPE_CHECKING:
    from bench.runner import Config


def _git_commit(ref: str | None = None) -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", ref or "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "webframe"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    # Others may be editing webframe/: say when the measured code is not the commit.
    return head + ("+dirty" if dirty and ref is None else "")


def _wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].split(" Copyright")[0] if text else "?"


def metadata(cfg: Config, wrk: str) -> dict[str, Any]:
    import tornado

    import webframe

    server_pin, load_pin = pin_prefixes()
    return {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": cfg.duration,
        "connections": cfg.connections,
        "rounds": cfg.rounds,
        "warmup_s": cfg.warmup,
        "quick": cfg.quick,
        "http_impl": cfg.http,
        "python": platform.python_version(),
        "tornado": tornado.version,
        "webframe": webframe.__version__,
        "git_commit": _git_commit(cfg.ref),
        "wrk": _wrk_version(wrk),
        "server_cpu_pin": " ".join(server_pin) or None,
        "load_cpu_pin": " ".join(load_pin) or None,
        "machine": platform.machine(),
        # Other work on the machine moves req/s; say how busy it was.
        "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
