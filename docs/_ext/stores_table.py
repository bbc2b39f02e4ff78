"""A ``stores-table`` directive: every session store URL scheme, generated at build time
from ``webframe.sessions.registry.BACKENDS`` (scheme, URL shape, store class, install)."""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from webframe.sessions.registry import BACKENDS


def store_rows() -> list[tuple[str, str, str, str]]:
    """``(scheme, URL shape, store class, what to install)`` for every registered scheme."""
    rows = []
    for backend in BACKENDS:
        install = f"pip install 'webframe[{backend.extra}]'" if backend.extra else "nothing"
        rows.append(
            (backend.scheme, backend.example, backend.target.replace(":", "."), install)
        )
    return rows


class StoresTable(SphinxDirective):
    """``.. stores-table::`` — the generated table of session store URL schemes."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        table = nodes.table(classes=["stores-table"])
        group = nodes.tgroup(cols=4)
        table += group
        for width in (15, 40, 25, 20):
            group += nodes.colspec(colwidth=width)
        head, body = nodes.thead(), nodes.tbody()
        head += _row(("scheme", "URL", "store class", "install"), literal=False)
        for row in store_rows():
            body += _row(row, literal=True)
        group += head
        group += body
        return [table]


def _row(cells: tuple[str, ...], literal: bool) -> nodes.row:
    row = nodes.row()
    for i, cell in enumerate(cells):
        entry = nodes.entry()
        inner = nodes.literal(cell, cell) if literal and i < 3 else nodes.Text(cell)
        entry += nodes.paragraph("", "", inner)
        row += entry
    return row


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("stores-table", StoresTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
