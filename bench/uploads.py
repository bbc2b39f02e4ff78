"""Upload scenarios: curl posts big files to the demo's upload route and to raw Tornado.

wrk cannot send a 1 GiB body, so an :class:`UploadLoad` runs its scenario itself
(the runner calls :meth:`UploadLoad.run_scenario`): it generates the random source
file(s) once in the scenario's temporary folder, starts A (the demo, ``run.py``)
and B (a raw Tornado ``stream_request_body`` handler writing the body to a file:
the ceiling of this stack), registers a user on the demo (form + XSRF, cookie jar)
and then, alternating A B A B, times ``concurrency`` curl processes at once:

- A: ``curl -F files=@FILE -H "X-XSRFToken: ..." -H "Cookie: ..."`` POST /files
  (multipart, ``Accept: application/json``);
- B: ``curl -T FILE`` (the raw bytes as the body, PUT /upload).

Throughput is MB/s (10^6 bytes per second of wall time, all files together). After
every upload the stored files' SHA-256 must equal the sources' (the demo's files
under ``instance/uploads/users/<id>/``, and nothing may be left in its ``.tmp``);
they are then deleted. Peak RSS (``VmHWM``) is reset after the login (whose scrypt
hash briefly takes 16 MiB) so that it measures the uploads; the lifetime peak is
reported too. curl sends no ``Expect: 100-continue`` (it would add a wait).
"""

from __future__ import annotations

import hashlib
import html
import http.cookiejar
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.procs import ServerProcess, pin_prefixes
from bench.servers.common import UPLOAD_PATH

if TYPE_CHECKING:
    from bench.runner import Config
    from bench.scenarios import Scenario

MB = 1_000_000
GiB = 1024**3
CHUNK = 4 * 1024 * 1024
USERNAME = "bench"
PASSWORD = "bench-password-0123"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def make_source(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; returns their SHA-256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


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


@dataclass
class Upload:
    """One timed batch of concurrent uploads to one server."""

    wall_s: float
    bytes: int
    cpu_s: float
    statuses: list[int]
    bodies: list[str]
    curl_errors: list[str]

    @property
    def mbps(self) -> float:
        return self.bytes / MB / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_s_per_gib(self) -> float:
        return self.cpu_s * GiB / self.bytes if self.bytes else 0.0


def _curl_a(curl: str, url: str, login: DemoLogin, src: Path, out: Path) -> list[str]:
    return [
        curl, "-sS", "-o", str(out), "-w", "%{http_code}",
        "-H", "Expect:",
        "-H", "Accept: application/json",
        "-H", f"X-XSRFToken: {login.xsrf}",
        "-H", f"Cookie: {login.cookie}",
        "-F", f"files=@{src};type=application/octet-stream",
        url + "/files",
    ]  # fmt: skip


def _curl_b(curl: str, url: str, src: Path, out: Path) -> list[str]:
    return [
        curl, "-sS", "-o", str(out), "-w", "%{http_code}",
        "-H", "Expect:",
        "-H", "Content-Type: application/octet-stream",
        "-T", str(src),
        url + UPLOAD_PATH,
    ]  # fmt: skip


def upload_batch(proc: ServerProcess, commands: list[list[str]], outs: list[Path]) -> Upload:
    """Start every curl at once, wait for all; wall time from first start to last exit."""
    os.sync()  # the previous round's writes should not be flushed during this one
    before = proc.cpu_seconds()
    started = time.monotonic()
    running = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in commands
    ]
    results = [p.communicate(timeout=900) for p in running]
    wall = time.monotonic() - started
    cpu = proc.cpu_seconds() - before
    statuses, errors = [], []
    for p, (stdout, stderr) in zip(running, results, strict=True):
        code = stdout.strip()
        statuses.append(int(code) if code.isdigit() else 0)
        if p.returncode != 0:
            errors.append(f"curl exited {p.returncode}: {stderr.strip()[:200]}")
    bodies = [o.read_text(errors="replace") if o.exists() else "" for o in outs]
    return Upload(wall, 0, cpu, statuses, bodies, errors)


def _sizes(sources: list[tuple[Path, str]]) -> int:
    return sum(p.stat().st_size for p, _ in sources)


def locker_files(instance: Path, want: list[str]) -> tuple[list[Path], list[str]]:
    """The files the demo's locker holds, and a problem unless their SHA-256s are ``want``."""
    users = instance / "uploads" / "users"
    stored = [p for p in users.glob("*/*") if p.is_file()] if users.exists() else []
    got = sorted(sha256_of(p) for p in stored)
    if got == want:
        return stored, []
    return stored, [
        f"stored files do not match the sources: {len(stored)} stored, "
        f"{sum(g in want for g in got)} of {len(want)} intact"
    ]


