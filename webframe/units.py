"""Byte units: the binary multiples, and byte counts written for people the same way
in every message and page."""

from __future__ import annotations

__all__ = ["GiB", "KiB", "MiB", "format_size"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def format_size(n: int) -> str:
    """``n`` bytes as people read it: '512 bytes', '64 KiB', '1.5 MiB', '4.7 GiB'.

    Binary units; a whole number of a unit is written without decimals (limits
    are usually round: '100 MiB'), anything else with one.
    """
    if n < 1024:
        return "1 byte" if n == 1 else f"{n} bytes"
    value, unit = n / 1024, _UNITS[0]
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    whole = n % (1024 ** (_UNITS.index(unit) + 1)) == 0
    return f"{int(value)} {unit}" if whole else f"{value:.1f} {unit}"
