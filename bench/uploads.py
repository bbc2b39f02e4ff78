"""Upload scenarios: curl posts big files to the demo's upload route and to raw Tornado.

wrk cannot send a 1 GiB body, so an :class:`UploadLoad` runs its scenario itself
(the runner calls :meth:`UploadLoad.run_scenario`): it starts the scenario's
service if it has one (the S3 gateway), generates the random source file(s) once
in the scenario's temporary folder, starts A (the demo, ``run.py``) and B (a raw
Tornado ``stream_request_body`` handler writing the body to a file: the ceiling of
this stack; or, with ``b_demo``, a second demo on local storage), registers a user
on each demo (form + XSRF, cookie jar) and times ``concurrency`` curl processes at
once:

- demo: ``curl -F files=@FILE -H "X-XSRFToken: ..." -H "Cookie: ..."`` POST /files
  (multipart, ``Accept: application/json``);
- raw: ``curl -T FILE`` (the raw bytes as the body, PUT /upload).

Before the measured rounds each side receives one full-size batch (the first
gigabyte written on a fresh VM pays for page-cache and free-page work the later
ones do not); the rounds then alternate which side goes first (A B, B A, ...).

Throughput is MB/s (10^6 bytes per second of wall time, all files together), CPU
per GiB in total and split into user and system time. After every upload the
stored files' SHA-256 must equal the sources' (:mod:`bench.uploadcheck`: the
demo's locker folder, or the S3 objects read back); they are then deleted. Peak
RSS (``VmHWM``) is reset after the login (whose scrypt hash briefly takes 16 MiB)
so that it measures the uploads, warm-up included; the lifetime peak is reported
too. curl sends no ``Expect: 100-continue`` (it would add a wait).
"""

from __future__ import annotations

import contextlib
import html
import http.cookiejar
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.procs import ServerProcess, pin_prefixes, user_sys_seconds
from bench.pyspy import start_sampler, stop_sampler
from bench.servers.common import UPLOAD_PATH
from bench.uploadcheck import (
    make_source,
    verify_demo,
    verify_raw,
    verify_s3,
)
from bench.uploadresult import (
    SideBatch,
    Upload,
    alternate_rounds,
    batch_problems,
    log,
    summarize,
    warm_up,
)

if TYPE_CHECKING:
    from bench.runner import Config
    from bench.scenarios import Scenario

__all__ = [
    "DemoLogin",
    "UploadLoad",
    "curl_demo",
    "curl_raw",
    "demo_login",
    "find_curl",
    "note_setup_rss",
    "reset_peak_rss",
    "round_count",
    "server_pair",
    "start_servers",
    "upload_batch",
]

USERNAME = "bench"
PASSWORD = "bench-password-0123"
Batch = Callable[[list[tuple[Path, str]]], tuple[Upload, list[str]]]


@dataclass(frozen=True)
class DemoLogin:
    cookie: str  # the Cookie header value (session and _xsrf)
    xsrf: str


