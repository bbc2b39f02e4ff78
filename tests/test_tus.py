"""tus 1.0.0: the core protocol, every extension, every error path, with side effects counted.

Each test names the part of tus it covers (core, creation, creation-with-upload,
creation-defer-length, termination, checksum, expiration) or the rule it checks
(limits, ownership, XSRF, locking, restart).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPRequest, HTTPResponse

from webframe import (
    Application,
    InsufficientStorageError,
    RequestHandler,
    UploadedFile,
    UploadLimits,
    route,
)
from webframe.filenames import clean_filename
from webframe.testing import Client, test_settings
from webframe.tus import LocalUploadStore, ResumableUploadHandler
from webframe.tus import chunks as tus_chunks

KiB = 1024
LIMIT = 64 * KiB
V = {"Tus-Resumable": "1.0.0"}
OCTETS = {**V, "Content-Type": "application/offset+octet-stream"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@route("/")
class Home(RequestHandler):
    """Hands out the session and its XSRF token."""

    uses_session = True

    def get(self) -> None:
        self.write(self.xsrf_token)


@route("/login/{user_id:int}")
class Login(RequestHandler):
    uses_session = True

    def post(self, user_id: int) -> None:
        self.session["user"] = {"id": user_id}
        self.write("ok")


@route("/tus/")
@route("/tus/{upload_id}")
class Uploads(ResumableUploadHandler):
    upload_limits = UploadLimits(max_body_size=LIMIT, max_file_size=LIMIT)

    def upload_finished(self, upload: UploadedFile) -> None:
        finished: list[dict[str, Any]] = self.settings["finished"]
        finished.append(
            {
                "name": upload.filename,
                "raw_name": upload.raw_filename,
                "size": upload.size,
                "sha256": upload.sha256,
                "content": upload.read(),
                "type": upload.content_type,
                "sniffed": upload.sniffed_type,
            }
        )


@route("/flaky/")
@route("/flaky/{upload_id}")
class FlakyUploads(Uploads):
    """The app's storage fails the first time it is asked to keep a file."""

    def upload_finished(self, upload: UploadedFile) -> None:
        calls: list[int] = self.settings["flaky_calls"]
        calls.append(upload.size)
        if len(calls) == 1:
            raise InsufficientStorageError("The locker is full right now; try again.")
        super().upload_finished(upload)


@route("/png/")
@route("/png/{upload_id}")
class PngUploads(Uploads):
    upload_limits = UploadLimits(
        max_body_size=LIMIT, max_file_size=LIMIT, allowed_types=frozenset({"image/png"})
    )


def make_app(folder: Path) -> Application:
    settings = test_settings(instance_path=str(folder / "instance"))
    # root_path: no templates there, so errors are the built-in plain pages.
    return Application(
        [Home, Login, Uploads, PngUploads, FlakyUploads],
        settings,
        root_path=folder,
        finished=[],
        flaky_calls=[],
    )


@pytest.fixture
def app(tmp_path: Path, io_loop: Any) -> Iterator[Application]:
    """This file's app (overrides the demo app of tests/conftest.py)."""
    tus_chunks.forget_all_hashes()
    application = make_app(tmp_path)
    yield application
    io_loop.run_sync(application.aclose)  # stops the purger


async def fetch_streamed(
    client: Client, url: str, headers: dict[str, str], producer: Any
) -> HTTPResponse:
    """A PATCH whose body is written by ``producer`` (the test client takes no producer)."""
    token = await client.xsrf_token()
    assert token is not None
    hdrs = {
        **headers,
        "X-XSRFToken": token,
        "Cookie": client.cookies.header_for(client.url(url)) or "",
    }
    request = HTTPRequest(client.url(url), method="PATCH", headers=hdrs, body_producer=producer)
    return await client.http_client.fetch(request, raise_error=False)


@pytest.fixture
def webframe_app(app: Application) -> Application:
    return app


def finished(app: Application) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = app.settings["finished"]
    return result


def store_of(app: Application) -> LocalUploadStore:
    return LocalUploadStore(Path(app.wf_settings.upload_dir) / ".tus")


def upload_files(app: Application) -> list[str]:
    folder = store_of(app).folder
    return sorted(os.listdir(folder)) if folder.exists() else []


