"""Path-parameter converters: what ``{name:conv}`` matches, the Python value it
gives the handler, and how a value is written back into a URL."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

__all__ = [
    "CONVERTERS",
    "Converter",
    "IntConverter",
    "PathConverter",
    "SignedIntConverter",
    "UUIDConverter",
]


class Converter:
    """Turns one path segment pattern into a typed value and back."""

    regex = r"[^/]+"
    #: True when ``to_python`` returns something other than the raw text.
    typed = False

    def to_python(self, raw: bytes) -> Any:
        """Called on a match with the unquoted bytes; returns the value the method gets."""
        return raw

    def to_url(self, name: str, value: Any) -> str:
        """Called by ``reverse``; returns the quoted URL text or raises TypeError/ValueError."""
        if not isinstance(value, str):
            raise TypeError(f"parameter {name!r} must be a str, got {type(value).__name__}")
        if not value or "/" in value:
            raise ValueError(f"parameter {name!r} must be one non-empty path segment")
        return quote(value, safe="")


class IntConverter(Converter):
    # Bounded so a 10,000-digit segment cannot reach int() (and its digit limit).
    regex = r"[0-9]{1,18}"
    typed = True

    def to_python(self, raw: bytes) -> int:
        return int(raw)

    def to_url(self, name: str, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"parameter {name!r} must be an int, got {type(value).__name__}")
        if not 0 <= value < 10**18:
            raise ValueError(f"parameter {name!r} must be between 0 and 10**18 - 1")
        return str(value)


class SignedIntConverter(IntConverter):
    """``{n:signed}``: an int that may be negative (``int`` itself takes no sign, so
    ``/items/-1`` is a 404 there rather than a surprise for code expecting an index)."""

    regex = r"-?[0-9]{1,18}"

    def to_url(self, name: str, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"parameter {name!r} must be an int, got {type(value).__name__}")
        if not -(10**18) < value < 10**18:
            raise ValueError(f"parameter {name!r} must be between -(10**18 - 1) and 10**18 - 1")
        return str(value)


class PathConverter(Converter):
    # Any number of segments, but never a '..' segment: no route sees a traversal.
    regex = r"(?!\.\.(?:/|$))(?:[^/]+)(?:/(?!\.\.(?:/|$))[^/]+)*"

    def to_url(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"parameter {name!r} must be a str, got {type(value).__name__}")
        parts = value.split("/")
        if not value or any(p in ("", "..") for p in parts):
            raise ValueError(f"parameter {name!r} must be a relative path without '..' or '//'")
        return quote(value, safe="/")


class UUIDConverter(Converter):
    regex = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    typed = True

    def to_python(self, raw: bytes) -> uuid.UUID:
        return uuid.UUID(raw.decode("ascii"))

    def to_url(self, name: str, value: Any) -> str:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            try:
                return str(uuid.UUID(value))
            except ValueError:
                raise ValueError(f"parameter {name!r} is not a UUID: {value!r}") from None
        raise TypeError(f"parameter {name!r} must be a UUID, got {type(value).__name__}")


CONVERTERS: dict[str, Converter] = {
    "str": Converter(),
    "int": IntConverter(),
    "signed": SignedIntConverter(),
    "path": PathConverter(),
    "uuid": UUIDConverter(),
}
