"""The per-connection request context: client address, scheme and proxy headers."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

from tornado import httputil, netutil

_INET = (socket.AF_INET, socket.AF_INET6)


class RequestContext:
    """What ``HTTPServerRequest`` reads from ``connection.context``.

    Behaves as Tornado's ``HTTPServer`` context: ``remote_ip`` is the peer's IP
    (``"0.0.0.0"`` on a unix socket), ``protocol`` is ``http`` or ``https``, and
    with ``xheaders`` :meth:`apply_xheaders` rewrites both from X-Real-Ip /
    X-Forwarded-For (skipping ``trusted_downstream`` hops) and X-Scheme /
    X-Forwarded-Proto, for one request at a time.
    """

    __slots__ = (
        "_orig_protocol",
        "_orig_remote_ip",
        "address",
        "address_family",
        "protocol",
        "remote_ip",
        "trusted_downstream",
    )

    def __init__(
        self,
        address: Any,
        family: int | None,
        protocol: str,
        trusted_downstream: Iterable[str] | None = None,
    ) -> None:
        self.address = address
        self.address_family = family
        if family in _INET and isinstance(address, tuple):
            self.remote_ip: str = address[0]
        else:
            self.remote_ip = "0.0.0.0"
        self.protocol = protocol
        self._orig_remote_ip = self.remote_ip
        self._orig_protocol = protocol
        self.trusted_downstream = set(trusted_downstream or ())

    def __str__(self) -> str:
        if self.address_family in _INET:
            return self.remote_ip
        if isinstance(self.address, bytes):
            return self.address.decode("latin1")
        return str(self.address)

    def apply_xheaders(self, headers: httputil.HTTPHeaders) -> None:
        """Take ``remote_ip``/``protocol`` from a reverse proxy's headers (this request)."""
        forwarded = headers.get("X-Forwarded-For", self.remote_ip)
        ip = forwarded
        # The nearest hop that is not one of our own proxies is the client.
        for candidate in reversed(forwarded.split(",")):
            ip = candidate.strip()
            if ip not in self.trusted_downstream:
                break
        ip = headers.get("X-Real-Ip", ip)
        if netutil.is_valid_ip(ip):
            self.remote_ip = ip
        proto = headers.get("X-Scheme", headers.get("X-Forwarded-Proto", self.protocol))
        if proto:
            # Only the last proxy's word counts when several are listed.
            proto = proto.split(",")[-1].strip()
        if proto in ("http", "https"):
            self.protocol = proto

    def unapply_xheaders(self) -> None:
        """Forget the proxy headers of the request that just ended."""
        self.remote_ip = self._orig_remote_ip
        self.protocol = self._orig_protocol

    # Tornado's spellings, for code written against its context object.
    _apply_xheaders = apply_xheaders
    _unapply_xheaders = unapply_xheaders
