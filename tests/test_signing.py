"""webframe/signing.py: the order in which rotated signing keys are tried."""

from __future__ import annotations

from webframe.signing import signing_keys


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
