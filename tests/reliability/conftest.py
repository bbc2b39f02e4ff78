"""Fixtures of the reliability suite: servers are real subprocesses (or threads of this
process where a fault has to be injected), traffic goes to 127.0.0.1 only."""

from __future__ import annotations

from tests.security._support import ServerProcess, register  # noqa: F401 - re-exported
