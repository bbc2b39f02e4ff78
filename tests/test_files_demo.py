"""The demo's file locker over HTTP: upload, list, download, ranges, delete, isolation."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from webframe.testing import Client

KiB = 1024
LIMIT = 64 * KiB
JSON = {"Accept": "application/json"}
AJAX = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
TEXT = b"Hello locker!\n" + bytes(range(256)) * 10  # 2574 bytes
NOTES = "Some notes, accented: déjà vu.\n".encode() * 100


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def app(instance: Path):  # type: ignore[no-untyped-def]
    """The demo app with a small upload limit (overrides the conftest fixture)."""
    from handlers import DEMO_DEFAULTS, make_app
    from webframe.testing import test_settings

    settings = test_settings(
        **{**DEMO_DEFAULTS, "instance_path": str(instance), "max_upload_size": LIMIT}
    )
    return make_app(settings)


async def register(client: Client, name: str) -> None:
    # The form page hands out the XSRF token (the home page has no form for visitors).
    assert (await client.get("/register")).code == 200
    r = await client.post(
        "/register",
        form={"username": name, "password": "correct horse battery"},
        follow_redirects=True,
    )
    assert r.code == 200, r.body[:300]
    assert name.encode() in r.body


async def upload(client: Client, *files: tuple[str, bytes]) -> list[dict[str, Any]]:
    r = await client.post("/files", files={"files": list(files)}, headers=JSON)
    assert r.code == 201, r.body[:300]
    saved: list[dict[str, Any]] = json.loads(r.body)["files"]
    return saved


def temp_files(instance: Path) -> list[str]:
    tmp = instance / "uploads" / ".tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def error_of(r: HTTPResponse) -> str:
    message: str = json.loads(r.body)["error"]["message"]
    return message


def page_token(body: bytes) -> str:
    match = re.search(rb'name="_xsrf" value="([^"]+)"', body)
    assert match, "no _xsrf field in the page"
    return match.group(1).decode()


# ------------------------------------------------------------- the owner's view


@pytest.mark.gen_test(timeout=20)
async def test_upload_list_download_delete(client: Client, instance: Path) -> None:
    await register(client, "alice")
    a, b = await upload(client, ("report.txt", TEXT), ("notes.md", NOTES))
    assert (a["name"], a["size"]) == ("report.txt", len(TEXT))
    assert (b["name"], b["size"]) == ("notes.md", len(NOTES))
    assert a["url"] == f"/files/{a['id']}"

    page = (await client.get("/files")).body.decode()
    assert "report.txt" in page and "notes.md" in page
    assert f'data-bytes="{len(TEXT)}"' in page and f'data-bytes="{len(NOTES)}"' in page

    r = await client.get(a["url"])
    assert r.code == 200 and r.body == TEXT
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert 'filename="report.txt"' in r.headers["Content-Disposition"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    etag = r.headers["ETag"]

    r = await client.get(a["url"], headers={"Range": "bytes=14-269"})
    assert r.code == 206
    assert r.body == TEXT[14:270]
    assert r.headers["Content-Range"] == f"bytes 14-269/{len(TEXT)}"

    r = await client.get(a["url"], headers={"If-None-Match": etag})
    assert r.code == 304 and r.body == b""

    # DELETE from script: X-XSRFToken header (the client sends it), 204.
    r = await client.delete(a["url"], headers=AJAX)
    assert r.code == 204
    assert (await client.get(a["url"])).code == 404

    # No-JS form: POST with _method=DELETE and the page's _xsrf field.
    page_body = (await client.get("/files")).body
    r = await client.post(
        b["url"], form={"_xsrf": page_token(page_body), "_method": "DELETE"}, xsrf=False
    )
    assert r.code == 302 and r.headers["Location"] == "/files"
    page = (await client.get("/files")).body.decode()
    assert "Deleted notes.md." in page
    assert "No files yet" in page
    owner_dir = instance / "uploads" / "users" / "1"
    assert os.listdir(owner_dir) == []
    assert temp_files(instance) == []


@pytest.mark.gen_test(timeout=20)
async def test_form_upload_flashes_and_redirects(client: Client) -> None:
    await register(client, "frank")
    # As a browser sends the page's form: the _xsrf field first, no header.
    token = page_token((await client.get("/files")).body)
    r = await client.post(
        "/files",
        form={"_xsrf": token},
        files={"files": [("one.txt", b"1"), ("two.txt", b"22")]},
        xsrf=False,
    )
    assert r.code == 302 and r.headers["Location"] == "/files"
    page = (await client.get("/files")).body.decode()
    assert "Uploaded one.txt, two.txt." in page
    # Not multipart: refused with a message, not silently parsed.
    r = await client.post("/files", form={"_xsrf": token}, xsrf=False, headers=JSON)
    assert r.code == 415 and "multipart/form-data" in error_of(r)
    # A form with no file chosen: the browser still sends multipart, but no file.
    r = await client.post("/files", files={"files": ("", b"")})
    assert r.code == 302
    assert "Choose at least one file" in (await client.get("/files")).body.decode()


@pytest.mark.gen_test(timeout=20)
async def test_too_large_file_is_413_with_message(client: Client, instance: Path) -> None:
    await register(client, "gina")
    big = ("big.bin", b"x" * (LIMIT + 1))
    r = await client.post("/files", files={"files": [("small.txt", b"ok"), big]}, headers=JSON)
    assert r.code == 413
    assert "larger than 64 KiB" in error_of(r) and "'files'" in error_of(r)
    r = await client.post("/files", files={"files": big})
    assert r.code == 413
    assert b"larger than 64 KiB" in r.body and b'class="error-page"' in r.body
    assert temp_files(instance) == []
    page = (await client.get("/files")).body.decode()
    assert "small.txt" not in page and "No files yet" in page
    # The form states the limit in a unit a person can read.
    assert "64 KiB each" in page


# ---------------------------------------------------------------- isolation


@pytest.mark.gen_test(timeout=20)
async def test_other_user_gets_404_for_everything(
    client: Client, second_client: Client, instance: Path
) -> None:
    await register(client, "alice")
    [a] = await upload(client, ("secret-plans.txt", TEXT))
    await register(second_client, "bob")
    [mine] = await upload(second_client, ("bob.txt", b"bob's"))
    url = a["url"]

    listing = (await second_client.get("/files")).body.decode()
    assert "secret-plans.txt" not in listing and "bob.txt" in listing

    missing = f"/files/{mine['id'] + 1000}"
    for path in (url, missing):
        r = await second_client.get(path, headers=JSON)
        assert r.code == 404, path
        assert error_of(r) == "There is no such file in your locker."
        r = await second_client.delete(path, headers=AJAX)
        assert r.code == 404, path
        r = await second_client.post(path, form={"_method": "DELETE"})
        assert r.code == 404, path
        r = await second_client.head(path)
        assert r.code == 404, path
    for path in (
        f"/files/../{a['id']}",
        f"/files/%2e%2e/{a['id']}",
        f"/files/{a['id']}/..",
        f"/files/{a['id']}%2F..",
        f"/files/-{a['id']}",
        f"/files/{a['id']}.txt",
        "/files/99999999999999999999999",
        "/files/raw/../1",
    ):
        r = await second_client.get(path, headers=JSON)
        assert r.code == 404, (path, r.code)
        assert b"secret-plans" not in r.body and TEXT[:20] not in r.body
    # The owner still has the file, untouched.
    r = await client.get(url)
    assert r.code == 200 and r.body == TEXT


@pytest.mark.gen_test(timeout=20)
async def test_stored_outside_static_by_random_name(client: Client, instance: Path) -> None:
    from handlers import DEMO_DEFAULTS

    await register(client, "carol")
    [f] = await upload(client, ("holiday photo.txt", TEXT))
    stored = [p for p in (instance / "uploads").rglob("*") if p.is_file()]
    assert len(stored) == 1
    path = stored[0].resolve()
    assert re.fullmatch(r"[0-9a-f]{32}\.txt", path.name)
    assert "holiday" not in str(path)
    static = Path(DEMO_DEFAULTS["static_path"]).resolve()
    assert static not in path.parents
    assert path.read_bytes() == TEXT
    assert f["sha256"] == hashlib.sha256(TEXT).hexdigest() and f["name"] == "holiday photo.txt"
    # Nothing reachable through /static/ either.
    r = await client.get("/static/" + path.name)
    assert r.code == 404


@pytest.mark.gen_test(timeout=20)
async def test_script_in_filename_is_escaped(client: Client) -> None:
    await register(client, "dave")
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>.txt'
    r = await client.post("/files", files={"files": (evil, b"harmless")})
    assert r.code == 302
    page = (await client.get("/files")).body.decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    # The shown name (list and the flash) is the cleaned one.
    match = re.search(r'class="file-name">([^<]*)</a>', page)
    assert match is not None
    shown = match.group(1)
    assert "script" in shown and "<" not in shown
    assert f"Uploaded {shown}." in page
    r = await client.get("/files", headers=JSON)
    assert r.code == 200


# ------------------------------------------------------------------ raw PUT


@pytest.mark.gen_test(timeout=20)
async def test_raw_put_for_logged_in_user(client: Client, instance: Path) -> None:
    await register(client, "erin")
    r = await client.put(
        "/files/raw/data%20set.csv", body=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}
    )
    assert r.code == 201, r.body[:300]
    info = json.loads(r.body)
    assert info["name"] == "data set.csv" and info["size"] == 8
    assert r.headers["Location"] == info["url"]
    assert (await client.get(info["url"])).body == b"a,b\n1,2\n"
    r = await client.put("/files/raw/big.bin", body=b"z" * (LIMIT + 1), headers=JSON)
    assert r.code == 413
    assert temp_files(instance) == []


@pytest.mark.gen_test(timeout=20)
async def test_raw_put_anonymous_is_403_without_temp_file(client: Client, instance: Path) -> None:
    for size in (10, 60 * KiB):
        r = await client.put("/files/raw/x.txt", body=b"y" * size, headers=JSON)
        assert r.code == 403, (size, r.code)
        assert "Log in" in error_of(r)
        assert temp_files(instance) == []
    r = await client.post("/files", files={"files": ("a.txt", b"1")}, headers=JSON)
    assert r.code == 403
    assert temp_files(instance) == []
    assert not (instance / "uploads" / "users").exists()


@pytest.mark.gen_test(timeout=20)
async def test_upload_without_xsrf_is_403(client: Client, instance: Path) -> None:
    await register(client, "henry")
    r = await client.post("/files", files={"files": ("a.txt", b"1" * 5000)}, xsrf=False)
    assert r.code == 403
    r = await client.put("/files/raw/a.txt", body=b"1" * 5000, xsrf=False)
    assert r.code == 403
    assert temp_files(instance) == []
    assert "No files yet" in (await client.get("/files")).body.decode()
