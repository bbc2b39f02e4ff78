"""Driving wrk: build its command line and Lua script, parse what it prints."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "wrk is not installed; install it: apt-get install wrk"

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h)", re.M)
_LAT_AVG = re.compile(r"^\s*Latency\s+([0-9.]+)(us|ms|s|m|h)", re.M)
_PCT = re.compile(r"^\s*(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m|h)", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.M)


class WrkMissingError(RuntimeError):
    """wrk is not on PATH."""


class WrkOutputError(RuntimeError):
    """wrk ran but printed something this parser does not understand."""


def find_wrk() -> str:
    """Path of the wrk binary, or raise :class:`WrkMissingError` with the install hint."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissingError(INSTALL_HINT)
    return path


@dataclass
class WrkResult:
    """One wrk run: throughput, latency (ms) and every kind of error it counted."""

    rps: float
    requests: int
    latency_avg_ms: float
    latency_ms: dict[str, float]  # "50", "75", "90", "99" -> ms
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_output(text: str) -> WrkResult:
    """Parse wrk's text report (run with ``--latency``)."""
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    avg = _LAT_AVG.search(text)
    if rps is None or total is None or avg is None:
        raise WrkOutputError(f"cannot read wrk's report:\n{text}")
    pcts = {m.group(1): _ms(m.group(2), m.group(3)) for m in _PCT.finditer(text)}
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    sock = _SOCKET.search(text)
    if sock is not None:
        for key, value in zip(("connect", "read", "write", "timeout"), sock.groups(), strict=True):
            errors[key] = int(value)
    non2xx = _NON_2XX.search(text)
    if non2xx is not None:
        errors["status"] = int(non2xx.group(1))
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        latency_avg_ms=_ms(avg.group(1), avg.group(2)),
        latency_ms=pcts,
        errors=errors,
    )


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass(frozen=True)
class WrkLoad:
    """What wrk sends: one request, repeated by every connection.

    A method other than GET, a body or headers go into a Lua script (``wrk.method``,
    ``wrk.body``, ``wrk.headers``), set once at start-up so no Lua runs per request.
    """

    path: str = "/"
    method: str = "GET"
    body: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def script(self) -> str | None:
        """The Lua script text, or None when plain ``wrk URL`` sends the request."""
        if self.method == "GET" and self.body is None and not self.headers:
            return None
        lines = [f"wrk.method = {_lua_string(self.method)}"]
        if self.body is not None:
            lines.append(f"wrk.body = {_lua_string(self.body)}")
        for name, value in self.headers:
            lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
        return "\n".join(lines) + "\n"

    def run(
        self,
        base_url: str,
        duration: int,
        connections: int,
        workdir: Path,
        pin: list[str],
        wrk: str,
    ) -> WrkResult:
        """Run wrk for ``duration`` seconds (one thread: it has one CPU) and parse it."""
        cmd = [*pin, wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
        text = self.script()
        if text is not None:
            script = workdir / "load.lua"
            script.write_text(text)
            cmd += ["-s", str(script)]
        cmd.append(base_url + self.path)
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration + 30, check=False
        )
        if proc.returncode != 0:
            raise WrkOutputError(
                f"wrk exited with {proc.returncode}: {proc.stderr.strip() or proc.stdout}"
            )
        return parse_output(proc.stdout)
