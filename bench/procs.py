"""Server subprocesses: free ports, CPU pinning, readiness, peak RSS, stopping by PID."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SERVER_CPU = 0
LOAD_CPU = 1


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def user_sys_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` (all its threads) from
    /proc/PID/stat (clock ticks, usually 10 ms); (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    # after the command: state is field 3, utime 14 and stime 15 (1-based)
    return int(fields[11]) / tick, int(fields[12]) / tick


def pin_prefixes() -> tuple[list[str], list[str]]:
    """Command prefixes pinning (server, load generator) to CPUs 0 and 1, when possible.

    Empty when ``taskset`` is missing or either CPU is not available to us.
    """
    taskset = shutil.which("taskset")
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        cpus = set()
    if taskset is None or not {SERVER_CPU, LOAD_CPU} <= cpus:
        return [], []
    return [taskset, "-c", str(SERVER_CPU)], [taskset, "-c", str(LOAD_CPU)]


def server_env(pythonpath: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment for servers: ours minus WEBFRAME_* (settings come from flags only).

    ``pythonpath`` goes first, ahead of the repository (a snapshot of webframe/).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBFRAME_")}
    parts = (*pythonpath, str(REPO), env.get("PYTHONPATH", ""))
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes


def fetch(port: int, method: str, path: str, body: str | None, headers: dict[str, str]) -> Response:
    """One request over a fresh connection (used to check readiness and responses)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.getheader("Content-Type", ""), resp.read())
    finally:
        conn.close()


def snapshot(ref: str, dest: Path) -> Path:
    """Extract ``webframe/`` as committed at ``ref`` into ``dest``; returns ``dest``.

    Others may be editing the working tree; a snapshot keeps a run on one version.
    """
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "webframe"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {ref}: {archive.stderr.decode(errors='replace')}")
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


class ServerProcess:
    """One server started as ``python -m MODULE ARGS --port N``; stopped only by its PID."""

    def __init__(
        self,
        label: str,
        args: list[str],
        log_path: Path,
        pin: list[str],
        pythonpath: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.label = label
        self.pythonpath = pythonpath
        #: added to :func:`server_env` (the only WEBFRAME_* variables a server sees).
        self.env = dict(env or {})
        self.port = free_port()
        self.cmd = [*pin, sys.executable, *args, "--port", str(self.port)]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            # taskset execs the server, so the PID we hold is the server's own.
            # Run in the scenario's folder, not the repository: `-m` puts the working
            # directory first on sys.path, ahead of a --ref snapshot of webframe/.
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.log_path.parent,
                env={**server_env(self.pythonpath), **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str, timeout: float = 20.0) -> None:
        """Return once the server answers HTTP on ``path`` (any status)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.proc.returncode} before serving:\n"
                    f"{self.log_tail()}"
                )
            try:
                fetch(self.port, "GET", path, None, {})
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.label} did not answer on port {self.port} within "
                        f"{timeout:.0f}s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def peak_rss_kib(self) -> int | None:
        """VmHWM of the server (its peak resident set), from /proc."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far (all threads), from /proc schedstat (ns)."""
        if self.proc is None:
            return 0.0
        total = 0
        task_dir = Path(f"/proc/{self.proc.pid}/task")
        try:
            tasks = list(task_dir.iterdir())
        except OSError:
            return 0.0
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # a thread that just ended
        return total / 1e9

    def user_sys_seconds(self) -> tuple[float, float]:
        """User and system CPU seconds so far (see :func:`user_sys_seconds`)."""
        return (0.0, 0.0) if self.proc is None else user_sys_seconds(self.proc.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM our own child; SIGKILL it if it has not exited after ``timeout``."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
