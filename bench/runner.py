"""Run scenarios: start both servers, warm up, measure A B A B..., stop them, report."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report
from bench.meta import metadata
from bench.procs import REPO, ServerProcess, fetch, pin_prefixes, snapshot
from bench.scenarios import SCENARIOS, Scenario, Server, by_name
from bench.services import ScenarioSkipped
from bench.uploadresult import log
from bench.uploads import server_pair
from bench.wrk import WrkMissingError, WrkResult, find_wrk

DEFAULT_OUTPUT = REPO / "bench" / "results"


@dataclass(frozen=True)
class Config:
    duration: int
    connections: int
    rounds: int
    warmup: int
    quick: bool
    #: put first on the servers' PYTHONPATH (a snapshot of webframe/ for --ref).
    pythonpath: tuple[str, ...] = ()
    ref: str | None = None
    #: the connection layer of every webframe server (``--http``).
    http: str = "httptools"


@dataclass
class Run:
    """One wrk measurement of one server, with the CPU time the server spent on it."""

    wrk: WrkResult
    cpu_s: float

    @property
    def rps(self) -> float:
        return self.wrk.rps

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.cpu_s / self.wrk.requests if self.wrk.requests else 0.0


def measure(
    scenario: Scenario,
    proc: ServerProcess,
    seconds: int,
    cfg: Config,
    workdir: Path,
    pin: list[str],
    wrk: str,
    load: Any = None,
) -> Run:
    """One wrk run against ``proc`` with ``load`` (default: the scenario's)."""
    load = scenario.load if load is None else load
    before = proc.cpu_seconds()
    result = load.run(proc.url, seconds, cfg.connections, workdir, pin, wrk)
    return Run(result, proc.cpu_seconds() - before)


def _side(server: Server, proc: ServerProcess, measured: list[Run]) -> dict[str, Any]:
    runs = [m.wrk for m in measured]
    errors: dict[str, int] = {}
    for r in runs:
        for kind, n in r.errors.items():
            errors[kind] = errors.get(kind, 0) + n
    return {
        "label": server.label,
        "command": proc.cmd,
        "rps": [r.rps for r in runs],
        "rps_median": statistics.median(r.rps for r in runs),
        "latency_avg_ms": statistics.median(r.latency_avg_ms for r in runs),
        "latency_p50_ms": statistics.median(r.latency_ms.get("50", 0.0) for r in runs),
        "latency_p99_ms": statistics.median(r.latency_ms.get("99", 0.0) for r in runs),
        "requests": sum(r.requests for r in runs),
        "cpu_us_per_request": [m.cpu_us_per_request for m in measured],
        "cpu_us_per_request_median": statistics.median(m.cpu_us_per_request for m in measured),
        "errors": errors,
        "error_count": sum(errors.values()),
        "rss_peak_kib": None,
    }


def check_responses(load: Any, a: ServerProcess, b: ServerProcess) -> list[str]:
    """Problems with the answers: not a success, or A and B answering differently."""
    headers = dict(load.headers)
    got = {}
    for proc in (a, b):
        got[proc.label] = fetch(proc.port, load.method, load.path, load.body, headers)
    problems = [
        f"{label} answered {r.status}" for label, r in got.items() if not 200 <= r.status < 400
    ]
    ra, rb = got[a.label], got[b.label]
    if (ra.status, ra.content_type, ra.body) != (rb.status, rb.content_type, rb.body):
        problems.append(
            f"responses differ: {a.label} {ra.status} {ra.content_type!r} {len(ra.body)} B, "
            f"{b.label} {rb.status} {rb.content_type!r} {len(rb.body)} B"
        )
    return problems


def run_scenario(scenario: Scenario, cfg: Config, wrk: str) -> dict[str, Any]:
    """Measure one scenario; the result dict is what latest.json holds for it."""
    server_pin, load_pin = pin_prefixes()
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-{scenario.name}-") as tmp,
        contextlib.ExitStack() as services,
    ):
        workdir = Path(tmp)
        if scenario.prepare is not None:
            scenario.prepare(workdir)
        values: dict[str, str] = {}
        if scenario.service is not None:
            values.update(services.enter_context(scenario.service(workdir)))
        procs = server_pair(scenario, cfg, workdir, server_pin, values=values)
        a, b = procs
        runs: dict[str, list[Run]] = {"A": [], "B": []}
        rss: dict[str, int | None] = {}
        load: Any = scenario.load
        try:
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.wait_ready(load.path)
            if hasattr(load, "bind"):
                load = load.bind(a, b)
            problems = check_responses(load, a, b)
            if cfg.pythonpath:
                for proc in procs:
                    text = proc.log_path.read_text(errors="replace")
                    if "bench: webframe" in text and cfg.pythonpath[0] not in text:
                        problems.append(f"{proc.label} did not load webframe from --ref {cfg.ref}")
            for problem in problems:
                log(f"  {scenario.name}: WARNING {problem}")
            for proc in procs:
                if cfg.warmup:
                    load.run(proc.url, cfg.warmup, cfg.connections, workdir, load_pin, wrk)
            for i in range(cfg.rounds):
                pair = []
                for which, proc in (("A", a), ("B", b)):
                    r = measure(scenario, proc, cfg.duration, cfg, workdir, load_pin, wrk, load)
                    runs[which].append(r)
                    pair.append(r)
                    if hasattr(load, "verify"):
                        found = load.verify(proc.url)
                        for problem in found:
                            log(f"  {scenario.name}: WARNING {which}: {problem}")
                        problems += found
                ratio = pair[0].rps / pair[1].rps if pair[1].rps else 0.0
                errs = pair[0].wrk.error_count + pair[1].wrk.error_count
                log(
                    f"  {scenario.name} round {i + 1}/{cfg.rounds}: "
                    f"A {pair[0].rps:9.1f} req/s  B {pair[1].rps:9.1f} req/s  "
                    f"A/B {ratio:.3f}  CPU us/req A {pair[0].cpu_us_per_request:.0f} "
                    f"B {pair[1].cpu_us_per_request:.0f}" + (f"  errors {errs}" if errs else "")
                )
            # Read just before stopping: the peak over the whole scenario.
            rss = {"A": a.peak_rss_kib(), "B": b.peak_rss_kib()}
        finally:
            for proc in procs:
                proc.stop()
    side_a = _side(scenario.a, a, runs["A"])
    side_b = _side(scenario.b, b, runs["B"])
    side_a["rss_peak_kib"], side_b["rss_peak_kib"] = rss.get("A"), rss.get("B")
    ratios = [
        ra.rps / rb.rps if rb.rps else 0.0 for ra, rb in zip(runs["A"], runs["B"], strict=True)
    ]
    ratio = statistics.median(ratios)
    # CPU time per request is less moved by other load on the machine than req/s:
    # B's CPU per request over A's is A's efficiency relative to B (higher is better).
    cpu_ratios = [
        rb.cpu_us_per_request / ra.cpu_us_per_request if ra.cpu_us_per_request else 0.0
        for ra, rb in zip(runs["A"], runs["B"], strict=True)
    ]
    errors = side_a["error_count"] + side_b["error_count"]
    verdict = None
    if scenario.target is not None:
        verdict = "PASS" if ratio >= scenario.target else "MISS"
    return {
        "name": scenario.name,
        "description": scenario.description,
        "kind": "requests",
        "unit": "req/s",
        **(load.summary() if hasattr(load, "summary") else {}),
        "method": load.method,
        "path": load.path,
        "a": side_a,
        "b": side_b,
        "ratios": ratios,
        "ratio": ratio,
        "cpu_ratios": cpu_ratios,
        "cpu_ratio": statistics.median(cpu_ratios),
        "target": scenario.target,
        "verdict": verdict,
        "errors": errors,
        "problems": problems,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [s.name for s in SCENARIOS]
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark webframe against raw Tornado with wrk (ratios A/B).",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these scenarios (repeatable or comma-separated): {', '.join(names)}",
    )
    p.add_argument("--duration", type=int, help="seconds per measurement (default 3)")
    p.add_argument("--connections", type=int, help="wrk connections (default 64)")
    p.add_argument("--rounds", type=int, help="A/B pairs per scenario (default 4)")
    p.add_argument("--warmup", type=int, help="warm-up seconds per server (default 2)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round of 1 s, 8 connections, no warm-up",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help="where latest.json and ratios.png go (default bench/results)",
    )
    p.add_argument(
        "--ref",
        metavar="REV",
        help="benchmark webframe/ as committed at REV (e.g. HEAD) instead of the working tree",
    )
    p.add_argument(
        "--http",
        choices=("httptools", "tornado"),
        default="httptools",
        help="connection layer of the webframe servers (default httptools)",
    )
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = p.parse_args(argv)
    selected: list[str] = []
    for item in args.only or []:
        selected += [n.strip() for n in item.split(",") if n.strip()]
    unknown = [n for n in selected if n not in names]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(names)}")
    args.selected = selected
    for name in ("duration", "connections", "rounds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        p.error("--warmup must not be negative")
    return args


def config(args: argparse.Namespace) -> Config:
    base = (
        Config(duration=1, connections=8, rounds=1, warmup=0, quick=True)
        if args.quick
        else Config(duration=3, connections=64, rounds=4, warmup=2, quick=False)
    )
    return Config(
        duration=args.duration or base.duration,
        connections=args.connections or base.connections,
        rounds=args.rounds or base.rounds,
        warmup=base.warmup if args.warmup is None else args.warmup,
        quick=base.quick,
        http=args.http,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            target = f"target {s.target}" if s.target is not None else "no target"
            print(f"{s.name:21} A={s.a.label} B={s.b.label} ({target}): {s.description}")
        return 0
    try:
        wrk = find_wrk()
    except WrkMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = config(args)
    with contextlib.ExitStack() as stack:
        if args.ref:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ref-"))
            try:
                snapshot(args.ref, Path(tmp))
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"error: cannot take webframe/ at {args.ref}: {exc}", file=sys.stderr)
                return 2
            cfg = dataclasses.replace(cfg, pythonpath=(tmp,), ref=args.ref)
        return run(args, cfg, wrk)


def run(args: argparse.Namespace, cfg: Config, wrk: str) -> int:
    table = by_name()
    chosen = [table[n] for n in dict.fromkeys(args.selected)] if args.selected else SCENARIOS
    meta = metadata(cfg, wrk)
    pin = meta["server_cpu_pin"]
    log(
        f"bench: {len(chosen)} scenario(s), {cfg.rounds} round(s) x 2 x {cfg.duration}s, "
        f"{cfg.connections} connections, warm-up {cfg.warmup}s, webframe on {cfg.http}; "
        + ("servers on CPU 0, wrk on CPU 1" if pin else "no CPU pinning (needs taskset, 2 CPUs)")
    )
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    failed = False
    for scenario in chosen:
        log(f"{scenario.name}: A={scenario.a.label} vs B={scenario.b.label}")
        try:
            if hasattr(scenario.load, "run_scenario"):
                results.append(scenario.load.run_scenario(scenario, cfg))
            else:
                results.append(run_scenario(scenario, cfg, wrk))
        except ScenarioSkipped as exc:
            log(f"  {scenario.name}: SKIPPED: {exc}")
            results.append({"name": scenario.name, "skipped": str(exc)})
        except Exception as exc:
            failed = True
            log(f"  {scenario.name}: FAILED: {exc}")
            results.append({"name": scenario.name, "failed": str(exc)})
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    data = {"meta": meta, "scenarios": results}
    args.output.mkdir(parents=True, exist_ok=True)
    json_path = report.write_json(data, args.output / "latest.json")
    print(report.markdown(data))
    log(f"bench: wrote {json_path}")
    with contextlib.suppress(ImportError):
        chart = report.write_chart(data, args.output / "ratios.png")
        if chart is not None:
            log(f"bench: wrote {chart}")
    bad = failed or any(r.get("errors") or r.get("problems") for r in results)
    return 1 if bad else 0
