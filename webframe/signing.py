"""Signing keys: the order in which the keys of a rotated ``cookie_secret`` are tried.

Tornado's ``cookie_secret`` setting is one secret, or ``{version: secret}`` with
``key_version`` naming the one that signs new values. Everything webframe signs or
checks with those keys (signed cookies from before a rotation, XSRF tokens) tries
them in the order given here: the current key first, then the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["signing_keys"]


def signing_keys(settings: Mapping[str, Any]) -> list[bytes]:
    """The keys of Tornado ``settings``' ``cookie_secret``, the signing one first."""
    secret = settings.get("cookie_secret")
    if secret is None:
        return []
    if not isinstance(secret, dict):
        return [_as_bytes(secret)]
    values = list(secret.values())
    current = settings.get("key_version")
    if current in secret:
        values.remove(secret[current])
        values.insert(0, secret[current])
    return [_as_bytes(v) for v in values]


def _as_bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key
