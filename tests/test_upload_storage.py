"""Uploads and downloads through the app's ``upload_storage``: local disk and SeaweedFS S3.

One suite, run over both storages: multipart POST and raw PUT stored with
``UploadedFile.store()``, refusals and disconnects that must leave no object and
no unfinished multipart upload, downloads with ranges and ETags through
``send_stored``, presigned redirects, and a storage that goes away and comes back.
The S3 half starts a real SeaweedFS (skipped when ``weed`` is missing, failed
under WEBFRAME_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from tests.seaweed_server import SeaweedServer, seaweed_with_bucket
from webframe import Application, RequestHandler, UploadHandler, UploadLimits
from webframe.testing import test_settings

MiB = 1024 * 1024
BUCKET = "webframe-upload-tests"
#: S3's smallest part: a 5 MiB body already has one part uploaded.
PART = 5 * MiB
LIMIT = 8 * MiB

#: every stored upload, in order: (key, size, sha256) -- the side effect counted.
STORED: list[tuple[str, int, str]] = []


class Up(UploadHandler):
    # The body may be larger than a file: a file over LIMIT is refused mid-stream by
    # the parser, after S3 has received a part of it (not up front by Content-Length).
    upload_limits = UploadLimits(max_body_size=2 * LIMIT, max_file_size=LIMIT)

    async def post(self, name: str | None = None) -> None:
        out = []
        for upload in self.uploads:
            key = f"kept/{name or upload.filename}"
            info = await upload.store(key)
            STORED.append((key, info.size, upload.sha256))
            out.append({"key": key, "size": info.size, "sha256": upload.sha256})
        await self.json({"files": out})

    put = post


class Planned(Up):
    """Names each file's key before its bytes arrive: storing it needs no copy."""

    def upload_key(self, filename: str) -> str | None:
        return f"kept/{filename}"

    async def post(self, name: str | None = None) -> None:
        out = []
        for upload in self.uploads:
            key = getattr(upload, "key", f"kept/{upload.filename}")
            info = await upload.store(key)
            STORED.append((key, info.size, upload.sha256))
            out.append({"key": key, "size": info.size, "sha256": upload.sha256})
        await self.json({"files": out})


class Down(RequestHandler):
    async def get(self, name: str) -> None:
        await self.send_stored(
            f"kept/{name}",
            filename=name,
            as_attachment=True,
            presigned=self.get_query_argument("presigned", "") == "1",
        )


def make_app(settings: Any) -> Application:
    return Application(
        [("/up", Up), ("/planned", Planned), ("/raw/{name}", Up), ("/get/{name}", Down)],
        settings,
        root_path=str(Path(__file__).parent),
    )


# ------------------------------------------------------------------ storages


class LocalKind:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()

    def leftovers(self) -> list[str]:
        """Files other than the kept ones (temp files, half-written objects)."""
        if not self.root.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in self.root.rglob("*")
            if p.is_file() and not str(p.relative_to(self.root)).startswith("kept/")
        )

    def kept(self) -> list[str]:
        folder = self.root / "kept"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    def break_it(self) -> None:
        self.root.rename(self.root.with_name("away"))

    def mend(self) -> None:
        self.root.with_name("away").rename(self.root)


class S3Kind:
    name = "s3"

    def __init__(self, server: SeaweedServer) -> None:
        self.server = server
        self.prefix = f"u-{uuid.uuid4().hex[:10]}"
        self.url = f"s3://{BUCKET}/{self.prefix}?part_size=5MiB"
        self.client = server.client()

    def uploads(self) -> list[str]:
        answer = self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=self.prefix + "/")
        return [u["Key"] for u in answer.get("Uploads", [])]

    def objects(self) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=BUCKET, Prefix=self.prefix + "/")
        return [o["Key"][len(self.prefix) + 1 :] for o in answer.get("Contents", [])]

    def leftovers(self) -> list[str]:
        stray = [k for k in self.objects() if not k.startswith("kept/")]
        return sorted(stray + [f"upload:{k}" for k in self.uploads()])

    def kept(self) -> list[str]:
        return sorted(k.removeprefix("kept/") for k in self.objects() if k.startswith("kept/"))

    def break_it(self) -> None:
        self.server.kill()

    def mend(self) -> None:
        self.server.start()


