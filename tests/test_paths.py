"""Relative paths are read against the app's root folder, not the current directory:
the demo started from another folder finds its templates and keeps one instance."""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from webframe import Application, Settings
from webframe.app import default_root_path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "p" * 32


# -- the rule ------------------------------------------------------------------------------


def test_a_test_module_inside_the_tests_package_gives_the_project_folder() -> None:
    # tests/ has an __init__.py: the root is the folder above the outermost package.
    assert default_root_path() == str(ROOT)


def test_relative_paths_resolve_against_the_caller_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A project laid out like webframe's: mysite/pkg/__init__.py builds the app.
    project = tmp_path / "mysite"
    (project / "pkg").mkdir(parents=True)
    (project / "templates").mkdir()
    (project / "pkg" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from webframe import Application, Settings

            def make_app(settings: Settings) -> Application:
                return Application([], settings)
            """
        )
    )
    (project / "single.py").write_text(
        "from webframe import Application\n"
        "def make_app(settings):\n"
        "    return Application([], settings)\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.syspath_prepend(str(project))
    for name in ("pkg", "single"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import pkg  # type: ignore[import-not-found]
    import single  # type: ignore[import-not-found]

    settings = Settings(cookie_secret=SECRET, session_store="memory://", template_path="templates")
    for module in (pkg, single):
        app = module.make_app(settings)
        assert app.root_path == str(project)
        s = app.wf_settings
        assert s.template_path == str(project / "templates")
        assert s.static_path == str(project / "static")
        assert s.instance_path == str(project / "instance")
        assert s.upload_dir == str(project / "instance" / "uploads")
        assert app.settings["template_path"] == str(project / "templates")
    assert not (elsewhere / "instance").exists()
    # The settings object the caller passed is left as it was.
    assert settings.template_path == "templates"


def test_explicit_root_path_and_absolute_paths(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    absolute = tmp_path / "abs-instance"
    app = Application(
        [],
        Settings(
            cookie_secret=SECRET,
            session_store="memory://",
            template_path="tpl",
            instance_path=str(absolute),
            upload_path="up",
        ),
        root_path=tmp_path,
    )
    assert app.root_path == str(tmp_path)
    assert app.wf_settings.template_path == str(tmp_path / "tpl")
    assert app.wf_settings.instance_path == str(absolute)
    assert app.wf_settings.upload_dir == str(tmp_path / "up")


def test_debug_secret_is_kept_in_the_root_instance_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = Settings(debug=True, session_store="memory://")
    first = Application([], settings, root_path=tmp_path / "site")
    secret_file = tmp_path / "site" / "instance" / "cookie_secret"
    assert secret_file.is_file()
    assert not (elsewhere / "instance").exists()
    monkeypatch.chdir(tmp_path)
    second = Application([], settings, root_path=tmp_path / "site")
    assert first.settings["cookie_secret"] == second.settings["cookie_secret"]
    assert second.settings["cookie_secret"] == secret_file.read_text().strip()


# -- the demo, started from another folder ---------------------------------------------------


class Server:
    """``python run.py`` in a subprocess; stopped by its PID."""

    def __init__(self, script: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--port", "0"],
            cwd=cwd,
            env={**_clean_env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = ""
        deadline = time.monotonic() + 20
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"serving on (http://\S+?)/ ", line)
            if m:
                self.url = m.group(1)
                return
        self.stop()
        raise AssertionError("run.py did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBFRAME_")}
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """The demo (run.py, handlers, templates, static) copied into a fresh project folder."""
    project = tmp_path / "demo"
    project.mkdir()
    shutil.copy(ROOT / "run.py", project / "run.py")
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("handlers", "templates", "static"):
        shutil.copytree(ROOT / name, project / name, ignore=ignore)
    return project


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )


def _get(opener: urllib.request.OpenerDirector, url: str) -> tuple[int, str]:
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_demo_started_from_another_folder_keeps_templates_and_instance(
    demo_copy: Path, tmp_path: Path, servers: list[Server]
) -> None:
    first_cwd = tmp_path / "one"
    second_cwd = tmp_path / "two"
    first_cwd.mkdir()
    second_cwd.mkdir()
    server = Server(demo_copy / "run.py", first_cwd)
    servers.append(server)
    opener = _opener()
    code, body = _get(opener, server.url + "/register")
    assert code == 200 and "<form" in body and 'href="/static/' in body
    token = re.search(r'name="_xsrf" value="([^"]+)"', body)
    assert token is not None
    form = urllib.parse.urlencode(
        {"_xsrf": token.group(1), "username": "wanda", "password": "long enough pw"}
    ).encode()
    with opener.open(server.url + "/register", data=form, timeout=10) as r:
        assert r.status == 200 and "wanda" in r.read().decode()
    # The static files are found too.
    code, css = _get(opener, server.url + "/static/css/site.css")
    assert code == 200 and "body" in css
    secret_file = demo_copy / "instance" / "cookie_secret"
    secret = secret_file.read_text()
    assert not (first_cwd / "instance").exists()
    server.stop()

    # Started again from another folder: the same secret, sessions and users.
    server = Server(demo_copy / "run.py", second_cwd)
    servers.append(server)
    code, body = _get(opener, server.url + "/profile")
    assert code == 200 and "wanda" in body
    assert secret_file.read_text() == secret
    assert not (second_cwd / "instance").exists()
    assert sorted(p.name for p in demo_copy.iterdir()) == [
        "handlers",
        "instance",
        "run.py",
        "static",
        "templates",
    ]


def test_this_repository_run_py_from_another_folder(tmp_path: Path, servers: list[Server]) -> None:
    # The real run.py (instance kept out of the checkout): pages render from any cwd.
    server = Server(
        ROOT / "run.py", tmp_path, env={"WEBFRAME_INSTANCE_PATH": str(tmp_path / "inst")}
    )
    servers.append(server)
    code, body = _get(_opener(), server.url + "/")
    assert code == 200 and "<html" in body and "/static/" in body
    assert (tmp_path / "inst" / "cookie_secret").is_file()
