"""Methods, 404/405/HEAD/OPTIONS, method override, JSON helpers, error pages, 413."""

from __future__ import annotations

import json
import logging
import socket
import tempfile
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import HTTPResponse

from webframe import Application, BadRequestError, RequestHandler, route
from webframe.handler import bodyless_status
from webframe.server import HTTPToolsServer
from webframe.testing import WebTestCase, test_settings

#: an existing folder with no templates: error pages fall back to the plain page.
EMPTY_TEMPLATES = tempfile.mkdtemp(prefix="wf-no-templates-")


@route("/items", name="items")
class ItemsHandler(RequestHandler):
    def get(self) -> None:
        self.set_header("X-Items", "yes")
        self.write("items list")

    def post(self) -> None:
        self.write("created " + self.get_body_argument("name", ""))

    def put(self) -> None:
        self.write("put " + self.get_body_argument("name", ""))

    def delete(self) -> None:
        self.write("deleted")


@route("/readonly")
class ReadOnlyHandler(RequestHandler):
    def get(self) -> None:
        self.write("ro")


@route("/deletable")
class DeletableHandler(RequestHandler):
    def get(self) -> None:
        self.write("here")

    def delete(self) -> None:
        self.write("gone")


@route("/echo-json")
class EchoJSONHandler(RequestHandler):
    def check_xsrf_cookie(self) -> None:
        return None

    def post(self) -> None:
        self.json({"got": self.get_json()}, status=201)


@route("/small-json")
class SmallJSONHandler(EchoJSONHandler):
    def post(self) -> None:
        self.json({"got": self.get_json(max_size=10)})


@route("/boom")
class BoomHandler(RequestHandler):
    def get(self) -> None:
        raise RuntimeError("secret internal detail")


@route("/bad")
class BadHandler(RequestHandler):
    def get(self) -> None:
        raise BadRequestError("The 'q' parameter must be a number.")


@route("/tiny")
class TinyBodyHandler(RequestHandler):
    max_body_size = 100

    def check_xsrf_cookie(self) -> None:
        return None

    def post(self) -> None:
        self.write(f"got {len(self.request.body)}")


@route("/page")
class PageHandler(RequestHandler):
    def get(self) -> None:
        self.write(self.xsrf_form_html())


def make_app(**overrides: Any) -> Application:
    # No templates: errors use webframe's built-in page (the demo's page is tested elsewhere).
    settings = test_settings(template_path=EMPTY_TEMPLATES, **overrides)
    return Application(
        [
            ItemsHandler,
            ReadOnlyHandler,
            EchoJSONHandler,
            SmallJSONHandler,
            BoomHandler,
            BadHandler,
            TinyBodyHandler,
            PageHandler,
            DeletableHandler,
        ],
        settings,
    )


def error_of(r: HTTPResponse) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(r.body)["error"]
    return data


