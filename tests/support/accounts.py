"""Demo accounts for tests that drive the demo app through a test client."""

from __future__ import annotations

from webframe.testing import Client

PASSWORD = "a long enough password"


async def register(client: Client, name: str) -> None:
    """Register ``name`` with :data:`PASSWORD` (which logs ``client`` in)."""
    assert (await client.get("/register")).code == 200  # the form's XSRF token
    r = await client.post("/register", form={"username": name, "password": PASSWORD})
    assert r.code == 302, r.body[:300]
