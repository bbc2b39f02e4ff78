"""UploadHandler over HTTP: fields and files, every limit, clients, disconnects, XSRF, memory."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import socket
import subprocess
import time
from typing import Any

import requests
from tornado.httpclient import HTTPResponse

from webframe.testing import MultipartEncoder

from .conftest import need_program
from .support.uploads import (
    HTML,
    JSON,
    PNG,
    KiB,
    MiB,
    UploadTestCase,
    encode,
    error_of,
    names_limit,
    sha,
)

# ------------------------------------------------------------ fields and files


class FieldsAndFilesTest(UploadTestCase):
    def test_fields_and_files_arrive(self) -> None:
        notes = b"line one\r\n--not-a-boundary\r\nline two\n" * 50
        r = self.post(
            "/up",
            form={"title": "Héllo wörld", "tags": ["a", "b"]},
            files={
                "photo": ("../../etc/cat<script>.png", PNG, "image/png"),
                "docs": [("notes.txt", notes, "text/plain"), ("dir\\sub\\raw.bin", b"\x00\x01")],
            },
        )
        assert r.code == 200, r.body
        got = json.loads(r.body)
        assert got["fields"] == {"title": ["Héllo wörld"], "tags": ["a", "b"]}
        photo, doc, raw = got["files"]
        assert photo == {
            "field": "photo",
            "filename": "cat_script_.png",
            "raw_filename": "../../etc/cat<script>.png",
            "content_type": "image/png",
            "sniffed_type": "image/png",
            "size": len(PNG),
            "sha256": sha(PNG),
            "opened_sha256": sha(PNG),
            "in_temp_dir": True,
        }
        assert (doc["field"], doc["filename"], doc["size"], doc["sha256"]) == (
            "docs",
            "notes.txt",
            len(notes),
            sha(notes),
        )
        assert doc["content_type"] == "text/plain" and doc["sniffed_type"] == "text/plain"
        assert (raw["filename"], raw["raw_filename"]) == ("raw.bin", "dir\\sub\\raw.bin")
        assert raw["content_type"] == "application/octet-stream"
        assert raw["sniffed_type"] == "application/octet-stream"
        # The request is over: its temp files are gone.
        self.assert_no_temp_files(within=0.5)

    def test_get_body_argument_defaults_and_missing(self) -> None:
        r = self.post("/up", form={"tags": ["x", "y"]}, files={"f": ("a.txt", b"x")})
        got = json.loads(r.body)
        assert got["fields"] == {"tags": ["x", "y"]}
        assert (got["last_tag"], got["absent"]) == ("y", "default")
        assert [f["size"] for f in got["files"]] == [1]

    def test_save_gives_unique_names_and_never_overwrites(self) -> None:
        (self.save_dir / "report.txt").write_bytes(b"precious")
        for content in (b"first upload", b"second upload"):
            r = self.post("/up?save=1", files={"f": ("report.txt", content, "text/plain")})
            assert r.code == 200, r.body
        assert (self.save_dir / "report.txt").read_bytes() == b"precious"
        assert (self.save_dir / "report-1.txt").read_bytes() == b"first upload"
        assert (self.save_dir / "report-2.txt").read_bytes() == b"second upload"
        # Saved copies stay, staging files never linger, temp files go.
        assert sorted(os.listdir(self.save_dir)) == ["report-1.txt", "report-2.txt", "report.txt"]
        self.assert_no_temp_files()

    def test_saved_copy_survives_temp_cleanup(self) -> None:
        r = self.post("/up?save=1", files={"f": ("a.png", PNG, "image/png")})
        assert json.loads(r.body)["saved"] == ["a.png"]
        self.assert_no_temp_files()
        assert (self.save_dir / "a.png").read_bytes() == PNG

    def test_raw_put_upload(self) -> None:
        body = b"plain text body\n" * 100
        r = self.put("/raw/..%2Fnotes%20v2.txt", body=body, headers={"Content-Type": "text/plain"})
        assert r.code == 200, r.body
        [f] = json.loads(r.body)["files"]
        assert (f["filename"], f["raw_filename"]) == ("notes v2.txt", "../notes v2.txt")
        assert (f["size"], f["sha256"], f["sniffed_type"]) == (len(body), sha(body), "text/plain")
        assert f["content_type"] == "text/plain" and f["in_temp_dir"]
        self.assert_no_temp_files()

    def test_raw_put_through_the_same_limits(self) -> None:
        r = self.put("/raw/big.bin", body=b"x" * (64 * KiB + 1), headers=JSON)
        assert r.code == 413
        assert "max_file_size" in error_of(r)
        self.assert_no_temp_files()
        r = self.put("/img/evil.png", body=HTML, headers={**JSON, "Content-Type": "image/png"})
        assert r.code == 415
        assert "HTML" in error_of(r) or "not image/png" in error_of(r)
        r = self.put("/img/run.exe", body=PNG, headers=JSON)
        assert r.code == 415 and "allowed extensions" in error_of(r)
        self.assert_no_temp_files()

    def test_plain_form_post_to_upload_route(self) -> None:
        # Not multipart on an upload method: refused with 415, not parsed as a form.
        r = self.post("/up", form={"a": "1"}, headers=JSON)
        assert r.code == 415
        assert "multipart/form-data" in error_of(r)


# ------------------------------------------- found by probing the demo (issue 12)


class ProbedDefectsTest(UploadTestCase):
    def test_save_creates_a_missing_folder_with_its_parents(self) -> None:
        assert not (self.save_dir / "media").exists()
        r = self.post("/save/media/avatars/2026", files={"f": ("me.txt", b"hello")}, headers=JSON)
        assert r.code == 200, r.body
        assert json.loads(r.body)["saved"] == ["media/avatars/2026/me.txt"]
        assert (self.save_dir / "media" / "avatars" / "2026" / "me.txt").read_bytes() == b"hello"
        self.assert_no_temp_files()

    def test_save_into_a_folder_that_cannot_be_made_names_the_folder(self) -> None:
        (self.save_dir / "blocked").write_bytes(b"a file where a folder should be")
        r = self.post("/save/blocked/sub", files={"f": ("me.txt", b"hello")}, headers=JSON)
        assert r.code == 507, r.body
        folder = str(self.save_dir / "blocked" / "sub")
        assert error_of(r).startswith(f"The upload folder {folder!r} could not be created: ")
        assert "upload-" not in error_of(r) and ".part" not in error_of(r)  # not the temp file
        assert sorted(os.listdir(self.save_dir)) == ["blocked"]
        self.assert_no_temp_files()

    def test_declared_types_are_checked_as_media_types(self) -> None:
        declared = {
            "a.dat": "text/日本",
            "b.dat": "text/ plain",
            "c.dat": "a/b/c",
            "d.dat": "image/png, text/html",
            "e.dat": 'Text/CSV; charset="utf-8"',
            "f.dat": "image/jpg",
        }
        got = []
        for name, ctype in declared.items():
            r = self.post("/up", files={"f": (name, b"", ctype)}, headers=JSON)
            assert r.code == 200, r.body
            got.append(json.loads(r.body)["files"][0]["content_type"])
        octet = "application/octet-stream"
        assert got == [octet, octet, octet, octet, "text/csv", "image/jpeg"]
        # A raw body's Content-Type header too (UTF-8 bytes, read as Latin-1 by the server).
        mojibake = "text/日本".encode().decode("latin-1")
        r = self.put("/raw/x.dat", body=b"", headers={**JSON, "Content-Type": mojibake})
        assert r.code == 200, r.body
        assert json.loads(r.body)["files"][0]["content_type"] == octet
        self.assert_no_temp_files()

    def test_invalid_declared_type_on_an_image_route_is_judged_by_name_and_bytes(self) -> None:
        r = self.post("/img", files={"f": ("a.png", PNG, "image/日本")}, headers=JSON)
        assert r.code == 200, r.body
        [f] = json.loads(r.body)["files"]
        assert (f["content_type"], f["sniffed_type"]) == ("application/octet-stream", "image/png")
        r = self.post("/img", files={"f": ("a.png", HTML, "image/日本")}, headers=JSON)
        assert r.code == 415 and "HTML" in error_of(r)
        self.assert_no_temp_files()

    def test_multipart_without_a_file_reaches_the_method_with_no_uploads(self) -> None:
        # The framework does not fail on it; the handler decides (the demo answers 400).
        enc = MultipartEncoder({"note": "hi"}, {"f": ("", b"")})
        r = self.put(
            "/raw/x.txt", body=enc.to_bytes(), headers={**JSON, "Content-Type": enc.content_type}
        )
        assert r.code == 200, r.body
        got = json.loads(r.body)
        assert (got["files"], got["fields"]) == ([], {"note": ["hi"]})
        self.assert_no_temp_files()


# --------------------------------------------------------------------- limits


class LimitsTest(UploadTestCase):
    def post_json(self, path: str = "/up", **kw: Any) -> HTTPResponse:
        return self.post(path, headers=JSON, **kw)

    def test_declared_length_over_limit_refused_before_body(self) -> None:
        # Headers only: the answer must come without a single body byte sent.
        enc = MultipartEncoder({"a": "1"})
        head = self.raw_head("/up", enc.content_type, 5 * 1024**3)
        out = self.raw(head, timeout=3)
        status, _, body = out.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 413"), out[:200]
        message = json.loads(body)["error"]["message"]
        assert names_limit(message)
        self.assert_no_temp_files()

    def test_declared_length_slightly_over_limit_answered_without_body(self) -> None:
        # A client that sends the headers and waits (as if for 100-continue) must
        # not hang until its body timeout just because the overflow is small.
        # KNOWN BUG (webframe/app.py _Delegate): a declared length over the limit but
        # under _DRAIN (32 MiB) is answered only after the whole body has been read
        # and thrown away; only larger declared sizes are answered at once.
        head = self.raw_head("/up", "multipart/form-data; boundary=xyz", 128 * KiB + 1)
        t0 = time.monotonic()
        out = self.raw(head, timeout=1.5)
        assert out.startswith(b"HTTP/1.1 413"), (out[:200], time.monotonic() - t0)

    def test_declared_length_over_limit_with_body_sent(self) -> None:
        enc = MultipartEncoder(files={"f": ("a.bin", b"z" * (150 * KiB))})
        head = self.raw_head("/up", enc.content_type, enc.length, "Connection: close\r\n")
        out = self.raw(head + enc.to_bytes())
        assert out.startswith(b"HTTP/1.1 413"), out[:200]
        assert names_limit(out.decode())
        self.assert_no_temp_files()

    def test_chunked_body_stopped_once_over_limit(self) -> None:
        # Three files within max_files and max_file_size, but together over max_body_size.
        enc = MultipartEncoder(files={"f": [(f"{i}.bin", b"a" * (60 * KiB)) for i in range(3)]})
        body = enc.to_bytes()
        assert len(body) > 128 * KiB
        chunked = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192])
            for i in range(0, len(body), 8192)
        )
        head = self.raw_head(
            "/up", enc.content_type, None, "Transfer-Encoding: chunked\r\nConnection: close\r\n"
        )
        out = self.raw(head + chunked + b"0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 413"), out[:200]
        assert names_limit(out.decode())
        self.assert_no_temp_files()

    def test_file_size(self) -> None:
        r = self.post_json(
            files={"ok": ("ok.bin", b"1" * 100), "big": ("big.bin", b"x" * (64 * KiB + 1))}
        )
        assert r.code == 413
        assert "'big'" in error_of(r) and "max_file_size" in error_of(r)
        self.assert_no_temp_files()

    def test_file_size_exactly_at_limit_passes(self) -> None:
        r = self.post_json(files={"f": ("f.bin", b"x" * (64 * KiB))})
        assert r.code == 200
        assert json.loads(r.body)["files"][0]["size"] == 64 * KiB

    def test_number_of_files(self) -> None:
        r = self.post_json(files={"f": [(f"{i}.txt", b"data") for i in range(4)]})
        assert r.code == 413
        assert "more than 3 files" in error_of(r)
        self.assert_no_temp_files()

    def post_parts(self, parts: list[tuple[str, str | None, bytes]]) -> HTTPResponse:
        return self.post(
            "/up",
            body=encode(parts),
            headers={**JSON, "Content-Type": "multipart/form-data; boundary=XyZ"},
        )

    def test_number_of_fields(self) -> None:
        # A file first, so that a temp file exists when the limit strikes.
        r = self.post_parts(
            [("f", "a.txt", b"1" * 5000)] + [(f"k{i}", None, b"v") for i in range(5)]
        )
        assert r.code == 413
        assert "more than 4 fields" in error_of(r)
        self.assert_no_temp_files()

    def test_field_size(self) -> None:
        r = self.post_parts([("f", "a.txt", b"1" * 5000), ("bio", None, b"x" * 201)])
        assert r.code == 413
        assert "'bio'" in error_of(r) and "max_field_size" in error_of(r)
        self.assert_no_temp_files()

    def test_part_header_size(self) -> None:
        r = self.post_parts([("f", "a.txt", b"1" * 5000), ("g", "b" * 600 + ".txt", b"1")])
        assert r.code == 413
        assert "max_part_header_size" in error_of(r)
        self.assert_no_temp_files()

    def test_html_error_page_is_readable(self) -> None:
        r = self.post("/up", files={"f": [(f"{i}.txt", b"data") for i in range(4)]})
        assert r.code == 413
        assert r.headers["Content-Type"].startswith("text/html")
        assert b"more than 3 files" in r.body

    def test_extension_not_allowed(self) -> None:
        r = self.post_json("/img", files={"f": ("shell.php", PNG, "image/png")})
        assert r.code == 415
        assert "allowed extensions: .jpg, .png" in error_of(r)
        # A double extension ending in an allowed one is judged by the last one.
        r = self.post_json("/img", files={"f": ("cat.png.exe", PNG, "image/png")})
        assert r.code == 415
        self.assert_no_temp_files()

    def test_png_with_html_bytes_is_415(self) -> None:
        r = self.post_json("/img", files={"f": ("cat.png", HTML, "image/png")})
        assert r.code == 415
        assert "HTML" in error_of(r)
        self.assert_no_temp_files()

    def test_declared_type_not_allowed(self) -> None:
        r = self.post_json("/img", files={"f": ("cat.png", PNG, "text/plain")})
        assert r.code == 415
        assert "'text/plain'" in error_of(r)
        self.assert_no_temp_files()

    def test_allowed_image_passes(self) -> None:
        r = self.post_json("/img", files={"f": ("cat.PNG", PNG)})
        assert r.code == 200, r.body
        [f] = json.loads(r.body)["files"]
        assert (f["filename"], f["sniffed_type"]) == ("cat.PNG", "image/png")

    def test_no_boundary(self) -> None:
        r = self.post(
            "/up", body=b"--x\r\n", headers={**JSON, "Content-Type": "multipart/form-data"}
        )
        assert r.code == 400
        assert "boundary" in error_of(r)
        self.assert_no_temp_files()

    def malformed(self, body: bytes) -> str:
        r = self.post(
            "/up",
            body=body,
            headers={**JSON, "Content-Type": "multipart/form-data; boundary=XyZ"},
        )
        assert r.code == 400, (body[:60], r.code, r.body)
        self.assert_no_temp_files()
        return error_of(r)

    def test_part_without_headers(self) -> None:
        msg = self.malformed(b"--XyZ\r\n\r\nbare content\r\n--XyZ--\r\n")
        assert "Content-Disposition" in msg

    def test_part_without_field_name(self) -> None:
        msg = self.malformed(
            b'--XyZ\r\nContent-Disposition: form-data; filename="a.txt"\r\n\r\nx\r\n--XyZ--\r\n'
        )
        assert "field name" in msg

    def test_unterminated_part(self) -> None:
        msg = self.malformed(
            b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\n'
            + b"half a file" * 100
        )
        assert "closing boundary" in msg

    def test_garbage(self) -> None:
        msg = self.malformed(os.urandom(4096).replace(b"--XyZ", b"....."))
        assert "boundary" in msg or "malformed" in msg

    def test_empty_body(self) -> None:
        assert "empty" in self.malformed(b"")

    def test_connection_kept_alive_after_refused_upload(self) -> None:
        # The refused body is drained, so the next request on the same connection works.
        bad = MultipartEncoder(files={"f": [(f"{i}.txt", b"data") for i in range(4)]})
        good = MultipartEncoder(files={"f": ("ok.txt", b"fine")})
        out = self.raw(
            self.raw_head("/up", bad.content_type, bad.length)
            + bad.to_bytes()
            + self.raw_head("/up", good.content_type, good.length, "Connection: close\r\n")
            + good.to_bytes()
        )
        first, _, second = out.partition(b"}}HTTP/1.1 ")
        assert first.startswith(b"HTTP/1.1 413") and b"more than 3 files" in first
        assert second.startswith(b"200 OK"), out[:400]
        assert sha(b"fine").encode() in second
        self.assert_no_temp_files()

    def test_limits_leave_server_usable(self) -> None:
        for _ in range(3):
            self.post_json(files={"f": [(f"{i}.txt", b"data") for i in range(4)]})
        r = self.post_json(files={"f": ("a.txt", b"fine")})
        assert r.code == 200


# -------------------------------------------------- different clients, same result


class ClientsAgreeTest(UploadTestCase):
    FIELDS = {"title": "Grüße", "note": "a&b=c"}
    FILES = [
        ("doc", "résumé.txt", "Bonjour, le monde — ça va\n".encode() * 40),
        ("doc", "data.bin", bytes(range(256)) * 20),
        ("pic", "cat.png", PNG),
    ]

    def summary(self, code: int, body: bytes) -> dict[str, Any]:
        assert code == 200, body[:300]
        got = json.loads(body)
        return {
            "fields": got["fields"],
            "files": [
                (
                    f["field"],
                    f["filename"],
                    f["raw_filename"],
                    f["size"],
                    f["sha256"],
                    f["sniffed_type"],
                )
                for f in got["files"]
            ],
        }

    def expected(self) -> dict[str, Any]:
        return {
            "fields": {k: [v] for k, v in self.FIELDS.items()},
            "files": [
                (
                    field,
                    name,
                    name,
                    len(data),
                    sha(data),
                    "image/png"
                    if name.endswith(".png")
                    else "text/plain"
                    if name.endswith(".txt")
                    else "application/octet-stream",
                )
                for field, name, data in self.FILES
            ],
        }

    def auth_headers(self) -> dict[str, str]:
        token = self.token()
        cookie = self.cookies.header_for(self.get_url("/up"))
        assert cookie
        return {"Cookie": cookie, "X-XSRFToken": token}

    def test_multipart_encoder(self) -> None:
        files: dict[str, Any] = {}
        for field, name, data in self.FILES:
            files.setdefault(field, []).append((name, data))
        enc = MultipartEncoder(self.FIELDS, files)
        r = self.post("/up", body=enc.to_bytes(), headers={"Content-Type": enc.content_type})
        assert self.summary(r.code, r.body) == self.expected()

    def test_requests(self) -> None:
        headers = self.auth_headers()
        url = self.get_url("/up")
        files = [(field, (name, data)) for field, name, data in self.FILES]

        def send() -> requests.Response:
            return requests.post(url, data=self.FIELDS, files=files, headers=headers, timeout=10)

        resp = self.in_thread(send)
        assert self.summary(resp.status_code, resp.content) == self.expected()

    def test_curl(self) -> None:
        curl = need_program("curl", "apt-get install curl")
        headers = self.auth_headers()
        folder = self.upload_root / "curl-src"
        folder.mkdir()
        args = [curl, "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"]
        for name, value in headers.items():
            args += ["-H", f"{name}: {value}"]
        for name, value in self.FIELDS.items():
            args += ["--form-string", f"{name}={value}"]
        for i, (field, name, data) in enumerate(self.FILES):
            path = folder / f"src{i}"
            path.write_bytes(data)
            args += ["-F", f"{field}=@{path};filename={name}"]
        args.append(self.get_url("/up"))

        def run() -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(args, capture_output=True, timeout=20, check=False)

        done = self.in_thread(run)
        assert done.returncode == 0, done.stderr
        body, _, code = done.stdout.rpartition(b"\n")
        assert self.summary(int(code), body) == self.expected()

    def test_curl_large_file_with_expect_100_continue(self) -> None:
        # curl sends "Expect: 100-continue" for bodies over 1 MiB: the server must
        # say 100 and take the body, or refuse at once with a 413 curl can read.
        curl = need_program("curl", "apt-get install curl")
        headers = self.auth_headers()
        data = bytes(range(256)) * (3 * MiB // 256)
        source = self.upload_root / "large.bin"
        source.write_bytes(data)
        results = {}
        for path in ("/big", "/up"):
            args = [curl, "-sS", "-v", "--max-time", "20", "-F", f"f=@{source}"]
            for name, value in {**headers, **JSON}.items():
                args += ["-H", f"{name}: {value}"]
            args.append(self.get_url(path))
            done = self.in_thread(
                lambda args=args: subprocess.run(args, capture_output=True, timeout=30)
            )
            assert done.returncode == 0, done.stderr[-500:]
            assert b"Expect: 100-continue" in done.stderr
            results[path] = json.loads(done.stdout)
        assert results["/big"] == {"files": [[len(data), sha(data)]]}
        assert results["/up"]["error"]["status"] == 413
        assert names_limit(results["/up"]["error"]["message"])
        self.assert_no_temp_files()


# ----------------------------------------------------------------- disconnects


class DisconnectTest(UploadTestCase):
    def cut_off_upload(self) -> None:
        """Headers and half a body, wait until the server writes a temp file, hang up."""
        enc = MultipartEncoder({"a": "1"}, {"f": ("half.bin", b"h" * (48 * KiB))})
        body = enc.to_bytes()
        sock = socket.create_connection(("127.0.0.1", self.get_http_port()))
        try:
            sock.sendall(self.raw_head("/up", enc.content_type, len(body)) + body[: len(body) // 2])
            assert self.wait_until(lambda: bool(self.temp_files()), 2.0), "no temp file was made"
        finally:
            sock.close()

    def test_temp_files_removed_after_disconnect(self) -> None:
        self.cut_off_upload()
        self.assert_no_temp_files(within=1.0)
        r = self.post("/up", files={"f": ("after.txt", b"still alive")})
        assert r.code == 200

    def test_many_disconnects_leak_no_descriptors(self) -> None:
        self.token()
        self.cut_off_upload()  # warm up: first temp dir, session, executor threads
        self.assert_no_temp_files()
        baseline = len(os.listdir("/proc/self/fd"))
        for _ in range(50):
            self.cut_off_upload()
        self.assert_no_temp_files(within=1.0)
        self.wait_until(lambda: len(os.listdir("/proc/self/fd")) <= baseline + 3, 2.0)
        assert len(os.listdir("/proc/self/fd")) <= baseline + 3
        r = self.post("/up", files={"f": ("after.txt", b"still alive")})
        assert r.code == 200


# ----------------------------------------------------------------------- XSRF


class UploadXSRFTest(UploadTestCase):
    def test_missing_token_is_403_and_no_temp_files(self) -> None:
        self.token()  # a session exists; only the token is missing
        r = self.post("/up", files={"f": ("a.txt", b"x" * 1000)}, xsrf=False, headers=JSON)
        assert r.code == 403
        assert "security token" in error_of(r)
        self.assert_no_temp_files()

    def test_wrong_token_is_403(self) -> None:
        self.token()
        other = self.new_client()
        foreign = self.io_loop.run_sync(other.xsrf_token)
        r = self.post(
            "/up", form={"_xsrf": foreign or ""}, files={"f": ("a.txt", b"x")}, xsrf=False
        )
        assert r.code == 403
        self.assert_no_temp_files()

    def test_token_as_first_form_field(self) -> None:
        token = self.token()
        enc = MultipartEncoder({"_xsrf": token, "title": "t"}, {"f": ("a.txt", b"hello")})
        assert enc.to_bytes().index(b'name="_xsrf"') < enc.to_bytes().index(b'name="f"')
        r = self.post(
            "/up", body=enc.to_bytes(), headers={"Content-Type": enc.content_type}, xsrf=False
        )
        assert r.code == 200, r.body
        got = json.loads(r.body)
        assert got["fields"] == {"title": ["t"]}
        assert got["files"][0]["sha256"] == sha(b"hello")

    def test_token_in_header(self) -> None:
        r = self.post("/up", files={"f": ("a.txt", b"hello")})  # the client sends X-XSRFToken
        assert r.code == 200

    def test_refused_in_prepare_leaves_no_dangling_error(self) -> None:
        # prepare() answered 403 before the body arrived: the deferred XSRF check must
        # not fail afterwards into a future nobody awaits ("exception was never
        # retrieved", logged at garbage collection, at any later point).
        with self.assertNoLogs("asyncio", level="ERROR"):
            for _ in range(3):
                r = self.put("/members/a.txt", body=b"m" * 5000, xsrf=False, headers=JSON)
                assert r.code == 403 and error_of(r) == "Members only."
            gc.collect()
        self.assert_no_temp_files()

    def test_raw_put_needs_token(self) -> None:
        self.token()
        r = self.put("/raw/a.txt", body=b"data", xsrf=False, headers=JSON)
        assert r.code == 403
        self.assert_no_temp_files()


# --------------------------------------------------------------------- memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


class StreamingMemoryTest(UploadTestCase):
    """MEMORY CHECK: a 64 MiB upload must not be held in memory (in-process, approximate;
    the real memory figures come from bench/)."""

    def test_64_mib_upload_keeps_rss_flat(self) -> None:
        source = self.upload_root / "big.bin"
        block = os.urandom(MiB)
        digest = hashlib.sha256()
        with source.open("wb") as fh:
            for i in range(64):
                piece = block[i:] + block[:i]
                fh.write(piece)
                digest.update(piece)
        self.post("/up", files={"f": ("warm.txt", b"warm-up")})  # imports, buffers
        try:
            # Reset the peak (VmHWM) so the peak during the upload is measured.
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            field = "VmHWM"
        except OSError:
            field = "VmRSS"
        before = _status_kib(field)
        r = self.post("/big", files={"f": ("big.bin", source)})
        after = _status_kib(field)
        assert r.code == 200, r.body[:300]
        assert json.loads(r.body)["files"] == [[64 * MiB, digest.hexdigest()]]
        grown_mib = (after - before) / 1024
        assert grown_mib < 20, f"{field} grew by {grown_mib:.1f} MiB during a 64 MiB upload"
        self.assert_no_temp_files()
