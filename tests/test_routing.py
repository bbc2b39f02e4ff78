"""Route patterns, converters, the @route decorator and reverse_url."""

from __future__ import annotations

import uuid

import pytest
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