def demo_login(base_url: str) -> DemoLogin:
    """Register a user on the demo as a browser would; its cookies and XSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    try:
        page = opener.open(base_url + "/register", timeout=30).read().decode()
        field = re.search(r'<input[^>]*name="_xsrf"[^>]*value="([^"]+)"', page)
        if field is None:
            raise RuntimeError("GET /register has no _xsrf field")
        form = urllib.parse.urlencode(
            {"username": USERNAME, "password": PASSWORD, "_xsrf": html.unescape(field.group(1))}
        ).encode()
        opener.open(base_url + "/register", data=form, timeout=60).read()
        page = opener.open(base_url + "/files", timeout=30).read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")[:300]
        raise RuntimeError(f"demo login: {exc.url} answered {exc.code}: {body}") from None
    meta = re.search(r'<meta name="xsrf-token" content="([^"]+)"', page)
    cookies = {c.name: c.value for c in jar}
    token = html.unescape(meta.group(1)) if meta else cookies.get("_xsrf")
    if not token or "session" not in cookies:
        raise RuntimeError("demo login: no session cookie or XSRF token after registering")
    return DemoLogin("; ".join(f"{k}={v}" for k, v in cookies.items()), token)


def reset_peak_rss(proc: ServerProcess) -> bool:
    """Reset the server's VmHWM to its current RSS (Linux: clear_refs 5)."""
    if proc.proc is None:
        return False
    try:
        with open(f"/proc/{proc.proc.pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def curl_demo(curl: str, url: str, login: DemoLogin, src: Path, out: Path) -> list[str]:
    return [
        curl, "-sS", "-o", str(out), "-w", "%{http_code}",
        "-H", "Expect:",
        "-H", "Accept: application/json",
        "-H", f"X-XSRFToken: {login.xsrf}",
        "-H", f"Cookie: {login.cookie}",
        "-F", f"files=@{src};type=application/octet-stream",
        url + "/files",
    ]  # fmt: skip


def curl_raw(curl: str, url: str, src: Path, out: Path) -> list[str]:
    return [
        curl, "-sS", "-o", str(out), "-w", "%{http_code}",
        "-H", "Expect:",
        "-H", "Content-Type: application/octet-stream",
        "-T", str(src),
        url + UPLOAD_PATH,
    ]  # fmt: skip


def upload_batch(
    proc: ServerProcess, commands: list[list[str]], outs: list[Path], storage_pid: int | None = None
) -> Upload:
    """Start every curl at once, wait for all; wall time from first start to last exit.
    ``storage_pid``: a storage service whose CPU time is measured too."""
    os.sync()  # the previous round's writes should not be flushed during this one
    before = proc.cpu_seconds()
    user0, sys0 = proc.user_sys_seconds()
    storage0 = sum(user_sys_seconds(storage_pid)) if storage_pid else 0.0
    started = time.monotonic()
    running = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    results = [p.communicate(timeout=900) for p in running]
    wall = time.monotonic() - started
    cpu = proc.cpu_seconds() - before
    user1, sys1 = proc.user_sys_seconds()
    storage = sum(user_sys_seconds(storage_pid)) - storage0 if storage_pid else None
    statuses, errors = [], []
    for p, (stdout, stderr) in zip(running, results, strict=True):
        code = stdout.strip()
        statuses.append(int(code) if code.isdigit() else 0)
        if p.returncode != 0:
            errors.append(f"curl exited {p.returncode}: {stderr.strip()[:200]}")
    bodies = [o.read_text(errors="replace") if o.exists() else "" for o in outs]
    return Upload(wall, 0, cpu, statuses, bodies, errors, user1 - user0, sys1 - sys0, storage)


def find_curl() -> str:
    """The path of curl (the upload scenarios' client for multipart)."""
    curl = shutil.which("curl")
    if curl is None:
        raise RuntimeError("curl is not installed: apt-get install curl")
    return curl


def round_count(cfg: Config, rounds: int | None) -> int:
    """``rounds`` if given, else the configured count (at least 3 in a full run)."""
    if rounds is not None:
        return rounds
    return cfg.rounds if cfg.quick else max(3, cfg.rounds)


def server_pair(
    scenario: Scenario,
    cfg: Config,
    workdir: Path,
    pin: list[str],
    own_dirs: bool = False,
    values: dict[str, str] | None = None,
) -> list[ServerProcess]:
    """A and B of ``scenario`` (not started), in ``workdir`` or, with ``own_dirs``,
    each in its own ``workdir/A`` and ``workdir/B``; ``values``: what the scenario's
    service yielded (``{s3_url}``...), for the server arguments and environment."""
    fmt = {**(values or {}), "http": cfg.http}
    procs = []
    for which, server in (("A", scenario.a), ("B", scenario.b)):
        home = workdir
        if own_dirs:
            home = workdir / which
            home.mkdir()
        procs.append(
            ServerProcess(
                f"{which}:{server.label}",
                server.argv(home, fmt),
                workdir / f"server-{which}.log",
                pin,
                cfg.pythonpath,
                env=server.environ(home, fmt),
            )
        )
    return procs


def start_servers(procs: list[ServerProcess], path: str) -> None:
    """Start every server, then wait until each answers ``path``."""
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.wait_ready(path, timeout=60)


def note_setup_rss(a: ServerProcess, b: ServerProcess, rss: dict[str, Any]) -> list[str]:
    """Record the peak RSS of the set-up (login), then reset it; the problems met."""
    rss["setup"] = {"A": a.peak_rss_kib(), "B": b.peak_rss_kib()}
    if not (reset_peak_rss(a) and reset_peak_rss(b)):
        return ["could not reset VmHWM: peak RSS includes the login"]
    return []


def measure_rounds(
    name: str,
    rounds: int,
    batch: SideBatch,
    servers: tuple[ServerProcess, ServerProcess],
    warmup: int,
    profile_dir: Path | None,
    load_pin: list[str],
    runs: dict[str, list[Upload]],
    problems: list[str],
    integrity: list[str],
    rss: dict[str, Any],
) -> None:
    """An upload scenario's measured part: the warm-up batches, the alternating rounds
    (both servers sampled by py-spy into ``profile_dir`` if given), then each side's
    peak RSS during the uploads into ``rss["uploads"]``."""
    a, b = servers
    samplers: list[subprocess.Popen[bytes]] = []
    try:
        if warmup:  # seconds of warm-up configured: any means one warm-up batch
            warm_up(batch, problems)
        if profile_dir is not None:
            samplers = [
                start_sampler(proc, profile_dir / f"{which}.txt", load_pin)
                for which, proc in (("A", a), ("B", b))
            ]
        alternate_rounds(name, rounds, batch, runs, problems, integrity)
        rss["uploads"] = {"A": a.peak_rss_kib(), "B": b.peak_rss_kib()}
    finally:
        for sampler in samplers:
            stop_sampler(sampler)


@dataclass(frozen=True)
class UploadLoad:
    """``concurrency`` uploads of ``size`` bytes at once (``quick_size`` in --quick);
    ``rss_target_mib``: A's peak RSS during the uploads must stay below it. ``b_demo``:
    B is a second demo (each in its own folder), not the raw Tornado handler;
    ``a_storage="s3"``: A stores into the bucket of the scenario's S3 service;
    ``cpu_target``: the least B-CPU-per-GiB over A's that passes."""

    size: int
    quick_size: int
    concurrency: int = 1
    rss_target_mib: float | None = None
    path: str = "/"  # what readiness is checked on
    b_demo: bool = False
    a_storage: str = "local"
    cpu_target: float | None = None

    def run_scenario(
        self,
        scenario: Scenario,
        cfg: Config,
        profile_dir: Path | None = None,
        rounds: int | None = None,
    ) -> dict[str, Any]:
        """Run the scenario; with ``profile_dir`` both servers are sampled by py-spy
        during the measured rounds (``A.txt``/``B.txt``: collapsed stacks). ``rounds``
        overrides the configured count (at least 3 in a full run otherwise)."""
        server_pin, load_pin = pin_prefixes()
        size = self.quick_size if cfg.quick else self.size
        rounds = round_count(cfg, rounds)
        runs: dict[str, list[Upload]] = {"A": [], "B": []}
        problems: list[str] = []
        integrity: list[str] = []
        rss: dict[str, Any] = {}
        with (
            tempfile.TemporaryDirectory(prefix=f"bench-{scenario.name}-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            workdir = Path(tmp)
            values: dict[str, str] = {}
            if scenario.service is not None:
                # Stopped (by PID) when the stack unwinds, after the servers.
                values = stack.enter_context(scenario.service(workdir))
            t = time.monotonic()
            sources = [
                (workdir / f"source-{i}.bin", make_source(workdir / f"source-{i}.bin", size))
                for i in range(self.concurrency)
            ]
            log(
                f"  {scenario.name}: {self.concurrency} x {size / 2**20:.0f} MiB random "
                f"source(s) in {time.monotonic() - t:.1f}s; {rounds} round(s)"
            )
            procs = server_pair(scenario, cfg, workdir, server_pin, self.b_demo, values)
            a, b = procs
            try:
                start_servers(procs, self.path)
                batches = {
                    "A": self._batch(a, workdir, "A", values, load_pin),
                    "B": self._batch(b, workdir, "B", values, load_pin),
                }
                problems += note_setup_rss(a, b, rss)

                def batch(which: str) -> tuple[Upload, list[str]]:
                    return batches[which](sources)

                measure_rounds(
                    scenario.name, rounds, batch, (a, b), cfg.warmup, profile_dir, load_pin,
                    runs, problems, integrity, rss,
                )  # fmt: skip
            finally:
                for proc in procs:
                    proc.stop()
        return {
            "name": scenario.name,
            "description": scenario.description,
            "kind": "upload",
            "unit": "MB/s",
            "method": "POST",
            "path": "/files",
            "file_size": size,
            "files_per_round": self.concurrency,
            "bytes_per_round": size * self.concurrency,
            "rounds": rounds,
            "warmup_batches": 1 if cfg.warmup else 0,
            "storage": {"A": self.a_storage, "B": "local"},
            **summarize(
                scenario,
                *(a, b, runs, rss, problems, integrity, self.rss_target_mib),
                cpu_target=self.cpu_target,
            ),
        }

    def _batch(
        self, proc: ServerProcess, workdir: Path, which: str, values: dict[str, str],
        load_pin: list[str],
    ) -> Batch:  # fmt: skip
        """How to send one batch to ``proc`` and check what it stored."""
        curl = find_curl()
        raw = which == "B" and not self.b_demo
        login = None if raw else demo_login(proc.url)
        home = workdir / which if self.b_demo else workdir
        s3 = self.a_storage == "s3" and which == "A"
        client = None
        if s3:
            from bench.dbservices import BUCKET, S3_PREFIX, s3_client

            client = s3_client(values["aws_endpoint_url"])
        storage_pid = int(values["storage_pid"]) if s3 else None

        def batch(srcs: list[tuple[Path, str]]) -> tuple[Upload, list[str]]:
            outs = [workdir / f"resp-{which}-{i}.txt" for i in range(len(srcs))]
            for o in outs:
                o.unlink(missing_ok=True)
            pairs = zip(srcs, outs, strict=True)
            if login is None:
                cmds = [curl_raw(curl, proc.url, s, o) for (s, _), o in pairs]
            else:
                cmds = [curl_demo(curl, proc.url, login, s, o) for (s, _), o in pairs]
            up = upload_batch(proc, [load_pin + c for c in cmds], outs, storage_pid)
            if raw:
                found = verify_raw(srcs, up)
            elif client is not None:
                found = verify_s3(client, BUCKET, S3_PREFIX, home / "instance", srcs, up)
            else:
                found = verify_demo(home / "instance", srcs, up)
            return up, batch_problems(which, up, srcs, found)

        return batch
