"""``webframe new`` and ``webframe routes``; a new project installs, passes its tests and serves."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from webframe.__main__ import main
from webframe.scaffold import ProjectError, create_project, project_files

LAYOUT = {
    ".gitignore",
    "README.md",
    "setup.cfg",
    "setup.py",
    "run.py",
    "handlers/__init__.py",
    "handlers/pages.py",
    "templates/layout.html",
    "templates/home.html",
    "templates/error.html",
    "static/style.css",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/test_pages.py",
}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_new_creates_the_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "shop", "--directory", str(tmp_path)]) == 0
    project = tmp_path / "shop"
    assert files_under(project) == LAYOUT
    out = capsys.readouterr().out
    assert "pip install -e . && python run.py" in out
    readme = (project / "README.md").read_text()
    assert readme.startswith("# shop\n")
    assert "pip install -e . && python run.py" in readme
    assert "pip install -e '.[test]' && pytest" in readme
    assert "webframe.cli.main" in readme
    assert "instance/" in (project / ".gitignore").read_text().splitlines()
    assert "name = shop" in (project / "setup.cfg").read_text()
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "__project__" not in text and "__webframe_version__" not in text, path
            if path.suffix == ".py":
                compile(text, str(path), "exec")  # every generated module is valid Python


def test_new_refuses_an_existing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "shop"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    assert main(["new", "shop", "--directory", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert files_under(existing) == {"notes.txt"}  # nothing written, nothing removed
    assert (existing / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["", "1shop", "my shop", "../escape", "a/b", "-x", "x" * 65])
def test_new_refuses_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ProjectError, match="is not a project name"):
        create_project(name, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert main(["new", "--directory", str(tmp_path), "--", name]) == 2


def test_new_removes_a_half_written_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webframe.scaffold as scaffold

    def broken(text: str, name: str) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(scaffold, "render", broken)
    with pytest.raises(OSError):
        create_project("shop", tmp_path)
    assert not (tmp_path / "shop").exists()


def test_template_files_are_package_data() -> None:
    # The same list the wheel must carry (setup.cfg package_data); see tests/docs.
    assert set(project_files()) == LAYOUT


ROUTES_APP = '''
from webframe import Application, RequestHandler, Settings, route

@route("/", name="home")
class Home(RequestHandler):
    def get(self):
        self.write("home")

@route("/items/{item_id:int}", name="item")
class Item(RequestHandler):
    def get(self, item_id):
        pass
    def delete(self, item_id):
        pass

def make_app(settings):
    return Application([Home, Item], settings)

app = Application([Home], Settings(cookie_secret="s" * 32, session_store="memory://"))
'''


def test_routes_lists_patterns_names_methods_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "routes_demo_app.py").write_text(ROUTES_APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["routes", "routes_demo_app:make_app"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Route", "Name", "Methods", "Handler"]
    rows = [line.split(None, 2) for line in lines[1:]]
    home = next(r for r in rows if r[0] == "/")
    assert home[1] == "home" and "GET, HEAD, OPTIONS" in home[2]
    assert home[2].endswith("routes_demo_app.Home")
    item = next(r for r in rows if r[0] == "/items/{item_id:int}")
    assert item[1] == "item" and "GET, HEAD, DELETE, OPTIONS" in item[2]
    assert item[2].endswith("routes_demo_app.Item")
    assert main(["routes", "routes_demo_app:app"]) == 0  # an Application instance works too
    assert "/items/" not in capsys.readouterr().out
    assert not (tmp_path / "instance").exists()  # listing routes writes nothing here


def test_routes_reports_what_it_cannot_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["routes", "no_such_module_here:make_app"]) == 2
    assert "cannot import 'no_such_module_here'" in capsys.readouterr().err


def test_python_dash_m_webframe_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "webframe", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "new" in done.stdout and "routes" in done.stdout


# The whole journey, in a fresh virtualenv -------------------------------------------


def fresh_venv(where: Path) -> Path:
    """A new venv that also sees this environment's packages (webframe from this
    checkout, editable; pytest, pytest-tornado, tornado), as ``--system-site-packages``
    would for a system install; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    # An import line, so the .pth files there (the editable webframe) are read too.
    Path(purelib, "zz_parent_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_new_project_installs_tests_and_serves(tmp_path: Path) -> None:
    project = create_project("newsite", tmp_path)
    python = fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WEBFRAME_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # The README's second command: pip install -e '.[test]' && pytest
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-e", ".[test]"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    assert "warning" not in tests.stdout.lower(), tests.stdout
    # The first command's second half, started from another folder: python run.py
    port = free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = subprocess.Popen(
        [str(python), str(project / "run.py"), "--port", str(port)],
        cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert server.stdout is not None
        seen = []
        for _ in range(20):  # log lines (the generated-secret warning) come first
            seen.append(server.stdout.readline())
            if "serving on" in seen[-1] or not seen[-1]:
                break
        assert f"serving on http://127.0.0.1:{port}/" in seen[-1], seen
        body = b""
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    assert r.status == 200
                    body = r.read()
                break
            except ConnectionError:
                time.sleep(0.1)
        assert b"Welcome to newsite" in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/style.css", timeout=5) as r:
            assert r.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (project / "instance" / "cookie_secret").exists()  # the project's own folder
    assert not (elsewhere / "instance").exists()
