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


def _upload(r: dict[str, Any]) -> bool:
    return r.get("kind") == "upload"


def _rate(r: dict[str, Any], side: dict[str, Any]) -> str:
    """Throughput with its unit: req/s for wrk scenarios, MB/s for uploads."""
    if _upload(r):
        return f"{side['mbps_median']:.1f} MB/s"
    return f"{side['rps_median']:.0f} req/s"


def _cpu(r: dict[str, Any], side: dict[str, Any]) -> str:
    if _upload(r):
        return f"{side['cpu_s_per_gib_median']:.2f} s/GiB"
    return f"{side['cpu_us_per_request_median']:.0f} us/req"


def _latency(r: dict[str, Any], side: dict[str, Any]) -> str:
    if _upload(r):
        return f"{side['wall_s_median']:.2f} s wall"
    return f"{side['latency_p50_ms']:.2f}/{side['latency_p99_ms']:.2f} ms"


def _target(r: dict[str, Any]) -> str:
    parts = [] if r["target"] is None else [f">= {r['target']:.2f}"]
    if r.get("cpu_target") is not None:
        parts.append(f"CPU >= {r['cpu_target']:.2f}")
    if r.get("rss_target_mib") is not None:
        parts.append(f"A RSS < {r['rss_target_mib']:g} MiB")
    return ", ".join(parts) or "-"


def _upload_notes(r: dict[str, Any]) -> list[str]:
    a, b = r["a"], r["b"]
    checks = "; ".join(
        f"{c['what']} {c['value']:.2f} ({c['target']}) {'ok' if c['ok'] else 'MISSED'}"
        if isinstance(c["value"], float)
        else f"{c['what']}: {'ok' if c['ok'] else 'NO'}"
        for c in r["checks"]
    )
    return [
        f"- {r['name']}: {r['files_per_round']} x {r['file_size'] / 2**20:.0f} MiB per round, "
        f"{r['rounds']} round(s); MB/s per round A "
        + ", ".join(f"{v:.1f}" for v in a["mbps"])
        + "; B "
        + ", ".join(f"{v:.1f}" for v in b["mbps"])
        + _cpu_split(a, b)
        + f"; lifetime peak RSS (incl. login) A {_mib(a['rss_lifetime_peak_kib'])} MiB, "
        f"B {_mib(b['rss_lifetime_peak_kib'])} MiB; checks: {checks}"
    ]


def _cpu_split(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Median user/system CPU s/GiB of both sides (and the storage service's), if known."""
    if "user_s_per_gib_median" not in a:
        return ""
    text = "; CPU s/GiB user/system A {:.2f}/{:.2f}, B {:.2f}/{:.2f}".format(
        a["user_s_per_gib_median"], a["sys_s_per_gib_median"],
        b["user_s_per_gib_median"], b["sys_s_per_gib_median"],
    )  # fmt: skip
    if "storage_cpu_s_per_gib_median" in a:
        text += f"; A's storage service {a['storage_cpu_s_per_gib_median']:.2f} CPU s/GiB"
    return text


def markdown(data: dict[str, Any]) -> str:
    """The results as a Markdown table (one row per scenario) plus notes."""
    meta = data["meta"]
    lines = [
        f"webframe {meta['webframe']} (git {meta['git_commit']}), Tornado {meta['tornado']}, "
        f"Python {meta['python']}, {meta['wrk']}; {meta['rounds']} round(s) x 2 x "
        f"{meta['duration_s']}s, {meta['connections']} connections, warm-up "
        f"{meta['warmup_s']}s, pinning: "
        + ("server CPU 0, wrk/curl CPU 1" if meta["server_cpu_pin"] else "none")
        + (f"; load average at start {meta['loadavg']}" if meta.get("loadavg") else ""),
        "",
        "| scenario | A | B | A throughput | B throughput | A/B (min-max) | target | result "
        "| CPU A/B | A CPU | B CPU | A latency | B latency "
        "| A RSS MiB | B RSS MiB | errors A | errors B |",
        "|---|---|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for r in data["scenarios"]:
        if "failed" in r or "skipped" in r:
            what = "**FAILED**" if "failed" in r else "SKIPPED"
            reason = r.get("failed") or r.get("skipped") or ""
            lines.append(f"| {r['name']} | | | | | | | {what} | | | | | | | | | |")
            notes.append(f"- {r['name']}: {what.strip('*').lower()}: {reason.splitlines()[0]}")
            continue
        a, b = r["a"], r["b"]
        lines.append(
            f"| {r['name']} | {a['label']} | {b['label']} | {_rate(r, a)} "
            f"| {_rate(r, b)} | {r['ratio']:.3f} ({min(r['ratios']):.3f}-"
            f"{max(r['ratios']):.3f}) | {_target(r)} | {_result(r)} | {r['cpu_ratio']:.3f} "
            f"| {_cpu(r, a)} | {_cpu(r, b)} | {_latency(r, a)} | {_latency(r, b)} "
            f"| {_mib(a['rss_peak_kib'])} | {_mib(b['rss_peak_kib'])} "
            f"| {_errors(a)} | {_errors(b)} |"
        )
        if _upload(r):
            notes += _upload_notes(r)
        if r.get("session_counter"):
            counter = r["session_counter"]
            notes.append(
                f"- {r['name']}: session counter n after each A run: "
                + " -> ".join(str(n) for n in counter)
                + f" ({a['requests']} requests to A measured)"
            )
        notes += [f"- {r['name']}: {p}" for p in r["problems"]]
    lines.append("")
    lines.append(
        "Throughput: req/s (wrk) or, for upload-* rows, MB/s (10^6 bytes/s of wall time, "
        "curl). A/B: median of the per-round ratios (rounds alternate A, B; upload rounds "
        "alternate which side goes first, after one full-size warm-up batch each) of that "
        "throughput; medians over rounds elsewhere. CPU: server CPU time per request "
        "(us/req) or per GiB uploaded (s/GiB); CPU A/B: median per-round ratio of B's CPU "
        "per unit to A's (efficiency, like the throughput ratio but less moved by other "
        "load on the machine). Latency: wrk p50/p99, or median wall time per upload. "
        "RSS: peak (VmHWM) at the end of the scenario; for uploads, the peak during the "
        "uploads (reset after the demo login)."
    )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def write_chart(data: dict[str, Any], path: Path) -> Path | None:
    """A bar chart of the ratios with their targets; raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in data["scenarios"] if "failed" not in r and "skipped" not in r]
    if not rows:
        return None
    names = [f"{r['name']}\n({r.get('unit', 'req/s')})" for r in rows]
    ratios = [r["ratio"] for r in rows]
    colors = [
        "tab:red"
        if r["errors"] or r["verdict"] == "MISS"
        else "tab:green"
        if r["verdict"] == "PASS"
        else "tab:blue"
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 4.5))
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
    ax.set_xticks(
        list(x),
        names,
        rotation=30 if len(rows) > 6 else 0,
        ha="right" if len(rows) > 6 else "center",
        fontsize=8,
    )
    ax.set_ylabel("throughput ratio A/B (req/s; MB/s for uploads)")
    ax.set_title("A/B per scenario (dashed: target; green PASS, red MISS)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
