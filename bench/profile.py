"""Profile both servers of a scenario under wrk load (cProfile, CPU time) and compare them.

``python -m bench.profile hello [--duration 10] [--top 25] [--ref REV]``: each server
runs under cProfile timed by CPU time (``bench/cpuprofile.py``), gets a warm-up and
one wrk run, and is stopped with SIGTERM (which makes cProfile write its stats). The
report gives own time per request by package, then per function on A and on B and
the difference, largest first: where A's extra time per request goes. cProfile slows
call-heavy code, so read the figures as shares, not as absolute costs.

Upload scenarios (``upload-1g``, ``upload-8x128m``) are sampled with py-spy instead
(``pip install py-spy``): one measured round (``--rounds``), both servers sampled at
250 Hz without pausing them; the report gives each function's share of the samples,
own and with callees. ``--quick`` uses the scenario's small file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import ServerProcess, pin_prefixes, snapshot
from bench.runner import Config, measure
from bench.scenarios import Scenario, Server, by_name
from bench.wrk import WrkMissingError, find_wrk

Key = tuple[str, int, str]


def _short(key: Key) -> str:
    filename, line, name = key
    parts = Path(filename).parts
    for anchor in ("site-packages", "webframe", "bench", "lib"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            tail = parts[i + 1 :] if anchor in ("site-packages", "lib") else parts[i:]
            filename = "/".join(tail)
            break
    return f"{filename}:{line}({name})" if line else name


def _group(key: Key) -> str:
    filename = key[0].replace("\\", "/")
    for name in ("webframe", "tornado", "asyncio", "bench", "json", "selectors"):
        if f"/{name}/" in filename or filename.endswith(f"/{name}.py"):
            return name
    if filename == "~":
        return "builtins (C)"
    return "other stdlib"


def profile_side(
    scenario: Scenario,
    server: Server,
    which: str,
    cfg: Config,
    workdir: Path,
    wrk: str,
    bound: list[Any],
    values: dict[str, str],
) -> tuple[dict[Key, tuple[int, float, float]], int, float]:
    """Run ``server`` under cProfile; (stats per function, requests, req/s).

    A load that needs binding (session scenarios: a session started on A) is bound
    to A once it answers; B then gets the same bound load, as in a bench run.
    """
    server_pin, load_pin = pin_prefixes()
    out = workdir / f"{which}.prof"
    argv = ["-m", "bench.cpuprofile", str(out), *server.argv(workdir, values)[1:]]
    proc = ServerProcess(
        f"{which}:{server.label}",
        argv,
        workdir / f"{which}.log",
        server_pin,
        cfg.pythonpath,
        env=server.environ(workdir, values),
    )
    warm = 0
    try:
        proc.start()
        proc.wait_ready(scenario.load.path, timeout=60)
        if not bound:
            load = scenario.load
            bound.append(load.bind(proc, proc) if hasattr(load, "bind") else load)
        if cfg.warmup:
            warm = measure(
                scenario, proc, cfg.warmup, cfg, workdir, load_pin, wrk, bound[0]
            ).wrk.requests
        run = measure(scenario, proc, cfg.duration, cfg, workdir, load_pin, wrk, bound[0])
    finally:
        proc.stop(timeout=30)
    stats = pstats.Stats(str(out))
    table: dict[Key, tuple[int, float, float]] = {}
    for key, (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        table[key] = (nc, tt, ct)
    # Warm-up requests are in the profile too (wrk's count misses a few unfinished ones).
    return table, warm + run.wrk.requests, run.rps


def report(
    a: dict[Key, tuple[int, float, float]],
    na: int,
    b: dict[Key, tuple[int, float, float]],
    nb: int,
    top: int,
) -> str:
    per_a = {k: 1e6 * v[1] / na for k, v in a.items()}
    per_b = {k: 1e6 * v[1] / nb for k, v in b.items()}
    tot_a, tot_b = sum(per_a.values()), sum(per_b.values())
    lines = [
        f"profiled own time per request: A {tot_a:.1f} us, B {tot_b:.1f} us "
        f"(A - B = {tot_a - tot_b:+.1f} us)",
    ]
    groups_a: dict[str, float] = {}
    groups_b: dict[str, float] = {}
    for per, groups in ((per_a, groups_a), (per_b, groups_b)):
        for k, v in per.items():
            groups[_group(k)] = groups.get(_group(k), 0.0) + v
    lines += ["", "| own time by package | A us/req | A share | B us/req | B share |"]
    lines.append("|---|--:|--:|--:|--:|")
    for g in sorted(set(groups_a) | set(groups_b), key=lambda g: -groups_a.get(g, 0.0)):
        ga, gb = groups_a.get(g, 0.0), groups_b.get(g, 0.0)
        lines.append(
            f"| {g} | {ga:.1f} | {100 * ga / tot_a:.1f}% | {gb:.1f} | {100 * gb / tot_b:.1f}% |"
        )
    lines += [
        "",
        "| function (largest A-B first) | A us/req | B us/req | A-B us/req "
        "| A calls/req | B calls/req |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    keys = set(per_a) | set(per_b)
    diffs = sorted(keys, key=lambda k: per_a.get(k, 0.0) - per_b.get(k, 0.0), reverse=True)
    for k in diffs[:top]:
        ca = a.get(k, (0, 0, 0))[0] / na
        cb = b.get(k, (0, 0, 0))[0] / nb
        lines.append(
            f"| {_short(k)} | {per_a.get(k, 0.0):.2f} | {per_b.get(k, 0.0):.2f} "
            f"| {per_a.get(k, 0.0) - per_b.get(k, 0.0):+.2f} | {ca:.2f} | {cb:.2f} |"
        )
    lines += ["", "Cumulative time per request (A), top entries:", ""]
    cum = sorted(a.items(), key=lambda kv: kv[1][2], reverse=True)
    for k, (nc, _tt, ct) in cum[:top]:
        lines.append(f"  {1e6 * ct / na:8.1f} us  {nc / na:6.2f} calls/req  {_short(k)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    names = list(by_name())
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("scenario", choices=names)
    p.add_argument("--duration", type=int, default=10, help="seconds of measured load")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up (profiled too)")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--top", type=int, default=25, help="rows to show")
    p.add_argument("--ref", metavar="REV", help="profile webframe/ as committed at REV")
    p.add_argument("--rounds", type=int, default=1, help="upload rounds (upload scenarios)")
    p.add_argument("--quick", action="store_true", help="upload scenarios: the small file")
    p.add_argument(
        "--http",
        choices=("httptools", "tornado"),
        default="httptools",
        help="connection layer of the webframe servers (default httptools)",
    )
    args = p.parse_args(argv)
    if hasattr(by_name()[args.scenario].load, "run_scenario"):
        return profile_uploads(args)
    try:
        wrk = find_wrk()
    except WrkMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scenario = by_name()[args.scenario]
    cfg = Config(args.duration, args.connections, 1, args.warmup, quick=False, http=args.http)
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-profile-{scenario.name}-") as tmp,
        contextlib.ExitStack() as services,
    ):
        workdir = Path(tmp)
        if args.ref:
            src = snapshot(args.ref, workdir / "ref")
            cfg = dataclasses.replace(cfg, pythonpath=(str(src),), ref=args.ref)
        if scenario.prepare is not None:
            scenario.prepare(workdir)
        # The same values a bench run gives: the connection layer, then whatever the
        # scenario's service (Redis, PostgreSQL, SeaweedFS) reports once it is up.
        values: dict[str, str] = {"http": args.http}
        if scenario.service is not None:
            values.update(services.enter_context(scenario.service(workdir)))
        bound: list[Any] = []
        a, na, rps_a = profile_side(scenario, scenario.a, "A", cfg, workdir, wrk, bound, values)
        b, nb, rps_b = profile_side(scenario, scenario.b, "B", cfg, workdir, wrk, bound, values)
    print(
        f"{scenario.name}: A={scenario.a.label} {rps_a:.0f} req/s, "
        f"B={scenario.b.label} {rps_b:.0f} req/s under cProfile; {na} / {nb} requests"
    )
    print(report(a, na, b, nb, args.top))
    return 0


def profile_uploads(args: argparse.Namespace) -> int:
    """py-spy both servers of an upload scenario during ``args.rounds`` rounds."""
    from bench.pyspy import collapsed_report

    scenario = by_name()[args.scenario]
    cfg = Config(1, 1, args.rounds, 0, quick=args.quick)
    with tempfile.TemporaryDirectory(prefix=f"bench-profile-{scenario.name}-") as tmp:
        workdir = Path(tmp)
        if args.ref:
            src = snapshot(args.ref, workdir / "ref")
            cfg = dataclasses.replace(cfg, pythonpath=(str(src),), ref=args.ref)
        result = scenario.load.run_scenario(scenario, cfg, profile_dir=workdir, rounds=args.rounds)
        a, b = result["a"], result["b"]
        print(
            f"{scenario.name}: A={a['label']} {a['mbps_median']:.1f} MB/s "
            f"({a['cpu_s_per_gib_median']:.2f} CPU s/GiB), B={b['label']} "
            f"{b['mbps_median']:.1f} MB/s ({b['cpu_s_per_gib_median']:.2f} CPU s/GiB) "
            "under py-spy"
        )
        for which in ("A", "B"):
            print(f"\n## {which}: {result[which.lower()]['label']}\n")
            print(collapsed_report(workdir / f"{which}.txt", args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
