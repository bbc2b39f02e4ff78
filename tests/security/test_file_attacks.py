"""Hostile upload names, disguised content on an image-only route, and downloads of
files that are not yours (or do not exist). Demo as a subprocess; the image-only route
is a small UploadHandler app in a thread of this process."""

from __future__ import annotations

import json
import os
import secrets
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from webframe import Application, UploadHandler, UploadLimits, route
from webframe.testing import test_settings

from ._support import (
    DemoUser,
    ServerProcess,
    ThreadedServer,
    assert_no_temp_files,
    assert_refused,
    closing,
    multipart_head,
    part,
    raw_request,
    register,
    request_bytes,
)

B = b"file-attacks-boundary-x81"
UNIQUE = secrets.token_hex(6)
ABSOLUTE = f"/tmp/wf-hardening-{UNIQUE}.txt"
WINDOWS_RESERVED = (
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
)

NAMES = [
    ABSOLUTE,
    "C:\\Windows\\x.txt",
    "..\\..\\x.txt",
    "../..\\x.txt",
    "..&#x2F;x.txt",
    "sub/dir\\x.txt",
    "../../../../../../../../etc/passwd",
    ".htaccess",
    ".",
    "..",
    "-rf",
    "--help.txt",
    "CON",
    "NUL.txt",
    "com1.txt",
    "LPT9",
    "a" * 300,
    "b" * 300 + ".txt",
    "é" * 200 + ".txt",
    "a\x00b.txt",
    "a\x1b[31mred.txt",
    "\u202etxt.exe",
    "\uff0e\uff0e\uff0fx.txt",
    "%2e%2e%2fx.txt",
    "   ",
    "x.txt ",
    "x.txt.",
    "a.jpg.php",
]


def file_body(filename: bytes, data: bytes = b"hello", ctype: bytes = b"text/plain") -> bytes:
    return (
        b"--"
        + B
        + b'\r\nContent-Disposition: form-data; name="files"; filename="'
        + filename
        + b'"\r\nContent-Type: '
        + ctype
        + b"\r\n\r\n"
        + data
        + b"\r\n"
        + closing(B)
    )


def upload(demo: ServerProcess, user: DemoUser, body: bytes) -> Any:
    headers = {
        **user.auth_headers(),
        "Accept": "application/json",
        "Content-Type": multipart_head(B.decode()),
    }
    return raw_request(demo.port, request_bytes("POST", "/files", headers, body), timeout=15)


def tree(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file()
        and ".tmp" not in p.parts  # temp files: checked by the live fixture
        and not p.name.startswith(("server-", "demo.db", "sessions.db"))
    }


def assert_safe_shown_name(name: str) -> None:
    assert (name and name.strip() == name) or name.strip(), repr(name)
    assert "/" not in name and "\\" not in name, repr(name)
    assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in name), repr(name)
    assert not name.startswith((".", "-")), repr(name)
    assert name not in (".", "..")
    assert name.split(".")[0].upper() not in WINDOWS_RESERVED, repr(name)
    assert len(name.encode("utf-8")) <= 255, len(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES, ids=[repr(n[:24]) for n in NAMES])
def test_hostile_upload_names(live: ServerProcess, demo_user: DemoUser, name: str) -> None:
    before = tree(live.instance)
    resp = upload(live, demo_user, file_body(name.encode("utf-8")))
    if resp.status != 201:
        assert_refused(resp, (400, 415))
        assert tree(live.instance) == before
        return
    stored = json.loads(resp.body)["files"][0]
    assert_safe_shown_name(stored["name"])
    new = tree(live.instance) - before
    assert len(new) == 1, new
    (path,) = new
    folder, _, stored_name = path.rpartition("/")
    assert folder.startswith("uploads/users/"), path
    assert all(c in "0123456789abcdef." or c.isalnum() for c in stored_name), stored_name
    assert not os.path.exists(ABSOLUTE)
    # The download names the file safely.
    r = demo_user.http.get(live.url + stored["url"], timeout=10)
    assert r.status_code == 200 and r.content == b"hello"
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert not any(c in disposition for c in "\r\n\x00/\\")


