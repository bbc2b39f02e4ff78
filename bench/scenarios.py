"""The scenario registry: what each benchmark compares, and the ratio it must reach.

A scenario runs two servers, A and B, under the same load and reports the
throughput ratio A/B. To add one, append a :class:`Scenario` to ``SCENARIOS``:
give the two server commands (``webframe(...)`` / ``tornado(...)`` build the usual
ones; a new endpoint goes into both ``bench/servers/*_app.py``), the request wrk
sends, and optionally a target ratio and a ``prepare`` hook creating fixtures in
the scenario's temporary folder. Server arguments and environment values may use ``{workdir}``, that
folder's path, and any value a ``service`` yields (``{redis_url}``).

Hooks a load may have, besides ``run(...)`` returning a :class:`~bench.wrk.WrkResult`:

- ``bind(a, b)`` (both :class:`~bench.procs.ServerProcess`, already answering):
  returns the load to measure with, e.g. one carrying a session cookie obtained from
  A (:class:`~bench.sessionload.SessionLoad`); its ``verify(url)`` is called after
  every measured run and returns problems, its ``summary()`` goes into the result.
- ``run_scenario(scenario, cfg)``: the load runs the whole scenario itself and
  returns the result dict, for loads wrk cannot send (uploads with ``curl``:
  :class:`~bench.uploads.UploadLoad`; throughput in MB/s instead of req/s).

A ``service`` (``bench/services.py``) starts something both servers need before
they start (a redis-server) and stops it afterwards; it raises
:class:`~bench.services.ScenarioSkipped` when it cannot run here.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.dbservices import postgres_service, seaweed_service
from bench.servers.common import COOKIE_SECRET, write_static
from bench.services import ScenarioSkipped, both, redis_cluster_service, redis_service
from bench.sessionload import SessionLoad
from bench.tusload import TusUploadLoad
from bench.uploads import UploadLoad
from bench.wrk import WrkLoad

MiB = 1024 * 1024


@dataclass(frozen=True)
class Server:
    """How to start one server: ``python -m MODULE ARGS --port N``."""

    label: str
    module: str
    args: tuple[str, ...] = ()
    #: extra environment (WEBFRAME_* from ours is never passed on).
    env: tuple[tuple[str, str], ...] = ()

    def argv(self, workdir: Path, values: dict[str, str] | None = None) -> list[str]:
        fmt = {"workdir": workdir, **(values or {})}
        return ["-m", self.module, *(a.format(**fmt) for a in self.args)]

    def environ(self, workdir: Path, values: dict[str, str] | None = None) -> dict[str, str]:
        fmt = {"workdir": workdir, **(values or {})}
        return {k: v.format(**fmt) for k, v in self.env}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    a: Server
    b: Server
    load: Any  # WrkLoad, SessionLoad, UploadLoad: see the module docstring
    #: the ratio A/B a run must reach to PASS; None: reported only.
    target: float | None = None
    #: called with the scenario's temporary folder before the servers start.
    prepare: Callable[[Path], None] | None = None
    #: started before the servers, stopped after them (bench/services.py).
    service: Callable[[Path], contextlib.AbstractContextManager[dict[str, str]]] | None = None


LAYER = ("--http", "{http}")


def webframe(scenario: str, *args: str, label: str = "webframe") -> Server:
    """The webframe server of ``bench/servers/webframe_app.py`` for ``scenario``, on the
    connection layer of ``python -m bench --http`` (``{http}``) unless ``args`` say
    ``--http`` themselves (the last flag wins)."""
    return Server(
        label,
        "bench.servers.webframe_app",
        ("--scenario", scenario, "--instance-path", "{workdir}/instance", *LAYER, *args),
    )


def peer(name: str, label: str) -> Server:
    """A hello server of another framework (``bench/servers/NAME_app.py``)."""
    return Server(label, f"bench.servers.{name}_app", ("--scenario", "hello"))


def requires(*modules: str) -> Callable[[Path], contextlib.AbstractContextManager[dict[str, str]]]:
    """A service that skips the scenario when a peer's packages are not installed."""

    @contextlib.contextmanager
    def check(workdir: Path) -> Iterator[dict[str, str]]:
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            raise ScenarioSkipped(
                f"{', '.join(missing)} not installed: pip install 'webframe[bench]'"
            )
        yield {}

    return check


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
        target=2.0,
    ),
    Scenario(
        "page",
        "GET /page -> template extending a layout (20-row table, escaping)",
        webframe("page"),
        tornado("page"),
        WrkLoad("/page"),
        target=1.6,
    ),
    Scenario(
        "json",
        "POST /echo small JSON body -> the same JSON back",
        webframe("json"),
        tornado("json"),
        WrkLoad("/echo", "POST", JSON_BODY, (("Content-Type", "application/json"),)),
        target=1.8,
    ),
    Scenario(
        "static",
        "GET /static/blob.bin -> 10 KiB static file",
        webframe("static", "--static-dir", "{workdir}/static"),
        tornado("static", "--static-dir", "{workdir}/static"),
        WrkLoad("/static/blob.bin"),
        target=1.5,
        prepare=_static_fixture,
    ),
    Scenario(
        "hello-layer",
        "webframe hello on the httptools layer (A) vs on Tornado's HTTPServer (B)",
        webframe("hello", "--http", "httptools", label="webframe httptools"),
        webframe("hello", "--http", "tornado", label="webframe tornado-layer"),
        WrkLoad("/"),
    ),
    Scenario(
        "peer-aiohttp",
        "webframe hello (A) vs aiohttp hello (B, web.Application, asyncio loop)",
        webframe("hello"),
        peer("aiohttp", "aiohttp"),
        WrkLoad("/"),
        service=requires("aiohttp"),
    ),
    Scenario(
        "peer-starlette",
        "webframe hello (A) vs Starlette hello on uvicorn (B, httptools, asyncio loop)",
        webframe("hello"),
        peer("starlette", "starlette+uvicorn"),
        WrkLoad("/"),
        service=requires("starlette", "uvicorn"),
    ),
    Scenario(
        "loop",
        "webframe hello: --loop uvloop (A) vs the default asyncio loop (B)",
        webframe("hello", "--loop", "uvloop", label="webframe+uvloop"),
        webframe("hello", label="webframe+asyncio"),
        WrkLoad("/"),
    ),
]


