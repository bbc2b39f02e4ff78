"""The tus scenario: a 1 GiB file sent to the demo's resumable endpoint in 16 MiB
PATCHes (A) against the same file posted as multipart to the demo (B), same run.

A is driven from this process with ``http.client`` (one keep-alive connection:
POST /files/tus/ to create, then PATCHes of ``patch_size`` bytes of the source,
each body sent with ``sendfile``, with the session cookie and XSRF header of a
registered user), pinned to the load CPU like B's client; B is ``curl -F`` as in
``upload-1g``. A and B are two processes of the same demo. As in ``upload-1g``,
each side first receives one full-size warm-up upload, every batch starts after
``os.sync()`` (the previous batch's writes are not flushed during this one), and
the rounds alternate which side goes first. After each upload the demo's locker
must hold the source's SHA-256 (and, for A, nothing may be left in ``.tus`` but
the finished uploads' small state files); the stored files are then deleted.
Peak RSS is A's ``VmHWM`` during the uploads (reset after the login).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from bench.procs import LOAD_CPU, ServerProcess, pin_prefixes
from bench.uploadcheck import locker_files, make_source, verify_demo
from bench.uploadresult import (
    MB,
    Upload,
    batch_problems,
    log,
    summarize,
)
from bench.uploads import (
    curl_demo,
    demo_login,
    find_curl,
    measure_rounds,
    note_setup_rss,
    round_count,
    server_pair,
    start_servers,
    upload_batch,
)

if TYPE_CHECKING:
    from bench.runner import Config
    from bench.scenarios import Scenario
    from bench.uploads import DemoLogin


def send_patch(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str], src: BinaryIO,
    offset: int, size: int,
) -> None:  # fmt: skip
    """Send a PATCH whose body is ``size`` bytes of ``src`` from ``offset``, with
    ``sendfile`` (no copy through Python: the client's CPU, like curl's, stays
    small next to the server's, even on a busy load CPU)."""
    conn.putrequest("PATCH", path, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    assert conn.sock is not None
    sent = conn.sock.sendfile(src, offset, size)
    if sent != size:
        raise RuntimeError(f"sent {sent} of {size} bytes from offset {offset}")


def tus_upload(base_url: str, login: DemoLogin, src: Path, patch_size: int) -> tuple[int, str]:
    """Create an upload of ``src`` and send it in PATCHes; (last status, last body)."""
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=600)
    size = src.stat().st_size
    common = {
        "Tus-Resumable": "1.0.0",
        "Cookie": login.cookie,
        "X-XSRFToken": login.xsrf,
    }
    name = base64.b64encode(src.name.encode()).decode()
    try:
        conn.request(
            "POST",
            "/files/tus/",
            headers={**common, "Upload-Length": str(size), "Upload-Metadata": f"filename {name}",
                     "Content-Length": "0"},
        )  # fmt: skip
        answer = conn.getresponse()
        body = answer.read().decode(errors="replace")
        if answer.status != 201:
            return answer.status, body
        location = answer.getheader("Location") or ""
        path = urllib.parse.urlsplit(location).path or location
        offset = 0
        while offset < size:
            n = min(patch_size, size - offset)
            headers = {**common, "Content-Type": "application/offset+octet-stream",
                       "Upload-Offset": str(offset), "Content-Length": str(n)}  # fmt: skip
            with open(src, "rb") as f:
                send_patch(conn, path, headers, f, offset, n)
            answer = conn.getresponse()
            body = answer.read().decode(errors="replace")
            if answer.status != 204:
                return answer.status, body
            offset = int(answer.getheader("Upload-Offset") or -1)
        return 204, body
    finally:
        conn.close()


@contextlib.contextmanager
def on_load_cpu(pinned: bool) -> Iterator[None]:
    """Run this process on the load generator's CPU meanwhile (as B's curl is), so
    that the tus client never shares the server's CPU."""
    if not pinned:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {LOAD_CPU})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def tus_batch(
    proc: ServerProcess, login: DemoLogin, src: Path, patch_size: int, pinned: bool
) -> Upload:
    """One timed tus upload of ``src`` to ``proc`` (after ``os.sync()``, as B's are)."""
    os.sync()  # the previous batch's writes should not be flushed during this one
    before = proc.cpu_seconds()
    user0, sys0 = proc.user_sys_seconds()
    started = time.monotonic()
    try:
        with on_load_cpu(pinned):
            status, body = tus_upload(proc.url, login, src, patch_size)
        errors = []
    except (OSError, http.client.HTTPException) as exc:
        status, body, errors = 0, "", [f"tus client: {exc}"]
    wall = time.monotonic() - started
    cpu = proc.cpu_seconds() - before
    user1, sys1 = proc.user_sys_seconds()
    return Upload(wall, 0, cpu, [status], [body], errors, user1 - user0, sys1 - sys0)


