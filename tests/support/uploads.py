"""Shared by the upload tests: the upload routes and test cases over HTTP, body encoders.

``UploadTestCase`` serves the echo, raw, image, members-only, big and save routes
(``tests/test_uploads.py``); ``BodyBufferCase`` serves the probes that record each
body piece (``tests/test_body_buffer.py``, ``tests/test_prealloc.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from tornado.httpclient import HTTPResponse

from webframe import (
    Application,
    ForbiddenError,
    RequestHandler,
    UploadError,
    UploadHandler,
    UploadLimits,
    route,
)
from webframe.server import framing
from webframe.testing import WebTestCase, test_settings
from webframe.uploads import upload_error

KiB = 1024
MiB = 1024 * KiB
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
HTML = b"<!doctype html><html><script>alert(1)</script></html>"
JSON = {"Accept": "application/json"}

LIMITS = UploadLimits(
    max_body_size=128 * KiB,
    max_file_size=64 * KiB,
    max_files=3,
    max_fields=4,
    max_field_size=200,
    max_part_header_size=512,
)
IMAGE_LIMITS = LIMITS.replace(
    allowed_extensions=frozenset({".png", ".jpg"}),
    allowed_types=frozenset({"image/png", "image/jpeg"}),
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe(handler: UploadHandler) -> dict[str, Any]:
    """What the handler saw, for the tests to compare."""
    temp = handler.upload_temp_dir()
    files = []
    for u in handler.uploads:
        with u.open() as fh:
            opened = fh.read()
        files.append(
            {
                "field": u.field_name,
                "filename": u.filename,
                "raw_filename": u.raw_filename,
                "content_type": u.content_type,
                "sniffed_type": u.sniffed_type,
                "size": u.size,
                "sha256": u.sha256,
                "opened_sha256": sha(opened),
                "in_temp_dir": u.path.parent == temp and u.path.is_file(),
            }
        )
    fields = {name: handler.get_body_arguments(name) for name in handler.request.body_arguments}
    fields.pop("_xsrf", None)
    return {
        "fields": fields,
        "files": files,
        "last_tag": handler.get_body_argument("tags", None),
        "absent": handler.get_body_argument("absent", "default"),
    }


@route("/")
class HomeHandler(RequestHandler):
    def get(self) -> None:
        self.write({"xsrf": self.xsrf_token.decode()})


@route("/up")
class EchoUpload(UploadHandler):
    upload_limits = LIMITS

    def post(self) -> None:
        result = describe(self)
        save_to = self.settings.get("save_dir")
        if self.get_query_argument("save", None) and save_to:
            result["saved"] = [u.save(save_to).name for u in self.uploads]
        self.json(result)


@route("/raw/{name}")
class RawEcho(UploadHandler):
    upload_limits = LIMITS
    upload_methods = ("PUT",)

    def put(self, name: str) -> None:
        self.json(describe(self))


@route("/img")
class ImageUpload(UploadHandler):
    upload_limits = IMAGE_LIMITS

    def post(self) -> None:
        self.json(describe(self))


@route("/img/{name}")
class RawImage(UploadHandler):
    upload_limits = IMAGE_LIMITS
    upload_methods = ("PUT",)

    def put(self, name: str) -> None:
        self.json(describe(self))


@route("/members/{name}")
class MembersOnly(UploadHandler):
    """Refuses in prepare(), before the body is read (as a login check would)."""

    upload_limits = LIMITS
    upload_methods = ("PUT",)

    async def prepare(self) -> None:
        session = await self.load_session()
        session["refused"] = 1  # the error answer now waits for the session save
        raise ForbiddenError("Members only.")

    def put(self, name: str) -> None:
        self.write("unreachable")


@route("/big")
class BigUpload(UploadHandler):
    upload_limits = UploadLimits(max_body_size=80 * MiB, max_file_size=80 * MiB)

    def post(self) -> None:
        self.json({"files": [[u.size, u.sha256] for u in self.uploads]})


@route("/save/{folder:path}")
class SaveUpload(UploadHandler):
    """Saves every upload under ``save_dir/<folder>``, as the README shows."""

    upload_limits = LIMITS

    def post(self, folder: str) -> None:
        base = Path(self.settings["save_dir"])
        try:
            saved = [u.save(base / folder) for u in self.uploads]
        except UploadError as exc:  # the storage error names the folder
            raise upload_error(exc) from None
        self.json({"saved": [str(p.relative_to(base)) for p in saved]})


def encode(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    """A multipart body with parts in the given order: (name, filename or None, data)."""
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def names_limit(message: str) -> bool:
    """The 413 message states the 128 KiB body limit (in bytes or KiB)."""
    return re.search(r"\b(131072 bytes|128(\.0)? KiB)", message) is not None


def error_of(r: HTTPResponse) -> str:
    data = json.loads(r.body)
    assert data["error"]["status"] == r.code
    message: str = data["error"]["message"]
    return message


class UploadTestCase(WebTestCase):
    def get_app(self) -> Application:
        self.upload_root = Path(tempfile.mkdtemp(prefix="wf-uploads-"))
        self.addCleanup(shutil.rmtree, self.upload_root, True)
        self.save_dir = self.upload_root / "saved"
        self.save_dir.mkdir()
        settings = test_settings(
            upload_path=str(self.upload_root), instance_path=str(self.upload_root / "inst")
        )
        return Application(
            [
                HomeHandler,
                EchoUpload,
                RawEcho,
                ImageUpload,
                RawImage,
                MembersOnly,
                BigUpload,
                SaveUpload,
            ],
            settings,
            save_dir=str(self.save_dir),
        )

    # helpers -------------------------------------------------------------

    @property
    def temp_dir(self) -> Path:
        return self.upload_root / ".tmp"

    def temp_files(self) -> list[str]:
        return sorted(os.listdir(self.temp_dir)) if self.temp_dir.exists() else []

    def assert_no_temp_files(self, within: float = 1.0) -> None:
        """The upload temp dir empties (polled for ``within`` seconds, loop running)."""
        self.wait_until(lambda: not self.temp_files(), within)
        assert self.temp_files() == []

    def wait_until(self, cond: Callable[[], bool], within: float = 1.0) -> bool:
        async def poll() -> bool:
            deadline = time.monotonic() + within
            while not cond():
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.01)
            return True

        return bool(self.io_loop.run_sync(poll))

    def token(self) -> str:
        token = self.io_loop.run_sync(self.client.xsrf_token)
        assert token
        return token

    def in_thread(self, fn: Callable[[], Any]) -> Any:
        """Run blocking ``fn`` in a thread while the server keeps serving."""
        return self.io_loop.run_sync(lambda: self.io_loop.run_in_executor(None, fn))  # type: ignore[arg-type]

    def raw(self, data: bytes, *, shutdown: bool = False, timeout: float = 5) -> bytes:
        """Send raw bytes; return everything the server answers before closing."""
        port = self.get_http_port()

        def run() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
                s.sendall(data)
                if shutdown:
                    s.shutdown(socket.SHUT_WR)
                out = b""
                try:
                    while chunk := s.recv(65536):
                        out += chunk
                except (ConnectionResetError, TimeoutError):
                    pass
                return out

        result: bytes = self.in_thread(run)
        return result

    def raw_head(self, path: str, ctype: str, length: int | None, extra: str = "") -> bytes:
        token = self.token()
        cookie = self.cookies.header_for(self.get_url(path))
        framing = f"Content-Length: {length}\r\n" if length is not None else ""
        return (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
            f"Cookie: {cookie}\r\nX-XSRFToken: {token}\r\nContent-Type: {ctype}\r\n"
            f"{framing}{extra}\r\n"
        ).encode()


# ------------------------------------------------------------ body buffer

BUF = framing.BODY_BUFFER
BOUNDARY = "bufferBoundary42"
#: the body-buffer routes' limits (large bodies, no type rules).
BODY_LIMITS = UploadLimits(max_body_size=64 * MiB, max_file_size=64 * MiB)


@route("/probe")
class Probe(UploadHandler):
    """Records the type, length and identity of every body piece it is given."""

    upload_limits = BODY_LIMITS
    upload_methods = ("POST", "PUT")

    def prepare(self) -> Any:
        self.pieces: list[tuple[str, int, int]] = []
        return super().prepare()

    def data_received(self, chunk: bytes) -> None:
        piece = (type(chunk).__name__, len(chunk), id(chunk))
        self.pieces.append(piece)
        self.settings["record"].append(piece)  # seen by tests before the body ends
        super().data_received(chunk)

    def post(self) -> None:
        self.answer()

    def put(self) -> None:
        self.answer()

    def answer(self) -> None:
        self.json(
            {
                "pieces": self.pieces,
                "files": [[u.filename, u.size, u.sha256] for u in self.uploads],
                "fields": {k: self.get_body_arguments(k) for k in self.request.body_arguments},
            }
        )


@route("/probe-bytes")
class ProbeBytes(Probe):
    reuses_body_buffer: ClassVar[bool] = False


@route("/small-files")
class SmallFiles(Probe):
    upload_limits = BODY_LIMITS.replace(max_file_size=2 * MiB)


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that differ at every offset (a shifted piece shows up in the hash)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 4096  # 128 KiB
    reps = n // len(block) + 1
    return (block * reps)[:n]


class BodyBufferCase(UploadTestCase):
    #: the routes of the app under test (subclasses testing other handlers replace it).
    app_handlers: ClassVar[list[type]] = [HomeHandler, Probe, ProbeBytes, SmallFiles]
    #: the connection layer served on (the Tornado* subclasses run Tornado's own).
    http_impl: ClassVar[str] = "httptools"

    def get_app(self) -> Application:
        self.upload_root = Path(tempfile.mkdtemp(prefix="wf-bodybuf-"))
        self.addCleanup(shutil.rmtree, self.upload_root, True)
        settings = test_settings(
            upload_path=str(self.upload_root),
            instance_path=str(self.upload_root / "inst"),
            http_impl=self.http_impl,
        )
        self.record: list[tuple[str, int, int]] = []
        return Application(self.app_handlers, settings, record=self.record)

    def send(self, path: str, body: bytes, method: str = "POST") -> tuple[int, Any]:
        """``body`` as multipart (Content-Length declared) or, for PUT, as raw bytes."""
        ctype = (
            f"multipart/form-data; boundary={BOUNDARY}"
            if method == "POST"
            else "application/octet-stream"
        )
        r = self.fetch(
            path,
            method=method,
            body=body,
            headers={"Content-Type": ctype, "Accept": "application/json"},
        )
        return r.code, json.loads(r.body)

    def auth_headers(self, path: str) -> dict[str, str]:
        token = self.token()  # first: it may start the session the cookie then carries
        return {"Cookie": self.cookies.header_for(self.get_url(path)), "X-XSRFToken": token}
