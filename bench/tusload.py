"""The tus scenario: a 1 GiB file sent to the demo's resumable endpoint in 16 MiB
PATCHes (A) against the same file posted as multipart to the demo (B), same run.

A is driven from this process with ``http.client`` (one keep-alive connection:
POST /files/tus/ to create, then PATCHes of ``patch_size`` bytes read from the
source 1 MiB at a time, with the session cookie and XSRF header of a registered
user); B is ``curl -F`` exactly as in ``upload-1g``. A and B are two processes
of the same demo. Rounds alternate A B A B; after each one the demo's locker must
hold the source's SHA-256 (and, for A, nothing may be left in ``.tus`` but the
finished uploads' small state files), then the stored files are deleted. Peak RSS
is A's ``VmHWM`` during the uploads (reset after the login).
"""

from __future__ import annotations

import base64
import http.client
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.procs import ServerProcess, pin_prefixes
from bench.uploads import (
    MB,
    Upload,
    _curl_a,
    batch_problems,
    demo_login,
    find_curl,
    locker_files,
    log,
    log_round,
    make_source,
    note_setup_rss,
    round_count,
    server_pair,
    start_servers,
    summarize,
    upload_batch,
    verify_demo,
)

if TYPE_CHECKING:
    from bench.runner import Config
    from bench.scenarios import Scenario
    from bench.uploads import DemoLogin

BLOCK = 1024 * 1024


def _blocks(path: Path, start: int, size: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = size
        while left:
            block = f.read(min(BLOCK, left))
            if not block:
                raise RuntimeError(f"{path} ended early")
            left -= len(block)
            yield block


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
            conn.request(
                "PATCH",
                path,
                body=_blocks(src, offset, n),
                headers={**common, "Content-Type": "application/offset+octet-stream",
                         "Upload-Offset": str(offset), "Content-Length": str(n)},
            )  # fmt: skip
            answer = conn.getresponse()
            body = answer.read().decode(errors="replace")
            if answer.status != 204:
                return answer.status, body
            offset = int(answer.getheader("Upload-Offset") or -1)
        return 204, body
    finally:
        conn.close()


def tus_batch(proc: ServerProcess, login: DemoLogin, src: Path, patch_size: int) -> Upload:
    before = proc.cpu_seconds()
    started = time.monotonic()
    try:
        status, body = tus_upload(proc.url, login, src, patch_size)
        errors = []
    except (OSError, http.client.HTTPException) as exc:
        status, body, errors = 0, "", [f"tus client: {exc}"]
    wall = time.monotonic() - started
    return Upload(wall, 0, proc.cpu_seconds() - before, [status], [body], errors)


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
        """Run the scenario (see the module docstring); ``profile_dir`` is not used."""
        curl = find_curl()
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
                for i in range(rounds):
                    pair = []
                    for which in ("A", "B"):
                        instance = workdir / which / "instance"
                        if which == "A":
                            up = tus_batch(a, logins["A"], src, self.patch_size)
                            found = verify_tus(instance, sources)
                        else:
                            out = workdir / "resp-B.txt"
                            out.unlink(missing_ok=True)
                            cmd = load_pin + _curl_a(curl, b.url, logins["B"], src, out)
                            up = upload_batch(b, [cmd], [out])
                            found = verify_demo(instance, sources, up)
                        found = batch_problems(which, up, sources, found)
                        integrity += found
                        problems += [f"round {i + 1} {which}: {p}" for p in found]
                        runs[which].append(up)
                        pair.append(up)
                    log_round(scenario.name, i, rounds, pair, cpu=False)
                rss["uploads"] = {"A": a.peak_rss_kib(), "B": b.peak_rss_kib()}
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
            **summarize(scenario, a, b, runs, rss, problems, integrity, self.rss_target_mib),
            "mb": MB,
        }