class MethodsTest(WebTestCase):
    xsrf_path = "/page"

    def get_app(self) -> Application:
        return make_app()

    def test_405_lists_allowed_methods(self) -> None:
        r = self.fetch("/readonly", method="POST", form={"a": "b"})
        assert r.code == 405
        assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
        r = self.fetch("/readonly", method="DELETE")
        assert r.code == 405
        assert r.headers["Allow"] == "GET, HEAD, OPTIONS"
        assert b"DELETE method is not allowed" in r.body

    def test_405_before_xsrf(self) -> None:
        # No token at all: the method is still reported as not allowed, not a 403.
        r = self.fetch("/readonly", method="PUT", body="x", xsrf=False)
        assert r.code == 405
        assert "GET" in r.headers["Allow"]

    def test_allow_for_full_handler(self) -> None:
        r = self.fetch("/items", method="PATCH", body="x")
        assert r.code == 405
        assert r.headers["Allow"] == "GET, HEAD, POST, PUT, DELETE, OPTIONS"

    def test_head_from_get(self) -> None:
        get = self.fetch("/items")
        head = self.fetch("/items", method="HEAD")
        assert head.code == 200
        assert head.body == b""
        assert head.headers["X-Items"] == "yes"
        assert head.headers["Content-Length"] == get.headers["Content-Length"] == "10"

    def test_options_automatic(self) -> None:
        r = self.fetch("/items", method="OPTIONS")
        assert r.code == 204
        assert r.headers["Allow"] == "GET, HEAD, POST, PUT, DELETE, OPTIONS"
        assert r.body == b""

    def test_unknown_method_is_405(self) -> None:
        r = self.fetch("/items", method="PROPFIND")
        assert r.code == 405
        assert "Allow" in r.headers

    def test_404_html_and_json(self) -> None:
        r = self.fetch("/nope")
        assert r.code == 404
        assert b"<h1>404 Not Found</h1>" in r.body
        assert b"does not exist" in r.body
        r = self.fetch("/nope", headers={"Accept": "application/json"})
        assert r.code == 404
        assert r.headers["Content-Type"].startswith("application/json")
        assert error_of(r) == {"status": 404, "message": "The page you asked for does not exist."}

    def test_404_for_post_is_not_403(self) -> None:
        assert self.fetch("/nope", method="POST", body="", xsrf=False).code == 404

    def test_method_override(self) -> None:
        r = self.fetch("/items", method="POST", form={"_method": "PUT", "name": "x"})
        assert r.code == 200
        assert r.body == b"put x"
        r = self.fetch("/items", method="POST", form={"_method": "delete"})
        assert r.body == b"deleted"

    def test_method_override_rejects_other_values(self) -> None:
        for bad in ("GET", "TRACE", "CONNECT", ""):
            r = self.fetch("/items", method="POST", form={"_method": bad})
            assert r.code == 400, bad
            assert b"_method must be one of PUT, PATCH, DELETE" in r.body

    def test_method_override_to_unimplemented_is_405(self) -> None:
        r = self.fetch("/items", method="POST", form={"_method": "PATCH"})
        assert r.code == 405

    def test_method_override_needs_xsrf(self) -> None:
        r = self.fetch("/items", method="POST", form={"_method": "DELETE"}, xsrf=False)
        assert r.code == 403

    def test_method_override_reaches_handler_without_post(self) -> None:
        r = self.fetch("/deletable", method="POST", form={"_method": "DELETE"})
        assert r.code == 200 and r.body == b"gone"
        r = self.fetch("/deletable", method="POST", form={"x": "1"})
        assert r.code == 405 and r.headers["Allow"] == "GET, HEAD, DELETE, OPTIONS"
        r = self.fetch("/deletable", method="POST", form={"_method": "PUT"})
        assert r.code == 405

    def test_method_override_only_from_post(self) -> None:
        r = self.fetch("/items?_method=DELETE")
        assert r.body == b"items list"


class JSONTest(WebTestCase):
    def get_app(self) -> Application:
        return make_app()

    def test_round_trip(self) -> None:
        r = self.fetch("/echo-json", method="POST", json={"a": [1, "é"]})
        assert r.code == 201
        assert json.loads(r.body) == {"got": {"a": [1, "é"]}}

    def test_wrong_content_type(self) -> None:
        r = self.fetch(
            "/echo-json",
            method="POST",
            body='{"a": 1}',
            headers={"Content-Type": "text/plain", "Accept": "application/json"},
        )
        assert r.code == 400
        assert "application/json" in error_of(r)["message"]

    def test_malformed(self) -> None:
        for body in ('{"a": ', "NaN", "[1, 2,]", "\xff"):
            r = self.fetch(
                "/echo-json",
                method="POST",
                body=body.encode("latin-1"),
                headers={"Content-Type": "application/json"},
            )
            assert r.code == 400, body
            assert error_of(r)["message"].startswith("The body is not valid JSON")

    def test_too_deep_is_400_not_500(self) -> None:
        body = "[" * 100_000 + "]" * 100_000
        r = self.fetch(
            "/echo-json", method="POST", body=body, headers={"Content-Type": "application/json"}
        )
        assert r.code == 400

    def test_size_limit(self) -> None:
        r = self.fetch("/small-json", method="POST", json={"long": "x" * 50})
        assert r.code == 413
        assert "at most 10 bytes" in error_of(r)["message"]


class ErrorPagesTest(WebTestCase):
    def get_app(self) -> Application:
        return make_app()

    def test_500_hides_details(self) -> None:
        r = self.fetch("/boom")
        assert r.code == 500
        assert b"secret internal detail" not in r.body
        assert b"Traceback" not in r.body
        r = self.fetch("/boom", headers={"Accept": "application/json"})
        assert error_of(r) == {
            "status": 500,
            "message": "Something went wrong on our side. It has been logged.",
        }

    def test_error_message_is_escaped_and_shown(self) -> None:
        r = self.fetch("/bad")
        assert r.code == 400
        assert b"The &#x27;q&#x27; parameter must be a number." in r.body


