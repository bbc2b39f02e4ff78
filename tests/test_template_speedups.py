"""webframe's template escaping/encoding helpers give Tornado's bytes exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import tornado.escape
import tornado.template
from hypothesis import given
from hypothesis import strategies as st
from tornado import httputil

from webframe import Application, RequestHandler, Settings
from webframe.escaping import template_utf8, template_xhtml_escape
from webframe.server import tornado_impl
from webframe.server.tornado_impl import TEMPLATE_SPEEDUPS

SAMPLES: list[Any] = [
    "",
    "plain",
    "<a href=\"x\" title='y'>&amp; é 😀</a>",
    b"<b>&'\"</b>",
    "é".encode(),
    None,
]


class Text(str):
    pass


@pytest.mark.parametrize("value", [*SAMPLES, Text("<sub>")])
def test_the_same_results_as_tornado(value: Any) -> None:
    assert template_utf8(value) == tornado.escape.utf8(value)
    if value is not None:
        assert template_xhtml_escape(value) == tornado.escape.xhtml_escape(value)
        assert type(template_xhtml_escape(value)) is str


@pytest.mark.parametrize("value", [3, 1.5, ["x"]])
def test_the_same_errors_as_tornado(value: Any) -> None:
    with pytest.raises(TypeError):
        tornado.escape.utf8(value)
    with pytest.raises(TypeError):
        template_utf8(value)
    with pytest.raises(TypeError):
        tornado.escape.xhtml_escape(value)
    with pytest.raises(TypeError):
        template_xhtml_escape(value)


@given(st.text())
def test_any_text_escapes_as_tornado(text: str) -> None:
    assert template_xhtml_escape(text) == tornado.escape.xhtml_escape(text)
    assert template_xhtml_escape(text.encode()) == tornado.escape.xhtml_escape(text.encode())
    assert template_utf8(text) == tornado.escape.utf8(text)


PAGE = """{% set n = len(items) %}<h1>{{ title }}</h1>{% raw raw_html %}
{% for item in items %}<li data-x="{{ item['name'] }}">{{ item['price'] }}
{{ escape(item['name']) }}
{% end %}{{ xhtml_escape(b'<b>') + '!' }} {{ n }} {{ none_value }}"""


def test_a_template_renders_the_same_bytes(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text(PAGE)
    template = tornado.template.Loader(str(tmp_path)).load("t.html")
    context = {
        "title": "Orders & <invoices>",
        "raw_html": "<i>kept</i>",
        "items": [{"name": f"it'em \"{i}\" <{i}> é", "price": i * 1.5} for i in range(5)],
        "none_value": None,
    }
    plain = template.generate(**context)
    assert template.generate(**context, **TEMPLATE_SPEEDUPS) == plain
    assert tornado_impl.TEMPLATE_ENCODER  # the encoder is replaced on this Tornado
    assert b"Orders &amp; &lt;invoices&gt;" in plain and b"<i>kept</i>" in plain


def test_handler_namespaces_carry_them_and_render_arguments_still_win(tmp_path: Path) -> None:
    (tmp_path / "t.html").write_text("{{ text }}|{% raw xhtml_escape(text) %}")
    app = Application([], Settings(cookie_secret="x" * 40, template_path=str(tmp_path)))
    start = httputil.RequestStartLine("GET", "/", "HTTP/1.1")
    request = httputil.HTTPServerRequest(
        start_line=start, headers=httputil.HTTPHeaders(Host="h"), connection=mock.Mock()
    )
    handler = RequestHandler(app, request)
    ns = handler.get_template_namespace()
    assert ns["xhtml_escape"] is template_xhtml_escape and ns["escape"] is template_xhtml_escape
    assert handler.render_string("t.html", text="<&>") == b"&lt;&amp;&gt;|&lt;&amp;&gt;"
    mine = handler.render_string("t.html", text="<&>", xhtml_escape=lambda v: "[mine]")
    assert mine == b"[mine]|[mine]"
