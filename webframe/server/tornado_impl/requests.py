"""``HTTPServerRequest`` built without the constructor work whose answer is known,
and Tornado's routing delegate building it that way.

For a request with no query string and a ``Host`` value already accepted once, the
request object gets exactly the attributes Tornado's ``__init__`` gives it (the
host check, the empty query's parsing and its deep copy are skipped: their answers
are known). Anything else goes through Tornado's constructor, which validates (an
invalid ``Host`` still raises ``HTTPInputError``). Gated on ``__init__`` and
``_RoutingDelegate.headers_received`` as written in Tornado 6.5.3 and 6.6.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from tornado import httputil, routing
from tornado.log import app_log

from .headers import FAST_HEADERS, header_fields
from .probe import name_set

_Request = httputil.HTTPServerRequest


#: ``HTTPServerRequest.__init__``'s names in the releases checked (6.5.3; 6.6.x).
_COMMON = (
    "HTTPHeaders HTTPInputError KeyError _ABNF _finish_time _start_time arguments body "
    "body_arguments connection copy deepcopy files fullmatch getattr headers host host_name "
    "lower method parse_qs_bytes partition path protocol query query_arguments remote_ip "
    "server_connection split_host_and_port time uri version "
)
_KNOWN_INIT = (
    name_set(_COMMON),
    name_set(
        _COMMON + "DeprecationWarning Exception RequestStartLine _DEFAULT_PARSE_BODY_CONFIG "
        "max_arguments urlencoded warn warnings"
    ),
)
_ROUTING_NAMES = name_set(
    "HTTPServerRequest RequestStartLine _DefaultMessageDelegate app_log debug delegate "
    "find_handler headers_received httputil isinstance method path request_conn router "
    "server_conn"
)
_RoutingDelegate: Any = getattr(routing, "_RoutingDelegate", None)
_DefaultMessageDelegate: Any = getattr(routing, "_DefaultMessageDelegate", None)
#: whether requests can be built here (else Tornado's routing delegate is used as is).
CAN_BUILD_REQUEST = (
    FAST_HEADERS
    and frozenset(_Request.__init__.__code__.co_names) in _KNOWN_INIT
    and _RoutingDelegate is not None
    and _DefaultMessageDelegate is not None
    and frozenset(_RoutingDelegate.headers_received.__code__.co_names) == _ROUTING_NAMES
    and "_RoutingDelegate" in routing.Router.start_request.__code__.co_names
)

#: ``Host`` values Tornado's constructor accepted -> their ``host_name``.
_HOSTS: dict[str, str] = {}
_HOSTS_MAX = 256


def new_request(
    connection: httputil.HTTPConnection,
    server_connection: object,
    start_line: httputil.RequestStartLine,
    headers: httputil.HTTPHeaders,
) -> httputil.HTTPServerRequest:
    """``HTTPServerRequest(connection=..., server_connection=..., start_line=...,
    headers=...)``, the same object, built directly when the answer of each check is
    known (no query string, a single ``Host`` value accepted before)."""
    method, uri, version = start_line
    hosts = header_fields(headers).get("Host") if headers else None
    host_name = _HOSTS.get(hosts[0]) if hosts is not None and len(hosts) == 1 else None
    if host_name is None or "?" in uri or not CAN_BUILD_REQUEST:
        request = _Request(
            connection=connection,
            server_connection=server_connection,
            start_line=start_line,
            headers=headers,
        )
        if CAN_BUILD_REQUEST and hosts is not None and len(hosts) == 1:
            if len(_HOSTS) >= _HOSTS_MAX:
                _HOSTS.clear()
            _HOSTS[request.host] = request.host_name
        return request
    assert hosts is not None
    request = _Request.__new__(_Request)
    request.method = method
    request.uri = uri
    request.version = version
    request.headers = headers
    request.body = b""
    context = getattr(connection, "context", None)
    request.remote_ip = getattr(context, "remote_ip", None)
    request.protocol = getattr(context, "protocol", "http")
    request.host = hosts[0]
    request.host_name = host_name
    request.files = {}
    request.connection = connection
    request.server_connection = server_connection
    request._start_time = time.time()
    request._finish_time = None
    request.path = uri
    request.query = ""
    request.arguments = {}
    request.query_arguments = {}
    request.body_arguments = {}
    return request


class _BaseRoutingDelegate(_RoutingDelegate or httputil.HTTPMessageDelegate):  # type: ignore[misc]
    pass


class RoutingDelegate(_BaseRoutingDelegate):
    """Tornado's routing delegate (``Router.start_request``), the request built by
    :func:`new_request`."""

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        request = new_request(self.request_conn, self.server_conn, start_line, headers)
        delegate = self.delegate = self.router.find_handler(request)
        if delegate is None:
            app_log.debug(
                "Delegate for %s %s request not found", start_line.method, start_line.path
            )
            delegate = self.delegate = _DefaultMessageDelegate(self.request_conn)
        result: Awaitable[None] | None = delegate.headers_received(start_line, headers)
        return result


def routing_delegate(
    router: routing.Router, server_conn: object, request_conn: httputil.HTTPConnection
) -> httputil.HTTPMessageDelegate | None:
    """What ``router.start_request`` returns, building requests with
    :func:`new_request`; None where this Tornado's routing is not the one checked."""
    if not CAN_BUILD_REQUEST:
        return None
    return RoutingDelegate(router, server_conn, request_conn)
