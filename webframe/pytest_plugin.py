"""pytest fixtures (loaded automatically through the ``pytest11`` entry point).

They build on pytest-tornado: define an ``app`` fixture returning your Application,
then ask for ``client`` — an async :class:`~webframe.testing.Client` with a cookie
jar, used as ``response = await client.get("/")`` inside ``@pytest.mark.gen_test``.
"""

from __future__ import annotations

from typing import Any

import pytest

from .testing import Client


@pytest.fixture
def client(http_client: Any, base_url: str) -> Client:
    """A browser-like client for the ``app`` fixture served by pytest-tornado."""
    return Client(http_client, base_url)


@pytest.fixture
def second_client(http_client: Any, base_url: str) -> Client:
    """Another, independent browser (its own cookies) against the same app."""
    return Client(http_client, base_url)
