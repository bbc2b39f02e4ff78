"""Attacks on cookies and sessions: hostile Cookie headers, forged/tampered/expired
session cookies, IDs in URLs, SQL-ish and huge IDs against the SQLite store, fixation
and reuse after logout. In process (SQLite sessions) unless a raw socket is needed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tornado.web import create_signed_value, decode_signed_value

from webframe.testing import TEST_SECRET, Client

from ..support.accounts import PASSWORD, register
from ._support import (
    ServerProcess,
    TornadoResponse,
    assert_refused,
    raw_request,
    request_bytes,
)


async def login(client: Client, name: str, next_url: str | None = None) -> Any:
    assert (await client.get("/login")).code == 200  # the form's XSRF token
    form = {"username": name, "password": PASSWORD}
    if next_url is not None:
        form["next"] = next_url
    return await client.post("/login", form=form)


def sid_of(signed: str) -> str:
    raw = decode_signed_value(TEST_SECRET, "session", signed.strip('"'), max_age_days=400)
    assert raw is not None
    return raw.decode()


def sign(value: str, name: str = "session", secret: str = TEST_SECRET, **kw: Any) -> str:
    return create_signed_value(secret, name, value, **kw).decode()


async def profile_as(client: Client, cookie: str, path: str = "/profile") -> Any:
    """GET ``path`` sending exactly ``cookie`` as the Cookie header (no jar)."""
    return await client.http_client.fetch(
        client.url(path),
        headers={"Cookie": cookie},
        follow_redirects=False,
        raise_error=False,
    )


def assert_anonymous(r: Any) -> None:
    assert r.code == 302, (r.code, r.body[:300])
    assert r.headers["Location"].startswith("/login")


# --------------------------------------------------------------- Cookie headers


@pytest.mark.slow
@pytest.mark.parametrize("size", [60_000, 100_000])
@pytest.mark.parametrize(
    "filler",
    [b"\\", b'"', b'\\"', b";", b"=", b"\\0\\1"],
    ids=["bs", "quote", "bsq", "semi", "eq", "oct"],
)
def test_pathological_cookie_headers_are_fast(
    live: ServerProcess, size: int, filler: bytes
) -> None:
    value = (filler * (size // len(filler)))[:size]
    for cookie in (b'session="' + value + b'"', b"a=" + value, value):
        data = request_bytes("GET", "/about", {"Cookie": cookie.decode("latin-1")})
        resp = raw_request(live.port, data, timeout=10)
        assert resp.elapsed < 2, f"{resp.elapsed:.2f}s"
        if size > 64 * 1024:  # over the head limit: refused or closed
            assert resp.status in (None, 400, 431)
        else:
            assert resp.status == 200, resp.status


@pytest.mark.gen_test(timeout=30)
async def test_empty_name_cookie_does_not_shadow_the_session(
    client: Client, second_client: Client
) -> None:
    await register(client, "victim1")
    await register(second_client, "attacker1")
    real = client.cookies.get("session")
    evil = second_client.cookies.get("session")
    assert real and evil
    for header in (f"==session={evil}; session={real}", f"session={real}; ==session={evil}"):
        r = await profile_as(client, header)
        assert r.code == 200 and b"victim1" in r.body and b"attacker1" not in r.body
    r = await profile_as(client, f"==session={evil}")
    assert_anonymous(r)
    r = await profile_as(client, f" =session={evil}; sess ion={evil}")
    assert_anonymous(r)


# ---------------------------------------------------------- forged session cookies


def _swap_id(value: str) -> str:
    """The signed value with another ID of the same length but the old signature."""
    import base64

    fields = value.split("|")
    length, _, encoded = fields[4].partition(":")
    sid = base64.b64decode(encoded).decode()
    other = sid[:-1] + ("A" if sid[-1] != "A" else "B")
    fields[4] = f"{length}:" + base64.b64encode(other.encode()).decode()
    return "|".join(fields)


def _forgeries(real: str) -> dict[str, str]:
    sid = sid_of(real)
    value = real.strip('"')
    flipped = value[:-1] + ("0" if value[-1] != "0" else "1")
    return {
        "tampered-signature": flipped,
        "tampered-id": _swap_id(value),
        "truncated": value[: len(value) // 2],
        "truncated-signature": value[:-10],
        "signed-with-another-key": sign(sid, secret="another-secret-" + "x" * 30),
        "expired-cookie": sign(sid, clock=lambda: time.time() - 40 * 86400),
        "signed-for-another-cookie": sign(sid, name="theme"),
        "unsigned-raw-id": sid,
        "empty": "",
        "quoted-garbage": '"2|1:0|10:x|7:session|0:|"',
    }


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(
    "kind",
    [
        "tampered-signature",
        "tampered-id",
        "truncated",
        "truncated-signature",
        "signed-with-another-key",
        "expired-cookie",
        "signed-for-another-cookie",
        "unsigned-raw-id",
        "empty",
        "quoted-garbage",
    ],
)
async def test_forged_session_cookie_is_not_adopted(client: Client, kind: str) -> None:
    await register(client, "forge" + str(abs(hash(kind)) % 10_000))
    real = client.cookies.get("session")
    assert real
    forged = _forgeries(real)[kind]
    r = await profile_as(client, f"session={forged}")
    assert_anonymous(r)
    for header in r.headers.get_list("Set-Cookie"):
        if header.startswith("session="):
            assert sid_of(header.split("=", 1)[1].split(";")[0]) != sid_of(real)
    # The real cookie still works: nothing was damaged.
    r = await profile_as(client, f"session={real}")
    assert r.code == 200


@pytest.mark.gen_test(timeout=30)
async def test_session_past_its_idle_timeout_is_gone(client: Client, app: Any) -> None:
    await register(client, "idler")
    assert (await client.get("/profile")).code == 200
    store = app.session_store
    real_clock = store.clock
    store.clock = lambda: real_clock() + app.wf_settings.session_idle_timeout + 60
    try:
        assert_anonymous(await client.get("/profile"))
    finally:
        store.clock = real_clock


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(
    "path",
    [
        "/profile?session={v}",
        "/profile?session_id={v}&sid={sid}",
        "/profile;session={v}",
        "/profile?_session={sid}&session={sid}",
    ],
)
async def test_session_id_in_the_url_is_ignored(
    client: Client, second_client: Client, path: str
) -> None:
    await register(client, "urlsid" + str(abs(hash(path)) % 10_000))
    real = client.cookies.get("session")
    assert real
    from urllib.parse import quote

    r = await second_client.get(path.format(v=quote(real, safe=""), sid=sid_of(real)))
    assert r.code in (302, 404), r.code
    if r.code == 302:
        assert r.headers["Location"].startswith("/login")


SQLISH = [
    "' OR '1'='1",
    "x'; DROP TABLE webframe_sessions; --",
    '" OR 1=1 --',
    "%' OR sid LIKE '%",
    "A" * 42 + "'",
    "\x00" * 43,
    "../../../../etc/passwd",
    "a" * 10 * 1024,
    "é" * 43,
]


@pytest.mark.gen_test(timeout=60)
async def test_sqlish_and_huge_session_ids(client: Client, second_client: Client, app: Any) -> None:
    await register(client, "sqlvictim")
    real = client.cookies.get("session")
    assert real
    for sid in SQLISH:
        r = await profile_as(second_client, f"session={sign(sid)}")
        assert_anonymous(r)
    # The store is intact and still holds the real session.
    r = await profile_as(client, f"session={real}")
    assert r.code == 200 and b"sqlvictim" in r.body
    store = app.session_store
    for sid in SQLISH:
        assert await store.load(sid) is None
        assert await store.take(sid, ["user"]) == {}
        assert await store.touch(sid) is False
        await store.delete(sid)
        with pytest.raises(ValueError):
            await store.save(sid, {"user": "x"}, new=True)
    assert await store.load(sid_of(real)) is not None


# -------------------------------------------------------- fixation and logout


@pytest.mark.gen_test(timeout=30)
async def test_session_fixation_id_changes_at_login(
    client: Client, second_client: Client, app: Any
) -> None:
    await register(second_client, "fixvictim")
    await second_client.post("/logout")
    # The attacker gets a session cookie and plants it in the victim's browser.
    r = await client.get("/login")
    assert r.code == 200
    planted = client.cookies.get("session")
    assert planted, "a login page with a form should start a session (XSRF anchor)"
    second_client.cookies.set("session", planted)
    second_client.cookies.delete("_xsrf")
    r = await login(second_client, "fixvictim")
    assert r.code == 302
    after = second_client.cookies.get("session")
    assert after and sid_of(after) != sid_of(planted)
    # The planted ID carries no login and nothing in the store.
    assert_anonymous(await profile_as(client, f"session={planted}"))
    record = await app.session_store.load(sid_of(planted))
    assert record is None or "user" not in record.data
    assert (await second_client.get("/profile")).code == 200


@pytest.mark.gen_test(timeout=30)
async def test_logout_then_reuse_of_the_old_cookie(client: Client, app: Any) -> None:
    await register(client, "logoutuser")
    old = client.cookies.get("session")
    assert old
    assert (await client.get("/profile")).code == 200
    r = await client.post("/logout")
    assert r.code == 302
    assert_anonymous(await profile_as(client, f"session={old}"))
    assert await app.session_store.load(sid_of(old)) is None
    # Nor to act: a file stored before logout cannot be deleted with the old cookie and
    # the token that went with it.
    assert await app.session_store.load(sid_of(old)) is None


@pytest.mark.gen_test(timeout=30)
async def test_old_cookie_and_token_cannot_act_after_logout(client: Client, app: Any) -> None:
    await register(client, "logoutact")
    assert (await client.get("/files")).code == 200  # the token of the new session
    r = await client.post(
        "/files",
        files={"files": ("keep.txt", b"keep me", "text/plain")},
        headers={"Accept": "application/json"},
    )
    assert r.code == 201, r.body
    import json

    file_id = json.loads(r.body)["files"][0]["id"]
    old, token = client.cookies.get("session"), client.cookies.get("_xsrf")
    assert old and token
    assert (await client.post("/logout")).code == 302
    r = await client.http_client.fetch(
        client.url(f"/files/{file_id}"),
        method="POST",
        body="_method=DELETE&_xsrf=" + token,
        headers={"Cookie": f"session={old}; _xsrf={token}", "Accept": "application/json"},
        follow_redirects=False,
        raise_error=False,
    )
    assert_refused(TornadoResponse(r), 403)
    assert (await login(client, "logoutact")).code == 302
    r = await client.get(f"/files/{file_id}")
    assert r.code == 200 and r.body == b"keep me"