def _session_scenarios() -> list[Scenario]:
    """session-read-STORE and session-write-STORE for memory, sqlite and redis."""
    stores: dict[str, tuple[str, Any]] = {
        "memory": ("memory://", None),
        "sqlite": ("sqlite:///{workdir}/sessions.db", None),  # {workdir} is absolute
        "redis": ("{redis_url}", redis_service),
    }
    read_targets = {"memory": 0.85, "sqlite": 0.85, "redis": 0.70}
    write_targets = {"sqlite": 0.75}
    out = []
    for kind, targets, what in (
        ("read", read_targets, 'reads session["n"]'),
        ("write", write_targets, 'writes session["n"] += 1'),
    ):
        for store, (url, service) in stores.items():
            out.append(
                Scenario(
                    f"session-{kind}-{store}",
                    f"GET / with a session cookie, {what} ({store} store) vs hello "
                    "without session (same cookie sent)",
                    webframe(f"session-{kind}", "--session-store", url, label=f"session-{kind}"),
                    webframe("hello", "--session-store", url, label="webframe hello"),
                    SessionLoad("/", write=kind == "write"),
                    target=targets.get(store),
                    service=service,
                )
            )
    return out


def _store_scenarios() -> list[Scenario]:
    """The scale-out stores against the single-machine ones, same handler, same run."""
    pairs = (
        ("redis-cluster", "{cluster_url}", "redis", "{redis_url}",
         both(redis_cluster_service, redis_service),
         "a 3-master Redis Cluster (redis-cli --cluster create)", "one redis-server"),
        ("postgresql", "{postgres_url}", "sqlite", "sqlite:///{workdir}/sessions.db",
         postgres_service, "PostgreSQL (initdb in a temporary folder)", "SQLite"),
    )  # fmt: skip
    out = []
    for name, url_a, name_b, url_b, service, what_a, what_b in pairs:
        out.append(
            Scenario(
                f"session-read-{name}",
                f'GET / with a session cookie, reads session["n"]: {what_a} store (A) vs '
                f"{what_b} (B); each side has its own session",
                webframe("session-read", "--session-store", url_a, label=f"session-read {name}"),
                webframe("session-read", "--session-store", url_b, label=f"session-read {name_b}"),
                SessionLoad("/", both=True),
                service=service,
            )
        )
    return out


