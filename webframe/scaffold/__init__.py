"""``webframe new NAME``: create a project with webframe's own layout.

The files come from the ``project/`` folder beside this module (installed as package
data). Names ending in ``.tmpl`` lose that suffix (so the template's Python files are
not linted, type-checked or packaged as code); ``gitignore.tmpl`` becomes
``.gitignore``. ``__project__`` is replaced by the project name and
``__webframe_version__`` by the running webframe's version.
"""

from __future__ import annotations

import re
import shutil
import sys
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # pragma: no cover - Python 3.10
    from importlib.abc import Traversable

#: a project name: a letter, then letters, digits, ``_`` or ``-`` (a valid folder and
#: distribution name on every platform).
PROJECT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_RENAMES = {"gitignore": ".gitignore"}


class ProjectError(Exception):
    """``webframe new`` cannot create the project; the message says why."""


class ProjectExistsError(ProjectError):
    """The target folder already exists; ``webframe new`` never writes into one."""


def template_root() -> Traversable:
    """The folder of template files a new project is made from."""
    return resources.files(__package__).joinpath("project")


def project_files() -> dict[str, str]:
    """Every template file as ``{relative path in the new project: template text}``."""
    out: dict[str, str] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name == "__pycache__":
                continue
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            name = entry.name.removesuffix(".tmpl")
            out[prefix + _RENAMES.get(name, name)] = entry.read_text(encoding="utf-8")

    walk(template_root(), "")
    return out


def render(text: str, name: str) -> str:
    """Fill in a template's placeholders for the project ``name``."""
    from .. import __version__

    return text.replace("__project__", name).replace("__webframe_version__", __version__)


def create_project(name: str, parent: str | Path = ".") -> Path:
    """Create the folder ``parent/name`` holding a new project; returns its path.

    Raises :class:`ProjectError` for a bad name and :class:`ProjectExistsError`
    when the folder exists (nothing is written then). A failure half-way removes the
    partly written folder.
    """
    if not PROJECT_NAME.fullmatch(name):
        raise ProjectError(
            f"{name!r} is not a project name: use a letter, then letters, digits, '_' or '-'"
        )
    target = Path(parent) / name
    try:
        target.mkdir(parents=False)
    except FileExistsError:
        raise ProjectExistsError(
            f"{target} already exists; choose another name or remove it first"
        ) from None
    except FileNotFoundError:
        raise ProjectError(f"the folder {Path(parent)} does not exist") from None
    try:
        for relative, text in project_files().items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(text, name), encoding="utf-8")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target
