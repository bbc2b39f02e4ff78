"""The demo locker's tus endpoint: finished uploads join the locker, partial ones never do."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from webframe.testing import Client

from .support import accounts

KiB = 1024
LIMIT = 256 * KiB
V = {"Tus-Resumable": "1.0.0"}
OCTETS = {**V, "Content-Type": "application/offset+octet-stream"}
JSON = {"Accept": "application/json"}


@pytest.fixture
def app(tmp_path: Path, io_loop: Any):  # type: ignore[no-untyped-def]
    from handlers import DEMO_DEFAULTS, make_app
    from webframe.testing import test_settings

    settings = test_settings(
        **{
            **DEMO_DEFAULTS,
            "instance_path": str(tmp_path / "instance"),
            "max_upload_size": LIMIT,
        }
    )
    application = make_app(settings)
    yield application
    io_loop.run_sync(application.aclose)


async def register(client: Client, name: str) -> None:
    await accounts.register(client, name, follow_redirects=True)


async def listed(client: Client) -> list[dict[str, Any]]:
    r = await client.get("/files", headers=JSON)
    assert r.code == 200
    files: list[dict[str, Any]] = json.loads(r.body)["files"]
    return files


async def create(client: Client, length: int, name: str) -> str:
    meta = "filename " + base64.b64encode(name.encode()).decode()
    r = await client.post(
        "/files/tus/", headers={**V, "Upload-Length": str(length), "Upload-Metadata": meta}
    )
    assert r.code == 201, r.body[:300]
    url: str = r.headers["Location"]
    assert url.startswith("/files/tus/")
    return url


async def send(client: Client, url: str, offset: int, data: bytes) -> int:
    r = await client.patch(url, headers={**OCTETS, "Upload-Offset": str(offset)}, body=data)
    return r.code


@pytest.mark.gen_test
async def test_a_finished_tus_upload_joins_the_locker_and_a_partial_one_never_does(
    webframe_client: Client, webframe_second_client: Client
) -> None:
    await register(webframe_client, "tina")
    data = os.urandom(100 * KiB)
    url = await create(webframe_client, len(data), "big video.mp4")
    assert await send(webframe_client, url, 0, data[: 60 * KiB]) == 204
    assert await listed(webframe_client) == []  # nothing partial in the locker
    # Another user cannot see, resume or delete it.
    await register(webframe_second_client, "otto")
    assert (await webframe_second_client.head(url, headers=V)).code == 404
    assert await send(webframe_second_client, url, 60 * KiB, data[60 * KiB :]) == 404
    assert (await webframe_second_client.delete(url, headers=V)).code == 404
    assert await send(webframe_client, url, 60 * KiB, data[60 * KiB :]) == 204
    [row] = await listed(webframe_client)
    assert row["name"] == "big video.mp4"
    assert row["size"] == len(data)
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    r = await webframe_client.get(row["url"])
    assert r.code == 200 and r.body == data
    assert await listed(webframe_second_client) == []
    # The page shows the flash the upload left for it.
    page = (await webframe_client.get("/files")).body.decode()
    assert "Uploaded big video.mp4." in page


@pytest.mark.gen_test
async def test_tus_needs_a_login_and_keeps_the_form_limit(webframe_client: Client) -> None:
    assert (await webframe_client.get("/")).code == 200
    r = await webframe_client.post("/files/tus/", headers={**V, "Upload-Length": "10"})
    assert r.code == 403
    await register(webframe_client, "tina")
    r = await webframe_client.post(
        "/files/tus/", headers={**V, "Upload-Length": str(LIMIT + 1), **JSON}
    )
    assert r.code == 413
    assert "256 KiB" in json.loads(r.body)["error"]["message"]
    r = await webframe_client.options("/files/tus/")
    assert r.code == 204 and r.headers["Tus-Max-Size"] == str(LIMIT)
    assert await listed(webframe_client) == []


@pytest.mark.gen_test
async def test_the_page_offers_resumable_uploads(webframe_client: Client) -> None:
    await register(webframe_client, "tina")
    page = (await webframe_client.get("/files")).body.decode()
    assert 'data-tus-endpoint="/files/tus/"' in page
    assert "vendor/tus-js-client/tus.min.js" in page
    assert 'id="upload-pause"' in page and 'id="upload-resume"' in page
    for path in ("/static/vendor/tus-js-client/tus.min.js", "/static/js/tus-upload.js"):
        assert (await webframe_client.get(path)).code == 200