@pytest.mark.slow
@pytest.mark.parametrize(
    "raw",
    [
        b"a\rb.txt",
        b"a\nb.txt",
        b"a\r\nContent-Type: text/html\r\n\r\nx.txt",
        b"\x00",
        b"\x7f\x01.txt",
    ],
    ids=["CR", "LF", "CRLF-header", "NUL-only", "DEL"],
)
def test_control_bytes_in_raw_filenames(
    live: ServerProcess, demo_user: DemoUser, raw: bytes
) -> None:
    before = tree(live.instance)
    resp = upload(live, demo_user, file_body(raw))
    if resp.status == 201:
        for stored in json.loads(resp.body)["files"]:
            assert_safe_shown_name(stored["name"])
    else:
        assert_refused(resp, (400, 415))
        assert tree(live.instance) == before


@pytest.mark.slow
def test_names_in_the_listing_page_are_clean(live: ServerProcess, demo_user: DemoUser) -> None:
    r = demo_user.http.get(live.url + "/files", headers={"Accept": "text/html"}, timeout=10)
    assert r.status_code == 200
    assert "\x00" not in r.text and "\x1b" not in r.text and "\u202e" not in r.text
    assert ABSOLUTE not in r.text and "C:\\Windows" not in r.text


# --------------------------------------------------------- image-only route

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
HTML = b"<!doctype html><html><script>alert(1)</script></html>"


@route("/avatar")
class AvatarUpload(UploadHandler):
    upload_limits = UploadLimits(
        max_body_size=1024 * 1024, max_file_size=512 * 1024, allowed_types=frozenset({"image/*"})
    )

    def post(self) -> None:
        self.json(
            {
                "files": [
                    {"name": u.filename, "type": u.content_type, "sniffed": u.sniffed_type}
                    for u in self.uploads
                ]
            },
            status=201,
        )


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Any:
    upload_path = tmp_path_factory.mktemp("avatar-uploads")

    def make() -> Application:
        return Application([AvatarUpload], test_settings(xsrf=False, upload_path=str(upload_path)))

    with ThreadedServer(make) as server:
        server.temp = upload_path / ".tmp"  # type: ignore[attr-defined]
        yield server


def post_avatar(server: ThreadedServer, filename: bytes, data: bytes, ctype: bytes) -> Any:
    body = file_body(filename, data, ctype)
    headers = {"Accept": "application/json", "Content-Type": multipart_head(B.decode())}
    return raw_request(server.port, request_bytes("POST", "/avatar", headers, body), timeout=15)


@pytest.mark.parametrize(
    ("filename", "data", "ctype"),
    [
        (b"a.png", HTML, b"image/png"),
        (b"a.png", HTML, b"application/octet-stream"),
        (b"a.png", b"\xef\xbb\xbf \n\t" + HTML, b"image/png"),
        (
            b"a.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>',
            b"image/svg+xml",
        ),
        (b"a.png", b"just some text", b"image/png"),
        (b"a.html", PNG, b"text/html"),
        (b"a.jpg.php", HTML, b"image/jpeg"),
        (b"a.png", b"", b"image/png"),
    ],
    ids=[
        "html-as-png",
        "html-as-octet-stream",
        "html-after-bom-and-space",
        "svg-with-script",
        "text-as-png",
        "png-declared-html",
        "html-as-jpg-php",
        "empty-png",
    ],
)
def test_image_only_route_refuses_disguised_content(
    images: ThreadedServer, filename: bytes, data: bytes, ctype: bytes
) -> None:
    resp = post_avatar(images, filename, data, ctype)
    if filename == b"a.png" and data == b"":
        # filename given, no bytes: an empty file of unknown real type
        assert resp.status in (201, 400, 415)
        if resp.status != 201:
            assert_refused(resp, (400, 415))
    else:
        assert_refused(resp, 415)
    assert_no_temp_files(images.temp)  # type: ignore[attr-defined]
    r = requests.get(images.url + "/avatar", timeout=5)
    assert r.status_code == 405  # still answering


def test_image_only_route_accepts_a_real_png(images: ThreadedServer) -> None:
    resp = post_avatar(images, b"me.png", PNG, b"image/png")
    assert resp.status == 201, resp.text
    assert json.loads(resp.body)["files"][0]["sniffed"] == "image/png"


@pytest.mark.parametrize("ctype", [b"image/png", b"application/octet-stream"])
@pytest.mark.parametrize("name", [b"a.jpg.php", b"shell.php", b"x.png.phtml"])
def test_image_only_route_refuses_script_extensions(
    images: ThreadedServer, name: bytes, ctype: bytes
) -> None:
    resp = post_avatar(images, name, PNG, ctype)
    assert_refused(resp, 415)


