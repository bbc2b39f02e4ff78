"""The sessions package's layout: old import paths still work, the registry names the
backends' new homes, modules stay small and share no private names."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import webframe.sessions
from webframe.sessions.registry import BACKENDS

PACKAGE = Path(webframe.sessions.__file__).parent

# old module -> (new module, names the old one must still give)
MOVED = {
    "webframe.sessions.base": (
        "webframe.sessions.store",
        ["Changeset", "Count", "Record", "SessionStore", "SessionStoreError", "encode_value",
         "is_valid_session_id", "new_session_id", "SESSION_ID_BYTES", "SESSION_ID_LENGTH"],
    ),
    "webframe.sessions.memory": ("webframe.sessions.backends.memory", ["MemoryStore"]),
    "webframe.sessions.sqlite": ("webframe.sessions.backends.sqlite", ["SQLiteStore"]),
    "webframe.sessions.redis": (
        "webframe.sessions.backends.redis", ["RedisStore", "split_options", "glob_escape"]
    ),
    "webframe.sessions.sentinel": (
        "webframe.sessions.backends.sentinel",
        ["SentinelStore", "SentinelURL", "SENTINEL_PORT", "parse_hosts", "parse_sentinel_url",
         "refuse_query", "split_credentials"],
    ),
    "webframe.sessions.cluster": (
        "webframe.sessions.backends.cluster",
        ["ClusterStore", "ClusterURL", "CLUSTER_PORT", "parse_cluster_url"],
    ),
    "webframe.sessions.postgresql": (
        "webframe.sessions.backends.postgresql", ["PostgreSQLStore"]
    ),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_give_the_same_objects(old: str) -> None:
    new, names = MOVED[old]
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name), (old, name)
    assert sorted(old_module.__all__) == sorted(
        [*names, *(["CookieAction", "Session", "open_store"] if old.endswith(".base") else [])]
    )


def test_base_gives_the_session_and_open_store_from_their_new_homes() -> None:
    from webframe.sessions import base, registry, session

    assert base.Session is session.Session is webframe.sessions.Session
    assert base.CookieAction is session.CookieAction
    assert base.open_store is registry.open_store is webframe.sessions.open_store


def test_registry_points_at_the_backends_package() -> None:
    for backend in BACKENDS:
        module, _, cls = backend.target.partition(":")
        assert module.startswith("webframe.sessions.backends."), backend.target
        if backend.client is None:  # importing the others needs their client library
            assert getattr(importlib.import_module(module), cls).__module__ == module


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_imported_from_another_module(path: Path) -> None:
    tree = ast.parse(path.read_text())
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_") and node.module != "__future__"
    ]
    assert private == []


def test_the_touch_rule_is_written_once() -> None:
    # Session.commit and Session.needs_commit (and any backend) decide through touch_due.
    sources = {p: p.read_text() for p in _modules()}
    holders = [p.name for p, text in sources.items() if "idle_timeout / 2" in text]
    assert holders == ["store.py"]
