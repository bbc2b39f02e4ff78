"""The cheaper per-request steps give Tornado's answers: header values, ETag/304,
and the request object built for each request."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest
import tornado.template
import tornado.web
from tornado import httputil

from webframe import Application, RequestHandler
from webframe.server import tornado_impl
from webframe.testing import WebTestCase, test_settings


class HeaderHandler(RequestHandler):
    def get(self) -> None:
        value: Any = self.get_argument("v", "plain")
        kind = self.get_argument("kind", "str")
        if kind == "int":
            value = int(value)
        elif kind == "bytes":
            value = value.encode()
        elif kind == "date":
            value = datetime.datetime(2020, 1, 2, 3, 4, 5)
        try:
            self.set_header("X-Value", value)
        except ValueError as exc:
            self.set_status(422)
            self.write(f"refused: {exc}")
            return
        self.write("ok")


class EtagHandler(RequestHandler):
    def get(self) -> None:
        self.write("same body")


class CustomConvert(RequestHandler):
    """A handler with its own value conversion: the fast path must not bypass it."""

    def _convert_header_value(self, value: Any) -> str:
        if value == "anything":
            return "converted"
        return super()._convert_header_value(value)

    def get(self) -> None:
        self.set_header("X-Value", "anything")
        self.write("ok")


class FastPathTest(WebTestCase):
    def get_app(self) -> Application:
        return Application(
            [("/h", HeaderHandler), ("/etag", EtagHandler), ("/custom", CustomConvert)],
            test_settings(xsrf=False),
        )

    def test_header_values_as_tornado(self) -> None:
        for _ in range(2):  # the second time the text is known to be valid
            r = self.fetch("/h?v=hello")
            assert r.code == 200 and r.headers["X-Value"] == "hello"
        assert self.fetch("/h?v=12&kind=int").headers["X-Value"] == "12"
        assert self.fetch("/h?v=by&kind=bytes").headers["X-Value"] == "by"
        r = self.fetch("/h?kind=date")
        assert r.headers["X-Value"] == "Thu, 02 Jan 2020 03:04:05 GMT"

    def test_unsafe_value_refused_every_time(self) -> None:
        for _ in range(2):
            r = self.fetch("/h?v=a%0d%0aSet-Cookie:%20x=1")
            assert r.code == 422, r.body
            assert b"Unsafe header value" in r.body
            assert "Set-Cookie" not in r.headers

    def test_subclass_conversion_kept(self) -> None:
        assert self.fetch("/custom").headers["X-Value"] == "converted"

    def test_etag_sent_and_304_on_match(self) -> None:
        r = self.fetch("/etag")
        assert r.code == 200 and r.body == b"same body"
        etag = r.headers["Etag"]
        assert etag.startswith('"') and len(etag) == 42
        r = self.fetch("/etag", headers={"If-None-Match": etag})
        assert r.code == 304 and r.body == b""
        r = self.fetch("/etag", headers={"If-None-Match": "W/" + etag})
        assert r.code == 304
        r = self.fetch("/etag", headers={"If-None-Match": "*"})
        assert r.code == 304
        r = self.fetch("/etag", headers={"If-None-Match": '"other"'})
        assert r.code == 200 and r.body == b"same body"


@pytest.mark.parametrize("value", ["ok", "a\tb", "é"])
def test_set_header_matches_tornado(value: str) -> None:
    handler = object.__new__(HeaderHandler)
    tornado.web.RequestHandler.clear(handler)
    assert tornado_impl.set_header(handler, "X-A", value) is tornado_impl.CAN_SET_HEADER_FAST
    tornado.web.RequestHandler.set_header(handler, "X-B", value)
    assert handler._headers.get("X-A", value) == handler._headers["X-B"]


def test_set_header_refuses_control_characters() -> None:
    handler = object.__new__(HeaderHandler)
    tornado.web.RequestHandler.clear(handler)
    for _ in range(2):
        with pytest.raises(ValueError):
            handler.set_header("X-A", "a\nb")
    assert "X-A" not in handler._headers


class _Context:
    remote_ip = "10.0.0.7"
    protocol = "https"


class _Conn:
    context = _Context()


def _start(uri: str, version: str = "HTTP/1.1") -> httputil.RequestStartLine:
    return httputil.RequestStartLine("GET", uri, version)


def _headers(*pairs: tuple[str, str]) -> httputil.HTTPHeaders:
    headers = httputil.HTTPHeaders()
    for name, value in pairs:
        headers.add(name, value)
    return headers


@pytest.mark.parametrize("uri", ["/", "/a/b", "/q?x=1&x=2&y=", "/q?", "/%20space"])
@pytest.mark.parametrize("host", ["example.com", "Example.COM:8080", "[::1]:80", "127.0.0.1"])
def test_request_same_as_tornados(uri: str, host: str) -> None:
    conn, server = _Conn(), object()
    for _ in range(2):  # the second time the Host value is known
        headers = _headers(("Host", host), ("Accept", "*/*"))
        built = tornado_impl.new_request(conn, server, _start(uri), headers)  # type: ignore[arg-type]
        theirs = httputil.HTTPServerRequest(
            connection=conn,  # type: ignore[arg-type]
            server_connection=server,
            start_line=_start(uri),
            headers=headers,
        )
        mine, expected = vars(built), vars(theirs)
        assert set(mine) == set(expected)
        assert abs(mine.pop("_start_time") - expected.pop("_start_time")) < 1
        assert mine == expected
        assert type(built) is httputil.HTTPServerRequest


@pytest.mark.parametrize(
    "pairs",
    [
        (("Host", "a.example"), ("Host", "b.example")),  # two Host fields
        (("Host", "a.example,b.example"),),
        (("Host", "bad host"),),
        (),  # HTTP/1.1 without Host
    ],
)
def test_request_refusals_as_tornados(pairs: tuple[tuple[str, str], ...]) -> None:
    # A valid Host seen first must not let a bad one through afterwards.
    tornado_impl.new_request(_Conn(), None, _start("/"), _headers(("Host", "a.example")))  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(httputil.HTTPInputError):
            tornado_impl.new_request(_Conn(), None, _start("/"), _headers(*pairs))  # type: ignore[arg-type]


def test_http10_without_host() -> None:
    request = tornado_impl.new_request(_Conn(), None, _start("/", "HTTP/1.0"), _headers())  # type: ignore[arg-type]
    assert request.host == "127.0.0.1" and request.version == "HTTP/1.0"


class RoutingTest(WebTestCase):
    def get_app(self) -> Application:
        return Application([("/etag", EtagHandler)], test_settings(xsrf=False))

    def test_routing_delegate_serves_and_404s(self) -> None:
        if tornado_impl.CAN_BUILD_REQUEST:
            delegate = self.get_app().start_request(object(), _Conn())  # type: ignore[arg-type]
            assert type(delegate).__name__ == "RoutingDelegate"
        assert self.fetch("/etag").code == 200
        assert self.fetch("/etag?x=1").code == 200
        assert self.fetch("/nowhere").code == 404
        r = self.fetch("/etag", headers={"Host": "bad host"})
        assert r.code == 400


class FinishHandler(RequestHandler):
    def get(self) -> None:
        mode = self.get_argument("mode", "")
        if mode == "own-etag":
            self.set_header("Etag", '"mine"')
        elif mode == "204":
            self.set_status(204)
            self.finish()
            return
        elif mode == "created":
            self.set_status(201)
        elif mode == "length":
            self.set_header("Content-Length", 4)
        elif mode == "twice":
            self.finish("one")
            try:
                self.finish()
            except RuntimeError:
                self.application.settings["finished_twice"] = True
            return
        self.finish("body")


class NoEtagHandler(RequestHandler):
    def compute_etag(self) -> str | None:
        return None

    def get(self) -> None:
        self.write("x" * 10)


class FinishTest(WebTestCase):
    def get_app(self) -> Application:
        return Application(
            [("/f", FinishHandler), ("/noetag", NoEtagHandler)], test_settings(xsrf=False)
        )

    def test_finish_answers_as_tornado(self) -> None:
        r = self.fetch("/f")
        assert r.code == 200 and r.body == b"body"
        assert r.headers["Content-Length"] == "4"
        assert r.headers["Etag"] == '"' + hashlib.sha1(b"body").hexdigest() + '"'
        head = self.fetch("/f", method="HEAD")
        assert head.body == b"" and head.headers["Content-Length"] == "4"
        assert head.headers["Etag"] == r.headers["Etag"]
        assert self.fetch("/f", headers={"If-None-Match": r.headers["Etag"]}).code == 304
        r = self.fetch("/f?mode=own-etag")
        assert r.headers["Etag"] == '"mine"'
        # Tornado checks If-None-Match only against the ETag it computes itself.
        assert self.fetch("/f?mode=own-etag", headers={"If-None-Match": '"mine"'}).code == 200
        r = self.fetch("/f?mode=204")
        assert r.code == 204 and r.body == b"" and "Content-Length" not in r.headers
        r = self.fetch("/f?mode=created")
        assert r.code == 201 and "Etag" not in r.headers and r.headers["Content-Length"] == "4"
        assert self.fetch("/f?mode=length").headers["Content-Length"] == "4"
        r = self.fetch("/noetag")
        assert r.code == 200 and "Etag" not in r.headers and r.body == b"x" * 10

    def test_finish_twice_refused(self) -> None:
        r = self.fetch("/f?mode=twice")
        assert r.body == b"one"
        assert self._app.settings.get("finished_twice") is True


def shout(handler: tornado.web.RequestHandler, text: str) -> str:
    return text.upper() + handler.request.path


class UiHandler(RequestHandler):
    def initialize(self, early: bool = False) -> None:
        self.early = self.ui["shout"]("early") if early else ""

    def get(self) -> None:
        template = tornado.template.Template(
            "{{ shout('hi') }}|{% module Template('inner.html') %}|{{ early }}"
        )
        self.finish(self.render_string_template(template))

    def render_string_template(self, template: tornado.template.Template) -> bytes:
        namespace = self.get_template_namespace()
        namespace["early"] = self.early
        return template.generate(**namespace)


class Extra:
    def __init__(self) -> None:
        self.extra_ran = True
        super().__init__()


class WithMixinInit(RequestHandler, Extra):
    def get(self) -> None:
        self.write("extra" if getattr(self, "extra_ran", False) else "skipped")


class UiTest(WebTestCase):
    def get_app(self) -> Application:
        import tempfile

        folder = tempfile.mkdtemp()
        with open(f"{folder}/inner.html", "w") as f:
            f.write("inner {{ shout('x') }}")
        return Application(
            [("/ui", UiHandler), ("/early", UiHandler, {"early": True}), ("/mix", WithMixinInit)],
            test_settings(xsrf=False, template_path=folder),
            ui_methods={"shout": shout},
        )

    def test_ui_methods_and_modules_as_tornado(self) -> None:
        assert self.fetch("/ui").body == b"HI/ui|inner X/ui|"
        assert self.fetch("/early").body == b"HI/early|inner X/early|EARLY/early"

    def test_a_mixin_init_still_runs(self) -> None:
        assert self.fetch("/mix").body == b"extra"


def test_parsed_headers_same_as_tornados_twice() -> None:
    raw = [
        (b"host", b"example.com"),
        (b"X-FORWARDED-for", b" 10.0.0.1 "),
        (b"x-forwarded-FOR", b"10.0.0.2"),
        (b"content-type", b"text/plain"),
    ]
    text = "".join(f"{n.decode()}: {v.decode()}\r\n" for n, v in raw)
    expected = sorted(httputil.HTTPHeaders.parse(text).get_all())
    for _ in range(2):  # the second time every name comes from the cache
        headers = tornado_impl.headers_from_parsed(raw)
        assert sorted(headers.get_all()) == expected
        assert headers["X-Forwarded-For"] == "10.0.0.1,10.0.0.2"