def test_image_with_another_images_magic_is_judged_by_its_bytes(images: ThreadedServer) -> None:
    """Declared PNG, bytes are a GIF (with markup after the magic): an image either way;
    accepted only as what the bytes are, never as HTML."""
    resp = post_avatar(images, b"a.png", b"GIF89a" + HTML, b"image/png")
    if resp.status == 201:
        assert json.loads(resp.body)["files"][0]["sniffed"] == "image/gif"
    else:
        assert_refused(resp, 415)


# --------------------------------------------------------------- downloads


@pytest.fixture(scope="module")
def owner_file(demo: ServerProcess) -> tuple[DemoUser, str]:
    owner = register(demo.url)
    resp = upload(demo, owner, file_body(b"secret.txt", b"top secret"))
    assert resp.status == 201
    return owner, json.loads(resp.body)["files"][0]["url"]


@pytest.mark.slow
def test_another_users_file_is_404(live: ServerProcess, owner_file: tuple[DemoUser, str]) -> None:
    owner, url = owner_file
    intruder = register(live.url)
    for method in ("GET", "HEAD"):
        r = intruder.http.request(method, live.url + url, timeout=10, allow_redirects=False)
        assert r.status_code == 404
    r = intruder.http.get(live.url + url, headers={"Accept": "application/json"}, timeout=10)
    assert_refused(r, 404, message="no such file")
    assert b"top secret" not in r.content
    r = intruder.http.delete(
        live.url + url,
        headers={"X-XSRFToken": intruder.xsrf, "Accept": "application/json"},
        timeout=10,
    )
    assert_refused(r, 404)
    r = intruder.http.post(
        live.url + url,
        data={"_method": "DELETE", "_xsrf": intruder.xsrf},
        timeout=10,
        allow_redirects=False,
    )
    assert_refused(r, 404)
    r = owner.http.get(live.url + url, timeout=10)
    assert r.status_code == 200 and r.content == b"top secret"


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        "/files/../files/{id}",
        "/files/..%2F{id}",
        "/files/%2e%2e/{id}",
        "/files/{id}/..",
        "/files/{id}/../../etc/passwd",
        "/files/..%5C{id}",
        "/files/0",
        "/files/999999999",
        "/files/999999999999999999",
        "/files/99999999999999999999999",
        "/files/-1",
        "/files/1.0",
        "/files/0x1",
        "/files/{id}%00",
        "/files/%31",
        "/files/ 1",
        "/files/{id}?id=1",
    ],
)
def test_odd_file_ids(live: ServerProcess, owner_file: tuple[DemoUser, str], path: str) -> None:
    owner, url = owner_file
    file_id = url.rsplit("/", 1)[1]
    target = path.format(id=file_id)
    intruder = register(live.url)
    data = request_bytes(
        "GET", target, {"Cookie": intruder.cookie_header(), "Accept": "application/json"}
    )
    resp = raw_request(live.port, data, timeout=10)
    assert resp.status in (400, 404), (target, resp.status, resp.text[:200])
    assert b"top secret" not in resp.body
    if resp.status == 404 or resp.body:
        assert_refused(resp, (400, 404))
    # The owner with the same odd paths never gets more than their own file.
    data = request_bytes(
        "GET", target, {"Cookie": owner.cookie_header(), "Accept": "application/json"}
    )
    resp = raw_request(live.port, data, timeout=10)
    assert resp.status in (200, 400, 404), (target, resp.status)
    if resp.status == 200:
        assert resp.body == b"top secret"


# ------------------------------------ probing the demo as a new user (issue 12, §3)

# Declared types of a file part, as bytes on the wire. Files are empty, so nothing is
# sniffed and the declared type is what the locker would keep and send back.
HOSTILE_TYPES = [
    "text/日本".encode(),
    b"text/\xff\xfe",
    b"text/ plain",
    b"a/b/c",
    b"/",
    b"text",
    b"text/html, image/png",
    b'text/plain; charset="\xe9"',
    b"x/" + b"y" * 300,
    b"text/plain\t; q=1",
]


def _assert_sendable_type(value: str) -> None:
    assert value.isascii() and value.isprintable(), repr(value)
    kind, _, sub = value.partition(";")[0].strip().partition("/")
    assert kind and sub and "/" not in sub and " " not in kind + sub, repr(value)


