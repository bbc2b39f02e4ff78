"""Sphinx configuration; the build command is in README.md (warnings are errors)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

import webframe  # noqa: E402

project = "webframe"
author = "the webframe authors"
copyright = "2026, the webframe authors"
release = version = webframe.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "settings_table",
    "readme_section",
    "stores_table",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# pypi.md is the package's long description on PyPI, not a page of the site.
exclude_patterns = ["_build", "pypi.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Tornado's own docstrings use Tornado's cross-reference roles; webframe's pages
# document webframe's names only (no inherited members).
autodoc_inherit_docstrings = False

html_theme = "furo"
html_title = f"webframe {release}"