#: the demo's upload storage on the bench's SeaweedFS (bench/dbservices.py).
S3_STORAGE = (
    ("WEBFRAME_UPLOAD_STORAGE", "{s3_url}"),
    ("AWS_ENDPOINT_URL", "{aws_endpoint_url}"),
    ("AWS_ACCESS_KEY_ID", "{aws_access_key_id}"),
    ("AWS_SECRET_ACCESS_KEY", "{aws_secret_access_key}"),
    ("AWS_DEFAULT_REGION", "{aws_region}"),
)


def demo(label: str = "webframe demo", env: tuple[tuple[str, str], ...] = ()) -> Server:
    """The demo app (``run.py``) as deployed: no debug, settings from the environment
    (``env`` adds some, e.g. :data:`S3_STORAGE`)."""
    return Server(
        label,
        "run",  # `python -m run` in the scenario folder: honours a --ref snapshot
        ("--no-debug",),
        env=(
            ("WEBFRAME_COOKIE_SECRET", COOKIE_SECRET),
            ("WEBFRAME_INSTANCE_PATH", "{workdir}/instance"),
            ("WEBFRAME_MAX_UPLOAD_SIZE", str(2 * 1024 * MiB)),
            ("WEBFRAME_ACCESS_LOG", "0"),
            ("WEBFRAME_HTTP_IMPL", "{http}"),
            *env,
        ),
    )


def raw_upload(scenario: str = "upload") -> Server:
    label = "tornado stream_request_body" + (" + SHA-256" if scenario != "upload" else "")
    return tornado(scenario, "--upload-dir", "{workdir}/raw", label=label)


SCENARIOS += _session_scenarios()
SCENARIOS += _store_scenarios()
SCENARIOS += [
    Scenario(
        "upload-1g",
        "1 GiB file, curl -F multipart POST /files on the demo (logged in, XSRF header) "
        "vs curl -T raw body into a Tornado stream_request_body handler writing a file",
        demo(),
        raw_upload(),
        # 0.8 of the throughput (the streaming-upload issue); CPU >= 1.0 (the
        # connection-layer issue), which the demo's SHA-256 of every byte stands in
        # the way of: upload-1g-sha256 compares the same work.
        UploadLoad(size=1024 * MiB, quick_size=64 * MiB, rss_target_mib=64, cpu_target=1.0),
        target=0.8,
    ),
    Scenario(
        "upload-1g-sha256",
        "upload-1g with the raw Tornado twin also computing the body's SHA-256 as it "
        "arrives (the demo hashes every upload): the two connection layers doing the "
        "same per-byte work",
        demo(),
        raw_upload("upload-sha256"),
        UploadLoad(size=1024 * MiB, quick_size=64 * MiB, rss_target_mib=64, cpu_target=1.0),
    ),
    Scenario(
        "upload-1g-s3",
        "1 GiB file, curl -F multipart POST /files on the demo storing into S3 "
        "(SeaweedFS on loopback, 8 MiB multipart parts) vs the same upload to a second "
        "demo on local storage, same run",
        demo("webframe demo s3", S3_STORAGE),
        demo("webframe demo local"),
        UploadLoad(
            size=1024 * MiB, quick_size=64 * MiB, rss_target_mib=64, b_demo=True, a_storage="s3"
        ),
        service=seaweed_service,
    ),
    Scenario(
        "upload-8x128m",
        "8 concurrent 128 MiB uploads (8 curl processes) to the demo's POST /files "
        "vs 8 concurrent raw bodies to the Tornado stream_request_body handler",
        demo(),
        raw_upload(),
        UploadLoad(size=128 * MiB, quick_size=16 * MiB, concurrency=8, rss_target_mib=96),
    ),
    Scenario(
        "upload-1g-tus",
        "1 GiB file in 16 MiB tus PATCHes to the demo's /files/tus/ (logged in, XSRF "
        "header; bench/tusload.py) vs the same file as a curl -F multipart POST /files "
        "to a second demo process, same run",
        demo(),
        demo(),
        TusUploadLoad(size=1024 * MiB, quick_size=64 * MiB, rss_target_mib=64),
        target=0.9,
    ),
]


def by_name() -> dict[str, Scenario]:
    return {s.name: s for s in SCENARIOS}
