"""py-spy sampling of a server during upload rounds, and a report of its collapsed stacks
(``python -m bench.profile upload-1g``)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.procs import ServerProcess


def start_sampler(proc: ServerProcess, out: Path, pin: list[str]) -> subprocess.Popen[bytes]:
    """py-spy sampling ``proc`` (on the load's CPU, without pausing the server)."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    assert proc.proc is not None
    cmd = [*pin, pyspy, "record", "--pid", str(proc.proc.pid), "--rate", "250"]
    cmd += ["--format", "raw", "--function", "--nonblocking", "-o", str(out)]
    sampler = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached before the first upload starts
    return sampler


def stop_sampler(sampler: subprocess.Popen[bytes]) -> None:
    """SIGINT makes py-spy write its file; by our own child's PID."""
    if sampler.poll() is None:
        sampler.send_signal(signal.SIGINT)
    try:
        sampler.wait(timeout=60)
    except subprocess.TimeoutExpired:
        sampler.kill()
        sampler.wait(timeout=10)


def frame_name(frame: str) -> str:
    # "func (path/to/module.py:12)" -> "func (module-relative path:12)"
    for anchor in ("site-packages/", "/webframe/", "/handlers/", "/bench/", "/lib/python"):
        i = frame.rfind(anchor)
        if i >= 0:
            head = frame[: frame.find(" (") + 2]
            tail = frame[i + len(anchor) :] if anchor in ("site-packages/",) else frame[i + 1 :]
            if anchor == "/lib/python":
                tail = tail.split("/", 1)[-1]
            return head + tail
    return frame


def collapsed_report(path: Path, top: int = 25) -> str:
    """Own and total share of samples per function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [frame_name(f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            total[f] = total.get(f, 0) + n
    if not samples:
        return f"{path.name}: no samples"
    lines = [f"{samples} samples (250 Hz, non-idle)", "", "| own share | function |", "|--:|---|"]
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {100 * n / samples:5.1f}% | {f} |")
    lines += ["", "| total share | function (with callees) |", "|--:|---|"]
    for f, n in sorted(total.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| {100 * n / samples:5.1f}% | {f} |")
    return "\n".join(lines)
