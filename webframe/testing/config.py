"""Settings for tests: a fixed secret, in-memory sessions, no access log."""

from __future__ import annotations

from typing import Any

from ..settings import Settings

__all__ = ["TEST_SECRET", "test_settings"]

TEST_SECRET = "webframe-test-secret-" + "0" * 24


def test_settings(**overrides: Any) -> Settings:
    """Settings for tests: a fixed secret, in-memory sessions, no access log."""
    values: dict[str, Any] = {
        "cookie_secret": TEST_SECRET,
        "session_store": "memory://",
        "access_log": False,
    }
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]
