"""A clock the test moves by hand, for code that takes a ``clock`` callable."""

from __future__ import annotations

import time


class FakeClock:
    """A clock the test moves by hand; stores, sessions, limiters and cookie jars read
    it instead of ``time.time``."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
