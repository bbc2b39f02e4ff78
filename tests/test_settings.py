"""Settings: precedence CLI > env > defaults, validation, the cookie secret."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from webframe import Application, ConfigurationError, Settings
from webframe.cli import parse_settings


def test_defaults() -> None:
    s = Settings()
    assert s.port == 8888 and s.host == "127.0.0.1" and s.xsrf is True and s.debug is False


def test_precedence_cli_over_env_over_defaults() -> None:
    env = {"WEBFRAME_PORT": "9000", "WEBFRAME_HOST": "0.0.0.0", "WEBFRAME_DEBUG": "yes"}
    s = Settings.from_sources(cli={"port": 9100, "host": None}, env=env, defaults={"port": 1})
    assert s.port == 9100  # CLI wins
    assert s.host == "0.0.0.0"  # env beats default; a None CLI value means "not given"
    assert s.debug is True
    s = Settings.from_sources(env={}, defaults={"port": 1234})
    assert s.port == 1234


def test_cli_parsing_and_env() -> None:
    s = parse_settings(["--port", "0", "--no-debug", "--xheaders"], env={"WEBFRAME_PORT": "5"})
    assert s.port == 0 and s.debug is False and s.xheaders is True
    s = parse_settings([], env={"WEBFRAME_PORT": "5", "WEBFRAME_XSRF": "off"})
    assert s.port == 5 and s.xsrf is False


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"WEBFRAME_PORT": "eighty"}, "port"),
        ({"WEBFRAME_PORT": "70000"}, "port"),
        ({"WEBFRAME_DEBUG": "maybe"}, "debug"),
        ({"WEBFRAME_PROCESSES": "-2"}, "processes"),
        ({"WEBFRAME_LOOP": "trio"}, "loop"),
        ({"WEBFRAME_MAX_BODY_SIZE": "0"}, "max_body_size"),
        ({"WEBFRAME_BODY_TIMEOUT": "-1"}, "body_timeout"),
        ({"WEBFRAME_COOKIE_SECRET": "short"}, "cookie_secret"),
        ({"WEBFRAME_COOKIE_SECRET": "{not json"}, "cookie_secret"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_sources(env=env)
    assert info.value.setting == setting
    assert setting in str(info.value)


def test_unknown_default_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a webframe setting"):
        Settings.from_sources(env={}, defaults={"prot": 1})


def test_rotation_secret_from_env() -> None:
    s = Settings.from_sources(
        env={
            "WEBFRAME_COOKIE_SECRET": (
                '{"1": "old-secret-old-secret", "2": "new-secret-new-secret"}'
            ),
            "WEBFRAME_COOKIE_SECRET_VERSION": "2",
        }
    )
    assert s.cookie_secret == {1: "old-secret-old-secret", 2: "new-secret-new-secret"}
    with pytest.raises(ConfigurationError, match="cookie_secret_version"):
        Settings(cookie_secret={1: "x" * 20}, cookie_secret_version=3)


def test_secret_required_without_debug(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="WEBFRAME_COOKIE_SECRET"):
        Application([], Settings(instance_path=str(tmp_path)))


def test_debug_secret_generated_once_mode_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inst = tmp_path / "instance"
    with caplog.at_level(logging.WARNING, logger="webframe"):
        a = Application([], Settings(debug=True, instance_path=str(inst)))
    assert "generated secret" in caplog.text
    path = inst / "cookie_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (inst / ".gitignore").read_text().strip().endswith("*")
    b = Application([], Settings(debug=True, instance_path=str(inst)))
    assert a.settings["cookie_secret"] == b.settings["cookie_secret"] == path.read_text().strip()


def test_resolve_paths_makes_relative_folders_absolute_against_the_root(tmp_path: Path) -> None:
    s = Settings(template_path="tpl", static_path="../shared/static", upload_path="up")
    r = s.resolve_paths(tmp_path)
    assert r.template_path == str(tmp_path / "tpl")
    assert r.static_path == str((tmp_path / ".." / "shared" / "static").resolve())
    assert r.instance_path == str(tmp_path / "instance")
    assert r.upload_dir == str(tmp_path / "up")
    # Absolute paths and ~ are kept as they are / expanded; the original is untouched.
    home = Settings(instance_path="~/inst", template_path=str(tmp_path / "abs"))
    h = home.resolve_paths(tmp_path / "elsewhere")
    assert h.instance_path == str(Path("~/inst").expanduser())
    assert h.template_path == str(tmp_path / "abs")
    assert s.template_path == "tpl" and home.instance_path == "~/inst"
    # Nothing to change: the same object back.
    done = r.resolve_paths("/somewhere/else")
    assert done is r
