"""webframe.server.framing, the decisions of Tornado's layer: no sockets, no server.

(``check_framing``'s table of heads and ``can_drain``'s bound are also in
tests/security/test_framing.py, beside the wire tests they back.)
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tornado.httputil import HTTPHeaders

from webframe.errors import PayloadTooLargeError
from webframe.server import framing
from webframe.server.framing import (
    BODY_BUFFER,
    BODY_BUFFER_MIN,
    FAST_FILL,
    SLOW_FILL,
    body_limit,
    check_framing,
    first_buffer_size,
    next_buffer_size,
    server_body_cap,
)

KiB = 1024
MiB = 1024 * KiB


def head(*fields: tuple[str, str]) -> HTTPHeaders:
    headers = HTTPHeaders()
    for name, value in fields:
        headers.add(name, value)
    return headers


# -- body limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "cap", "expected"),
    [
        (10 * MiB, None, 10 * MiB),  # no server cap: the route's limit
        (10 * MiB, 4 * KiB, 4 * KiB),  # a stricter server cap wins
        (4 * KiB, 10 * MiB, 4 * KiB),  # a looser one does not lift the route's
        (0, 0, 0),
    ],
)
def test_the_stricter_of_route_limit_and_server_cap(
    route: int, cap: int | None, expected: int
) -> None:
    assert body_limit(route, cap) == expected


def test_server_cap_is_read_from_the_connection_params() -> None:
    assert server_body_cap(SimpleNamespace(params=SimpleNamespace(max_body_size=4096))) == 4096
    # HTTPServer leaves max_body_size None when it was not given: no cap.
    assert server_body_cap(SimpleNamespace(params=SimpleNamespace(max_body_size=None))) is None
    assert server_body_cap(SimpleNamespace()) is None
    assert server_body_cap(None) is None


def test_a_declared_size_over_the_limit_is_a_quiet_413_naming_both_sizes() -> None:
    error, declared, malformed = check_framing(head(("Content-Length", str(2 * MiB))), MiB)
    assert isinstance(error, PayloadTooLargeError)
    assert error.status_code == 413 and declared == 2 * MiB and malformed is None
    assert "2 MiB" in error.message and "at most 1 MiB" in error.message, error.message
    ok, size, _ = check_framing(head(("Content-Length", str(MiB))), MiB)
    assert ok is None and size == MiB  # exactly the limit is allowed


def test_a_limit_crossed_by_a_streamed_body_names_the_limit() -> None:
    error = framing.too_large_streamed(4 * KiB)
    assert error.status_code == 413 and "(4 KiB)" in error.message, error.message


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ((("Transfer-Encoding", "chunked"),), None),
        ((("Transfer-Encoding", "Chunked ; x=1"),), None),  # case and parameters aside
        ((("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")), 400),
        ((("Transfer-Encoding", "gzip"),), 501),
        ((("Transfer-Encoding", "gzip, chunked"),), 501),
        ((("Transfer-Encoding", "\xa0chunked"),), 400),
        ((("Content-Length", "5"), ("Content-Length", "5")), None),  # equal repeats: one size
        ((("Content-Length", "5"), ("Content-Length", "6")), 400),
        ((("Content-Length", "+5"),), 400),
        ((("Content-Length", "-1"),), 400),
        ((("Content-Length", "1" * 20),), 400),  # more digits than any real body
        ((("Content-Length", "5"), ("Transfer-Encoding", "chunked")), 400),
        ((), None),
    ],
)
def test_framing_decisions(fields: tuple[tuple[str, str], ...], status: int | None) -> None:
    error, _, malformed = check_framing(head(*fields), 10 * MiB)
    assert (error.status_code if error else None) == status
    # Every malformed head has Tornado's log wording; a well-formed one none.
    assert (malformed is not None) == (status is not None)


# -- drain or close -----------------------------------------------------------------


def test_drain_bound_is_inclusive_and_unknown_ends_close() -> None:
    assert framing.can_drain(framing.DRAIN, False)
    assert not framing.can_drain(framing.DRAIN + 1, False)
    assert not framing.can_drain(None, False)
    assert not framing.can_drain(0, True)


# -- the body-buffer growth policy ---------------------------------------------------


def test_the_first_buffer_is_the_minimum_or_the_whole_small_body() -> None:
    assert first_buffer_size(10 * MiB) == BODY_BUFFER_MIN
    assert first_buffer_size(1000) == 1000


def test_a_fill_already_in_the_socket_doubles_the_buffer() -> None:
    assert next_buffer_size(BODY_BUFFER_MIN, False, 5.0, 10 * MiB) == 2 * BODY_BUFFER_MIN


def test_a_fast_fill_doubles_a_slow_one_does_not() -> None:
    fast, slow = FAST_FILL / 2, (FAST_FILL + SLOW_FILL) / 2
    assert next_buffer_size(BODY_BUFFER_MIN, True, fast, 10 * MiB) == 2 * BODY_BUFFER_MIN
    # between the two thresholds: the size is kept
    assert next_buffer_size(4 * BODY_BUFFER_MIN, True, slow, 10 * MiB) == 4 * BODY_BUFFER_MIN


def test_growth_stops_at_the_largest_buffer() -> None:
    size = BODY_BUFFER_MIN
    sizes = []
    while True:
        new = next_buffer_size(size, False, 0.0, 100 * MiB)
        if new == size:
            break
        sizes.append(new)
        size = new
    assert sizes[-1] == BODY_BUFFER
    assert sizes == [BODY_BUFFER_MIN << k for k in range(1, len(sizes) + 1)]
    assert next_buffer_size(BODY_BUFFER, False, 0.0, 100 * MiB) == BODY_BUFFER


def test_no_growth_when_at_most_one_buffer_of_body_remains() -> None:
    assert next_buffer_size(BODY_BUFFER_MIN, False, 0.0, BODY_BUFFER_MIN) == BODY_BUFFER_MIN
    assert next_buffer_size(BODY_BUFFER_MIN, False, 0.0, BODY_BUFFER_MIN + 1) == (
        2 * BODY_BUFFER_MIN
    )


def test_a_stall_takes_the_buffer_back_to_the_minimum() -> None:
    stalled = SLOW_FILL * 2
    assert next_buffer_size(BODY_BUFFER, True, stalled, 10 * MiB) == BODY_BUFFER_MIN
    assert next_buffer_size(BODY_BUFFER_MIN, True, stalled, 10 * MiB) == BODY_BUFFER_MIN


def test_a_trickling_client_never_grows_the_buffer() -> None:
    """Fills of 64 KiB that each wait ~160 ms (8 KiB every 20 ms) keep 64 KiB."""
    size = BODY_BUFFER_MIN
    for remaining in range(4 * MiB, 0, -size):
        size = next_buffer_size(size, True, 0.16, remaining)
        assert size == BODY_BUFFER_MIN


def test_the_thresholds_are_read_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tuning (or a test) may change the module's thresholds; the policy follows."""
    monkeypatch.setattr(framing, "FAST_FILL", 1e9)
    assert next_buffer_size(BODY_BUFFER_MIN, True, 100.0, 10 * MiB) == 2 * BODY_BUFFER_MIN
    monkeypatch.setattr(framing, "BODY_BUFFER", BODY_BUFFER_MIN)
    assert next_buffer_size(BODY_BUFFER_MIN, False, 0.0, 10 * MiB) == BODY_BUFFER_MIN
