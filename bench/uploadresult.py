"""Results of the upload scenarios: one timed batch (:class:`Upload`), the round log
and the result dict both upload loads share (:func:`summarize`)."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.procs import ServerProcess
from bench.uploadcheck import total_size

if TYPE_CHECKING:
    from bench.scenarios import Scenario

MB = 1_000_000
GiB = 1024**3


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Upload:
    """One timed batch of concurrent uploads to one server."""

    wall_s: float
    bytes: int
    cpu_s: float
    statuses: list[int]
    bodies: list[str]
    curl_errors: list[str]
    #: the server's user and system CPU seconds (/proc/PID/stat, 10 ms ticks).
    user_s: float = 0.0
    sys_s: float = 0.0
    #: CPU seconds of the storage service (the S3 gateway), when there is one.
    storage_cpu_s: float | None = None

    @property
    def mbps(self) -> float:
        return self.bytes / MB / self.wall_s if self.wall_s else 0.0

    def per_gib(self, seconds: float) -> float:
        return seconds * GiB / self.bytes if self.bytes else 0.0

    @property
    def cpu_s_per_gib(self) -> float:
        return self.per_gib(self.cpu_s)

    @property
    def user_s_per_gib(self) -> float:
        return self.per_gib(self.user_s)

    @property
    def sys_s_per_gib(self) -> float:
        return self.per_gib(self.sys_s)


def side_result(label: str, proc: ServerProcess, ups: list[Upload]) -> dict[str, Any]:
    errors = {
        "status": sum(1 for u in ups for s in u.statuses if not 200 <= s < 300),
        "curl": sum(len(u.curl_errors) for u in ups),
    }
    side: dict[str, Any] = {
        "label": label,
        "command": proc.cmd,
        "unit": "MB/s",
        "mbps": [u.mbps for u in ups],
        "mbps_median": statistics.median(u.mbps for u in ups),
        "wall_s": [u.wall_s for u in ups],
        "wall_s_median": statistics.median(u.wall_s for u in ups),
        "cpu_s_per_gib": [u.cpu_s_per_gib for u in ups],
        "cpu_s_per_gib_median": statistics.median(u.cpu_s_per_gib for u in ups),
        "user_s_per_gib": [u.user_s_per_gib for u in ups],
        "user_s_per_gib_median": statistics.median(u.user_s_per_gib for u in ups),
        "sys_s_per_gib": [u.sys_s_per_gib for u in ups],
        "sys_s_per_gib_median": statistics.median(u.sys_s_per_gib for u in ups),
        "uploads": sum(len(u.statuses) for u in ups),
        "errors": errors,
        "error_count": sum(errors.values()),
        "rss_peak_kib": None,
        "rss_lifetime_peak_kib": None,
    }
    storage = [u.per_gib(u.storage_cpu_s) for u in ups if u.storage_cpu_s is not None]
    if storage:
        side["storage_cpu_s_per_gib"] = storage
        side["storage_cpu_s_per_gib_median"] = statistics.median(storage)
    return side


def batch_problems(
    which: str, up: Upload, sources: list[tuple[Path, str]], found: list[str]
) -> list[str]:
    """Set the batch's byte count; ``found`` plus non-2xx answers and curl errors."""
    up.bytes = total_size(sources)
    bad = [s for s in up.statuses if not 200 <= s < 300]
    if bad:
        found.append(f"{which} answered HTTP {bad}: {up.bodies[0][:200]!r}")
    return found + up.curl_errors


