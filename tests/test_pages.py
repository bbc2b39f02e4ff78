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
