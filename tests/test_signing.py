"""webframe/signing.py: where the cookie secret comes from and the order its keys are tried."""

from __future__ import annotations

from pathlib import Path

import pytest

from webframe import ConfigurationError, Settings
from webframe.signing import instance_secret, resolve_cookie_secret, signing_keys


def test_one_secret_is_the_only_key() -> None:
    assert signing_keys({"cookie_secret": "s" * 20}) == [b"s" * 20]
    assert signing_keys({"cookie_secret": b"b" * 20}) == [b"b" * 20]
    assert signing_keys({}) == []


def test_the_current_version_comes_first_then_the_others_in_order() -> None:
    secret = {1: "one", 2: "two", 3: "three"}
    assert signing_keys({"cookie_secret": secret, "key_version": 2}) == [b"two", b"one", b"three"]
    assert signing_keys({"cookie_secret": secret, "key_version": 3})[0] == b"three"


def test_an_unknown_current_version_keeps_the_mapping_order() -> None:
    secret = {1: "one", 2: "two"}
    assert signing_keys({"cookie_secret": secret, "key_version": 9}) == [b"one", b"two"]
    assert signing_keys({"cookie_secret": secret}) == [b"one", b"two"]


def test_resolve_cookie_secret_picks_the_signing_version() -> None:
    rotated = {1: "a" * 32, 3: "c" * 32, 2: "b" * 32}
    assert resolve_cookie_secret(Settings(cookie_secret=rotated)) == (rotated, 3)
    chosen = Settings(cookie_secret=rotated, cookie_secret_version=2)
    assert resolve_cookie_secret(chosen) == (rotated, 2)
    assert resolve_cookie_secret(Settings(cookie_secret="s" * 32)) == ("s" * 32, None)


def test_no_secret_outside_debug_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="WEBFRAME_COOKIE_SECRET"):
        resolve_cookie_secret(Settings(instance_path=str(tmp_path)))
    assert list(tmp_path.iterdir()) == []  # nothing generated


def test_the_debug_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    first = instance_secret(tmp_path / "instance")
    assert instance_secret(tmp_path / "instance") == first and len(first) == 64
    (tmp_path / "instance" / "cookie_secret").write_text("short\n")
    with pytest.raises(ConfigurationError, match="too short"):
        instance_secret(tmp_path / "instance")