@pytest.mark.slow
@pytest.mark.parametrize("ctype", HOSTILE_TYPES, ids=lambda b: repr(b[:20]))
def test_hostile_declared_types_never_break_the_download(
    live: ServerProcess, demo_user: DemoUser, ctype: bytes
) -> None:
    seen = len(live.tracebacks())  # the server is shared: count only this test's
    resp = upload(live, demo_user, file_body(b"probe.dat", b"", ctype))
    if resp.status != 201:
        assert_refused(resp, 400)
        return
    [stored] = json.loads(resp.body)["files"]
    _assert_sendable_type(stored["content_type"])
    for method in ("GET", "HEAD"):
        r = demo_user.http.request(method, live.url + stored["url"], timeout=10)
        assert r.status_code == 200, (method, r.status_code, r.text[:300])
        _assert_sendable_type(r.headers["Content-Type"])
    assert live.tracebacks()[seen:] == []


@pytest.mark.slow
def test_raw_put_with_an_unsendable_content_type_header(
    live: ServerProcess, demo_user: DemoUser
) -> None:
    seen = len(live.tracebacks())  # the server is shared: count only this test's
    # UTF-8 bytes in the request header itself (curl -H 'Content-Type: text/日本').
    wire = "text/日本".encode().decode("latin-1")
    headers = {**demo_user.auth_headers(), "Accept": "application/json", "Content-Type": wire}
    resp = raw_request(live.port, request_bytes("PUT", "/files/raw/probe.dat", headers), timeout=10)
    assert resp.status == 201, resp.text[:300]
    info = json.loads(resp.body)
    assert info["content_type"] == "application/octet-stream"
    r = demo_user.http.get(live.url + info["url"], timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/octet-stream"
    assert live.tracebacks()[seen:] == []


NO_SINGLE_FILE = {
    "fields only": part(B, "note", b"hello"),
    "empty message": b"",
    "empty file input": part(B, "file", b"", filename="", ctype="application/octet-stream"),
    "two files": part(B, "a", b"one", filename="one.txt") + part(B, "b", b"2", filename="2.txt"),
}


@pytest.mark.slow
@pytest.mark.parametrize("parts", list(NO_SINGLE_FILE.values()), ids=list(NO_SINGLE_FILE))
def test_raw_put_needs_exactly_one_file_and_keeps_nothing(
    live: ServerProcess, demo_user: DemoUser, parts: bytes
) -> None:
    seen = len(live.tracebacks())  # the server is shared: count only this test's
    before = tree(live.instance)
    listing = demo_user.http.get(live.url + "/files", timeout=10).text
    headers = {
        **demo_user.auth_headers(),
        "Accept": "application/json",
        "Content-Type": multipart_head(B.decode()),
    }
    data = request_bytes("PUT", "/files/raw/probe.txt", headers, parts + closing(B))
    resp = raw_request(live.port, data, timeout=10)
    assert_refused(resp, 400, message="PUT takes exactly one" if b"2.txt" in parts else "no file")
    # Side effects: no stored file, no locker record, no temp file (the live fixture).
    assert tree(live.instance) == before
    assert demo_user.http.get(live.url + "/files", timeout=10).text.count("file-name") == (
        listing.count("file-name")
    )
    assert live.tracebacks()[seen:] == []


RAW_NAMES = [
    quote("日本語 レポート.txt"),
    "a" * 2000 + ".txt",
    quote("é" * 300),
    "%2E%2E",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "%ff%fe.txt",
    "%ED%A0%80.txt",  # an encoded lone surrogate
    quote("\u202etxt.exe"),
    quote("CON"),
    "%20",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", RAW_NAMES, ids=lambda n: repr(n[:16]))
def test_odd_raw_put_names(live: ServerProcess, demo_user: DemoUser, name: str) -> None:
    seen = len(live.tracebacks())  # the server is shared: count only this test's
    headers = {
        **demo_user.auth_headers(),
        "Accept": "application/json",
        "Content-Type": "text/plain",
    }
    data = request_bytes("PUT", "/files/raw/" + name, headers, b"hello")
    resp = raw_request(live.port, data, timeout=10)
    if resp.status == 201:
        info = json.loads(resp.body)
        assert_safe_shown_name(info["name"])
        r = demo_user.http.get(live.url + info["url"], timeout=10)
        assert r.status_code == 200 and r.content == b"hello"
        assert r.headers["Content-Disposition"].isascii()
    else:
        assert_refused(resp, (400, 404))
    assert live.tracebacks()[seen:] == []
