"""A ``settings-table`` directive: every :class:`webframe.Settings` field, generated at
build time from the dataclass (name, meaning, unit, default, environment variable).

The meaning is the field's ``#:`` comment in ``webframe/settings.py``, or else the
entry in :data:`MEANINGS` below; a field with neither fails the build, so the table
cannot fall behind the dataclass.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective

from webframe import Settings, format_size
from webframe.settings import ENV_PREFIX

#: meanings of the fields that have no ``#:`` comment in settings.py.
MEANINGS = {
    "debug": "development mode: code and template reloading, tracebacks on error pages, "
    "a generated cookie secret. Never in production.",
    "template_path": "folder of the templates ``render()`` reads.",
    "static_path": "folder served under ``static_url_prefix`` (not served if missing).",
    "static_url_prefix": "URL path under which ``static_path`` is served; starts and ends "
    "with ``/``.",
    "xsrf": "check the session-bound XSRF token on POST, PUT, PATCH and DELETE.",
    "host": "address to listen on (``0.0.0.0`` for every IPv4 interface).",
    "port": "TCP port to listen on; 0 picks a free one.",
    "access_log": "log one line per request.",
    "session_cookie": "name of the signed cookie that carries the session ID.",
    "extra": "free-form values for the application (``settings.extra[...]``); not read "
    "from the environment.",
}

_SECONDS = ("timeout", "interval")


def unit_of(field: dataclasses.Field[Any]) -> str:
    """The unit a field's number is in, from its name and type."""
    if field.name.endswith("_size") or field.name.startswith("max_"):
        return "bytes"
    if any(word in field.name for word in _SECONDS):
        return "seconds"
    if field.type == "bool":
        return "yes/no"
    if field.name in ("processes",):
        return "processes"
    return ""


def default_of(field: dataclasses.Field[Any]) -> str:
    """The default as the table shows it (sizes also in KiB/MiB)."""
    if field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        value = field.default
    text = f"``{value!r}``"
    if isinstance(value, int) and not isinstance(value, bool) and unit_of(field) == "bytes":
        text += f" ({format_size(value)})"
    return text


def env_of(field: dataclasses.Field[Any]) -> str:
    """The environment variable a field is read from, with its syntax when special."""
    if field.name == "extra":
        return "(Python only)"
    name = f"``{ENV_PREFIX}{field.name.upper()}``"
    if field.type == "bool":
        return name + " (1/0, true/false, yes/no, on/off)"
    if field.name == "cookie_secret":
        return name + ' (a string, or JSON ``{"1": "old", "2": "new"}``)'
    return name


def settings_rows() -> list[tuple[str, str, str, str, str]]:
    """``(name, meaning, unit, default, environment variable)`` for every field."""
    analyzer = ModuleAnalyzer.for_module("webframe.settings")
    comments = analyzer.find_attr_docs()
    rows = []
    for field in dataclasses.fields(Settings):
        lines = comments.get(("Settings", field.name))
        meaning = " ".join(line.strip() for line in lines if line.strip()) if lines else ""
        meaning = meaning or MEANINGS.get(field.name, "")
        if not meaning:
            raise ExtensionError(
                f"Settings.{field.name} has no meaning: add a '#:' comment in "
                f"webframe/settings.py or an entry in docs/_ext/settings_table.py"
            )
        rows.append(
            (f"``{field.name}``", meaning, unit_of(field), default_of(field), env_of(field))
        )
    return rows


class SettingsTable(SphinxDirective):
    """``.. settings-table::`` — the generated table of every Settings field."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        headers = ("setting", "meaning", "unit", "default", "environment variable")
        table = nodes.table(classes=["settings-table"])
        group = nodes.tgroup(cols=len(headers))
        table += group
        for width in (18, 42, 8, 16, 16):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += self._row(headers)
        body = nodes.tbody()
        for row in settings_rows():
            body += self._row(row)
        group += head
        group += body
        return [table]

    @staticmethod
    def _row(cells: tuple[str, ...]) -> nodes.row:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph("", "", *_inline(cell or "—"))
            row += entry
        return row


def _inline(text: str) -> list[nodes.Node]:
    """Text with ``literal`` parts as docutils nodes."""
    out: list[nodes.Node] = []
    for i, piece in enumerate(text.split("``")):
        if piece:
            out.append(nodes.literal(piece, piece) if i % 2 else nodes.Text(piece))
    return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("settings-table", SettingsTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
