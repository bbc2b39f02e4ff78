"""webframe/units.py: byte units and ``format_size``, the one way sizes are written."""

from __future__ import annotations

import pytest

from webframe import format_size


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (64 * 1024, "64 KiB"),
        (100 * 1024**2, "100 MiB"),
        (1024**2 + 1, "1.0 MiB"),  # not whole: one decimal, never a misleading "1 MiB"
        (5 * 1024**3 + 700 * 1024**2, "5.7 GiB"),
        (2 * 1024**4, "2 TiB"),
        (1024**5, "1024 TiB"),  # no unit past TiB
    ],
)
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text


def test_units_and_the_old_module_path() -> None:
    from webframe import sizes, units

    assert (units.KiB, units.MiB, units.GiB) == (1024, 1024**2, 1024**3)
    assert sizes.format_size is units.format_size is format_size
