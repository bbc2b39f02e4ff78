"""Demo accounts for tests that drive the demo app through a test client."""

from __future__ import annotations

from webframe.testing import Client

PASSWORD = "a long enough password"


async def register(client: Client, name: str, *, follow_redirects: bool = False) -> None:
    """Register ``name`` with :data:`PASSWORD` (which logs ``client`` in).

    With ``follow_redirects`` the page the form leads to must show the new user."""
    assert (await client.get("/register")).code == 200  # the form's XSRF token
    r = await client.post(
        "/register",
        form={"username": name, "password": PASSWORD},
        follow_redirects=follow_redirects,
    )
    if not follow_redirects:
        assert r.code == 302, r.body[:300]
        return
    assert r.code == 200, r.body[:300]
    assert name.encode() in r.body