@pytest.fixture(scope="module")
def seaweed() -> Iterator[SeaweedServer]:
    with seaweed_with_bucket(BUCKET) as server:
        yield server


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def kind(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> LocalKind | S3Kind:
    STORED.clear()
    if request.param == "local":
        return LocalKind(tmp_path / "store")
    server: SeaweedServer = request.getfixturevalue("seaweed")
    if not server.running:
        server.start()
    for name, value in server.environ.items():
        monkeypatch.setenv(name, value)
    # The sink's own safety net (abort when garbage-collected) would hide a missing
    # abort in the upload path: these tests must see the upload path do it.
    from webframe.storage.s3_transfer import S3Sink

    monkeypatch.setattr(S3Sink, "__del__", lambda self: None)
    return S3Kind(server)


# ------------------------------------------------------------------- helpers


def run(kind: LocalKind | S3Kind, scenario: Callable[[str], Awaitable[None]]) -> None:
    """Serve the app on loopback with ``kind``'s storage and run ``scenario(base_url)``."""

    async def main() -> None:
        app = make_app(test_settings(xsrf=False, upload_storage=kind.url))
        [sock] = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        server = HTTPServer(app)
        server.add_sockets([sock])
        try:
            await scenario(f"http://127.0.0.1:{sock.getsockname()[1]}")
        finally:
            server.stop()
            await app.aclose()

    asyncio.run(main())


def multipart(name: str, data: bytes, boundary: str = "b0undary") -> tuple[bytes, str]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def payload(size: int, seed: int = 1) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


async def fetch(url: str, **kwargs: Any) -> tornado.httpclient.HTTPResponse:
    client = tornado.httpclient.AsyncHTTPClient()
    kwargs.setdefault("request_timeout", 60)
    return await client.fetch(url, raise_error=False, **kwargs)


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` (a blocking call, run in a thread) until it returns something falsy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if not value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------- tests


def test_multipart_post_is_stored_and_downloaded_whole(kind: LocalKind | S3Kind) -> None:
    data = payload(6 * MiB + 123)  # more than one S3 part

    async def scenario(base: str) -> None:
        body, ctype = multipart("big.bin", data)
        r = await fetch(base + "/up", method="POST", body=body, headers={"Content-Type": ctype})
        assert r.code == 200, r.body
        [answer] = json.loads(r.body)["files"]
        assert answer == {
            "key": "kept/big.bin",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        r = await fetch(base + "/get/big.bin")
        assert r.code == 200
        assert r.body == data
        assert "attachment" in r.headers["Content-Disposition"]
        assert not await until(kind.leftovers)

    run(kind, scenario)
    assert [("kept/big.bin", len(data), hashlib.sha256(data).hexdigest())] == STORED
    assert kind.kept() == ["big.bin"]


def test_raw_put_is_stored(kind: LocalKind | S3Kind) -> None:
    data = payload(300_000, seed=2)

    async def scenario(base: str) -> None:
        r = await fetch(
            base + "/raw/p.bin",
            method="PUT",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert r.code == 200, r.body
        r = await fetch(base + "/get/p.bin")
        assert r.body == data
        assert not await until(kind.leftovers)

    run(kind, scenario)
    assert [k for k, _, _ in STORED] == ["kept/p.bin"]


def test_range_etag_and_304(kind: LocalKind | S3Kind) -> None:
    data = payload(100_000, seed=3)

    async def scenario(base: str) -> None:
        r = await fetch(base + "/raw/r.bin", method="PUT", body=data)
        assert r.code == 200, r.body
        r = await fetch(base + "/get/r.bin", headers={"Range": "bytes=1000-1999"})
        assert r.code == 206
        assert r.body == data[1000:2000]
        assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
        etag = r.headers["ETag"]
        r = await fetch(base + "/get/r.bin", headers={"If-None-Match": etag})
        assert r.code == 304
        r = await fetch(base + "/get/r.bin", headers={"Range": f"bytes={len(data)}-"})
        assert r.code == 416
        r = await fetch(base + "/get/nothing.bin")
        assert r.code == 404

    run(kind, scenario)


def test_413_mid_stream_leaves_nothing(kind: LocalKind | S3Kind) -> None:
    data = payload(LIMIT + 2 * MiB, seed=4)  # a part goes to S3 before the limit is hit

    async def scenario(base: str) -> None:
        body, ctype = multipart("huge.bin", data)
        r = await fetch(base + "/up", method="POST", body=body, headers={"Content-Type": ctype})
        assert r.code == 413
        # Aborted before the answer went out: nothing to wait for.
        assert await asyncio.to_thread(kind.leftovers) == []

    run(kind, scenario)
    assert STORED == []  # the handler never ran
    assert kind.kept() == []


def test_client_disconnect_mid_upload_aborts(kind: LocalKind | S3Kind) -> None:
    data = payload(7 * MiB, seed=5)

    async def scenario(base: str) -> None:
        body, ctype = multipart("cut.bin", data)
        host, port = base.removeprefix("http://").split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /up HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body) + 1000}\r\n\r\n".encode()
        )
        writer.write(body[: 6 * MiB])
        await writer.drain()
        if isinstance(kind, S3Kind):
            # The body streams: a multipart upload is open before the body ends.
            deadline = time.monotonic() + 10
            while not await asyncio.to_thread(kind.uploads):
                assert time.monotonic() < deadline, "no multipart upload was started"
                await asyncio.sleep(0.1)
        else:
            await asyncio.sleep(0.5)
        writer.transport.abort()
        assert not await until(kind.leftovers)

    run(kind, scenario)
    assert STORED == []


def test_presigned_redirect_then_download(kind: LocalKind | S3Kind) -> None:
    data = payload(50_000, seed=6)

    async def scenario(base: str) -> None:
        r = await fetch(base + "/raw/s.bin", method="PUT", body=data)
        assert r.code == 200, r.body
        r = await fetch(base + "/get/s.bin?presigned=1", follow_redirects=False)
        if isinstance(kind, LocalKind):
            assert r.code == 200  # no signed URLs on local disk: streamed instead
            assert r.body == data
            return
        assert r.code == 307
        location = r.headers["Location"]
        assert location.startswith(kind.server.endpoint_url)
        r = await fetch(location)
        assert r.code == 200
        assert r.body == data
        r = await fetch(location, headers={"Range": "bytes=0-9"})
        assert r.code == 206
        assert r.body == data[:10]

    run(kind, scenario)


def test_storage_down_is_503_then_recovers(kind: LocalKind | S3Kind) -> None:
    data = payload(20_000, seed=7)

    async def scenario(base: str) -> None:
        r = await fetch(base + "/raw/d.bin", method="PUT", body=data)
        assert r.code == 200, r.body
        await asyncio.to_thread(kind.break_it)
        try:
            r = await fetch(base + "/get/d.bin", headers={"Accept": "application/json"})
            assert r.code == 503, r.body
            assert "storage" in json.loads(r.body)["error"]["message"].lower()
            if isinstance(kind, S3Kind):
                r = await fetch(
                    base + "/raw/e.bin",
                    method="PUT",
                    body=data,
                    headers={"Accept": "application/json"},
                )
                assert r.code == 503, r.body
        finally:
            await asyncio.to_thread(kind.mend)
        r = await fetch(base + "/get/d.bin")  # same app, no restart
        assert r.code == 200
        assert r.body == data
        r = await fetch(base + "/raw/e.bin", method="PUT", body=data)
        assert r.code == 200, r.body

    run(kind, scenario)
    assert [k for k, _, _ in STORED] == ["kept/d.bin", "kept/e.bin"]


def test_bad_upload_storage_setting_is_refused() -> None:
    from webframe import ConfigurationError

    with pytest.raises(ConfigurationError, match="upload_storage"):
        test_settings(upload_storage="ftp://host/x")
    with pytest.raises(ConfigurationError, match="upload_storage"):
        test_settings(upload_storage="file://relative/x")
    with pytest.raises(ConfigurationError, match="upload_storage"):
        test_settings(upload_storage="s3:///prefix")


def test_default_storage_is_the_upload_folder(tmp_path: Path) -> None:
    from webframe.storage.local import LocalStorage

    app = make_app(test_settings(upload_path=str(tmp_path / "up")))
    assert isinstance(app.upload_storage, LocalStorage)
    assert app.upload_storage.root == tmp_path / "up"
    assert not (tmp_path / "up").exists()  # made on the first upload, as before


def test_env_variable_selects_the_storage(tmp_path: Path) -> None:
    from webframe.cli import parse_settings

    url = (tmp_path / "s").as_uri()
    settings = parse_settings([], env={"WEBFRAME_UPLOAD_STORAGE": url})
    assert settings.upload_storage == url
    assert parse_settings(["--upload-storage", url], env={}).upload_storage == url


def test_a_planned_key_is_committed_in_place_not_copied(
    kind: LocalKind | S3Kind, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webframe.storage.local import LocalStorage
    from webframe.storage.s3 import S3Storage

    copies: list[tuple[str, str]] = []
    for cls in (LocalStorage, S3Storage):
        real = cls.copy

        async def counted(self: Any, src: str, dst: str, real: Any = real) -> Any:
            copies.append((src, dst))
            return await real(self, src, dst)

        monkeypatch.setattr(cls, "copy", counted)
    data = payload(6 * MiB, seed=8)

    async def scenario(base: str) -> None:
        body, ctype = multipart("plan.bin", data)
        r = await fetch(
            base + "/planned", method="POST", body=body, headers={"Content-Type": ctype}
        )
        assert r.code == 200, r.body
        r = await fetch(base + "/get/plan.bin")
        assert r.body == data
        # Without a plan, S3 stores by a server-side copy (never a download).
        r = await fetch(
            base + "/up",
            method="POST",
            body=multipart("copy.bin", data)[0],
            headers={"Content-Type": ctype},
        )
        assert r.code == 200, r.body
        assert not await until(kind.leftovers)

    run(kind, scenario)
    assert [k for k, _, _ in STORED] == ["kept/plan.bin", "kept/copy.bin"]
    if isinstance(kind, S3Kind):
        assert [dst for _, dst in copies] == ["kept/copy.bin"]
    else:
        assert copies == []  # local storage links the temp file into place
    assert kind.kept() == ["copy.bin", "plan.bin"]


def test_demo_locker_on_the_storage(kind: LocalKind | S3Kind, tmp_path: Path) -> None:
    from handlers import DEMO_DEFAULTS
    from handlers import make_app as make_demo
    from webframe.testing import Client

    data = payload(3 * MiB, seed=9)

    async def main() -> None:
        settings = test_settings(
            **{
                **DEMO_DEFAULTS,
                "instance_path": str(tmp_path / "instance"),
                "upload_storage": kind.url,
            }
        )
        app = make_demo(settings)
        [sock] = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
        server = HTTPServer(app)
        server.add_sockets([sock])
        client = Client(
            tornado.httpclient.AsyncHTTPClient(), f"http://127.0.0.1:{sock.getsockname()[1]}"
        )
        try:
            assert (await client.get("/register")).code == 200
            r = await client.post(
                "/register",
                follow_redirects=True,
                form={"username": "sam", "password": "correct horse battery"},
            )
            assert r.code == 200
            r = await client.post(
                "/files", files={"files": [("a.bin", data)]}, headers={"Accept": "application/json"}
            )
            assert r.code == 201, r.body[:300]
            [info] = json.loads(r.body)["files"]
            assert info["sha256"] == hashlib.sha256(data).hexdigest()
            r = await client.get(info["url"], headers={"Range": "bytes=10-19"})
            assert r.code == 206 and r.body == data[10:20]
            stored = await asyncio.to_thread(
                kind.objects if isinstance(kind, S3Kind) else kind.leftovers
            )
            assert len(stored) == 1 and stored[0].startswith("users/"), stored
            r = await client.delete(info["url"], headers={"Accept": "application/json"})
            assert r.code == 204
            left = await until(kind.objects if isinstance(kind, S3Kind) else kind.leftovers)
            assert not left
        finally:
            server.stop()
            await app.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://host/x", "use file:///absolute/path or s3://bucket/prefix"),
        ("s3://bucket/p?part_size=1MiB", "part_size"),
        ("s3://bucket/p?colour=blue", "unknown parameter 'colour'"),
    ],
)
def test_cli_refuses_a_bad_upload_storage_before_serving(
    url: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from webframe.cli import main

    built: list[Any] = []

    def factory(settings: Any) -> Application:
        app = make_app(settings)
        built.append(app)
        return app

    argv = ["--upload-storage", url, "--port", "0", "--instance-path", str(tmp_path)]
    code = main(factory, argv, defaults={"cookie_secret": "x" * 40})
    err = capsys.readouterr().err
    assert code == 2
    assert "error: setting 'upload_storage'" in err and says in err, err
    assert built == []  # refused while building: nothing served
