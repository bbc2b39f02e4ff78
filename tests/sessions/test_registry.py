"""The one table of session store schemes, and the places that read it: open_store, the
app's start-up check (ConfigurationError naming the setting) and the CLI help."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from webframe import Application, ConfigurationError
from webframe.cli import build_parser
from webframe.sessions import MemoryStore, SessionStore, SQLiteStore, open_store
from webframe.sessions.registry import (
    BACKENDS,
    MissingClientError,
    backend_for,
    check_store_url,
    scheme_of,
    store_class,
)
from webframe.testing import test_settings


def test_every_scheme_names_an_importable_store_once() -> None:
    schemes = [b.scheme for b in BACKENDS]
    assert len(schemes) == len(set(schemes))
    for backend in BACKENDS:
        cls = store_class(backend)
        assert issubclass(cls, SessionStore)
        assert backend.example.startswith(backend.scheme + "://")


@pytest.mark.parametrize(
    ("url", "class_name"),
    [
        ("memory://", "MemoryStore"),
        ("redis://127.0.0.1:1/0", "RedisStore"),
        ("REDIS://127.0.0.1:1/0", "RedisStore"),
        ("rediss://127.0.0.1:1/0", "RedisStore"),
        ("redis+sentinel://127.0.0.1:1,127.0.0.1:2/main/3", "SentinelStore"),
        ("redis+sentinel://[::1]:26379/main", "SentinelStore"),
        ("redis+cluster://127.0.0.1:1,127.0.0.1:2", "ClusterStore"),
        ("postgresql://user:pw@127.0.0.1:1/app", "PostgreSQLStore"),
        ("postgres://127.0.0.1:1/app", "PostgreSQLStore"),
    ],
)
def test_open_store_picks_the_class_without_connecting(url: str, class_name: str) -> None:
    async def main() -> None:
        store = open_store(url, timeout=0.5)
        try:
            assert type(store).__name__ == class_name
        finally:
            await store.close()

    asyncio.run(main())


def test_sentinel_url_is_parsed() -> None:
    from webframe.sessions.sentinel import parse_sentinel_url

    spec = parse_sentinel_url("redis+sentinel://u:p%40ss@10.0.0.1:26380,10.0.0.2/mymaster/4")
    assert spec.sentinels == (("10.0.0.1", 26380), ("10.0.0.2", 26379))
    assert (spec.service, spec.db, spec.username, spec.password) == ("mymaster", 4, "u", "p@ss")


BAD_URLS = [
    "mysql://db/x",
    "redis+sentinel://127.0.0.1:26379",  # no master name
    "redis+sentinel:///main",  # no sentinel
    "redis+sentinel://127.0.0.1:99999/main",
    "redis+sentinel://127.0.0.1:x/main",
    "redis+sentinel://127.0.0.1/main/notadb",
    "redis+sentinel://127.0.0.1/main/0/extra",
    "redis+cluster://",
    "redis+cluster://127.0.0.1:7000/3",  # a cluster has only db 0
    "redis+cluster://127.0.0.1:7000?ssl=true",  # never ignored silently
    "redis+sentinel://127.0.0.1/main/0?ssl=true",
    "redis://127.0.0.1/0?wait_replicas=many",
    "postgresql://",
    "sqlite://",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_malformed_urls_are_refused_with_a_message(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="session_store") as info:
        open_store(url)
    assert "Traceback" not in str(info.value)
    with pytest.raises(ValueError, match="session_store"):
        check_store_url(url)
    # At start-up: a ConfigurationError naming the setting, before anything is served.
    with pytest.raises(ConfigurationError, match="'session_store'"):
        Application([], test_settings(session_store=url, instance_path=str(tmp_path)))


def test_unknown_scheme_lists_every_valid_one_and_hides_the_password() -> None:
    with pytest.raises(ValueError) as info:
        open_store("mongodb://admin:hunter2@db/sessions")
    message = str(info.value)
    assert "hunter2" not in message
    for backend in BACKENDS:
        assert backend.example in message


@pytest.mark.parametrize(
    ("url", "extra", "module"),
    [
        ("postgresql://127.0.0.1/app", "postgresql", "asyncpg"),
        ("redis+cluster://127.0.0.1:7000", "redis", "redis.asyncio"),
        ("redis+sentinel://127.0.0.1/main", "redis", "redis.asyncio"),
        ("redis://127.0.0.1/0", "redis", "redis.asyncio"),
    ],
)
def test_missing_client_library_names_the_extra_to_install(
    url: str, extra: str, module: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ImportError
    with pytest.raises(MissingClientError, match=rf"pip install 'webframe\[{extra}\]'"):
        open_store(url)
    with pytest.raises(ConfigurationError, match=rf"webframe\[{extra}\]"):
        Application([], test_settings(session_store=url, instance_path=str(tmp_path)))


def test_app_and_cli_read_the_same_table(tmp_path: Path) -> None:
    help_text = " ".join(build_parser("run.py").format_help().split())
    for backend in BACKENDS:
        assert backend.example in help_text
        url = (
            backend.example.replace("host:port", "127.0.0.1:1")
            .replace("user:password@", "")
            .replace("/db", "/0")
            .replace("path.db", str(tmp_path / "s.db"))
        )
        app = Application([], test_settings(session_store=url))
        assert scheme_of(app.session_store_url) == backend.scheme
        assert backend_for(app.session_store_url) is backend


def test_default_store_is_sqlite_in_the_instance_folder(tmp_path: Path) -> None:
    app = Application([], test_settings(session_store=None, instance_path=str(tmp_path)))

    async def main() -> None:
        store = app.session_store
        assert isinstance(store, SQLiteStore)
        assert store.path == str(tmp_path / "sessions.db")
        await app.aclose()

    asyncio.run(main())


# -- session_redis_wait ------------------------------------------------------------------------


def test_session_redis_wait_becomes_the_stores_wait_replicas(tmp_path: Path) -> None:
    async def main() -> None:
        for url in (
            "redis://127.0.0.1:1/0",
            "redis+sentinel://127.0.0.1:1/main/0",
            "redis+cluster://127.0.0.1:1",
        ):
            app = Application([], test_settings(session_store=url, session_redis_wait=2))
            assert app.session_store_url.endswith("wait_replicas=2")
            store: Any = app.session_store
            assert store.wait_replicas == 2
            assert store.wait_timeout_ms == 1000  # half of session_timeout (2 s)
            await app.aclose()
        app = Application(
            [], test_settings(session_store="redis://127.0.0.1:1/0?ssl_cert_reqs=none")
        )
        assert app.session_store.wait_replicas == 0  # type: ignore[attr-defined]
        await app.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("url", ["memory://", "postgresql://127.0.0.1/app", "sqlite:///s.db", None])
def test_session_redis_wait_is_refused_for_stores_without_wait(
    url: str | None, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="'session_redis_wait'"):
        Application(
            [],
            test_settings(session_store=url, session_redis_wait=1, instance_path=str(tmp_path)),
        )


def test_session_redis_wait_setting_validation() -> None:
    from webframe import Settings

    with pytest.raises(ConfigurationError, match="'session_redis_wait'"):
        test_settings(session_redis_wait=-1)
    settings = Settings.from_sources(env={"WEBFRAME_SESSION_REDIS_WAIT": "2"})
    assert settings.session_redis_wait == 2
    with pytest.raises(ConfigurationError, match="session_redis_wait"):
        Settings.from_sources(env={"WEBFRAME_SESSION_REDIS_WAIT": "all of them"})


def test_memory_store_ignores_the_url_body() -> None:
    assert isinstance(open_store("memory://anything"), MemoryStore)
