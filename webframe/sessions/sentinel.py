"""Moved to `webframe.sessions.backends.sentinel`; this module keeps the old imports working."""

from __future__ import annotations

from webframe.sessions.backends.sentinel import (
    SENTINEL_PORT,
    SentinelStore,
    SentinelURL,
    parse_hosts,
    parse_sentinel_url,
    refuse_query,
    split_credentials,
)

__all__ = [
    "SENTINEL_PORT",
    "SentinelStore",
    "SentinelURL",
    "parse_hosts",
    "parse_sentinel_url",
    "refuse_query",
    "split_credentials",
]