def verify_tus(instance: Path, sources: list[tuple[Path, str]]) -> list[str]:
    """The locker holds the file intact; no tus data file is left; then it is deleted."""
    want = sorted(sha for _, sha in sources)
    stored, problems = locker_files(instance, want)
    tus = instance / "uploads" / ".tus"
    left = [p for p in tus.glob("*.bin")] if tus.exists() else []
    if left:
        problems.append(f"{len(left)} tus data file(s) left in {tus}")
    for p in stored:
        p.unlink()
    return problems


@dataclass(frozen=True)
class TusUploadLoad:
    """One ``size``-byte file per round: tus PATCHes of ``patch_size`` (A) vs multipart (B)."""

    size: int
    quick_size: int
    patch_size: int = 16 * 1024 * 1024
    rss_target_mib: float | None = None
    path: str = "/"

    def run_scenario(
        self,
        scenario: Scenario,
        cfg: Config,
        profile_dir: Path | None = None,
        rounds: int | None = None,
    ) -> dict[str, Any]:
        """Run the scenario (see the module docstring); with ``profile_dir`` both
        servers are sampled by py-spy during the measured rounds (``python -m
        bench.profile upload-1g-tus``)."""
        server_pin, load_pin = pin_prefixes()
        size = self.quick_size if cfg.quick else self.size
        rounds = round_count(cfg, rounds)
        with tempfile.TemporaryDirectory(prefix=f"bench-{scenario.name}-") as tmp:
            workdir = Path(tmp)
            src = workdir / "source.bin"
            sources = [(src, make_source(src, size))]
            log(f"  {scenario.name}: {size / 2**20:.0f} MiB source; {rounds} round(s)")
            procs = server_pair(scenario, cfg, workdir, server_pin, own_dirs=True)
            a, b = procs
            runs: dict[str, list[Upload]] = {"A": [], "B": []}
            problems: list[str] = []
            integrity: list[str] = []
            rss: dict[str, Any] = {}
            try:
                start_servers(procs, self.path)
                logins = {"A": demo_login(a.url), "B": demo_login(b.url)}
                problems += note_setup_rss(a, b, rss)

                def batch(which: str) -> tuple[Upload, list[str]]:
                    instance = workdir / which / "instance"
                    if which == "A":
                        up = tus_batch(a, logins["A"], src, self.patch_size, bool(load_pin))
                        found = verify_tus(instance, sources)
                    else:
                        out = workdir / "resp-B.txt"
                        out.unlink(missing_ok=True)
                        cmd = load_pin + curl_demo(find_curl(), b.url, logins["B"], src, out)
                        up = upload_batch(b, [cmd], [out])
                        found = verify_demo(instance, sources, up)
                    return up, batch_problems(which, up, sources, found)

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
            "method": "PATCH",
            "path": "/files/tus/",
            "file_size": size,
            "files_per_round": 1,
            "bytes_per_round": size,
            "patch_size": self.patch_size,
            "rounds": rounds,
            "warmup_batches": 1 if cfg.warmup else 0,
            **summarize(scenario, a, b, runs, rss, problems, integrity, self.rss_target_mib),
            "mb": MB,
        }
