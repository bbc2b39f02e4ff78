"""Reporting: the Markdown table, latest.json and the ratio chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.1f}"


def _result(r: dict[str, Any]) -> str:
    flags = [r["verdict"]] if r["verdict"] else ["-"]
    if r["errors"]:
        flags.append("**ERRORS**")
    if r["problems"]:
        flags.append("**CHECK**")
    return " ".join(flags)


def _errors(side: dict[str, Any]) -> str:
    if not side["error_count"]:
        return "0"
    parts = ", ".join(f"{k} {v}" for k, v in side["errors"].items() if v)
    return f"**{side['error_count']}** ({parts})"


def markdown(data: dict[str, Any]) -> str:
    """The results as a Markdown table (one row per scenario) plus notes."""
    meta = data["meta"]
    lines = [
        f"webframe {meta['webframe']} (git {meta['git_commit']}), Tornado {meta['tornado']}, "
        f"Python {meta['python']}, {meta['wrk']}; {meta['rounds']} round(s) x 2 x "
        f"{meta['duration_s']}s, {meta['connections']} connections, warm-up "
        f"{meta['warmup_s']}s, pinning: "
        + ("server CPU 0, wrk CPU 1" if meta["server_cpu_pin"] else "none"),
        "",
        "| scenario | A | B | A req/s | B req/s | A/B (min-max) | target | result "
        "| CPU A/B | A CPU us/req | B CPU us/req | A p50/p99 ms | B p50/p99 ms "
        "| A RSS MiB | B RSS MiB | errors A | errors B |",
        "|---|---|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for r in data["scenarios"]:
        if "failed" in r:
            lines.append(f"| {r['name']} | | | | | | | **FAILED** | | | | | | | | | |")
            notes.append(f"- {r['name']}: failed: {r['failed'].splitlines()[0]}")
            continue
        a, b = r["a"], r["b"]
        target = "-" if r["target"] is None else f">= {r['target']:.2f}"
        lines.append(
            f"| {r['name']} | {a['label']} | {b['label']} | {a['rps_median']:.0f} "
            f"| {b['rps_median']:.0f} | {r['ratio']:.3f} ({min(r['ratios']):.3f}-"
            f"{max(r['ratios']):.3f}) | {target} | {_result(r)} | {r['cpu_ratio']:.3f} "
            f"| {a['cpu_us_per_request_median']:.0f} | {b['cpu_us_per_request_median']:.0f} "
            f"| {a['latency_p50_ms']:.2f}/{a['latency_p99_ms']:.2f} "
            f"| {b['latency_p50_ms']:.2f}/{b['latency_p99_ms']:.2f} "
            f"| {_mib(a['rss_peak_kib'])} | {_mib(b['rss_peak_kib'])} "
            f"| {_errors(a)} | {_errors(b)} |"
        )
        notes += [f"- {r['name']}: {p}" for p in r["problems"]]
    lines.append("")
    lines.append(
        "A/B: median of the per-round ratios (rounds alternate A, B); req/s and latency: "
        "medians over rounds; CPU A/B: median per-round ratio of B's server CPU time per "
        "request to A's (efficiency, like req/s A/B but less moved by other load on the "
        "machine); RSS: peak (VmHWM) at the end of the scenario."
    )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def write_chart(data: dict[str, Any], path: Path) -> Path | None:
    """A bar chart of the ratios with their targets; raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in data["scenarios"] if "failed" not in r]
    if not rows:
        return None
    names = [r["name"] for r in rows]
    ratios = [r["ratio"] for r in rows]
    colors = [
        "tab:red"
        if r["errors"] or r["verdict"] == "MISS"
        else "tab:green"
        if r["verdict"] == "PASS"
        else "tab:blue"
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 4))
    x = range(len(rows))
    ax.bar(x, ratios, color=colors)
    lows = [r["ratio"] - min(r["ratios"]) for r in rows]
    highs = [max(r["ratios"]) - r["ratio"] for r in rows]
    ax.errorbar(x, ratios, yerr=[lows, highs], fmt="none", ecolor="black", capsize=4)
    for i, r in enumerate(rows):
        if r["target"] is not None:
            ax.plot([i - 0.4, i + 0.4], [r["target"]] * 2, color="black", linestyle="--")
        ax.text(i, r["ratio"], f"{r['ratio']:.3f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(list(x), names)
    ax.set_ylabel("throughput ratio A/B")
    ax.set_title("webframe vs raw Tornado (dashed: target)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
