"""webframe.server.tornado_impl's parts beyond the gates tests/server covers: the
request body parsed as Tornado parses it, header maps built directly, and the rule
that Tornado's private names appear in that package only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from tornado import httputil

from webframe.server import tornado_impl
from webframe.server.tornado_impl import handlers, headers

WEBFRAME = Path(__file__).resolve().parents[1] / "webframe"


def request_with(body: bytes, content_type: str) -> httputil.HTTPServerRequest:
    return httputil.HTTPServerRequest(
        headers=httputil.HTTPHeaders({"Content-Type": content_type, "Host": "example.test"}),
        body=body,
        start_line=httputil.RequestStartLine("POST", "/?q=1", "HTTP/1.1"),
    )


@pytest.mark.parametrize("private", [True, False])
def test_parse_body_fills_the_request_as_tornado_does(
    private: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not private:
        # A Tornado without HTTPServerRequest._parse_body: the public steps.
        monkeypatch.delattr(httputil.HTTPServerRequest, "_parse_body")
    form = request_with(b"a=1&a=2&b=%C3%A9", "application/x-www-form-urlencoded")
    tornado_impl.parse_body(form)
    assert form.body_arguments == {"a": [b"1", b"2"], "b": [b"\xc3\xa9"]}
    assert form.arguments == {"q": [b"1"], "a": [b"1", b"2"], "b": [b"\xc3\xa9"]}
    multipart = request_with(
        b'--X\r\nContent-Disposition: form-data; name="f"; filename="t.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nhi\r\n--X--\r\n",
        "multipart/form-data; boundary=X",
    )
    handlers.parse_body(multipart)
    assert [(f.filename, f.body) for f in multipart.files["f"]] == [("t.txt", b"hi")]


def test_a_directly_built_header_map_behaves_as_one_built_by_add() -> None:
    built = headers.headers_of({"Content-Type": ["text/plain"], "X-A": ["1", "2"]})
    added = httputil.HTTPHeaders()
    added.add("Content-Type", "text/plain")
    added.add("X-A", "1")
    added.add("X-A", "2")
    assert dict(built) == dict(added) and built.get_list("X-A") == ["1", "2"]
    del built["X-A"]  # Tornado 6.5 needs the combined-value cache filled for this
    assert "X-A" not in built and list(built.get_all()) == [("Content-Type", "text/plain")]


def private_tornado_imports(tree: ast.AST) -> list[str]:
    """``from tornado... import _name`` and ``getattr(tornado..., "_name")`` in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tornado"):
            found += [a.name for a in node.names if a.name.startswith("_")]
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and str(node.args[1].value).startswith("_")
            and "tornado" in ast.unparse(node.args[0])
        ):
            found.append(str(node.args[1].value))
    return found


def test_the_checker_sees_a_private_tornado_import() -> None:
    tree = ast.parse(
        "from tornado.web import _HandlerDelegate\n"
        "x = getattr(tornado.http1connection, '_GzipMessageDelegate', None)\n"
    )
    assert private_tornado_imports(tree) == ["_HandlerDelegate", "_GzipMessageDelegate"]


def test_tornado_private_names_are_imported_in_tornado_impl_only() -> None:
    inside, outside = [], []
    for path in sorted(WEBFRAME.rglob("*.py")):
        names = private_tornado_imports(ast.parse(path.read_text(encoding="utf-8")))
        (inside if "tornado_impl" in path.parts else outside).extend(
            f"{path.relative_to(WEBFRAME)}: {n}" for n in names
        )
    assert outside == []
    assert inside  # the checker does look: the package itself has them
