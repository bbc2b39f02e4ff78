"""Start-up checks: route parameters against method signatures, signed ints, a missing
template folder, session-store URLs and SQLite folders; each one a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tornado.web
from tornado.testing import AsyncHTTPTestCase

from webframe import Application, ConfigurationError, RequestHandler, Settings, route

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s" * 32


def settings(tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "cookie_secret": SECRET,
        "session_store": "memory://",
        "instance_path": str(tmp_path / "instance"),
    }
    values.update(changes)
    return Settings(**values)


# -- route parameters and method signatures ----------------------------------------


def test_parameter_name_mismatch_names_route_and_method(tmp_path: Path) -> None:
    class Numbers(RequestHandler):
        def get(self, num: int) -> None:
            self.write(str(num))

    with pytest.raises(ConfigurationError) as info:
        Application([("/n/{n:int}", Numbers)], settings(tmp_path))
    text = str(info.value)
    assert "'/n/{n:int}'" in text
    assert "Numbers.get(self, num)" in text
    assert "n=" in text


def test_missing_parameter_and_extra_required_parameter_are_refused(tmp_path: Path) -> None:
    class Takes(RequestHandler):
        def get(self) -> None:
            pass

    class Needs(RequestHandler):
        def get(self, item_id: int, extra: str) -> None:
            pass

    with pytest.raises(ConfigurationError, match=r"Takes\.get\(self\)"):
        Application([("/t/{item_id:int}", Takes)], settings(tmp_path))
    with pytest.raises(ConfigurationError, match=r"Needs\.get\(self, item_id, extra\)"):
        Application([("/t/{item_id:int}", Needs)], settings(tmp_path))


def test_every_method_is_checked_and_decorated_methods_are_read_through(
    tmp_path: Path,
) -> None:
    class Mixed(RequestHandler):
        @tornado.web.authenticated
        def get(self, note_id: int) -> None:
            pass

        def delete(self, id: int) -> None:
            pass

    with pytest.raises(ConfigurationError, match=r"Mixed\.delete\(self, id\)"):
        Application([("/notes/{note_id:int}", Mixed)], settings(tmp_path))


def test_matching_signatures_defaults_and_kwargs_are_accepted(tmp_path: Path) -> None:
    class Exact(RequestHandler):
        def get(self, a: str, b: int) -> None:
            pass

    class Loose(RequestHandler):
        def get(self, **kwargs: Any) -> None:
            pass

    class Defaulted(RequestHandler):
        def get(self, a: str, page: int = 1) -> None:
            pass

    app = Application(
        [("/x/{a}/{b:int}", Exact), ("/y/{a}", Loose), ("/z/{a}", Defaulted)],
        settings(tmp_path),
    )
    assert len(app.route_table.routes) == 3


def test_decorated_route_is_checked_when_the_app_is_built(tmp_path: Path) -> None:
    @route("/d/{slug}")
    class Decorated(RequestHandler):
        def get(self, name: str) -> None:
            pass

    with pytest.raises(ConfigurationError, match=r"Decorated\.get\(self, name\)"):
        Application([Decorated], settings(tmp_path))


# -- {n:int} takes no sign; {n:signed} does ---------------------------------------------


@route("/int/{n:int}", name="int")
class IntHandler(RequestHandler):
    def get(self, n: int) -> None:
        self.json({"n": n, "type": type(n).__name__})


@route("/signed/{n:signed}", name="signed")
class SignedHandler(RequestHandler):
    def get(self, n: int) -> None:
        self.json({"n": n, "type": type(n).__name__})


class SignTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application(
            [IntHandler, SignedHandler],
            Settings(cookie_secret=SECRET, session_store="memory://"),
        )

    def test_int_is_non_negative(self) -> None:
        assert self.fetch("/int/7").body == b'{"n": 7, "type": "int"}'
        assert self.fetch("/int/-7").code == 404
        assert self.fetch("/int/+7").code == 404

    def test_signed_takes_a_minus_sign(self) -> None:
        assert self.fetch("/signed/-7").body == b'{"n": -7, "type": "int"}'
        assert self.fetch("/signed/0").body == b'{"n": 0, "type": "int"}'
        assert self.fetch("/signed/12").body == b'{"n": 12, "type": "int"}'
        for bad in ("--1", "-", "1-", "+1", "-" + "9" * 19):
            assert self.fetch("/signed/" + bad).code == 404, bad

    def test_reverse(self) -> None:
        app = self.get_app()
        assert app.reverse_url("signed", n=-3) == "/signed/-3"
        with pytest.raises(ValueError):
            app.reverse_url("int", n=-3)
        with pytest.raises(TypeError):
            app.reverse_url("signed", n="3")
        with pytest.raises(ValueError):
            app.reverse_url("signed", n=-(10**18))


# -- folders and the session store URL ---------------------------------------------------


def test_missing_template_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        Application([], settings(tmp_path, template_path="no-such-templates"), root_path=tmp_path)
    assert info.value.setting == "template_path"
    assert str(tmp_path / "no-such-templates") in str(info.value)
    (tmp_path / "no-such-templates").mkdir()
    Application([], settings(tmp_path, template_path="no-such-templates"), root_path=tmp_path)


def test_default_template_folder_may_be_absent(tmp_path: Path) -> None:
    # An app with no pages (a JSON API) needs no templates/ folder.
    app = Application([], settings(tmp_path), root_path=tmp_path)
    assert app.wf_settings.template_path == str(tmp_path / "templates")


def test_sqlite_folder_must_exist_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    url = f"sqlite:///{missing}/sessions.db"
    with pytest.raises(ConfigurationError) as info:
        Application([], settings(tmp_path, session_store=url), root_path=tmp_path)
    assert info.value.setting == "session_store"
    assert str(missing) in str(info.value)
    assert not (tmp_path / "no").exists()
    missing.mkdir(parents=True)
    app = Application([], settings(tmp_path, session_store=url), root_path=tmp_path)
    assert app.session_store_url == url


def test_default_instance_folder_is_still_created(tmp_path: Path) -> None:
    app = Application(
        [],
        Settings(debug=True, instance_path="inst"),
        root_path=tmp_path,
    )
    assert (tmp_path / "inst" / "cookie_secret").is_file()
    assert app.session_store_url == "sqlite:///" + str(tmp_path / "inst" / "sessions.db")


def _run_demo(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WEBFRAME_")}
    clean["WEBFRAME_INSTANCE_PATH"] = str(tmp_path / "instance")
    clean.update(env)
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--port", "0"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "setting", "words"),
    [
        ({"WEBFRAME_SESSION_STORE": "sqlite://sessions.db"}, "session_store", "sqlite:///"),
        (
            {"WEBFRAME_SESSION_STORE": "sqlite:///nowhere/at/all/s.db"},
            "session_store",
            "does not exist",
        ),
        ({"WEBFRAME_TEMPLATE_PATH": "missing-templates"}, "template_path", "missing-templates"),
        ({"WEBFRAME_SESSION_STORE": "bogus://x"}, "session_store", "unknown scheme"),
    ],
)
def test_bad_paths_and_urls_are_one_line_errors_from_run_py(
    tmp_path: Path, env: dict[str, str], setting: str, words: str
) -> None:
    result = _run_demo(tmp_path, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: setting {setting!r}: ")
    assert words in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "nowhere").exists()
