"""The backend-independent rules: valid keys, range arithmetic, error statuses."""

from __future__ import annotations

import pytest

from webframe.errors import HTTPError
from webframe.storage import (
    InvalidKeyError,
    ObjectNotFoundError,
    RangeNotSatisfiableError,
    StorageFullError,
    StorageUnavailableError,
    check_key,
)
from webframe.storage.base import MAX_KEY_BYTES, check_range


@pytest.mark.parametrize(
    "key", ["a", "a/b.c", "ünï/çødé.txt", "with space/x", ".hidden", "a..b", "x" * MAX_KEY_BYTES]
)
def test_valid_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "empty"),
        ("/etc/passwd", "relative"),
        ("a/../b", "relative"),
        ("..", "relative"),
        ("./a", "relative"),
        ("a//b", "relative"),
        ("a/", "relative"),
        ("a\\b", "backslash"),
        ("a\nb", "control"),
        ("a\x7fb", "control"),
        ("x" * (MAX_KEY_BYTES + 1), "longer"),
        ("é" * (MAX_KEY_BYTES // 2 + 1), "longer"),
        ("\udcff", "UTF-8"),
    ],
)
def test_invalid_keys(key: str, problem: str) -> None:
    with pytest.raises(InvalidKeyError, match=problem) as caught:
        check_key(key)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("start", "end", "size", "expected"),
    [
        (0, None, 10, (0, 10)),
        (0, None, 0, (0, 0)),
        (3, 7, 10, (3, 7)),
        (3, 3, 10, (3, 3)),
        (9, None, 10, (9, 10)),
        (5, 100, 10, (5, 10)),
    ],
)
def test_ranges(start: int, end: int | None, size: int, expected: tuple[int, int]) -> None:
    assert check_range(start, end, size) == expected


@pytest.mark.parametrize(
    ("start", "end", "size"), [(10, None, 10), (0, 1, 0), (7, 3, 10), (-1, None, 10), (11, 12, 10)]
)
def test_unsatisfiable_ranges(start: int, end: int | None, size: int) -> None:
    with pytest.raises(RangeNotSatisfiableError) as caught:
        check_range(start, end, size)
    assert caught.value.status_code == 416


def test_errors_carry_status_and_a_default_message() -> None:
    for cls, status in [
        (StorageUnavailableError, 503),
        (StorageFullError, 507),
        (ObjectNotFoundError, 404),
        (InvalidKeyError, 400),
        (RangeNotSatisfiableError, 416),
    ]:
        error = cls()
        assert isinstance(error, HTTPError)
        assert error.status_code == status
        assert error.message and "%" not in error.message
        assert cls("custom").message == "custom"
