"""The one table of session store URL schemes: scheme -> store class, imported lazily.

`open_store` (the app, the CLI, tests) and the start-up check of the
``session_store`` setting both read this table, so a new backend is added here
and nowhere else.  A store's module, and the client library it needs (redis,
asyncpg), is imported only when a URL with its scheme is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webframe.sessions.store import SessionStore

__all__ = [
    "BACKENDS",
    "MissingClientError",
    "StoreBackend",
    "backend_for",
    "check_store_url",
    "open_store",
    "scheme_of",
    "store_class",
    "valid_schemes",
]


@dataclass(frozen=True)
class StoreBackend:
    """One URL scheme: where its store class lives and what it needs installed."""

    scheme: str
    #: ``"module:Class"``, imported on first use.
    target: str
    #: the URL shape shown in error messages and help.
    example: str
    #: the ``pip install 'webframe[extra]'`` that provides `client`.
    extra: str | None = None
    #: the module the store cannot work without (checked before importing the store).
    client: str | None = None


class MissingClientError(ImportError):
    """The store's client library is not installed; the message says what to install."""


_REDIS = {"extra": "redis", "client": "redis.asyncio"}
_POSTGRES = {"extra": "postgresql", "client": "asyncpg"}

BACKENDS: tuple[StoreBackend, ...] = (
    StoreBackend("memory", "webframe.sessions.backends.memory:MemoryStore", "memory://"),
    StoreBackend("sqlite", "webframe.sessions.backends.sqlite:SQLiteStore", "sqlite:///path.db"),
    StoreBackend(
        "redis", "webframe.sessions.backends.redis:RedisStore", "redis://host:port/db", **_REDIS
    ),
    StoreBackend(
        "rediss", "webframe.sessions.backends.redis:RedisStore", "rediss://host:port/db", **_REDIS
    ),
    StoreBackend(
        "redis+sentinel",
        "webframe.sessions.backends.sentinel:SentinelStore",
        "redis+sentinel://host:port,host:port/mastername/db",
        **_REDIS,
    ),
    StoreBackend(
        "redis+cluster",
        "webframe.sessions.backends.cluster:ClusterStore",
        "redis+cluster://host:port,host:port",
        **_REDIS,
    ),
    StoreBackend(
        "postgresql",
        "webframe.sessions.backends.postgresql:PostgreSQLStore",
        "postgresql://user:password@host:port/dbname",
        **_POSTGRES,
    ),
    StoreBackend(
        "postgres",
        "webframe.sessions.backends.postgresql:PostgreSQLStore",
        "postgres://user:password@host:port/dbname",
        **_POSTGRES,
    ),
)

_BY_SCHEME = {backend.scheme: backend for backend in BACKENDS}


def valid_schemes() -> str:
    """The URL shapes every scheme takes, for error messages and ``--help``."""
    return ", ".join(backend.example for backend in BACKENDS)


def scheme_of(url: str) -> str:
    """The lower-cased scheme of `url`, or "" when it has no ``scheme://``."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def backend_for(url: str) -> StoreBackend:
    """The backend for `url`'s scheme; ValueError naming the valid schemes otherwise."""
    backend = _BY_SCHEME.get(scheme_of(url))
    if backend is None:
        scheme = scheme_of(url) or "(none)"
        raise ValueError(
            f"session_store {_redact(url)!r}: unknown scheme {scheme!r}; "
            f"valid schemes: {valid_schemes()}"
        )
    return backend


def store_class(backend: StoreBackend) -> type[SessionStore]:
    """Import and return the store class of `backend`.

    Raises MissingClientError, naming the ``pip install`` to run, when the
    client library is not installed.
    """
    if backend.client is not None:
        try:
            importlib.import_module(backend.client)
        except ImportError as exc:
            raise MissingClientError(
                f"session_store {backend.scheme}:// needs the {backend.client.split('.')[0]} "
                f"package: pip install 'webframe[{backend.extra}]'"
            ) from exc
    module_name, _, class_name = backend.target.partition(":")
    cls: type[SessionStore] = getattr(importlib.import_module(module_name), class_name)
    return cls


def check_store_url(url: str) -> StoreBackend:
    """Check `url` as start-up does, without connecting: known scheme, client installed,
    well-formed for its store.  Raises ValueError or MissingClientError with a message."""
    backend = backend_for(url)
    store_class(backend).check_url(url)
    return backend


def open_store(url: str, **kwargs: Any) -> SessionStore:
    """Build the store for the ``session_store`` URL; `kwargs` go to its constructor.

    ``sqlite:///`` is followed by the path: ``sqlite:///data/s.db`` is relative
    to the working directory, ``sqlite:////var/lib/app/s.db`` is absolute.
    """
    cls = store_class(backend_for(url))
    cls.check_url(url)
    return cls.from_url(url, **kwargs)


def _redact(url: str) -> str:
    """`url` without a password (error messages end up in logs)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return scheme + sep + authority + slash + path
