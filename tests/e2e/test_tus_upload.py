"""The locker's resumable uploads in Chromium: tus-js-client from the demo's static
files, pause and resume, a reload in the middle, and a 413 shown in the page.

This module runs its own demo server with a 40 MiB limit (the package's server
allows 2 MB, too little for the 8 MiB at which the page switches to tus).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Server, demo_server
from .helpers import register

MiB = 1024 * 1024
LIMIT = 40 * MiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo with a 40 MiB upload limit (overrides the package's server here)."""
    with demo_server(tmp_path_factory.mktemp("e2e-tus-instance"), LIMIT) as server:
        yield server


def throttle(page: Any, bytes_per_second: int) -> None:
    """Slow the page's uploads down (Chromium's network emulation), so a pause lands mid-way."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def progress(page: Any) -> int:
    return int(page.eval_on_selector("#upload-progress", "el => el.value"))


def stored_upload_url(page: Any) -> str | None:
    return page.evaluate(
        """() => {
          for (let i = 0; i < localStorage.length; i++) {
            const key = localStorage.key(i);
            if (key.startsWith("tus::")) return JSON.parse(localStorage.getItem(key)).uploadUrl;
          }
          return null;
        }"""
    )


def server_offset(page: Any, url: str) -> int:
    r = page.request.head(url, headers={"Tus-Resumable": "1.0.0"})
    assert r.status == 200, r.status
    return int(r.headers["upload-offset"])


def test_pause_reload_and_resume_a_large_upload(new_page: Any, tmp_path: Path) -> None:
    page = new_page()
    register(page, "tessa", "correct horse battery")
    data = os.urandom(20 * MiB)
    path = tmp_path / "field recording.wav"
    path.write_bytes(data)
    page.goto("/files")
    throttle(page, 4 * MiB)
    page.set_input_files("#upload-files", str(path))
    page.click("#upload-button")
    page.wait_for_selector("#upload-pause:not([hidden])")
    assert page.get_attribute("#upload-form", "data-method") == "tus"
    page.wait_for_function("document.getElementById('upload-progress').value >= 10")
    page.click("#upload-pause")
    assert page.get_attribute("#upload-form", "data-state") == "paused"
    page.wait_for_selector("#upload-resume:not([hidden])")
    url = stored_upload_url(page)
    assert url is not None and "/files/tus/" in url
    time.sleep(0.5)  # the server notices the aborted PATCH and keeps what arrived
    paused_at = server_offset(page, url)
    assert 0 < paused_at < len(data)
    time.sleep(1.0)
    assert server_offset(page, url) == paused_at  # paused means no bytes move
    shown = progress(page)
    page.click("#upload-resume")
    page.wait_for_function(f"document.getElementById('upload-progress').value > {shown}")
    # A reload in the middle: the page says how to continue, and does.
    page.reload()
    page.wait_for_selector("#upload-resume-note:not([hidden])")
    before_reload = server_offset(page, url)
    assert before_reload >= paused_at
    throttle(page, 64 * MiB)
    page.set_input_files("#upload-files", str(path))
    with page.expect_navigation(timeout=60_000):
        page.click("#upload-button")
    # The same upload was finished (not a new one started from zero).
    assert server_offset(page, url) == len(data)
    assert page.locator(".flash-success").inner_text() == "Uploaded field recording.wav."
    listing = page.request.get("/files", headers={"Accept": "application/json"})
    [row] = json.loads(listing.body())["files"]
    assert row["name"] == "field recording.wav"
    assert row["size"] == len(data)
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored_upload_url(page) is None  # forgotten once finished


def test_a_file_over_the_limit_shows_the_servers_413(new_page: Any, tmp_path: Path) -> None:
    page = new_page()
    register(page, "theo", "correct horse battery")
    path = tmp_path / "too big.bin"
    with open(path, "wb") as fh:
        fh.truncate(LIMIT + MiB)
    page.goto("/files")
    page.set_input_files("#upload-files", str(path))
    page.click("#upload-button")
    error = page.wait_for_selector("#upload-error:not([hidden])")
    assert "41.0 MiB" in error.inner_text() or "41 MiB" in error.inner_text()
    assert "40 MiB" in error.inner_text() or "40.0 MiB" in error.inner_text()
    listing = page.request.get("/files", headers={"Accept": "application/json"})
    assert json.loads(listing.body())["files"] == []
