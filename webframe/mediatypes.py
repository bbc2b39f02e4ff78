"""Check media types (``type/subtype; name=value``) before they are stored or sent.

A client declares a file's type in a part's or a request's ``Content-Type``; the
value is kept and later sent back as a response header. Only values that follow
RFC 6838 (restricted names) and RFC 9110 (parameters) are kept: anything else --
non-ASCII text, spaces inside the name, a third slash -- could not be sent as a
header, or would mean something different to each client.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_MEDIA_TYPE_LENGTH", "media_type_of", "valid_media_type"]

#: longer values are refused: the two names allow 255 characters, and parameters
#: of a real type (charset, boundary, profile) stay far below this.
MAX_MEDIA_TYPE_LENGTH: Final = 1024

# RFC 6838 §4.2: restricted-name = restricted-name-first *126restricted-name-chars
_NAME: Final = r"[A-Za-z0-9][A-Za-z0-9!#$&\-^_.+]{0,126}"
# RFC 9110 §5.6.2 token, §5.6.4 quoted-string (ASCII only: obs-text is obsolete,
# and a stored type must be sendable in any header).
_TCHARS: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED: Final = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_OWS: Final = r"[ \t]*"
_PARAMETER: Final = rf"{_TCHARS}=(?:{_TCHARS}|{_QUOTED})"
# RFC 9110 §5.6.6: parameters = *( OWS ";" OWS [ parameter ] )
_MEDIA_TYPE: Final = re.compile(
    rf"{_OWS}(?P<type>{_NAME})/(?P<subtype>{_NAME})(?:{_OWS};{_OWS}(?:{_PARAMETER})?)*{_OWS}"
)


def media_type_of(value: str) -> str | None:
    """Return the lowercased ``type/subtype`` of a Content-Type value, or None if invalid.

    Parameters are checked (``name=token`` or ``name="quoted"``) but not returned.
    """
    if len(value) > MAX_MEDIA_TYPE_LENGTH:
        return None
    match = _MEDIA_TYPE.fullmatch(value)
    if match is None:
        return None
    return f"{match['type']}/{match['subtype']}".lower()


def valid_media_type(value: str) -> bool:
    """Whether ``value`` is a well-formed Content-Type value (type, subtype, parameters)."""
    return media_type_of(value) is not None