def verify_demo(instance: Path, sources: list[tuple[Path, str]], up: Upload) -> list[str]:
    """The demo stored every file intact (response and disk), left no temp file; then
    the stored files are deleted."""
    problems = []
    want = sorted(sha for _, sha in sources)
    answered = []
    for body in up.bodies:
        try:
            answered += [f["sha256"] for f in json.loads(body)["files"]]
        except (ValueError, KeyError, TypeError):
            problems.append(f"demo answered {body[:200]!r}")
    if answered and sorted(answered) != want:
        problems.append("the SHA-256 the demo answered differs from the source's")
    stored, found = locker_files(instance, want)
    problems += found
    temp = instance / "uploads" / ".tmp"
    left = [p for p in temp.iterdir()] if temp.exists() else []
    if left:
        problems.append(f"{len(left)} temp file(s) left in {temp}")
    for p in stored:
        p.unlink()
    return problems


def verify_raw(sources: list[tuple[Path, str]], up: Upload) -> list[str]:
    problems, got = [], []
    for body in up.bodies:
        try:
            path = Path(json.loads(body)["path"])
        except (ValueError, KeyError, TypeError):
            problems.append(f"raw server answered {body[:200]!r}")
            continue
        got.append(sha256_of(path))
        path.unlink()
    if sorted(got) != sorted(sha for _, sha in sources):
        problems.append("the raw server's files differ from the sources")
    return problems


def _side(label: str, proc: ServerProcess, ups: list[Upload]) -> dict[str, Any]:
    errors = {
        "status": sum(1 for u in ups for s in u.statuses if not 200 <= s < 300),
        "curl": sum(len(u.curl_errors) for u in ups),
    }
    return {
        "label": label,
        "command": proc.cmd,
        "unit": "MB/s",
        "mbps": [u.mbps for u in ups],
        "mbps_median": statistics.median(u.mbps for u in ups),
        "wall_s": [u.wall_s for u in ups],
        "wall_s_median": statistics.median(u.wall_s for u in ups),
        "cpu_s_per_gib": [u.cpu_s_per_gib for u in ups],
        "cpu_s_per_gib_median": statistics.median(u.cpu_s_per_gib for u in ups),
        "uploads": sum(len(u.statuses) for u in ups),
        "errors": errors,
        "error_count": sum(errors.values()),
        "rss_peak_kib": None,
        "rss_lifetime_peak_kib": None,
    }


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