def log_round(name: str, i: int, rounds: int, pair: list[Upload], cpu: bool = True) -> None:
    """``pair`` is [A, B] whichever went first."""
    a, b = pair
    ratio = a.mbps / b.mbps if b.mbps else 0.0
    line = (
        f"  {name} round {i + 1}/{rounds}: "
        f"A {a.mbps:7.1f} MB/s ({a.wall_s:.2f}s)  "
        f"B {b.mbps:7.1f} MB/s ({b.wall_s:.2f}s)  A/B {ratio:.3f}"
    )
    if cpu:
        line += (
            f"  CPU s/GiB A {a.cpu_s_per_gib:.2f} (usr {a.user_s_per_gib:.2f} sys "
            f"{a.sys_s_per_gib:.2f}) B {b.cpu_s_per_gib:.2f} (usr {b.user_s_per_gib:.2f} "
            f"sys {b.sys_s_per_gib:.2f})"
        )
        if a.storage_cpu_s is not None:
            line += f"  S3 gateway CPU s/GiB {a.per_gib(a.storage_cpu_s):.2f}"
    log(line)


#: one batch on side "A" or "B": what it measured and what was wrong with what it stored.
SideBatch = Callable[[str], tuple[Upload, list[str]]]


def warm_up(batch: SideBatch, problems: list[str]) -> None:
    """One unmeasured batch on each side; what was wrong with it goes to ``problems``."""
    for which in ("A", "B"):
        _, found = batch(which)
        problems += [f"warm-up {which}: {p}" for p in found]


def alternate_rounds(
    name: str,
    rounds: int,
    batch: SideBatch,
    runs: dict[str, list[Upload]],
    problems: list[str],
    integrity: list[str],
) -> None:
    """``rounds`` measured rounds, one batch a side (A first in even rounds, B in odd
    ones), each logged; uploads go to ``runs``, what was wrong to ``problems`` and
    ``integrity``."""
    for i in range(rounds):
        got: dict[str, Upload] = {}
        for which in ("A", "B") if i % 2 == 0 else ("B", "A"):
            got[which], found = batch(which)
            integrity += found
            runs[which].append(got[which])
            problems += [f"round {i + 1} {which}: {p}" for p in found]
        log_round(name, i, rounds, [got["A"], got["B"]])


def summarize(
    scenario: Scenario,
    a: ServerProcess,
    b: ServerProcess,
    runs: dict[str, list[Upload]],
    rss: dict[str, Any],
    problems: list[str],
    integrity: list[str],
    rss_target_mib: float | None,
    *,
    cpu_target: float | None = None,
) -> dict[str, Any]:
    """The result keys every upload scenario shares (from ``"a"`` on), its checks and
    verdict; the problems are logged. ``*cpu_ratio``: B's CPU per GiB over A's, which
    ``cpu_target`` (if given) is the least it must be."""
    for problem in problems:
        log(f"  {scenario.name}: WARNING {problem}")
    side_a = side_result(scenario.a.label, a, runs["A"])
    side_b = side_result(scenario.b.label, b, runs["B"])
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
    user_ratios = [
        rb.user_s_per_gib / ra.user_s_per_gib if ra.user_s_per_gib else 0.0
        for ra, rb in zip(runs["A"], runs["B"], strict=True)
    ]
    ratio = statistics.median(ratios) if ratios else 0.0
    cpu_ratio = statistics.median(cpu_ratios) if cpu_ratios else 0.0
    checks = []
    if scenario.target is not None:
        checks.append(
            {"what": "A/B MB/s", "value": ratio, "target": f">= {scenario.target}",
             "ok": ratio >= scenario.target}
        )  # fmt: skip
    if cpu_target is not None:
        checks.append(
            {"what": "CPU A/B", "value": cpu_ratio, "target": f">= {cpu_target}",
             "ok": cpu_ratio >= cpu_target}
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
        "cpu_ratio": cpu_ratio,
        "user_cpu_ratios": user_ratios,
        "user_cpu_ratio": statistics.median(user_ratios) if user_ratios else 0.0,
        "target": scenario.target,
        "rss_target_mib": rss_target_mib,
        "cpu_target": cpu_target,
        "checks": checks,
        "verdict": "PASS" if all(c["ok"] for c in checks) else "MISS",
        "errors": side_a["error_count"] + side_b["error_count"],
        "problems": problems,
    }
