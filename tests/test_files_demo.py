"""The demo's file locker over HTTP: upload, list, download, ranges, delete, isolation."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from webframe.testing import Client

from .support import accounts

KiB = 1024
LIMIT = 64 * KiB
JSON = {"Accept": "application/json"}
AJAX = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
TEXT = b"Hello locker!\n" + bytes(range(256)) * 10  # 2574 bytes
NOTES = "Some notes, accented: déjà vu.\n".encode() * 100
# The app fixture is requested by the client fixture at run time: name the database
# fixture here so that every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("demo_database")


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def app(instance: Path, io_loop: Any, demo_database: str):  # type: ignore[no-untyped-def]
    """The demo app with a small upload limit (overrides the conftest fixture), its
    tables on SQLite and on PostgreSQL (the several-node setup)."""
    from handlers import DEMO_DEFAULTS, make_app
    from webframe.testing import test_settings

    settings = test_settings(
        **{**DEMO_DEFAULTS, "instance_path": str(instance), "max_upload_size": LIMIT}
    )
    application = make_app(settings, database_url=demo_database)
    yield application
    io_loop.run_sync(application.aclose)


async def register(client: Client, name: str) -> None:
    await accounts.register(client, name, follow_redirects=True)


async def upload(
    client: Client, *files: tuple[str, bytes] | tuple[str, bytes, str]
) -> list[dict[str, Any]]:
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


def shows_empty_state(page: str) -> bool:
    """The list page shows "No files yet" (the paragraph is there, hidden, when the
    list has files, so that the page's script can show it after the last delete)."""
    empty = '<p id="no-files" class="muted">No files yet.' in page
    assert empty != ('id="file-table"' in page)
    return empty


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
    assert shows_empty_state(page)
    owner_dir = instance / "uploads" / "users" / "1"
    # The storage drops a folder its last delete emptied: nothing is left either way.
    assert not owner_dir.exists() or os.listdir(owner_dir) == []
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
    # In the words of the form's label, never the body limit with its framing room.
    assert error_of(r) == "This upload is 64.3 KiB; the limit is 64 KiB per file and 64 KiB in all."
    r = await client.post("/files", files={"files": big})
    assert r.code == 413
    assert b"the limit is 64 KiB per file" in r.body and b'class="error-page"' in r.body
    assert temp_files(instance) == []
    page = (await client.get("/files")).body.decode()
    assert "small.txt" not in page and shows_empty_state(page)
    # The form states the limit in a unit a person can read, as the message does.
    assert "64 KiB each and 64 KiB in all" in page


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
    static = (Path(__file__).resolve().parent.parent / DEMO_DEFAULTS["static_path"]).resolve()
    assert (static / "css").is_dir()
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
    assert error_of(r) == "This file is just over 64 KiB; the limit is 64 KiB per file."
    r = await client.put("/files/raw/big.bin", body=b"z" * (LIMIT + 700), headers=JSON)
    assert error_of(r) == "This file is 64.7 KiB; the limit is 64 KiB per file."
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
    assert shows_empty_state((await client.get("/files")).body.decode())


# ------------------------------------------- defects found by probing the demo


def locker_files(instance: Path, owner: int = 1) -> list[str]:
    folder = instance / "uploads" / "users" / str(owner)
    return sorted(os.listdir(folder)) if folder.exists() else []


async def records(app: Any, owner: int = 1) -> list[Any]:
    return list(await app.settings["demo_db"].files_of(owner))


def multipart(parts: list[bytes], boundary: str = "probe-b0undary") -> tuple[bytes, dict[str, str]]:
    """A hand-made multipart body (each part: its header lines, a blank line, the data)."""
    body = b"".join(f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts)
    body += f"--{boundary}--\r\n".encode()
    return body, {**JSON, "Content-Type": f"multipart/form-data; boundary={boundary}"}


FIELD = b'Content-Disposition: form-data; name="note"\r\n\r\nhello'
EMPTY_INPUT = (  # what a browser sends for a file input left empty
    b'Content-Disposition: form-data; name="file"; filename=""\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
)


def file_part(name: str, data: bytes, ctype: str = "text/plain") -> bytes:
    return (
        f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {ctype}\r\n\r\n"
    ).encode() + data


NO_FILE_BODIES = {
    "fields only": [FIELD],
    "empty message": [],
    "empty file input": [EMPTY_INPUT],
    "empty file input and a field": [EMPTY_INPUT, FIELD],
}


@pytest.mark.parametrize("parts", list(NO_FILE_BODIES.values()), ids=list(NO_FILE_BODIES))
@pytest.mark.gen_test(timeout=20)
async def test_raw_put_of_multipart_without_a_file_is_400(
    client: Client, instance: Path, app: Any, parts: list[bytes]
) -> None:
    await register(client, "ivan")
    body, headers = multipart(parts)
    r = await client.put("/files/raw/report.txt", body=body, headers=headers)
    assert r.code == 400, r.body[:300]
    assert error_of(r).startswith("The body has no file:")
    assert "curl -T" in error_of(r)
    assert temp_files(instance) == []
    assert locker_files(instance) == [] and (await records(app)) == []
    # The connection and the locker still work.
    r = await client.put("/files/raw/report.txt", body=b"fine", headers=JSON)
    assert r.code == 201, r.body[:300]
    assert [row["name"] for row in await records(app)] == ["report.txt"]


@pytest.mark.gen_test(timeout=20)
async def test_raw_put_of_several_files_is_400_and_stores_none(
    client: Client, instance: Path, app: Any
) -> None:
    await register(client, "judy")
    body, headers = multipart([file_part("one.txt", b"1" * 3000), file_part("two.txt", b"2")])
    r = await client.put("/files/raw/one.txt", body=body, headers=headers)
    assert r.code == 400, r.body[:300]
    assert error_of(r) == (
        "The body has 2 files; PUT takes exactly one. "
        "To upload several at once, POST them to /files."
    )
    assert temp_files(instance) == []
    assert locker_files(instance) == [] and (await records(app)) == []
    # Exactly one file part is still accepted.
    body, headers = multipart([FIELD, file_part("one.txt", b"1" * 3000)])
    r = await client.put("/files/raw/one.txt", body=body, headers=headers)
    assert r.code == 201, r.body[:300]
    assert json.loads(r.body)["size"] == 3000
    assert len(locker_files(instance)) == 1 and len(await records(app)) == 1
    assert temp_files(instance) == []


# Declared types no response header could carry, or that are not type/subtype.
BAD_TYPES = ["text/日本", "text/ plain", "a/b/c", "/", "text", "text/*", "image/png, text/html"]


@pytest.mark.gen_test(timeout=30)
async def test_invalid_declared_type_is_recorded_as_octet_stream(
    client: Client, instance: Path
) -> None:
    await register(client, "liam")
    for ctype in BAD_TYPES:
        # Empty files: nothing to sniff, so the declared type is what would be kept.
        [saved] = await upload(client, ("empty.dat", b"", ctype))
        assert saved["content_type"] == "application/octet-stream", ctype
        r = await client.get(saved["url"])
        assert r.code == 200, (ctype, r.code)
        assert r.headers["Content-Type"] == "application/octet-stream"
    # A well-formed type is kept (lowercased, without its parameters).
    [saved] = await upload(client, ("rows.dat", b"", "Text/CSV; charset=utf-8"))
    assert saved["content_type"] == "text/csv"
    assert (await client.get(saved["url"])).headers["Content-Type"] == "text/csv"
    # The raw PUT's own Content-Type header (UTF-8 bytes, read by the server as Latin-1).
    mojibake = "text/日本".encode().decode("latin-1")
    r = await client.put(
        "/files/raw/empty.dat", body=b"", headers={**JSON, "Content-Type": mojibake}
    )
    assert r.code == 201, r.body[:300]
    info = json.loads(r.body)
    assert info["content_type"] == "application/octet-stream"
    r = await client.get(info["url"])
    assert r.code == 200 and r.headers["Content-Type"] == "application/octet-stream"
    assert temp_files(instance) == []


@pytest.mark.gen_test(timeout=20)
async def test_a_record_with_an_unsendable_type_still_downloads(
    client: Client, instance: Path, app: Any
) -> None:
    # Stored before declared types were checked: the download must not fail on it.
    await register(client, "mia")
    folder = instance / "uploads" / "users" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "0123abcd.txt").write_bytes(b"old file")
    file_id = await app.settings["demo_db"].add_file(
        1, "日本 notes.txt", "0123abcd.txt", 8, "text/日本", "0" * 64
    )
    r = await client.get(f"/files/{file_id}")
    assert r.code == 200, r.body[:300]
    assert r.body == b"old file"
    assert r.headers["Content-Type"].startswith("text/plain")  # from the name
    assert r.headers["Content-Disposition"] == (
        "attachment; filename=\"notes.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%20notes.txt"
    )


@pytest.mark.gen_test(timeout=20)
async def test_a_failed_save_is_507_and_keeps_nothing(
    client: Client, instance: Path, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from webframe.uploads import stored

    await register(client, "noah")
    real_link = stored.link_into
    calls: list[str] = []

    def second_fails(source: Path, target: Path, content_type: str, sha256: str) -> bool:
        calls.append(target.name)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_link(source, target, content_type, sha256)

    # Storing an upload into the local storage is a hard link (webframe.uploads.stored).
    monkeypatch.setattr(stored, "link_into", second_fails)
    r = await client.post(
        "/files", files={"files": [("a.txt", b"first"), ("b.txt", b"second")]}, headers=JSON
    )
    assert r.code == 507, r.body[:300]
    assert error_of(r) == "Your file could not be stored right now; try again later."
    assert str(instance) not in r.body.decode()  # the folder goes to the log only
    assert len(calls) == 2
    # The first file, saved before the second failed, was taken back.
    assert locker_files(instance) == [] and (await records(app)) == []
    assert temp_files(instance) == []


@pytest.mark.gen_test(timeout=20)
async def test_a_locker_folder_that_cannot_be_made_is_507(
    client: Client, instance: Path, app: Any
) -> None:
    await register(client, "olga")
    users = instance / "uploads" / "users"
    users.parent.mkdir(parents=True, exist_ok=True)
    users.write_bytes(b"a file where the lockers folder should be")
    r = await client.post("/files", files={"files": ("a.txt", b"data")}, headers=JSON)
    assert r.code == 507, r.body[:300]
    assert error_of(r) == "Your file could not be stored right now; try again later."
    r = await client.put("/files/raw/a.txt", body=b"data", headers=JSON)
    assert r.code == 507, r.body[:300]
    assert (await records(app)) == [] and temp_files(instance) == []
    assert users.read_bytes() == b"a file where the lockers folder should be"


# ------------------------------------------------- limits and sizes as people read them


@pytest.mark.gen_test(timeout=30)
async def test_over_limit_body_refused_before_reading_names_the_per_file_limit(
    client: Client, instance: Path
) -> None:
    # Over the route's body limit (file limit + framing room): refused from the
    # Content-Length alone, still in the label's words, never "at most 64.1 KiB".
    await register(client, "ivan")
    big = ("big.bin", b"x" * (LIMIT + 80 * KiB))  # over 64 KiB + 64 KiB of framing room
    r = await client.post("/files", files={"files": big}, headers=JSON)
    assert r.code == 413
    assert error_of(r) == (
        "This upload is 144.2 KiB; the limit is 64 KiB per file and 64 KiB in all."
    )
    r = await client.post("/files", files={"files": big})
    assert r.code == 413 and b"at most" not in r.body and b"128" not in r.body
    assert temp_files(instance) == []


@pytest.mark.gen_test(timeout=20)
async def test_sizes_are_formatted_by_format_size(client: Client) -> None:
    from webframe import format_size

    await register(client, "judy")
    await upload(client, ("a.txt", b"x" * 1500), ("b.txt", b"y" * 12), ("c.txt", b"z" * 2048))
    page = (await client.get("/files")).body.decode()
    for n in (1500, 12, 2048):
        assert f'data-bytes="{n}">{format_size(n)}</td>' in page
    assert ">1.5 KiB<" in page and ">12 bytes<" in page and ">2 KiB<" in page


@pytest.mark.gen_test(timeout=20)
async def test_script_upload_and_delete_leave_the_same_messages_as_forms(client: Client) -> None:
    await register(client, "kim")
    # The page's script uploads with Accept: JSON and X-Requested-With, then reloads.
    r = await client.post("/files", files={"files": ("one.txt", b"1")}, headers=AJAX)
    assert r.code == 201
    [f] = json.loads(r.body)["files"]
    page = (await client.get("/files")).body.decode()
    assert "Uploaded one.txt." in page and not shows_empty_state(page)
    # A JSON client that is not the page gets no message left waiting in its session.
    r = await client.post("/files", files={"files": ("two.txt", b"2")}, headers=JSON)
    assert r.code == 201
    assert "Uploaded two.txt." not in (await client.get("/files")).body.decode()
    # Deleting by script: 204; the script writes "Deleted <name>." from data-file-name.
    assert 'data-file-name="one.txt"' in page
    r = await client.delete(f["url"], headers=AJAX)
    assert r.code == 204


@pytest.mark.gen_test(timeout=20)
async def test_delete_asks_first_without_javascript(
    client: Client, second_client: Client, instance: Path
) -> None:
    await register(client, "lena")
    [f] = await upload(client, ("plan & notes.txt", b"p" * 1500))
    page = (await client.get("/files")).body.decode()
    confirm_url = f"{f['url']}/delete"
    # The list links to a page that asks; nothing is deleted by following the link.
    assert f'href="{confirm_url}"' in page and f'data-url="{f["url"]}"' in page
    r = await client.get(confirm_url)
    assert r.code == 200
    body = r.body.decode()
    shown = html.escape(f["name"], quote=False)
    assert "Delete this file?" in body and f"{shown}</strong> (1.5 KiB)" in body
    assert f'action="{f["url"]}"' in body and 'name="_method" value="DELETE"' in body
    assert 'href="/files">Cancel</a>' in body
    assert (await client.get(f["url"])).code == 200, "the page alone deletes nothing"
    # Another user, and a visitor who is not logged in, get nothing from it.
    await register(second_client, "mallory")
    assert (await second_client.get(confirm_url)).code == 404
    await second_client.post("/logout", follow_redirects=False)
    r = await second_client.get(confirm_url)
    assert r.code == 302 and r.headers["Location"].startswith("/login?next=")
    # Confirming posts the page's form: the file goes, with the flash message.
    r = await client.post(
        f["url"],
        form={"_xsrf": page_token(body.encode()), "_method": "DELETE"},
        xsrf=False,
    )
    assert r.code == 302 and r.headers["Location"] == "/files"
    page = (await client.get("/files")).body.decode()
    assert f"Deleted {shown}." in page and shows_empty_state(page)
    assert locker_files(instance) == []


@pytest.mark.gen_test(timeout=20)
async def test_files_list_as_json_for_scripts(client: Client, second_client: Client) -> None:
    await register(client, "lena")
    r = await client.get("/files", headers=JSON)
    assert r.code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert json.loads(r.body) == {"files": []}
    saved = await upload(client, ("a.txt", TEXT), ("notes.txt", NOTES))
    r = await client.get("/files", headers=JSON)
    listed = json.loads(r.body)["files"]
    assert [f["name"] for f in listed] == ["notes.txt", "a.txt"]  # newest first
    for entry in listed:
        data = TEXT if entry["name"] == "a.txt" else NOTES
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["url"] == f"/files/{entry['id']}"
        assert (await client.get(entry["url"])).body == data
    assert {f["id"] for f in listed} == {f["id"] for f in saved}
    # Another user's list is their own; a visitor is sent to log in, never shown JSON data.
    await register(second_client, "omar")
    assert json.loads((await second_client.get("/files", headers=JSON)).body) == {"files": []}
    second_client.cookies.clear()
    r = await second_client.get("/files", headers=JSON)
    assert r.code == 403 and error_of(r) == "Log in to see your files."
