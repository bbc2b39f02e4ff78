"""The scenario registry: what each benchmark compares, and the ratio it must reach.

A scenario runs two servers, A and B, under the same load and reports the
throughput ratio A/B. To add one, append a :class:`Scenario` to ``SCENARIOS``:
give the two server commands (``webframe(...)`` / ``tornado(...)`` build the usual
ones; a new endpoint goes into both ``bench/servers/*_app.py``), the request wrk
sends, and optionally a target ratio and a ``prepare`` hook creating fixtures in
the scenario's temporary folder. Server arguments may use ``{workdir}``, that
folder's path.

Planned, once the features land: ``session-read``/``session-write`` per store
(memory, sqlite, redis: one scenario each, built in a loop) and
``upload-1g``/``upload-8x128m``. Uploads need a client other than wrk; the
runner only needs ``load.run(...)`` to return a :class:`~bench.wrk.WrkResult`,
so such a load can be a different class with the same ``run`` method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.servers.common import write_static
from bench.wrk import WrkLoad


@dataclass(frozen=True)
class Server:
    """How to start one server: ``python -m MODULE ARGS --port N``."""

    label: str
    module: str
    args: tuple[str, ...] = ()

    def argv(self, workdir: Path) -> list[str]:
        return ["-m", self.module, *(a.format(workdir=workdir) for a in self.args)]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    a: Server
    b: Server
    load: WrkLoad
    #: the ratio A/B a run must reach to PASS; None: reported only.
    target: float | None = None
    #: called with the scenario's temporary folder before the servers start.
    prepare: Callable[[Path], None] | None = None


def webframe(scenario: str, *args: str, label: str = "webframe") -> Server:
    """The webframe server of ``bench/servers/webframe_app.py`` for ``scenario``."""
    return Server(
        label,
        "bench.servers.webframe_app",
        ("--scenario", scenario, "--instance-path", "{workdir}/instance", *args),
    )


def tornado(scenario: str, *args: str, label: str = "tornado") -> Server:
    """The raw-Tornado twin of ``bench/servers/tornado_app.py`` for ``scenario``."""
    return Server(label, "bench.servers.tornado_app", ("--scenario", scenario, *args))


def _static_fixture(workdir: Path) -> None:
    write_static(workdir / "static")


JSON_BODY = '{"user": "ada", "items": [1, 2, 3], "active": true, "score": 9.5}'

SCENARIOS: list[Scenario] = [
    Scenario(
        "hello",
        'GET / -> text/plain "Hello, world"',
        webframe("hello"),
        tornado("hello"),
        WrkLoad("/"),
        target=0.97,
    ),
    Scenario(
        "page",
        "GET /page -> template extending a layout (20-row table, escaping)",
        webframe("page"),
        tornado("page"),
        WrkLoad("/page"),
        target=0.95,
    ),
    Scenario(
        "json",
        "POST /echo small JSON body -> the same JSON back",
        webframe("json"),
        tornado("json"),
        WrkLoad("/echo", "POST", JSON_BODY, (("Content-Type", "application/json"),)),
    ),
    Scenario(
        "static",
        "GET /static/blob.bin -> 10 KiB static file",
        webframe("static", "--static-dir", "{workdir}/static"),
        tornado("static", "--static-dir", "{workdir}/static"),
        WrkLoad("/static/blob.bin"),
        prepare=_static_fixture,
    ),
    Scenario(
        "loop",
        "webframe hello: --loop uvloop (A) vs the default asyncio loop (B)",
        webframe("hello", "--loop", "uvloop", label="webframe+uvloop"),
        webframe("hello", label="webframe+asyncio"),
        WrkLoad("/"),
    ),
]


def by_name() -> dict[str, Scenario]:
    return {s.name: s for s in SCENARIOS}
