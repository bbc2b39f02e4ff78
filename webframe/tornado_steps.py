"""TornadoSteps: the base under webframe's handler mixins where some of Tornado's
per-request steps run cheaper with the same answer (see
:mod:`webframe.server.tornado_impl.fastpath`)."""

from __future__ import annotations

from asyncio import Future
from typing import Any

import tornado.web
from tornado import httputil

from .server import tornado_impl

_MISSING = object()


class TornadoSteps(tornado.web.RequestHandler):
    """Tornado's own steps, some done cheaper with the same answer; below the session
    mixins in the MRO (their ``finish`` runs first and calls this one)."""

    def __init__(
        self,
        application: tornado.web.Application,
        request: httputil.HTTPServerRequest,
        **kwargs: Any,
    ) -> None:
        # Tornado's __init__, with the ``ui`` namespace built on first use.
        if not tornado_impl.init_handler(self, application, request, kwargs):
            super().__init__(application, request, **kwargs)

    @property
    def ui(self) -> Any:
        """Tornado's ``ui`` namespace (UI methods and modules for templates)."""
        ui = self.__dict__.get("_wf_ui", _MISSING)
        if ui is _MISSING:
            ui = self.__dict__["_wf_ui"] = tornado_impl.build_ui(self)
        return ui

    @ui.setter
    def ui(self, value: Any) -> None:
        self.__dict__["_wf_ui"] = value

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Future[None]:
        """End the response (Tornado's ``finish``: ETag, 304, Content-Length, flush)."""
        future = tornado_impl.finish(self, chunk)
        if future is None:
            return super().finish(chunk)
        return future

    def set_header(self, name: str, value: Any) -> None:
        """Set response header ``name`` as Tornado does (a value with CR, LF or another
        control character is refused with ValueError); a text already checked once is
        not checked again."""
        if not tornado_impl.set_header(self, name, value):
            super().set_header(name, value)

    def check_etag_header(self) -> bool:
        """Called by ``finish()``: whether the ETag matches ``If-None-Match`` (a 304).
        Without that request header the answer is False whatever the ETag, as in
        Tornado, so its parsing is skipped; the ETag header is still sent."""
        if "If-None-Match" not in self.request.headers:
            return False
        return super().check_etag_header()
