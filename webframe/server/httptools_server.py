"""HTTPToolsServer: Tornado's ``HTTPServer`` interface over the httptools connection layer."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import tornado.netutil
from tornado import httputil
from tornado.http1connection import HTTP1ConnectionParameters
from tornado.httpserver import HTTPServer
from tornado.tcpserver import TCPServer

from . import tornado_impl
from .httptools_impl import HTTPToolsProtocol
from .httptools_read import READ_SIZE

#: Tornado's defaults, so an app moved between layers behaves the same.
_DEFAULT_MAX_HEADER = 64 * 1024
_DEFAULT_MAX_BODY = 100 * 1024 * 1024
_DEFAULT_IDLE = 3600.0
#: an answered request's unread body is read and dropped up to this size (larger:
#: the connection is closed after the answer, with ``Connection: close``).
_DEFAULT_DRAIN = 32 * 1024 * 1024


class _CallableDelegate(httputil.HTTPMessageDelegate):
    """A plain ``callback(request)`` served like ``HTTPServer(callback)`` serves it."""

    def __init__(
        self,
        callback: Callable[[httputil.HTTPServerRequest], Any],
        connection: httputil.HTTPConnection,
    ) -> None:
        self.callback = callback
        self.connection = connection
        self.request: httputil.HTTPServerRequest | None = None
        self.chunks: list[bytes] = []

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.request = httputil.HTTPServerRequest(
            connection=self.connection, start_line=start_line, headers=headers
        )

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(bytes(chunk))

    def finish(self) -> None:
        request = self.request
        assert request is not None
        request.body = b"".join(self.chunks)
        tornado_impl.parse_body(request)
        self.callback(request)

    def on_connection_close(self) -> None:
        self.chunks = []


class HTTPToolsServer(HTTPServer):
    """Serve a ``tornado.web.Application`` (any ``HTTPServerConnectionDelegate``, or a
    ``callback(request)``) on the httptools layer.

    Takes the arguments of ``tornado.httpserver.HTTPServer`` and the same
    ``listen`` / ``add_sockets`` / ``bind`` + ``start`` / ``stop`` /
    ``close_all_connections`` calls, so the two are interchangeable. Extra:
    ``header_timeout`` (seconds to send a request head), ``max_headers``
    (header fields per request; default one per 16 bytes of ``max_header_size``),
    ``max_drain_size`` and :meth:`drain` (graceful stop).

    It subclasses ``tornado.httpserver.HTTPServer`` so that
    ``HTTPServer.configure(HTTPToolsServer)`` puts every ``HTTPServer(...)`` of a
    program on this layer (Tornado's ``Configurable``: arguments go to ``initialize``).
    """

    def initialize(
        self,
        request_callback: httputil.HTTPServerConnectionDelegate
        | Callable[[httputil.HTTPServerRequest], Any],
        no_keep_alive: bool = False,
        xheaders: bool = False,
        ssl_options: dict[str, Any] | ssl.SSLContext | None = None,
        protocol: str | None = None,
        decompress_request: bool = False,
        chunk_size: int | None = None,
        max_header_size: int | None = None,
        idle_connection_timeout: float | None = None,
        body_timeout: float | None = None,
        max_body_size: int | None = None,
        max_buffer_size: int | None = None,
        trusted_downstream: list[str] | None = None,
        header_timeout: float | None = None,
        max_headers: int | None = None,
        max_drain_size: int = _DEFAULT_DRAIN,
    ) -> None:
        TCPServer.__init__(self)  # the attributes bind()/start() use
        self.request_callback = request_callback
        self.no_keep_alive = no_keep_alive
        self.xheaders = xheaders
        self.protocol = protocol
        self.trusted_downstream = trusted_downstream
        self.decompress = decompress_request
        self.max_header_size = max_header_size or _DEFAULT_MAX_HEADER
        self.idle_timeout = idle_connection_timeout or _DEFAULT_IDLE
        self.header_timeout = header_timeout or self.idle_timeout
        self.body_timeout = body_timeout
        self.max_body_size = max_body_size or max_buffer_size or _DEFAULT_MAX_BODY
        # A count bound beside the size bound: one per 16 bytes of allowed head.
        self.max_headers = max_headers or max(100, self.max_header_size // 16)
        self.max_drain_size = max_drain_size
        self.chunk_size = chunk_size or 65536
        #: where this server's connections read the socket (they share one loop, and
        #: each read is handled before the next begins); see :mod:`.httptools_read`.
        self.read_view = memoryview(bytearray(READ_SIZE))
        # What HTTPServer keeps as conn_params, with the values as given (None: unset),
        # so code reading ``request.connection.params`` sees what it would on Tornado.
        self.params = self.conn_params = HTTP1ConnectionParameters(
            no_keep_alive=no_keep_alive,
            chunk_size=chunk_size,
            max_header_size=max_header_size,
            header_timeout=self.header_timeout,
            max_body_size=max_body_size,
            body_timeout=body_timeout,
            decompress=decompress_request,
        )
        if isinstance(ssl_options, dict):
            # Refused as TCPServer refuses them, before any socket is bound.
            if "certfile" not in ssl_options:
                raise KeyError('missing key "certfile" in ssl_options')
            for key in ("certfile", "keyfile"):
                path = ssl_options.get(key)
                if path and not os.path.exists(path):
                    raise ValueError(f'{key} "{path}" does not exist')
            ssl_options = tornado.netutil.ssl_options_to_context(ssl_options, server_side=True)
        self.ssl_context: ssl.SSLContext | None = ssl_options
        self._is_delegate = isinstance(request_callback, httputil.HTTPServerConnectionDelegate)
        self._protocols: set[HTTPToolsProtocol] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._pending: list[socket.socket] = []
        self._starting: list[asyncio.Future[Any]] = []

    # -- what each connection calls -----------------------------------------------
    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        """The message delegate for one request (as ``HTTPServer.start_request``)."""
        callback = self.request_callback
        if self._is_delegate:
            delegate = callback.start_request(server_conn, request_conn)  # type: ignore[union-attr]
        else:
            delegate = _CallableDelegate(callback, request_conn)  # type: ignore[arg-type]
        if self.decompress:
            delegate = tornado_impl.gzip_delegate(delegate, self.chunk_size, self.max_body_size)
        return delegate

    # -- listening -----------------------------------------------------------------
    def listen(
        self,
        port: int,
        address: str | None = None,
        family: socket.AddressFamily = socket.AF_UNSPEC,
        backlog: int = tornado.netutil._DEFAULT_BACKLOG,
        flags: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        """Bind ``port`` on ``address`` and serve (as ``TCPServer.listen``)."""
        sockets = tornado.netutil.bind_sockets(
            port, address=address, family=family, backlog=backlog, flags=flags,
            reuse_port=reuse_port,
        )
        self.add_sockets(sockets)

    def add_socket(self, sock: socket.socket) -> None:
        """Serve on one listening socket."""
        self.add_sockets([sock])

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Serve on listening sockets bound elsewhere (``bind_sockets``, a parent process).

        With the loop running, serving starts on its next turn (connections wait in
        the listen backlog until then); otherwise it starts before this returns.
        """
        sockets = list(sockets)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = asyncio.get_event_loop_policy().get_event_loop()
            loop.run_until_complete(self._serve(sockets))
            return
        task = loop.create_task(self._serve(sockets))
        self._starting.append(task)
        task.add_done_callback(self._starting.remove)

    async def start_serving(self) -> None:
        """Wait until every socket given to ``listen``/``add_sockets`` is accepting."""
        if self._starting:
            await asyncio.gather(*self._starting)

    async def _serve(self, sockets: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        for sock in sockets:
            server = await loop.create_server(
                lambda: HTTPToolsProtocol(self),
                sock=sock,
                ssl=self.ssl_context,
                backlog=tornado.netutil._DEFAULT_BACKLOG,
            )
            self._servers.append(server)

    @property
    def sockets(self) -> list[Any]:
        """The listening sockets (for the port a ``listen(0)`` got)."""
        return [s for server in self._servers for s in getattr(server, "sockets", ())]

    # -- stopping ------------------------------------------------------------------
    def stop(self) -> None:
        """Stop accepting connections; those already open go on."""
        for server in self._servers:
            server.close()
        self._servers = []
        for task in self._starting:
            task.cancel()

    async def drain(self, timeout: float) -> int:
        """Graceful stop: idle connections close now, busy ones after their answer
        (sent with ``Connection: close``). Waits up to ``timeout`` seconds; returns
        how many connections were still open then (those are then closed)."""
        waits = [c.closed for c in list(self._protocols) if not c.close_when_idle()]
        if waits:
            await asyncio.wait(waits, timeout=timeout)
        left = len(self._protocols)
        await self.close_all_connections()
        return left

    async def close_all_connections(self) -> None:
        """Close every open connection now and wait until they are gone."""
        connections = list(self._protocols)
        for conn in connections:
            conn._abort()
        if connections:
            await asyncio.wait([c.closed for c in connections], timeout=5)
