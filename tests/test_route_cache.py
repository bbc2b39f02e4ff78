"""The exact-path route cache gives the handler Tornado's rule walk gives, or nothing."""

from __future__ import annotations

from typing import Any

import pytest
import tornado.web
from tornado import httputil

from webframe import Application, RequestHandler, Settings
from webframe.routing import cache


class A(RequestHandler):
    def initialize(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def get(self) -> None:
        self.write("a")


class B(A):
    pass


class C(A):
    pass


class D(A):
    def get(self, id: int) -> None:
        self.write(str(id))


def app(routes: list[Any]) -> Application:
    return Application(routes, Settings(cookie_secret="x" * 40))


def request(path: str, host: str = "example.com") -> httputil.HTTPServerRequest:
    start = httputil.RequestStartLine("GET", path, "HTTP/1.1")
    return httputil.HTTPServerRequest(start_line=start, headers=httputil.HTTPHeaders(Host=host))


def routed(application: Application, path: str, host: str = "example.com") -> tuple[Any, ...]:
    """(handler class, kwargs, path args, path kwargs) as webframe's find_handler gives them."""
    d: Any = application.find_handler(request(path, host))
    return (d.handler_class, d.handler_kwargs, d.path_args, d.path_kwargs)


def walked(application: Application, path: str, host: str = "example.com") -> tuple[Any, ...]:
    """The same through Tornado's own rule walk (no cache)."""
    d: Any = tornado.web.Application.find_handler(application, request(path, host))
    return (d.handler_class, d.handler_kwargs, d.path_args, d.path_kwargs)


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("^/$", "/"),
        ("/page$", "/page"),
        (r"/robots\.txt$", "/robots.txt"),
        ("/(.*)$", None),
        ("/a.b$", None),
        ("/a[bc]$", None),
        ("(?i)/x$", None),
        ("/x", None),
        (r"/x\$", None),
        (r"/\d$", None),
    ],
)
def test_only_patterns_matching_one_path_are_literal(pattern: str, path: str | None) -> None:
    assert cache.literal_path(pattern) == path


PATHS = ["/", "/page", "/page/", "/page\n", "/other", "/p/1", "/missing", "/PAGE"]


def test_cached_routes_equal_tornados_walk() -> None:
    application = app(
        [("/", A), ("/page", B, {"k": 1}), ("/p/{id:int}", D), (r"/other", C)]
    )
    for path in PATHS:
        assert routed(application, path) == walked(application, path), path
    table = cache.build(application)
    assert table["/page"] == (B, {"k": 1}) and table["/"] == (A, None)
    assert "/p/1" not in table


def test_an_earlier_regex_shadows_a_later_literal() -> None:
    application = app([(r"/pa.*", A), ("/page", B), ("/", C)])
    assert "/page" not in cache.build(application)
    assert routed(application, "/page")[0] is A
    assert routed(application, "/")[0] is C


def test_host_specific_handlers_turn_the_cache_off() -> None:
    application = app([("/page", A)])
    application.add_handlers(r"admin\.example\.com$", [("/page", B)])
    assert cache.build(application) == {}
    assert routed(application, "/page", "admin.example.com")[0] is B
    assert routed(application, "/page")[0] is A


def test_rules_added_later_are_seen() -> None:
    application = app([("/page", A)])
    assert routed(application, "/page")[0] is A
    assert routed(application, "/later")[0] is not B
    application.wildcard_router.add_rules([("/later", B)])
    assert routed(application, "/later")[0] is B


def test_a_rule_with_another_matcher_ends_the_cacheable_part() -> None:
    class HeaderMatches(tornado.routing.Matcher):
        def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
            return {} if request.headers.get("X-Special") else None

    application = app([("/first", A), tornado.routing.Rule(HeaderMatches(), B), ("/page", C)])
    table = cache.build(application)
    assert "/first" in table and "/page" not in table


def test_a_literal_route_skips_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    application = app([("/page", B), ("/p/{id:int}", D)])

    def no_walk(self: Any, request: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"walked the rules for {request.path}")

    monkeypatch.setattr(tornado.web.Application, "find_handler", no_walk)
    assert routed(application, "/page")[0] is B
    with pytest.raises(AssertionError, match="walked"):
        routed(application, "/p/1")