class DebugErrorPagesTest(WebTestCase):
    def get_app(self) -> Application:
        return make_app(debug=True)

    def test_traceback_in_debug_only_for_5xx(self) -> None:
        r = self.fetch("/boom")
        assert r.code == 500
        assert b"Traceback" in r.body and b"secret internal detail" in r.body
        assert b"Traceback" not in self.fetch("/nope").body


class BodyLimitTest(WebTestCase):
    def get_app(self) -> Application:
        return make_app(max_body_size=1000)

    def raw(self, data: bytes) -> bytes:
        """Send raw bytes; return everything the server answers before closing."""
        port = self.get_http_port()

        def run() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(data)
                out = b""
                while chunk := s.recv(65536):
                    out += chunk
                return out

        return self.io_loop.run_sync(lambda: self.io_loop.run_in_executor(None, run))  # type: ignore[arg-type,return-value]

    def test_declared_length_over_route_limit_is_413_before_body(self) -> None:
        out = self.raw(
            b"POST /tiny HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
            b"Content-Length: 5000000000\r\n\r\n"
        )
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413")
        assert b"Connection: close" in head
        msg = json.loads(body)["error"]["message"]
        assert "4.7 GiB" in msg and "at most 100 bytes" in msg

    def test_small_overflow_is_drained_then_answered(self) -> None:
        r = self.fetch("/tiny", method="POST", body="x" * 101, xsrf=False)
        assert r.code == 413
        assert b"at most 100 bytes" in r.body
        assert self.fetch("/tiny", method="POST", body="x" * 100, xsrf=False).body == b"got 100"

    def test_chunked_body_stopped_at_limit(self) -> None:
        chunk = b"40\r\n" + b"y" * 64 + b"\r\n"
        out = self.raw(
            b"POST /tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + chunk * 3 + b"0\r\n\r\n"
        )
        assert out.startswith(b"HTTP/1.1 413")

    def test_app_default_limit_applies(self) -> None:
        r = self.fetch("/items", method="POST", body="x" * 1001, xsrf=False)
        assert r.code == 413

    def test_bad_content_length(self) -> None:
        for value in (b"-1", b"abc", b"+5", b"1e3", b"5, 6", b""):
            out = self.raw(
                b"POST /tiny HTTP/1.1\r\nHost: x\r\nContent-Length: " + value + b"\r\n\r\n"
            )
            assert out.startswith(b"HTTP/1.1 400"), (value, out[:80])
            assert b"Content-Length must be one non-negative integer" in out

    def test_equal_duplicate_content_length(self) -> None:
        # RFC 9112 6.3 lets a server either take "3, 3" as 3 or refuse it. Tornado's
        # layer takes it (as Tornado does); llhttp on the httptools layer refuses it,
        # with Connection: close, so nothing after it is read as a request.
        out = self.raw(
            b"POST /tiny HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: 3, 3\r\n\r\nabc"
        )
        if isinstance(self.http_server, HTTPToolsServer):
            head = out.partition(b"\r\n\r\n")[0]
            assert head.startswith(b"HTTP/1.1 400"), out[:100]
            assert b"Connection: close" in head
        else:
            assert out.startswith(b"HTTP/1.1 200"), out[:100]

    def test_transfer_encoding_with_content_length_is_400(self) -> None:
        out = self.raw(
            b"POST /tiny HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        assert out.startswith(b"HTTP/1.1 400")
        assert b"not both" in out

    def test_unsupported_transfer_encoding_is_501(self) -> None:
        out = self.raw(
            b"POST /tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        )
        assert out.startswith(b"HTTP/1.1 501")
        assert b"not supported" in out


# Tornado behaviour kept (issue 12, section 2) -------------------------------------


class BodylessErrorHandler(RequestHandler):
    """GET /bodyless/<code>: raises Tornado's HTTPError with that status."""

    def get(self, code: str) -> None:
        raise tornado.web.HTTPError(int(code))


class BodylessErrorTest(WebTestCase):
    xsrf_path = None

    def get_app(self) -> Application:
        return Application(
            [(r"/bodyless/([0-9]+)", BodylessErrorHandler)],
            test_settings(template_path=EMPTY_TEMPLATES),
        )

    def test_204_and_304_from_httperror_finish_without_a_body(self) -> None:
        for code in (204, 304):
            for accept in ("text/html", "application/json"):
                r = self.fetch(f"/bodyless/{code}", headers={"Accept": accept}, request_timeout=5)
                assert r.code == code, (code, accept, r.code, r.error)
                assert r.body == b""
                assert "Content-Type" not in r.headers

    def test_statuses_without_a_body(self) -> None:
        assert [c for c in range(100, 600) if bodyless_status(c)] == [*range(100, 200), 204, 304]


@pytest.mark.skipif(
    not hasattr(tornado.web.RequestHandler, "check_trusted_origin"),
    reason="cross_origin_protection is a Tornado 6.6 setting",
)
class NotFoundOriginTest(WebTestCase):
    xsrf_path = None

    def get_app(self) -> Application:
        settings = test_settings(template_path=EMPTY_TEMPLATES)
        return Application([EchoJSONHandler], settings, cross_origin_protection=True)

    def test_cross_site_post_to_unknown_url_is_404(self) -> None:
        cross = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
        assert self.fetch("/nope", method="POST", body="", headers=cross).code == 404
        # The protection is on: a real route refuses the same request.
        r = self.fetch("/echo-json", method="POST", json={"a": 1}, headers=cross)
        assert r.code == 403


class LoggingTest(WebTestCase):
    xsrf_path = "/page"

    def get_app(self) -> Application:
        return make_app(access_log=True)

    def records(self, caplog: Any, path: str, **kwargs: Any) -> tuple[int, list[Any]]:
        caplog.clear()
        code = self.fetch(path, **kwargs).code
        return code, [r for r in caplog.records if r.name.startswith(("tornado", "webframe"))]

    def test_one_access_line_per_request_and_no_warning_for_404_405(self) -> None:
        caplog = self.caplog
        with caplog.at_level(logging.DEBUG):
            self.fetch("/page")  # the XSRF token, fetched before the log is read
            cases = [
                ("/items", {}, 200, logging.INFO),
                ("/nope", {}, 404, logging.WARNING),
                ("/nope", {"method": "POST", "body": ""}, 404, logging.WARNING),
                ("/readonly", {"method": "DELETE"}, 405, logging.WARNING),
                ("/readonly", {"method": "PROPFIND"}, 405, logging.WARNING),
                ("/items", {"method": "PATCH", "body": ""}, 405, logging.WARNING),
                ("/boom", {}, 500, logging.ERROR),
                ("/tiny", {"method": "POST", "body": "x" * 101}, 413, logging.WARNING),
                ("/items", {"method": "POST", "body": "", "xsrf": False}, 403, logging.WARNING),
            ]
            for path, kwargs, code, level in cases:
                got, recs = self.records(caplog, path, **kwargs)
                assert got == code, (path, got)
                access = [r for r in recs if r.name == "tornado.access"]
                assert len(access) == 1, (path, [r.getMessage() for r in recs])
                assert access[0].levelno == level
                assert access[0].getMessage().startswith(f"{code} ")
                if code in (404, 405, 413):
                    # Nothing but the access line, as with Tornado.
                    assert len(recs) == 1, (path, [(r.name, r.getMessage()) for r in recs])
            # A 400 raised by a handler still explains itself on tornado.general.
            _, recs = self.records(caplog, "/bad")
            assert any(
                r.name == "tornado.general" and "must be a number" in r.getMessage() for r in recs
            )

    @pytest.fixture(autouse=True)
    def _caplog(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog


class LogFunctionTest(WebTestCase):
    xsrf_path = None

    def get_app(self) -> Application:
        self.logged: list[tuple[str, int]] = []

        def log_function(handler: tornado.web.RequestHandler) -> None:
            self.logged.append((handler.request.path, handler.get_status()))

        settings = test_settings(template_path=EMPTY_TEMPLATES, access_log=True)
        return Application([ItemsHandler], settings, log_function=log_function)

    def test_log_function_replaces_the_access_line(self) -> None:
        with self._caplog.at_level(logging.DEBUG, logger="tornado.access"):
            assert self.fetch("/items").code == 200
            assert self.fetch("/nope").code == 404
        assert self.logged == [("/items", 200), ("/nope", 404)]
        assert not [r for r in self._caplog.records if r.name == "tornado.access"]

    @pytest.fixture(autouse=True)
    def _fixture(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog
