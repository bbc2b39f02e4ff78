"""Every public name of webframe and of its documented submodules has a docstring.

The API reference (docs/api.md) is generated from these docstrings by autodoc, so a
name without one would appear there empty. "Public" means: listed in ``__all__``
(or, for a module without ``__all__``, a class or function it defines whose name has
no leading underscore), and every method or property such a class defines itself.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

#: The modules the API reference documents; docs/api.md must list each of them.
DOCUMENTED = [
    "webframe",
    "webframe.testing",
    "webframe.cli",
    "webframe.sessions",
    "webframe.pytest_plugin",
]
API_PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def public_names(mod: ModuleType) -> list[str]:
    names = getattr(mod, "__all__", None)
    if names is not None:
        return list(names)
    return [
        n
        for n, o in vars(mod).items()
        if not n.startswith("_")
        and (inspect.isclass(o) or inspect.isfunction(o))
        and o.__module__ == mod.__name__
    ]


def own_doc(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    auto = inspect.isclass(obj) and dataclasses.is_dataclass(obj)
    if auto and doc.startswith(obj.__name__ + "("):  # type: ignore[union-attr]
        return ""  # the signature dataclasses write when the class has no docstring
    return doc


def undocumented(module_name: str) -> list[str]:
    mod = importlib.import_module(module_name)
    missing = []
    if not (mod.__doc__ or "").strip():
        missing.append(module_name)
    for name in public_names(mod):
        obj = getattr(mod, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if not own_doc(obj):
            missing.append(f"{module_name}.{name}")
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, staticmethod | classmethod):
                value = value.__func__
            documentable = inspect.isfunction(value) or isinstance(value, property)
            if documentable and not own_doc(value):
                missing.append(f"{module_name}.{name}.{attr}")
    return missing


@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    assert undocumented(module_name) == []


def test_the_checker_notices_a_missing_docstring() -> None:
    import webframe.testing as testing

    saved = testing.Client.get.__doc__
    testing.Client.get.__doc__ = None
    try:
        assert "webframe.testing.Client.get" in undocumented("webframe.testing")
    finally:
        testing.Client.get.__doc__ = saved


def test_the_api_page_covers_every_documented_module() -> None:
    text = API_PAGE.read_text(encoding="utf-8")
    for module_name in DOCUMENTED:
        assert f"automodule:: {module_name}\n" in text, module_name


def test_top_level_names_are_all_exported() -> None:
    import webframe

    for name in webframe.__all__:
        assert hasattr(webframe, name), name
