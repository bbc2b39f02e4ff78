"""The pure side of webframe/xsrf.py: token masking and checking, with no server."""

from __future__ import annotations

import base64

from tornado.httputil import HTTPHeaders

from webframe.sessions import new_session_id
from webframe.xsrf import TOKEN_BYTES, header_token, mask_token, session_token, token_valid

KEY = b"k" * 32
OLD = b"o" * 32


def test_a_masked_token_checks_for_its_session_only() -> None:
    sid, other = new_session_id(), new_session_id()
    token = mask_token(session_token(sid, KEY)).decode()
    assert token_valid(token, sid, [KEY])
    assert not token_valid(token, other, [KEY])
    assert not token_valid(token, sid, [OLD])


def test_each_masking_differs_and_still_checks() -> None:
    sid = new_session_id()
    raw = session_token(sid, KEY)
    assert len(raw) == TOKEN_BYTES
    tokens = {mask_token(raw).decode() for _ in range(20)}
    assert len(tokens) == 20
    assert all(token_valid(t, sid, [KEY]) for t in tokens)
    assert all(raw not in base64.urlsafe_b64decode(t + "==") for t in tokens)


def test_a_token_from_a_rotated_out_key_checks_while_that_key_is_listed() -> None:
    sid = new_session_id()
    token = mask_token(session_token(sid, OLD)).decode()
    assert token_valid(token, sid, [KEY, OLD])
    assert not token_valid(token, sid, [KEY])


def test_garbage_and_wrong_lengths_are_refused() -> None:
    sid = new_session_id()
    good = mask_token(session_token(sid, KEY)).decode()
    for token in ("", "!!!", "a", good[:-2], good + "AAAA", "é" * 10):
        assert not token_valid(token, sid, [KEY]), token


def test_header_token_reads_either_header_and_ignores_empty_ones() -> None:
    assert header_token(HTTPHeaders({"X-XSRFToken": "a"})) == "a"
    assert header_token(HTTPHeaders({"X-CSRFToken": "b"})) == "b"
    assert header_token(HTTPHeaders({"X-XSRFToken": "", "X-CSRFToken": "c"})) == "c"
    assert header_token(HTTPHeaders({})) is None
