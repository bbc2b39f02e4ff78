"""The demo's public pages and JSON API, through pytest-tornado and webframe's client."""

from __future__ import annotations

import json

import pytest


@pytest.mark.gen_test
async def test_pages_render_with_layout(client) -> None:  # type: ignore[no-untyped-def]
    for path, heading in [("/", "Welcome to webframe"), ("/about", "About this demo")]:
        r = await client.get(path)
        assert r.code == 200
        body = r.body.decode()
        assert f"<h1>{heading}</h1>" in body
        assert 'class="nav"' in body
        assert "/static/css/site.css?v=" in body


@pytest.mark.gen_test
async def test_hello_escapes_path_parameter(client) -> None:  # type: ignore[no-untyped-def]
    r = await client.get("/hello/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert r.code == 200
    assert b"<script>alert(1)" not in r.body
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in r.body


@pytest.mark.gen_test
async def test_404_uses_styled_template(client) -> None:  # type: ignore[no-untyped-def]
    r = await client.get("/missing")
    assert r.code == 404
    assert b'class="error-page"' in r.body and b'class="nav"' in r.body


@pytest.mark.gen_test
async def test_static_has_long_cache_when_versioned(client) -> None:  # type: ignore[no-untyped-def]
    page = (await client.get("/")).body.decode()
    start = page.index("/static/css/site.css?v=")
    url = page[start : page.index('"', start)]
    r = await client.get(url)
    assert r.code == 200
    assert "max-age=31536000" in r.headers["Cache-Control"]


@pytest.mark.gen_test
async def test_notes_api_crud(client) -> None:  # type: ignore[no-untyped-def]
    r = await client.post("/api/notes", json={"text": "first"}, xsrf=False)
    assert r.code == 201
    note = json.loads(r.body)
    assert r.headers["Location"] == f"/api/notes/{note['id']}"
    r = await client.put(f"/api/notes/{note['id']}", json={"text": "changed"}, xsrf=False)
    assert json.loads(r.body)["text"] == "changed"
    r = await client.get(f"/api/notes/{note['id']}")
    assert json.loads(r.body)["text"] == "changed"
    r = await client.delete(f"/api/notes/{note['id']}", xsrf=False)
    assert r.code == 204
    r = await client.get(f"/api/notes/{note['id']}", headers={"Accept": "application/json"})
    assert r.code == 404
    assert json.loads(r.body)["error"]["message"] == f"There is no note {note['id']}."


@pytest.mark.gen_test
async def test_notes_api_validation(client) -> None:  # type: ignore[no-untyped-def]
    r = await client.post("/api/notes", json={"txt": 1}, xsrf=False)
    assert r.code == 400
    assert "text" in json.loads(r.body)["error"]["message"]
    # A form post (not JSON) to the API needs the XSRF token.
    r = await client.post("/api/notes", form={"text": "x"}, xsrf=False)
    assert r.code == 403


@pytest.mark.gen_test
async def test_home_page_spells_routes_as_webframe_does_and_links_the_api(client) -> None:  # type: ignore[no-untyped-def]
    body = (await client.get("/")).body.decode()
    assert "/api/notes/{id}" in body and "&lt;id&gt;" not in body
    assert 'href="/api/notes"' in body
    r = await client.get("/api/notes")
    assert r.code == 200 and "notes" in json.loads(r.body)


@pytest.mark.gen_test
async def test_api_errors_are_json_whatever_the_accept_header(client) -> None:  # type: ignore[no-untyped-def]
    r = await client.post("/api/notes", json={"text": "short-lived"}, xsrf=False)
    url = r.headers["Location"]
    assert (await client.delete(url, xsrf=False)).code == 204
    # As a plain curl sends it (Accept: */*), as a browser does, and with none at all.
    for accept in ("*/*", "text/html,application/xhtml+xml,*/*;q=0.8", None):
        headers = {"Accept": accept} if accept else {}
        r = await client.get(url, headers=headers)
        assert r.code == 404
        assert r.headers["Content-Type"].startswith("application/json"), accept
        assert json.loads(r.body)["error"] == {
            "status": 404,
            "message": f"There is no note {url.rsplit('/', 1)[1]}.",
        }
        # A method the route does not have, and a URL under /api/ no route matches.
        r = await client.patch("/api/notes", json={}, headers=headers, xsrf=False)
        assert r.code == 405 and json.loads(r.body)["error"]["status"] == 405
        r = await client.get("/api/notes/not-a-number", headers=headers)
        assert r.code == 404 and json.loads(r.body)["error"]["status"] == 404
    # Pages outside the API keep their HTML error page.
    r = await client.get("/no-such-page", headers={"Accept": "*/*"})
    assert r.code == 404 and b'class="error-page"' in r.body


@pytest.mark.gen_test
async def test_404_page_knows_the_user_and_the_theme(client) -> None:  # type: ignore[no-untyped-def]
    r = await client.get("/no-such-page")
    assert b'class="theme-light"' in r.body and b"Log in" in r.body
    assert (await client.get("/register")).code == 200
    r = await client.post(
        "/register",
        form={"username": "nadia", "password": "correct horse battery"},
        follow_redirects=True,
    )
    assert r.code == 200
    assert (await client.get("/preferences")).code == 200
    r = await client.post("/preferences", form={"theme": "dark"}, follow_redirects=True)
    assert r.code == 200 and b'class="theme-dark"' in r.body
    for path in ("/no-such-page", "/files/999999"):
        r = await client.get(path)
        assert r.code == 404, path
        body = r.body.decode()
        assert 'class="theme-dark"' in body, path
        assert ">nadia</a>" in body and "Log out" in body, path
        assert 'class="error-page"' in body


@pytest.mark.gen_test
async def test_api_json_never_carries_raw_markup(client) -> None:  # type: ignore[no-untyped-def]
    # An error echoing what was sent, and a note's own text: <, > and & are \u escapes,
    # so the answer stays inert for a client that reads it as HTML; the value is the same.
    assert (await client.get("/register")).code == 200  # a page with a form: the token
    r = await client.post(
        "/api/notes",
        body='{"text": 1}',
        headers={"Content-Type": "<b>x</b>", "Accept": "text/html"},
    )
    assert r.code == 400 and b"<b>" not in r.body and b"\\u003cb\\u003e" in r.body
    assert "<b>x</b>" in json.loads(r.body)["error"]["message"]
    r = await client.post("/api/notes", json={"text": "a < b & c > d"}, xsrf=False)
    assert r.code == 201 and b"<" not in r.body and b"&" not in r.body
    assert json.loads(r.body)["text"] == "a < b & c > d"
