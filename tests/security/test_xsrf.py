"""Session-bound XSRF: where the token may come from, whose it is, malformed tokens, and
the ``_method`` override. In process, demo app with SQLite sessions."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import pytest

from webframe.testing import Client

from ..support.accounts import register
from ._support import TornadoResponse, assert_refused


async def raw_post(
    client: Client,
    path: str,
    body: str | bytes = b"",
    *,
    token_header: str | None = None,
    header_name: str = "X-XSRFToken",
    cookies: str | None = None,
    ctype: str = "application/x-www-form-urlencoded",
    method: str = "POST",
) -> Any:
    headers = {"Content-Type": ctype, "Accept": "application/json"}
    cookie = cookies if cookies is not None else client.cookies.header_for(client.url(path))
    if cookie:
        headers["Cookie"] = cookie
    if token_header is not None:
        headers[header_name] = token_header
    return await client.http_client.fetch(
        client.url(path),
        method=method,
        body=body,
        headers=headers,
        follow_redirects=False,
        raise_error=False,
        allow_nonstandard_methods=True,
    )


async def token_of(client: Client, path: str = "/login") -> str:
    assert (await client.get(path)).code == 200
    token = client.cookies.get("_xsrf")
    assert token
    return token


def refused(r: Any, message: str | None = None) -> None:
    assert_refused(TornadoResponse(r), 403, message=message)
    assert json.loads(r.body)["error"]["status"] == 403


@pytest.mark.gen_test(timeout=20)
async def test_missing_token(client: Client) -> None:
    await token_of(client)
    refused(await raw_post(client, "/preferences", "theme=dark"), "no security token")


@pytest.mark.gen_test(timeout=20)
async def test_token_from_another_session(client: Client, second_client: Client) -> None:
    await token_of(client)
    foreign = await token_of(second_client)
    refused(
        await raw_post(client, "/preferences", "theme=dark", token_header=foreign),
        "does not belong",
    )
    refused(await raw_post(client, "/preferences", "theme=dark&_xsrf=" + quote(foreign)))
    # Even with the victim's cookie jar carrying the attacker's _xsrf cookie.
    sess = client.cookies.get("session")
    refused(
        await raw_post(
            client,
            "/preferences",
            "theme=dark&_xsrf=" + quote(foreign),
            cookies=f"session={sess}; _xsrf={foreign}",
        )
    )


@pytest.mark.gen_test(timeout=20)
async def test_token_without_any_session(client: Client) -> None:
    token = await token_of(client)
    r = await raw_post(
        client, "/preferences", "theme=dark", token_header=token, cookies=f"_xsrf={token}"
    )
    refused(r)


@pytest.mark.gen_test(timeout=20)
async def test_token_in_query_string_is_not_accepted(client: Client) -> None:
    token = await token_of(client)
    refused(await raw_post(client, "/preferences?_xsrf=" + quote(token), "theme=dark"))


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("where", ["body", "X-XSRFToken", "X-CSRFToken"])
async def test_token_in_body_or_header_is_accepted(client: Client, where: str) -> None:
    token = await token_of(client)
    if where == "body":
        r = await raw_post(client, "/preferences", "theme=dark&_xsrf=" + quote(token))
    else:
        r = await raw_post(
            client, "/preferences", "theme=dark", token_header=token, header_name=where
        )
    assert r.code == 302, r.body


def _malformed(valid: str) -> list[str]:
    raw = base64.urlsafe_b64decode(valid + "=" * (-len(valid) % 4))
    return [
        " ",
        "!!!!",
        "A" * 8000,
        "é" * 10,
        base64.urlsafe_b64encode(b"\x00" * 36).decode(),
        base64.urlsafe_b64encode(raw[:-1]).decode(),
        base64.urlsafe_b64encode(raw + b"\x00").decode(),
        valid[:-1],
        valid[:-1] + ("A" if valid[-1] != "A" else "B"),
        "2|1:0|10:1700000000|5:_xsrf|8:dG9rZW4=|abcdef",
        valid.upper(),
        "%00" + valid,
    ]


@pytest.mark.gen_test(timeout=30)
async def test_malformed_tokens_are_403_not_500(client: Client) -> None:
    valid = await token_of(client)
    for bad in _malformed(valid):
        refused(await raw_post(client, "/preferences", "theme=dark&_xsrf=" + quote(bad)))
        if bad.strip() and bad.isascii():
            refused(await raw_post(client, "/preferences", "theme=dark", token_header=bad))
    for raw_bad in (b"theme=dark&_xsrf=%FF%FE", b"theme=dark&_xsrf=" + b"%00" * 50):
        refused(await raw_post(client, "/preferences", raw_bad))


async def logged_in_with_file(client: Client, name: str) -> int:
    await register(client, name)
    assert (await client.get("/files")).code == 200
    r = await client.post(
        "/files",
        files={"files": ("precious.txt", b"precious", "text/plain")},
        headers={"Accept": "application/json"},
    )
    assert r.code == 201, r.body
    return int(json.loads(r.body)["files"][0]["id"])


@pytest.mark.gen_test(timeout=30)
async def test_method_override_cannot_bypass_xsrf(client: Client, second_client: Client) -> None:
    file_id = await logged_in_with_file(client, "methodvictim")
    foreign = await token_of(second_client)
    path = f"/files/{file_id}"
    attempts = [
        await raw_post(client, path, "_method=DELETE"),
        await raw_post(client, path, "_method=DELETE&_xsrf=" + quote(foreign)),
        await raw_post(client, path, "_method=DELETE", token_header=foreign),
        await raw_post(client, path + "?_method=DELETE", ""),
        await raw_post(client, path, "_method=delete&_method=DELETE"),
        await raw_post(client, path, '{"_method": "DELETE"}', ctype="application/json"),
        await raw_post(client, path, "_method=DELETE", ctype="text/plain"),
        await raw_post(client, path, b"", method="DELETE"),
    ]
    for r in attempts:
        assert r.code in (403, 405), (r.code, r.body[:200])
        assert_refused(TornadoResponse(r), (403, 405))
    r = await client.get(path)
    assert r.code == 200 and r.body == b"precious", "the file was deleted without a valid token"
    # With the right token the override works (the check above is not vacuous).
    token = client.cookies.get("_xsrf")
    assert token
    r = await raw_post(client, path, "_method=DELETE&_xsrf=" + quote(token))
    assert r.code in (204, 302), (r.code, r.body[:300])
    assert (await client.get(path)).code == 404


@pytest.mark.gen_test(timeout=30)
async def test_method_override_values_are_checked(client: Client) -> None:
    file_id = await logged_in_with_file(client, "methodvalues")
    token = client.cookies.get("_xsrf")
    assert token
    for value in ("GET", "OPTIONS", "TRACE", "CONNECT", "POST", "X" * 100, ""):
        r = await raw_post(
            client, f"/files/{file_id}", f"_method={quote(value)}&_xsrf={quote(token)}"
        )
        assert_refused(TornadoResponse(r), (400, 405))
    assert (await client.get(f"/files/{file_id}")).code == 200


@pytest.mark.gen_test(timeout=30)
async def test_json_api_form_posts_need_the_token(client: Client) -> None:
    await token_of(client)
    for ctype in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-seq",
        "application/jsonx",
        "",
    ):
        r = await raw_post(client, "/api/notes", '{"text": "csrf"}', ctype=ctype)
        assert r.code in (400, 403), (ctype, r.code)
        assert_refused(TornadoResponse(r), (400, 403))


@pytest.mark.gen_test(timeout=30)
async def test_raw_upload_without_token_stores_nothing(client: Client, app: Any) -> None:
    await register(client, "rawnotoken")
    assert (await client.get("/files")).code == 200
    r = await raw_post(
        client, "/files/raw/sneaky.txt", b"sneaky content", method="PUT", ctype="text/plain"
    )
    refused(r)
    r = await client.get("/files", headers={"Accept": "text/html"})
    assert b"sneaky" not in r.body
    from pathlib import Path

    base = Path(app.wf_settings.instance_path) / "uploads"
    leftovers = [p for p in base.rglob("*") if p.is_file()] if base.exists() else []
    assert leftovers == [], leftovers
