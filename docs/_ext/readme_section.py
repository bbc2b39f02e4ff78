"""Pages that show a section of the README, so that the text has one source.

A page holding the line ``<!-- readme-section: TITLE -->`` gets, in its place, the
README's ``## TITLE`` section (up to the next ``## `` heading) with its headings moved
one level down and its relative links pointed at the repository. A missing section is
an error: the build fails rather than publish an empty page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

README = Path(__file__).resolve().parents[2] / "README.md"
REPOSITORY = "https://github.com/webframe-dev/webframe/blob/main/"
PLACEHOLDER = re.compile(r"^<!-- readme-section: (?P<title>.+?) -->$", re.M)
LINK = re.compile(r"\]\((?!https?:|mailto:|#)(?P<path>[^)\s]+)\)")


def readme_section(title: str, text: str | None = None) -> str:
    """The body of the README's ``## title`` section, ready to stand in a docs page."""
    text = README.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    try:
        start = lines.index(f"## {title}") + 1
    except ValueError:
        raise ExtensionError(f"README.md has no '## {title}' section") from None
    end = next(
        (i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines)
    )
    body = "\n".join(lines[start:end]).strip("\n") + "\n"
    body = re.sub(r"^(#{3,6}) ", lambda m: m.group(1)[1:] + " ", body, flags=re.M)
    return LINK.sub(lambda m: f"]({REPOSITORY}{m.group('path')})", body)


def _fill(app: Sphinx, docname: str, source: list[str]) -> None:
    source[0] = PLACEHOLDER.sub(lambda m: readme_section(m.group("title")), source[0])


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("source-read", _fill)
    app.add_config_value("readme_path", str(README), "env")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