async def login(client: Client, user_id: int) -> None:
    assert (await client.get("/")).code == 200
    assert (await client.post(f"/login/{user_id}")).code == 200


async def create(
    client: Client,
    length: int | None,
    *,
    name: str = "notes.txt",
    filetype: str = "text/plain",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/tus/",
) -> HTTPResponse:
    hdrs = {**V, "Upload-Metadata": f"filename {b64(name)},filetype {b64(filetype)}"}
    if length is None:
        hdrs["Upload-Defer-Length"] = "1"
    else:
        hdrs["Upload-Length"] = str(length)
    if body is not None:
        hdrs["Content-Type"] = "application/offset+octet-stream"
    hdrs.update(headers or {})
    return await client.post(path, headers=hdrs, body=body or b"")


def location(r: HTTPResponse) -> str:
    assert r.code == 201, r.body[:300]
    url: str = r.headers["Location"]
    return url


async def send(
    client: Client, url: str, offset: int, data: bytes, headers: dict[str, str] | None = None
) -> HTTPResponse:
    hdrs = {**OCTETS, "Upload-Offset": str(offset), **(headers or {})}
    return await client.patch(url, headers=hdrs, body=data)


async def offset_of(client: Client, url: str) -> int:
    r = await client.head(url, headers=V)
    assert r.code == 200, r.code
    return int(r.headers["Upload-Offset"])


def message(r: HTTPResponse) -> str:
    try:
        text: str = json.loads(r.body)["error"]["message"]
        return text
    except ValueError:
        return r.body.decode(errors="replace")


