"""The session ID in a request's Cookie header, with verified signatures remembered.

Checking the cookie's HMAC is a large part of a session read, and a client sends the
same cookie (usually the same whole ``Cookie`` header) on every request of its
session. `VerifiedCookies` remembers, per application, which signed values (and which
whole short headers) verified, and until when their signature is young enough; the
age is still checked on every use. Nothing that failed to verify is remembered.
"""

from __future__ import annotations

__all__ = ["VerifiedCookies", "raw_cookie", "signed_timestamp"]

#: signed values remembered (each verified once; a new one needs a new session).
VALUE_CACHE_SIZE = 10_000
#: whole Cookie headers remembered: fewer and short ones only, since any client can
#: vary a header around a valid cookie (this only spares the parsing).
HEADER_CACHE_SIZE = 1_000
HEADER_MAX_LENGTH = 1_024


def raw_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header (the last one wins, as in
    Tornado's parser); None if absent or escaped (then Tornado's parser decides)."""
    if not header or name not in header:
        return None
    found = None
    for part in header.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            found = value
    if found is not None and found.startswith('"'):
        # Signed values are sent quoted (they hold '='); escapes are left to Tornado.
        if len(found) < 2 or not found.endswith('"') or "\\" in found:
            return None
        return found[1:-1]
    return found


def signed_timestamp(raw: str) -> float | None:
    """The signing time in a Tornado v2 signed value (``2|1:0|10:<time>|...``)."""
    fields = raw.split("|")
    if len(fields) < 3 or fields[0] != "2":
        return None
    _length, _colon, stamp = fields[2].partition(":")
    return float(stamp) if stamp.isdigit() else None


class VerifiedCookies:
    """Session IDs of verified cookies, each with the epoch time its signature gets too
    old; held by the application, one per process."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[str, float]] = {}
        #: whole header -> (session ID, valid until); read directly by the session
        #: mixin on every request (`from_header` is the same lookup as a method).
        self.by_header: dict[str, tuple[str, float]] = {}

    def from_header(self, header: str, now: float) -> str | None:
        """The session ID a remembered ``Cookie`` header carries, if still young enough
        at ``now``; None otherwise (then the header is read and checked)."""
        hit = self.by_header.get(header)
        return hit[0] if hit is not None and now < hit[1] else None

    def from_value(self, raw: str) -> tuple[str, float] | None:
        """``(session ID, valid until)`` for a signed value verified here before."""
        return self._values.get(raw)

    def remember(self, header: str, raw: str, sid: str, valid_until: float) -> None:
        """Record that ``raw`` (sent in ``header``) verified to ``sid``, until ``valid_until``."""
        if raw not in self._values:
            if len(self._values) >= VALUE_CACHE_SIZE:
                self._values.clear()
            self._values[raw] = (sid, valid_until)
        if len(header) <= HEADER_MAX_LENGTH:
            if len(self.by_header) >= HEADER_CACHE_SIZE:
                self.by_header.clear()
            self.by_header[header] = (sid, valid_until)
