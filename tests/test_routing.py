"""Route patterns, converters, the @route decorator and reverse_url."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import tornado.routing
import tornado.web
from tornado.testing import AsyncHTTPTestCase

from webframe import Application, ConfigurationError, RequestHandler, Route, RouteTable, route
from webframe.testing import test_settings


class Echo(RequestHandler):
    def get(self, **params: object) -> None:
        self.json({k: [type(v).__name__, str(v)] for k, v in params.items()})


def test_int_converter_regex_and_reverse() -> None:
    r = Route("/files/{file_id:int}", Echo, name="file")
    assert r.regex.match("/files/42")
    assert not r.regex.match("/files/x42")
    assert not r.regex.match("/files/-1")
    assert not r.regex.match("/files/" + "9" * 19)  # bounded: int() never sees huge input
    assert r.reverse(file_id=7) == "/files/7"
    with pytest.raises(TypeError, match="must be an int"):
        r.reverse(file_id="7")
    with pytest.raises(TypeError, match="must be an int"):
        r.reverse(file_id=True)
    with pytest.raises(ValueError):
        r.reverse(file_id=-1)


def test_str_converter_is_one_segment_and_quoted() -> None:
    r = Route("/hello/{name}", Echo, name="hello")
    assert r.regex.match("/hello/ada")
    assert not r.regex.match("/hello/a/b")
    assert r.reverse(name="a b&c") == "/hello/a%20b%26c"
    with pytest.raises(ValueError, match="one non-empty path segment"):
        r.reverse(name="a/b")
    with pytest.raises(TypeError, match="must be a str"):
        r.reverse(name=5)


def test_path_converter_refuses_dotdot() -> None:
    r = Route("/docs/{path:path}", Echo, name="docs")
    assert r.regex.match("/docs/a/b/c.txt")
    assert not r.regex.match("/docs/../etc/passwd")
    assert not r.regex.match("/docs/a/../../x")
    assert r.reverse(path="guide/intro.md") == "/docs/guide/intro.md"
    with pytest.raises(ValueError):
        r.reverse(path="../x")


def test_uuid_converter() -> None:
    r = Route("/items/{item_id:uuid}", Echo, name="item")
    u = uuid.uuid4()
    assert r.regex.match(f"/items/{u}")
    assert not r.regex.match("/items/not-a-uuid")
    assert r.reverse(item_id=u) == f"/items/{u}"
    assert r.reverse(item_id=str(u).upper()) == f"/items/{u}"
    with pytest.raises(ValueError, match="not a UUID"):
        r.reverse(item_id="nope")
    with pytest.raises(TypeError):
        r.reverse(item_id=12)


def test_reverse_checks_parameter_names() -> None:
    r = Route("/a/{x:int}/{y}", Echo, name="a")
    with pytest.raises(TypeError, match="missing"):
        r.reverse(x=1)
    with pytest.raises(TypeError, match="unexpected"):
        r.reverse(x=1, y="b", z=3)


@pytest.mark.parametrize(
    "pattern",
    ["no-slash", "/a/{x:float}", "/a/{x}/{x}", "/a/{x", "/a/x}"],
)
def test_bad_patterns_fail_at_startup(pattern: str) -> None:
    with pytest.raises(ConfigurationError):
        Route(pattern, Echo)


def test_route_decorator_stacks_and_table_accepts_all_forms() -> None:
    @route("/one", name="one")
    @route("/uno")
    class One(RequestHandler):
        def get(self) -> None:
            self.write("one")

    table = RouteTable([One, ("/three/{n:int}", Echo, {}, "three")])
    assert [r.pattern for r in table.routes] == ["/one", "/uno", "/three/{n:int}"]  # type: ignore[union-attr]
    assert table.reverse("three", n=3) == "/three/3"
    assert table.reverse("one") == "/one"
    with pytest.raises(ConfigurationError, match="no @route"):
        RouteTable([Echo])
    with pytest.raises(ConfigurationError, match="two routes are named"):
        RouteTable([("/a", Echo, {}, "x"), ("/b", Echo, {}, "x")])
    with pytest.raises(KeyError, match="no route is named"):
        table.reverse("nope")


def test_module_form_collects_decorated_classes_in_order() -> None:
    import handlers.pages as pages

    table = RouteTable([pages])
    names = [r.name for r in table.routes]  # type: ignore[union-attr]
    assert names == ["home", "about", "hello", "preferences", "api-notes", "api-note"]


class TypedArgumentsTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application(
            [
                ("/files/{file_id:int}", Echo, {}, "file"),
                ("/docs/{path:path}", Echo),
                ("/u/{item_id:uuid}", Echo),
                ("/hello/{name}", Echo, {}, "hello"),
            ],
            test_settings(),
        )

    def test_int_arrives_as_int(self) -> None:
        r = self.fetch("/files/42")
        assert r.code == 200
        assert b'"file_id": ["int", "42"]' in r.body

    def test_uuid_arrives_as_uuid(self) -> None:
        u = uuid.uuid4()
        r = self.fetch(f"/u/{u}")
        assert f'"item_id": ["UUID", "{u}"]'.encode() in r.body

    def test_str_is_unquoted(self) -> None:
        r = self.fetch("/hello/a%20b")
        assert b'"name": ["str", "a b"]' in r.body

    def test_path_with_encoded_dotdot_is_404(self) -> None:
        assert self.fetch("/docs/a/b").code == 200
        assert self.fetch("/docs/%2e%2e/secret").code == 404
        assert self.fetch("/docs/a/%2E%2E/%2e%2e/x").code == 404

    def test_non_matching_int_is_404(self) -> None:
        assert self.fetch("/files/abc").code == 404

    def test_app_reverse_url_with_param_called_name(self) -> None:
        app = self.get_app()
        assert app.reverse_url("hello", name="x y") == "/hello/x%20y"
        assert app.reverse_url("file", file_id=3) == "/files/3"
        with pytest.raises(TypeError):
            app.reverse_url("file", file_id="3")


# Tornado's route forms keep their Tornado meaning ------------------------------------


class Args(RequestHandler):
    """Echoes the positional and keyword path arguments and its initialize() kwargs."""

    def initialize(self, tag: str = "") -> None:
        self.tag = tag

    def get(self, *args: object, **kwargs: object) -> None:
        self.json(
            {
                "args": [[type(a).__name__, a] for a in args],
                "kwargs": {k: [type(v).__name__, str(v)] for k, v in kwargs.items()},
                "tag": self.tag,
            }
        )


class PlainTornado(tornado.web.RequestHandler):
    def get(self, *args: str) -> None:
        self.write("plain " + ",".join(args))


class TornadoFormsTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application(
            [
                (r"/user/(\d+)", Args, {"tag": "t"}, "user"),
                (r"/pair/([a-z]+)/([0-9]+)", Args),
                (r"/slug/(?P<slug>[a-z-]+)", Args, None, "slug"),
                tornado.web.url(r"/url/([0-9]+)", Args, {"tag": "url"}, name="by-url"),
                tornado.routing.Rule(tornado.routing.PathMatches(r"/rule/(\w+)"), PlainTornado),
                tornado.web.url("/typed/{n:int}", Args, name="typed"),
                ("/about", Args, {}, "about"),
                ("/sitemap.xml", Args),
                (r"/exact\.json", Args),
                ("/plain/([a-z]+)", PlainTornado),
                ("/users/{user_id:int}", Args, {}, "webframe-user"),
                (r"/catch/.*", Args),
            ],
            test_settings(),
        )

    def get_json(self, path: str) -> Any:
        r = self.fetch(path)
        assert r.code == 200, (path, r.code)
        return json.loads(r.body)

    def test_positional_groups_and_kwargs(self) -> None:
        assert self.get_json("/user/42") == {"args": [["str", "42"]], "kwargs": {}, "tag": "t"}
        assert self.get_json("/pair/ab/7")["args"] == [["str", "ab"], ["str", "7"]]
        assert self.fetch("/user/x").code == 404
        assert self.fetch("/user/42/more").code == 404  # anchored at the end, as in Tornado

    def test_named_groups_are_keyword_arguments(self) -> None:
        assert self.get_json("/slug/a-b")["kwargs"] == {"slug": ["str", "a-b"]}

    def test_url_and_rule_objects(self) -> None:
        assert self.get_json("/url/5") == {"args": [["str", "5"]], "kwargs": {}, "tag": "url"}
        r = self.fetch("/rule/abc")
        assert r.code == 200 and r.body == b"plain abc"
        r = self.fetch("/plain/xyz")
        assert r.code == 200 and r.body == b"plain xyz"

    def test_braces_mark_a_webframe_pattern_even_in_url(self) -> None:
        assert self.get_json("/typed/3")["kwargs"] == {"n": ["int", "3"]}
        assert self.get_json("/users/8")["kwargs"] == {"user_id": ["int", "8"]}

    def test_literals(self) -> None:
        assert self.fetch("/about").code == 200
        assert self.fetch("/about/x").code == 404
        # A literal with regex characters keeps its Tornado (regex) meaning...
        assert self.fetch("/sitemap.xml").code == 200
        assert self.fetch("/sitemap.xml").code == 200
        # ...and an escaped one matches only itself.
        assert self.fetch("/exact.json").code == 200
        assert self.fetch("/exactXjson").code == 404
        assert self.fetch("/catch/any/thing").code == 200

    def test_reverse_url_for_every_form(self) -> None:
        app = self._app
        assert app.reverse_url("user", 42) == "/user/42"
        assert app.reverse_url("slug", "a-b") == "/slug/a-b"
        assert app.reverse_url("by-url", 9) == "/url/9"
        assert app.reverse_url("about") == "/about"
        assert app.reverse_url("typed", n=4) == "/typed/4"
        assert app.reverse_url("webframe-user", user_id=1) == "/users/1"


@pytest.mark.parametrize(
    ("pattern", "shown"),
    [
        ("/user/<int:id>", "'/user/{id:int}'"),
        ("/user/<id>", "'/user/{id}'"),
        ("/f/<path:rest>", "'/f/{rest:path}'"),
        ("/s/<string:name>/<uuid:u>", "'/s/{name}/{u:uuid}'"),
    ],
)
def test_flask_syntax_stops_startup_showing_the_spelling(pattern: str, shown: str) -> None:
    for make in (lambda: RouteTable([(pattern, Echo)]), lambda: route(pattern)(Echo)):
        with pytest.raises(ConfigurationError, match="Flask") as info:
            make()
        assert shown in str(info.value)


def test_placeholders_mixed_with_regex_stop_startup() -> None:
    with pytest.raises(ConfigurationError, match="mixes") as info:
        RouteTable([(r"/a/{id:int}/(\d+)", Echo)])
    assert "(?P<id>[0-9]{1,18})" in str(info.value)
    with pytest.raises(ConfigurationError, match="mixes"):
        RouteTable([tornado.web.url(r"/b/{name}/[a-z]+", Echo)])


@pytest.mark.parametrize(
    ("pattern", "shown"),
    [
        (r"/user/(\d+)", "'/user/{arg1}'"),
        (r"/post/(?P<slug>[a-z]+)/(\d+)", "'/post/{slug}/{arg2}'"),
        (r"^/exact\.json$", "'/exact.json'"),
    ],
)
def test_regex_given_to_route_decorator_stops_startup(pattern: str, shown: str) -> None:
    with pytest.raises(ConfigurationError, match="is a regular expression") as info:
        route(pattern)(Echo)
    assert shown in str(info.value)
    assert "tuple" in str(info.value)


@pytest.mark.parametrize("pattern", ["/a/{x", "/a/x}", "/a/{}", "/a/{1x}"])
def test_stray_braces_in_tuples_stop_startup(pattern: str) -> None:
    with pytest.raises(ConfigurationError, match="brace"):
        RouteTable([(pattern, Echo)])


def test_regex_quantifier_braces_are_fine() -> None:
    table = RouteTable([(r"/year/([0-9]{4})", Echo), (r"/code/([A-Z]{2,3})", Echo)])
    assert len(table.rules()) == 2


def test_invalid_regex_stops_startup() -> None:
    with pytest.raises(ConfigurationError, match="not a valid regular expression"):
        RouteTable([(r"/a/(unclosed", Echo)])


def test_names_are_unique_across_both_syntaxes() -> None:
    with pytest.raises(ConfigurationError, match="two routes are named 'x'"):
        RouteTable([("/a/{n:int}", Echo, {}, "x"), (r"/b/(\d+)", Echo, {}, "x")])
    with pytest.raises(ConfigurationError, match="two routes are named 'y'"):
        RouteTable([tornado.web.url("/c", Echo, name="y"), ("/d", Echo, {}, "y")])