# core ---------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_options_advertises_version_extensions_size_and_checksums(
    webframe_client: Client,
) -> None:
    """core + every extension: OPTIONS needs no Tus-Resumable and no XSRF token."""
    r = await webframe_client.options("/tus/")
    assert r.code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "checksum",
        "expiration",
    }
    assert r.headers["Tus-Max-Size"] == str(LIMIT)
    assert set(r.headers["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256"}


@pytest.mark.gen_test
@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0", ""])
async def test_unspoken_version_is_412_with_tus_version_and_creates_nothing(
    webframe_client: Client, webframe_app: Application, version: str | None
) -> None:
    """core: Tus-Resumable checked."""
    await login(webframe_client, 1)
    headers = {"Upload-Length": "10"}
    if version is not None:
        headers["Tus-Resumable"] = version
    r = await webframe_client.post("/tus/", headers=headers, body=b"")
    assert r.code == 412
    assert r.headers["Tus-Version"] == "1.0.0"
    assert "1.0.0" in message(r)
    assert upload_files(webframe_app) == []


@pytest.mark.gen_test
async def test_create_head_patch_in_two_chunks_and_finish(
    webframe_client: Client, webframe_app: Application
) -> None:
    """core + creation: the hook runs once, after the last byte, with the SHA-256."""
    await login(webframe_client, 1)
    data = os.urandom(40 * KiB)
    r = await create(webframe_client, len(data), name="../../etc/pass wd.txt")
    url = location(r)
    assert url.startswith("/tus/") and len(url) == len("/tus/") + 43
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert "Upload-Expires" in r.headers
    head = await webframe_client.head(url, headers=V)
    assert head.code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Upload-Metadata"].startswith("filename ")
    r = await send(webframe_client, url, 0, data[: 25 * KiB])
    assert r.code == 204
    assert r.headers["Upload-Offset"] == str(25 * KiB)
    assert finished(webframe_app) == []  # nothing partial reaches the app
    assert await offset_of(webframe_client, url) == 25 * KiB
    r = await send(webframe_client, url, 25 * KiB, data[25 * KiB :])
    assert r.code == 204
    assert r.headers["Upload-Offset"] == str(len(data))
    [done] = finished(webframe_app)
    assert done["content"] == data
    assert done["size"] == len(data)
    assert done["sha256"] == hashlib.sha256(data).hexdigest()
    assert done["name"] == clean_filename("../../etc/pass wd.txt") == "pass wd.txt"
    assert done["raw_name"] == "../../etc/pass wd.txt"
    assert done["type"] == "text/plain"
    # Finished: HEAD still answers (clients check), the bytes are gone from the folder.
    head = await webframe_client.head(url, headers=V)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(len(data))
    assert not any(name.endswith(".bin") for name in upload_files(webframe_app))
    # An empty PATCH at the end does not store it twice.
    r = await send(webframe_client, url, len(data), b"")
    assert r.code == 204
    assert len(finished(webframe_app)) == 1


@pytest.mark.gen_test
async def test_sha256_is_rehashed_when_the_running_hash_is_lost(
    webframe_client: Client, webframe_app: Application
) -> None:
    """restart: the hash state is not on disk, so the file is hashed again at the end."""
    await login(webframe_client, 1)
    data = os.urandom(30 * KiB)
    url = location(await create(webframe_client, len(data)))
    assert (await send(webframe_client, url, 0, data[: 10 * KiB])).code == 204
    tus_chunks.forget_all_hashes()  # as after a restart or on another worker
    assert (await send(webframe_client, url, 10 * KiB, data[10 * KiB :])).code == 204
    [done] = finished(webframe_app)
    assert done["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.gen_test
async def test_state_survives_a_new_app_on_the_same_folder(
    webframe_client: Client, webframe_app: Application, tmp_path: Path, http_port: int
) -> None:
    """restart: state and data are on disk; a fresh app resumes at the saved offset."""
    await login(webframe_client, 1)
    data = os.urandom(20 * KiB)
    url = location(await create(webframe_client, len(data)))
    assert (await send(webframe_client, url, 0, data[:5000])).code == 204
    tus_chunks.forget_all_hashes()
    store = store_of(webframe_app)
    fresh = store.load(url.rsplit("/", 1)[1])
    assert fresh is not None and fresh.offset == 5000 and fresh.length == len(data)
    assert store.data_path(fresh.id).stat().st_size == 5000


@pytest.mark.gen_test
async def test_creation_with_upload_sends_the_first_chunk_in_the_post(
    webframe_client: Client, webframe_app: Application
) -> None:
    """creation-with-upload: 201 with Upload-Offset; a whole file in one POST finishes."""
    await login(webframe_client, 1)
    data = b"hello, resumable world\n" * 100
    r = await create(webframe_client, len(data) * 2, body=data)
    url = location(r)
    assert r.headers["Upload-Offset"] == str(len(data))
    assert await offset_of(webframe_client, url) == len(data)
    assert finished(webframe_app) == []
    r = await create(webframe_client, len(data), body=data)
    assert r.headers["Upload-Offset"] == str(len(data))
    [done] = finished(webframe_app)
    assert done["content"] == data


@pytest.mark.gen_test
async def test_creation_with_upload_refuses_a_body_of_another_type(
    webframe_client: Client, webframe_app: Application
) -> None:
    await login(webframe_client, 1)
    r = await create(
        webframe_client, 10, headers={"Content-Type": "text/plain"}, body=b"0123456789"
    )
    assert r.code == 415
    assert "application/offset+octet-stream" in message(r)
    assert upload_files(webframe_app) == []


@pytest.mark.gen_test
async def test_defer_length_then_declare_it_in_a_patch(
    webframe_client: Client, webframe_app: Application
) -> None:
    """creation-defer-length: HEAD says Upload-Defer-Length until a PATCH sets the length."""
    await login(webframe_client, 1)
    url = location(await create(webframe_client, None))
    head = await webframe_client.head(url, headers=V)
    assert head.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in head.headers
    assert (await send(webframe_client, url, 0, b"a" * 3000)).code == 204
    assert finished(webframe_app) == []
    r = await send(webframe_client, url, 3000, b"b" * 1000, {"Upload-Length": "4000"})
    assert r.code == 204
    [done] = finished(webframe_app)
    assert done["content"] == b"a" * 3000 + b"b" * 1000
    # Once known, the length cannot change.
    url = location(await create(webframe_client, 100))
    r = await send(webframe_client, url, 0, b"x", {"Upload-Length": "200"})
    assert r.code == 400 and "cannot change" in message(r)
    assert await offset_of(webframe_client, url) == 0


@pytest.mark.gen_test
async def test_deferred_upload_over_the_limit_is_refused_as_bytes_arrive(
    webframe_client: Client, webframe_app: Application
) -> None:
    """creation-defer-length + limits: no size given up front, the limit still holds."""
    await login(webframe_client, 1)
    url = location(await create(webframe_client, None))
    assert (await send(webframe_client, url, 0, b"a" * (LIMIT - 10))).code == 204

    async def body(write: Any) -> None:  # chunked: no Content-Length to refuse early
        for _ in range(4):
            await write(b"b" * 10)

    r = await fetch_streamed(
        webframe_client, url, {**OCTETS, "Upload-Offset": str(LIMIT - 10)}, body
    )
    assert r.code == 413
    assert await offset_of(webframe_client, url) == LIMIT - 10
    assert store_of(webframe_app).data_path(url.rsplit("/", 1)[1]).stat().st_size == LIMIT - 10
    assert finished(webframe_app) == []


# limits and malformed input -----------------------------------------------------


@pytest.mark.gen_test
async def test_known_size_over_the_limit_is_413_at_creation(
    webframe_client: Client, webframe_app: Application
) -> None:
    """creation + limits: refused before anything is stored, with a readable message."""
    await login(webframe_client, 1)
    r = await create(webframe_client, LIMIT + 1)
    assert r.code == 413
    assert "64.0 KiB" in message(r) or "64 KiB" in message(r)
    assert upload_files(webframe_app) == []


@pytest.mark.gen_test
async def test_chunk_past_the_length_is_413_and_stores_nothing(
    webframe_client: Client, webframe_app: Application
) -> None:
    await login(webframe_client, 1)
    url = location(await create(webframe_client, 10))
    r = await send(webframe_client, url, 0, b"x" * 11)
    assert r.code == 413
    assert await offset_of(webframe_client, url) == 0


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"Upload-Length": "ten"}, "Upload-Length"),
        ({"Upload-Length": "-1"}, "Upload-Length"),
        ({"Upload-Length": "10", "Upload-Defer-Length": "1"}, "exactly one"),
        ({"Upload-Length": None}, "exactly one"),
        ({"Upload-Defer-Length": "2", "Upload-Length": None}, "Upload-Defer-Length"),
        ({"Upload-Metadata": "filename !!!notbase64"}, "base64"),
        ({"Upload-Metadata": "filename a b c"}, "key base64value"),
        ({"Upload-Metadata": f"filename {b64('a')},filename {b64('b')}"}, "twice"),
        ({"Upload-Metadata": "filename " + base64.b64encode(b"\xff\xfe").decode()}, "UTF-8"),
    ],
)
async def test_malformed_creation_headers_are_400_with_a_message(
    webframe_client: Client,
    webframe_app: Application,
    headers: dict[str, str | None],
    words: str,
) -> None:
    await login(webframe_client, 1)
    hdrs = {**V, "Upload-Length": "10"}
    for name, value in headers.items():
        if value is None:
            hdrs.pop(name, None)
        else:
            hdrs[name] = value
    r = await webframe_client.post("/tus/", headers=hdrs, body=b"")
    assert r.code == 400, r.body
    assert words in message(r)
    assert upload_files(webframe_app) == []


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("headers", "status", "words"),
    [
        ({"Upload-Offset": "zero"}, 400, "Upload-Offset"),
        ({"Upload-Offset": None}, 400, "Upload-Offset"),
        ({"Content-Type": "application/octet-stream"}, 415, "offset+octet-stream"),
        ({"Upload-Offset": "5"}, 409, "HEAD"),
        ({"Upload-Checksum": "md5 " + base64.b64encode(b"x" * 16).decode()}, 400, "sha1"),
        ({"Upload-Checksum": "sha1"}, 400, "algorithm base64digest"),
        ({"Upload-Checksum": "sha1 ###"}, 400, "base64"),
        ({"Upload-Checksum": "sha256 " + base64.b64encode(b"short").decode()}, 400, "32"),
    ],
)
async def test_bad_patch_headers_are_refused_and_store_nothing(
    webframe_client: Client,
    webframe_app: Application,
    headers: dict[str, str | None],
    status: int,
    words: str,
) -> None:
    """core (409 wrong offset, 415) + checksum (400 for an unsupported algorithm)."""
    await login(webframe_client, 1)
    url = location(await create(webframe_client, 100))
    hdrs: dict[str, str] = {**OCTETS, "Upload-Offset": "0"}
    for name, value in headers.items():
        if value is None:
            hdrs.pop(name, None)
        else:
            hdrs[name] = value
    r = await webframe_client.patch(url, headers=hdrs, body=b"12345")
    assert r.code == status, r.body
    assert words in message(r)
    assert await offset_of(webframe_client, url) == 0
    assert store_of(webframe_app).data_path(url.rsplit("/", 1)[1]).stat().st_size == 0


@pytest.mark.gen_test
async def test_wrong_offset_is_409_and_names_the_right_one(webframe_client: Client) -> None:
    """core: offsets are exact."""
    await login(webframe_client, 1)
    url = location(await create(webframe_client, 100))
    assert (await send(webframe_client, url, 0, b"x" * 10)).code == 204
    for wrong in (0, 5, 11, 20):
        r = await send(webframe_client, url, wrong, b"y" * 10)
        assert r.code == 409
        assert r.headers["Upload-Offset"] == "10"
    assert await offset_of(webframe_client, url) == 10


@pytest.mark.gen_test
async def test_unknown_or_bad_ids_and_wrong_urls_are_404(webframe_client: Client) -> None:
    await login(webframe_client, 1)
    for url in ("/tus/" + "A" * 43, "/tus/short", "/tus/..%2F..%2Fetc"):
        assert (await webframe_client.head(url, headers=V)).code == 404
        assert (await send(webframe_client, url, 0, b"x")).code == 404
        assert (await webframe_client.delete(url, headers=V)).code == 404
    # HEAD/PATCH on the creation URL, POST on an upload URL
    assert (await webframe_client.head("/tus/", headers=V)).code == 404
    url = location(await create(webframe_client, 10))
    r = await webframe_client.post(url, headers={**V, "Upload-Length": "10"}, body=b"")
    assert r.code == 405


@pytest.mark.gen_test
async def test_type_sniffed_from_the_first_bytes_refuses_and_removes_the_upload(
    webframe_client: Client, webframe_app: Application
) -> None:
    """limits: a .png that is HTML is refused (415) once its first bytes are in."""
    await login(webframe_client, 1)
    data = b"<html><script>alert(1)</script>" + b" " * 2000
    url = location(await create(webframe_client, len(data), name="cat.png", path="/png/"))
    r = await send(webframe_client, url, 0, data)
    assert r.code == 415
    assert finished(webframe_app) == []
    assert (await webframe_client.head(url, headers=V)).code == 404
    assert upload_files(webframe_app) == []
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
    url = location(
        await create(webframe_client, len(png), name="cat.png", filetype="image/png", path="/png/")
    )
    r = await send(webframe_client, url, 0, png)
    assert r.code == 204, message(r)
    [done] = finished(webframe_app)
    assert done["sniffed"] == "image/png"
    r = await create(webframe_client, 10, name="evil.php", path="/png/")
    assert r.code == 415


# checksum ----------------------------------------------------------------------


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} " + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


@pytest.mark.gen_test
@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
async def test_checksum_match_stores_mismatch_is_460_and_discards_the_chunk(
    webframe_client: Client, webframe_app: Application, algorithm: str
) -> None:
    """checksum: 460 on mismatch, the chunk discarded, the offset unchanged."""
    await login(webframe_client, 1)
    data = os.urandom(6000)
    url = location(await create(webframe_client, len(data)))
    ok = {"Upload-Checksum": checksum(algorithm, data[:3000])}
    assert (await send(webframe_client, url, 0, data[:3000], ok)).code == 204
    bad = {"Upload-Checksum": checksum(algorithm, b"something else")}
    r = await send(webframe_client, url, 3000, data[3000:], bad)
    assert r.code == 460
    assert r.reason == "Checksum Mismatch"
    assert await offset_of(webframe_client, url) == 3000
    store = store_of(webframe_app)
    assert store.data_path(url.rsplit("/", 1)[1]).stat().st_size == 3000
    assert finished(webframe_app) == []
    good = {"Upload-Checksum": checksum(algorithm, data[3000:])}
    assert (await send(webframe_client, url, 3000, data[3000:], good)).code == 204
    [done] = finished(webframe_app)
    assert done["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.gen_test
async def test_checksum_mismatch_on_creation_with_upload_leaves_nothing(
    webframe_client: Client, webframe_app: Application
) -> None:
    await login(webframe_client, 1)
    r = await create(
        webframe_client,
        10,
        body=b"0123456789",
        headers={"Upload-Checksum": checksum("sha1", b"nope")},
    )
    assert r.code == 460
    assert finished(webframe_app) == []
    assert [n for n in upload_files(webframe_app) if not n.endswith(".lock")] == []


# termination ------------------------------------------------------------------


@pytest.mark.gen_test
async def test_delete_terminates_the_upload(
    webframe_client: Client, webframe_app: Application
) -> None:
    """termination: 204, then the URL is a 404 and the files are gone."""
    await login(webframe_client, 1)
    url = location(await create(webframe_client, 100))
    assert (await send(webframe_client, url, 0, b"x" * 50)).code == 204
    r = await webframe_client.delete(url, headers=V)
    assert r.code == 204
    assert (await webframe_client.head(url, headers=V)).code == 404
    assert (await send(webframe_client, url, 50, b"x" * 50)).code == 404
    assert upload_files(webframe_app) == []
    assert finished(webframe_app) == []


# expiration ---------------------------------------------------------------------


@pytest.mark.gen_test
async def test_expired_uploads_are_410_and_purged(
    webframe_client: Client, webframe_app: Application
) -> None:
    """expiration: Upload-Expires is sent; past it the upload is refused and purged."""
    await login(webframe_client, 1)
    url = location(await create(webframe_client, 100))
    r = await send(webframe_client, url, 0, b"x" * 10)
    assert "GMT" in r.headers["Upload-Expires"]
    store = store_of(webframe_app)
    upload_id = url.rsplit("/", 1)[1]
    live = location(await create(webframe_client, 100))
    state = store.load(upload_id)
    assert state is not None
    state.expires = 1.0
    store.save(state)
    assert (await webframe_client.head(url, headers=V)).code == 410
    assert (await send(webframe_client, url, 10, b"x")).code == 410
    assert store.purge_expired() == 1
    assert not store.data_path(upload_id).exists()
    assert (await webframe_client.head(url, headers=V)).code == 404
    assert await offset_of(webframe_client, live) == 0  # the live one is kept


@pytest.mark.gen_test
async def test_the_purger_starts_with_the_first_request(
    webframe_client: Client, webframe_app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """expiration: the purger the handler starts removes expired uploads on its own."""
    monkeypatch.setattr(Uploads, "purge_interval", 0.05)
    store = store_of(webframe_app)
    await login(webframe_client, 1)
    url = location(await create(webframe_client, 100))
    state = store.load(url.rsplit("/", 1)[1])
    assert state is not None
    state.expires = 1.0
    store.save(state)
    for _ in range(100):
        if store.load(state.id) is None:
            break
        await asyncio.sleep(0.05)
    assert store.load(state.id) is None
    await webframe_app.aclose()


@pytest.mark.gen_test
async def test_start_background_tasks_starts_the_purger_and_aclose_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """expiration: the app starts the purger of each tus route at start-up (no request
    needed) and ``aclose()`` stops it."""
    from webframe.tus.store import UploadState, new_upload_id

    monkeypatch.setattr(Uploads, "purge_interval", 0.05)
    application = make_app(tmp_path / "node")
    store = store_of(application)
    expired = UploadState(id=new_upload_id(), owner="x" * 64, length=10, expires=1.0)
    store.create(expired)
    application.start_background_tasks()
    started = application.__dict__["_webframe_tus_purgers"]
    # Three tus routes, one store: one purger.
    assert started == {str(store.folder)}
    for _ in range(100):
        if store.load(expired.id) is None:
            break
        await asyncio.sleep(0.05)
    assert store.load(expired.id) is None
    await application.aclose()
    assert started == set()
    later = UploadState(id=new_upload_id(), owner="x" * 64, length=10, expires=1.0)
    store.create(later)
    await asyncio.sleep(0.2)
    assert store.load(later.id) is not None  # stopped: nothing purges any more


# security ---------------------------------------------------------------------


@pytest.mark.gen_test
async def test_another_users_upload_is_404_and_left_alone(
    webframe_client: Client,
    webframe_second_client: Client,
    webframe_app: Application,
) -> None:
    """ownership: HEAD, PATCH and DELETE by another user all look like a missing upload."""
    await login(webframe_client, 1)
    await login(webframe_second_client, 2)
    url = location(await create(webframe_client, 100))
    assert (await send(webframe_client, url, 0, b"x" * 10)).code == 204
    other = webframe_second_client
    assert (await other.head(url, headers=V)).code == 404
    assert (await send(other, url, 10, b"y" * 90)).code == 404
    assert (await other.delete(url, headers=V)).code == 404
    assert await offset_of(webframe_client, url) == 10
    assert finished(webframe_app) == []
    # An anonymous visitor's uploads belong to the session, not to "nobody".
    await other.post("/login/0")  # user 0 exists only to change the owner
    anon = Client(webframe_client.http_client, webframe_client.base_url)
    assert (await anon.get("/")).code == 200
    aurl = location(await create(anon, 10))
    assert (await webframe_client.head(aurl, headers=V)).code == 404
    assert (await anon.head(aurl, headers=V)).code == 200


@pytest.mark.gen_test
async def test_state_changing_requests_need_the_xsrf_header(
    webframe_client: Client, webframe_app: Application
) -> None:
    """XSRF: POST, PATCH and DELETE without the token are 403 and change nothing."""
    await login(webframe_client, 1)
    r = await webframe_client.post("/tus/", headers={**V, "Upload-Length": "10"}, xsrf=False)
    assert r.code == 403
    assert upload_files(webframe_app) == []
    url = location(await create(webframe_client, 10))
    hdrs = {**OCTETS, "Upload-Offset": "0"}
    r = await webframe_client.patch(url, headers=hdrs, body=b"0123456789", xsrf=False)
    assert r.code == 403
    assert (await webframe_client.delete(url, headers=V, xsrf=False)).code == 403
    assert await offset_of(webframe_client, url) == 0
    assert finished(webframe_app) == []


@pytest.mark.gen_test
async def test_a_patch_while_another_holds_the_lock_is_409(
    webframe_client: Client, webframe_app: Application
) -> None:
    """locking: the lock is an fcntl lock, so a writer in another process counts too."""
    await login(webframe_client, 1)
    url = location(await create(webframe_client, 100))
    store = store_of(webframe_app)
    held = store.try_lock(url.rsplit("/", 1)[1])
    assert held is not None
    try:
        r = await send(webframe_client, url, 0, b"x" * 10)
        assert r.code == 409
        assert "Another request" in message(r)
        assert (await webframe_client.delete(url, headers=V)).code == 409
    finally:
        held.release()
    assert await offset_of(webframe_client, url) == 0
    assert (await send(webframe_client, url, 0, b"x" * 10)).code == 204


@pytest.mark.gen_test
async def test_two_concurrent_patches_one_is_409(
    webframe_client: Client, webframe_app: Application
) -> None:
    """locking: the second of two overlapping PATCHes is refused, the first completes."""
    await login(webframe_client, 1)
    url = location(await create(webframe_client, 1000))
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(write: Any) -> None:
        await write(b"a" * 100)
        started.set()
        await release.wait()
        await write(b"a" * 100)

    headers = {**OCTETS, "Upload-Offset": "0", "Content-Length": "200"}
    first = asyncio.ensure_future(fetch_streamed(webframe_client, url, headers, slow))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.1)
    second = await send(webframe_client, url, 0, b"b" * 200)
    assert second.code == 409
    release.set()
    r = await first
    assert r.code == 204
    assert r.headers["Upload-Offset"] == "200"
    store = store_of(webframe_app)
    assert store.data_path(url.rsplit("/", 1)[1]).read_bytes() == b"a" * 200


@pytest.mark.gen_test
async def test_a_failing_hook_leaves_the_last_chunk_to_be_sent_again(
    webframe_client: Client, webframe_app: Application
) -> None:
    """core: an upload is never reported complete before the app has the file."""
    await login(webframe_client, 1)
    data = os.urandom(9000)
    url = location(await create(webframe_client, len(data), path="/flaky/"))
    assert (await send(webframe_client, url, 0, data[:4000])).code == 204
    r = await send(webframe_client, url, 4000, data[4000:])
    assert r.code == 507
    assert "Upload-Offset" not in r.headers
    assert await offset_of(webframe_client, url) == 4000  # not 9000: not handed over
    assert store_of(webframe_app).data_path(url.rsplit("/", 1)[1]).stat().st_size == 4000
    assert finished(webframe_app) == []
    r = await send(webframe_client, url, 4000, data[4000:])
    assert r.code == 204 and r.headers["Upload-Offset"] == str(len(data))
    assert webframe_app.settings["flaky_calls"] == [len(data), len(data)]
    [done] = finished(webframe_app)
    assert done["sha256"] == hashlib.sha256(data).hexdigest()
    assert await offset_of(webframe_client, url) == len(data)


@pytest.mark.gen_test
async def test_an_empty_file_is_finished_by_its_creation(
    webframe_client: Client, webframe_app: Application
) -> None:
    """creation: Upload-Length 0 needs no PATCH (tuspy uploads empty files this way)."""
    await login(webframe_client, 1)
    r = await create(webframe_client, 0, name="empty.txt")
    url = location(r)
    assert r.headers["Upload-Offset"] == "0"
    [done] = finished(webframe_app)
    assert done["size"] == 0 and done["content"] == b""
    assert done["sha256"] == hashlib.sha256(b"").hexdigest()
    assert (await webframe_client.head(url, headers=V)).headers["Upload-Length"] == "0"


def test_a_state_save_torn_by_a_crash_leaves_the_previous_state(tmp_path: Path) -> None:
    """Durability of the state file: a save overwrites the older of two slots in place;
    if a crash tears it (bad CRC), the previous state is read, never a broken one."""
    from webframe.tus.store import UploadState, new_upload_id

    store = LocalUploadStore(tmp_path)
    state = UploadState(id=new_upload_id(), owner="x" * 64, length=100)
    store.create(state)
    for offset in (10, 20, 30):
        state.offset = offset
        store.save(state)
    loaded = store.load(state.id)
    assert loaded is not None and loaded.offset == 30
    path = store.state_path(state.id)
    raw = bytearray(path.read_bytes())
    slot = len(raw) // 2
    newest = 3 % 2  # create wrote sequence 0, the saves 1, 2, 3: slot = sequence % 2
    raw[newest * slot + 20] ^= 0xFF  # inside the JSON of the newest slot
    path.write_bytes(bytes(raw))
    loaded = store.load(state.id)
    assert loaded is not None and loaded.offset == 20
    # A state that outgrows its slots is rewritten whole, and still loads.
    state.metadata = {"note": "x" * 20_000}
    state.offset = 40
    store.save(state)
    loaded = store.load(state.id)
    assert loaded is not None and loaded.offset == 40 and loaded.metadata == state.metadata


@pytest.mark.gen_test
async def test_no_disk_room_for_the_announced_body_is_507_and_frees_the_upload(
    webframe_client: Client, webframe_app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The room a PATCH announces (Content-Length) is reserved before its bytes are
    read: without it, 507 with nothing written, and the lock is free for a retry."""
    await login(webframe_client, 1)
    data = os.urandom(40 * KiB)
    url = location(await create(webframe_client, len(data)))

    def disk_full(fd: int, offset: int, length: int) -> bool:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tus_chunks, "RESERVE_MIN", 1)
    monkeypatch.setattr(tus_chunks, "_reserve", disk_full)
    r = await send(webframe_client, url, 0, data)
    assert r.code == 507
    assert "No space" not in message(r)  # no path or OS detail for the client
    assert await offset_of(webframe_client, url) == 0
    monkeypatch.setattr(tus_chunks, "_reserve", lambda fd, offset, length: True)
    r = await send(webframe_client, url, 0, data)
    assert r.code == 204 and r.headers["Upload-Offset"] == str(len(data))
    [done] = finished(webframe_app)
    assert done["content"] == data
