"""The Tornado this process runs, and how the gates look into its code.

A gate is a module-level flag computed once at import from Tornado's code objects
and signatures (never by making an instance), so a release that renames what a
helper relies on switches that helper to its public fallback.
"""

from __future__ import annotations

import inspect
from typing import Any

import tornado

#: Tornado releases these helpers were checked against.
CHECKED_VERSIONS = ((6, 5), (6, 6))
TORNADO_VERSION = tuple(int(p) for p in tornado.version.split(".")[:2])
#: the Tornado version this process runs, as ``tornado.version_info``.
VERSION_INFO: tuple[int, ...] = tuple(tornado.version_info)


def names_in(function: Any, *names: str) -> bool:
    """Whether ``function``'s code refers to every one of ``names`` (how a private
    attribute set in ``__init__`` is detected without making an instance)."""
    code = getattr(function, "__code__", None)
    return code is not None and all(name in code.co_names for name in names)


def parameters(function: Any) -> list[str] | None:
    """The parameter names of ``function`` (None if it is missing)."""
    if function is None:
        return None
    return list(inspect.signature(function).parameters)


def name_set(text: str) -> frozenset[str]:
    """The names in ``text`` (separated by spaces): a set of code names a gate expects."""
    return frozenset(text.split())