def _frame_name(frame: str) -> str:
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
        frames = [_frame_name(f) for f in stack.split(";")]
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
    scenario: Scenario, cfg: Config, workdir: Path, pin: list[str], own_dirs: bool = False
) -> list[ServerProcess]:
    """A and B of ``scenario`` (not started), in ``workdir`` or, with ``own_dirs``,
    each in its own ``workdir/A`` and ``workdir/B``."""
    procs = []
    for which, server in (("A", scenario.a), ("B", scenario.b)):
        home = workdir
        if own_dirs:
            home = workdir / which
            home.mkdir()
        procs.append(
            ServerProcess(
                f"{which}:{server.label}",
                server.argv(home, {"http": cfg.http}),
                workdir / f"server-{which}.log",
                pin,
                cfg.pythonpath,
                env=server.environ(home, {"http": cfg.http}),
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


def batch_problems(
    which: str, up: Upload, sources: list[tuple[Path, str]], found: list[str]
) -> list[str]:
    """Set the batch's byte count; ``found`` plus non-2xx answers and curl errors."""
    up.bytes = _sizes(sources)
    bad = [s for s in up.statuses if not 200 <= s < 300]
    if bad:
        found.append(f"{which} answered HTTP {bad}: {up.bodies[0][:200]!r}")
    return found + up.curl_errors


def log_round(name: str, i: int, rounds: int, pair: list[Upload], cpu: bool = True) -> None:
    ratio = pair[0].mbps / pair[1].mbps if pair[1].mbps else 0.0
    line = (
        f"  {name} round {i + 1}/{rounds}: "
        f"A {pair[0].mbps:7.1f} MB/s ({pair[0].wall_s:.2f}s)  "
        f"B {pair[1].mbps:7.1f} MB/s ({pair[1].wall_s:.2f}s)  A/B {ratio:.3f}"
    )
    if cpu:
        line += f"  CPU s/GiB A {pair[0].cpu_s_per_gib:.2f} B {pair[1].cpu_s_per_gib:.2f}"
    log(line)


def summarize(
    scenario: Scenario,
    a: ServerProcess,
    b: ServerProcess,
    runs: dict[str, list[Upload]],
    rss: dict[str, Any],
    problems: list[str],
    integrity: list[str],
    rss_target_mib: float | None,
) -> dict[str, Any]:
    """The result keys every upload scenario shares (from ``"a"`` on), its checks and
    verdict; the problems are logged."""
    for problem in problems:
        log(f"  {scenario.name}: WARNING {problem}")
    side_a = _side(scenario.a.label, a, runs["A"])
    side_b = _side(scenario.b.label, b, runs["B"])
    for key, side in (("A", side_a), ("B", side_b)):
        side["rss_peak_kib"] = rss.get("uploads", {}).get(key)
        setup = rss.get("setup", {}).get(key)
        side["rss_lifetime_peak_kib"] = max(
            (v for v in (setup, side["rss_peak_kib"]) if v is not None), default=None
        )
    ratios = [
        ra.mbps / rb.mbps if rb.mbps else 0.0 for ra, rb in zip(runs["A"], runs["B"], strict=True)
    ]
    cpu_ratios = [
        rb.cpu_s_per_gib / ra.cpu_s_per_gib if ra.cpu_s_per_gib else 0.0
        for ra, rb in zip(runs["A"], runs["B"], strict=True)
    ]
    ratio = statistics.median(ratios) if ratios else 0.0
    checks = []
    if scenario.target is not None:
        checks.append(
            {"what": "A/B MB/s", "value": ratio, "target": f">= {scenario.target}",
             "ok": ratio >= scenario.target}
        )  # fmt: skip
    if rss_target_mib is not None:
        peak = side_a["rss_peak_kib"]
        checks.append(
            {"what": "A peak RSS MiB", "value": None if peak is None else peak / 1024,
             "target": f"< {rss_target_mib}",
             "ok": peak is not None and peak / 1024 < rss_target_mib}
        )  # fmt: skip
    intact = bool(runs["A"]) and not integrity
    checks.append({"what": "files intact (SHA-256)", "value": intact, "target": True,
                   "ok": intact})  # fmt: skip
    return {
        "a": side_a,
        "b": side_b,
        "ratios": ratios,
        "ratio": ratio,
        "cpu_ratios": cpu_ratios,
        "cpu_ratio": statistics.median(cpu_ratios) if cpu_ratios else 0.0,
        "target": scenario.target,
        "rss_target_mib": rss_target_mib,
        "checks": checks,
        "verdict": "PASS" if all(c["ok"] for c in checks) else "MISS",
        "errors": side_a["error_count"] + side_b["error_count"],
        "problems": problems,
    }


@dataclass(frozen=True)
class UploadLoad:
    """``concurrency`` uploads of ``size`` bytes at once (``quick_size`` in --quick);
    ``rss_target_mib``: A's peak RSS during the uploads must stay below it."""

    size: int
    quick_size: int
    concurrency: int = 1
    rss_target_mib: float | None = None
    path: str = "/"  # what readiness is checked on

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
        curl = find_curl()
        server_pin, load_pin = pin_prefixes()
        size = self.quick_size if cfg.quick else self.size
        rounds = round_count(cfg, rounds)
        with tempfile.TemporaryDirectory(prefix=f"bench-{scenario.name}-") as tmp:
            workdir = Path(tmp)
            t = time.monotonic()
            sources = [
                (workdir / f"source-{i}.bin", make_source(workdir / f"source-{i}.bin", size))
                for i in range(self.concurrency)
            ]
            total = _sizes(sources)
            log(
                f"  {scenario.name}: {self.concurrency} x {size / 2**20:.0f} MiB random "
                f"source(s) in {time.monotonic() - t:.1f}s; {rounds} round(s)"
            )
            warm = [(workdir / "warm.bin", make_source(workdir / "warm.bin", 1 << 20))]
            procs = server_pair(scenario, cfg, workdir, server_pin)
            a, b = procs
            instance = workdir / "instance"
            runs: dict[str, list[Upload]] = {"A": [], "B": []}
            problems: list[str] = []
            integrity: list[str] = []
            rss: dict[str, Any] = {}
            try:
                start_servers(procs, self.path)
                login = demo_login(a.url)
                problems += note_setup_rss(a, b, rss)

                def batch(which: str, srcs: list[tuple[Path, str]]) -> tuple[Upload, list[str]]:
                    outs = [workdir / f"resp-{which}-{i}.txt" for i in range(len(srcs))]
                    for o in outs:
                        o.unlink(missing_ok=True)
                    if which == "A":
                        cmds = [
                            _curl_a(curl, a.url, login, s, o)
                            for (s, _), o in zip(srcs, outs, strict=True)
                        ]
                        up = upload_batch(a, [load_pin + c for c in cmds], outs)
                        found = verify_demo(instance, srcs, up)
                    else:
                        cmds = [
                            _curl_b(curl, b.url, s, o) for (s, _), o in zip(srcs, outs, strict=True)
                        ]
                        up = upload_batch(b, [load_pin + c for c in cmds], outs)
                        found = verify_raw(srcs, up)
                    return up, batch_problems(which, up, srcs, found)

                if cfg.warmup:
                    for which in ("A", "B"):
                        _, found = batch(which, warm)
                        problems += [f"warm-up {which}: {p}" for p in found]
                samplers = []
                if profile_dir is not None:
                    samplers = [
                        start_sampler(proc, profile_dir / f"{which}.txt", load_pin)
                        for which, proc in (("A", a), ("B", b))
                    ]
                for i in range(rounds):
                    pair = []
                    for which in ("A", "B"):
                        up, found = batch(which, sources)
                        integrity += found
                        runs[which].append(up)
                        pair.append(up)
                        problems += [f"round {i + 1} {which}: {p}" for p in found]
                    log_round(scenario.name, i, rounds, pair)
                rss["uploads"] = {"A": a.peak_rss_kib(), "B": b.peak_rss_kib()}
                for sampler in samplers:
                    stop_sampler(sampler)
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
            "bytes_per_round": total,
            "rounds": rounds,
            **summarize(scenario, a, b, runs, rss, problems, integrity, self.rss_target_mib),
        }
