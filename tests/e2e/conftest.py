"""The demo as a real ``python run.py`` subprocess, and a headless Chromium driving it.

The browser runs through Playwright's *sync* API from plain pytest functions. That
API keeps its own asyncio loop marked as running on this thread for as long as
Playwright is started, which would confuse pytest-tornado's tests; so Playwright
lives in a package-scoped fixture and is stopped before any other package runs.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..conftest import REQUIRE_SERVICES, ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WIDE, NARROW = 1280, 375
HEIGHT = 800
#: the upload limit the server runs with: a 3 MB file is "too large".
MAX_UPLOAD_SIZE = 2_000_000


def _unavailable(message: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(message + " (WEBFRAME_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(message)


@dataclass
class Server:
    """The running demo: its base URL and everything it printed."""

    url: str
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Lines of the server's output that show an unhandled error."""
        return [line for line in self.log if "Traceback" in line or "ERROR" in line]


@contextmanager
def demo_server(instance: Path, max_upload_size: int) -> Iterator[Server]:
    """``python run.py --port 0 --no-debug`` on a free port with its instance folder in
    ``instance`` and that upload limit, stopped by its PID at the end."""
    env = {
        **os.environ,
        "WEBFRAME_COOKIE_SECRET": secrets.token_urlsafe(32),
        "WEBFRAME_INSTANCE_PATH": str(instance),
        "WEBFRAME_MAX_UPLOAD_SIZE": str(max_upload_size),
        "WEBFRAME_ACCESS_LOG": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "run.py", "--port", "0", "--no-debug"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def drain() -> None:  # keeps the pipe from filling up, and keeps the log
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    url = None
    deadline = time.monotonic() + 20
    while url is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        m = re.search(r"serving on (http://\S+?)/? ", line)
        if m:
            url = m.group(1)
    if url is None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        pytest.fail("the demo server did not start:\n" + "".join(log))
    server = Server(url=url, proc=proc, log=log)
    try:
        yield server
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo with the package's small upload limit (MAX_UPLOAD_SIZE)."""
    with demo_server(tmp_path_factory.mktemp("e2e-instance"), MAX_UPLOAD_SIZE) as server:
        yield server


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """A headless Chromium (the system's; Playwright's own browsers are not used)."""
    if not os.path.exists(CHROMIUM):
        _unavailable(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable(
            "the playwright package is not installed: pip install -e '.[test]'"
            " (and apt-get install chromium)"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        pw.stop()


@pytest.fixture
def new_page(browser: Any, server: Server) -> Iterator[Callable[..., Any]]:
    """``new_page(js=True, **context_options)``: a page in a fresh browser context
    (its own cookies: another visitor). Contexts close after the test, and the test
    fails if the server printed an unhandled error meanwhile."""
    contexts: list[Any] = []
    errors_before = len(server.errors())

    def make(js: bool = True, **options: Any) -> Any:
        context = browser.new_context(
            base_url=server.url,
            viewport={"width": WIDE, "height": HEIGHT},
            java_script_enabled=js,
            accept_downloads=True,
            **options,
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        return page

    page_errors: list[str] = []
    yield make
    for context in contexts:
        context.close()
    assert page_errors == [], f"JavaScript errors in the page: {page_errors}"
    assert server.errors()[errors_before:] == [], "the server logged errors"
