"""Every code block of the README and of docs/ is run or checked, so the docs cannot rot.

Blocks are the fenced ones (```lang). HTML comments on the lines just before a block
say what to do with it:

- ``<!-- file: PATH -->`` writes the block to PATH in the page's scratch folder (Python
  files are compiled; the page's checks and tests import them from there);
- ``<!-- check: NAME -->`` then calls ``CHECKS[NAME]``, which starts the app in-process
  on a free port and makes requests against it;
- ``<!-- not-run: REASON -->`` skips a block; the reason is required.

Other Python blocks run in one namespace per page, in order, in the scratch folder.
Shell blocks are checked for the commands they name: a known program, ``python -m``
modules that exist, flags that ``run.py`` accepts, extras that setup.cfg defines,
``webframe`` subcommands that exist. Any other block needs a ``file:`` or ``not-run:``
marker. After its blocks, a page whose files include tests has them run by pytest.
"""

from __future__ import annotations

import asyncio
import configparser
import hashlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from webframe import Application, RequestHandler
from webframe.__main__ import build_parser as webframe_parser
from webframe.cli import build_parser as run_parser
from webframe.testing import Client, CookieJar, test_settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "_build" not in p.parts]

FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
MARKER = re.compile(r"^<!--\s*(?P<kind>file|check|not-run):\s*(?P<value>.*?)\s*-->$")
PYTHON = {"python", "py", "python3"}
SHELL = {"sh", "bash", "shell", "console"}
KNOWN_PROGRAMS = {
    "pip", "python", "pytest", "sphinx-build", "webframe", "cd", "curl", "export",
    "bash", "touch", "mkdir", "git", "redis-server", "nginx", "twine", "ls",
}  # fmt: skip


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def extract(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` (MyST directives such as ```{toctree} excluded)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        if info.startswith("{"):
            continue  # a MyST directive (toctree, eval-rst, include...), not code
        markers: dict[str, str] = {}
        j = start - 1
        while j >= 0 and (mm := MARKER.match(lines[j].strip())):
            markers[mm.group("kind")] = mm.group("value")
            j -= 1
        lang = info.split()[0].lower() if info else ""
        blocks.append(Block(page, start + 1, lang, "\n".join(body) + "\n", markers))
    return blocks


# Running an app in-process ----------------------------------------------------------


def serve(app: Application, scenario: Callable[[Client], Awaitable[None]]) -> None:
    """Serve ``app`` on a free port of 127.0.0.1 and run ``scenario`` with a client."""

    async def main() -> None:
        sockets = bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        server = HTTPServer(app)
        server.add_sockets(sockets)
        http = AsyncHTTPClient(force_instance=True)
        try:
            await scenario(Client(http, f"http://127.0.0.1:{port}"))
        finally:
            http.close()
            server.stop()
            await server.close_all_connections()
            await app.aclose()

    asyncio.run(main())


def forget_modules(folder: Path) -> None:
    """Drop the modules imported from ``folder``, so the next import reads the files."""
    for name, mod in list(sys.modules.items()):
        if str(getattr(mod, "__file__", "") or "").startswith(str(folder)):
            del sys.modules[name]


def load_app(folder: Path, module: str = "app", **overrides: Any) -> Application:
    """Import ``module`` from ``folder`` afresh and build its app with test settings."""
    forget_modules(folder)
    mod = importlib.import_module(module)
    defaults = getattr(mod, "DEFAULTS", {})
    settings = test_settings(**{**defaults, "instance_path": str(folder / "instance"), **overrides})
    app: Application = mod.make_app(settings)
    return app


def text(response: HTTPResponse) -> str:
    return response.body.decode("utf-8", "replace")


# Checks, by the name a page gives them ---------------------------------------------


def check_readme_first_app(folder: Path, ns: dict[str, Any]) -> None:
    async def scenario(c: Client) -> None:
        r = await c.get("/")
        assert r.code == 200 and r.body == b"Hello from webframe"
        r = await c.get("/users/42")
        assert r.code == 200 and b'"id": 42' in r.body and b'"/users/42"' in r.body
        assert (await c.get("/users/abc")).code == 404  # {user_id:int}
        r = await c.fetch("/users/42", "PATCH", xsrf=False)
        assert r.code == 405 and r.headers["Allow"] == "GET, HEAD, DELETE, OPTIONS"

    serve(load_app(folder), scenario)


class TokenPage(RequestHandler):
    """A page with a form, where the test client picks up its XSRF token, and that
    shows what the session holds."""

    uses_session = True

    def get(self) -> None:
        self.write(self.xsrf_form_html())

    def put(self) -> None:
        items = self.session.get("items", [])
        self.json({"items": items, "flashes": self.get_flashed_messages()})


def check_readme_cart(folder: Path, ns: dict[str, Any]) -> None:
    app = Application([ns["CartHandler"], ("/token", TokenPage)], test_settings())

    async def scenario(c: Client) -> None:
        c.xsrf_path = "/token"
        r = await c.post("/cart", form={"item": "tea"}, xsrf=False)
        assert r.code == 403  # no XSRF token: refused, nothing stored
        for item in ("tea", "milk"):
            r = await c.post("/cart", form={"item": item})
            assert r.code == 302 and r.headers["Location"] == "/cart"
        r = await c.put("/token")
        assert json.loads(r.body)["items"] == ["tea", "milk"]

    serve(app, scenario)


def check_readme_avatar(folder: Path, ns: dict[str, Any]) -> None:
    app = Application(
        [ns["AvatarUpload"], ("/token", TokenPage)],
        test_settings(instance_path=str(folder / "inst")),
    )
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

    async def scenario(c: Client) -> None:
        c.xsrf_path = "/token"
        r = await c.post("/avatars", files={"avatar": ("me.png", png)}, xsrf=False)
        assert r.code == 403
        assert not (folder / "media").exists()  # refused: nothing saved
        r = await c.post("/avatars", files={"avatar": ("notes.txt", b"plain text")})
        assert r.code == 415
        r = await c.post("/avatars", files={"avatar": ("me.png", png)})
        assert r.code == 200, r.body
        data = json.loads(r.body)
        assert data["name"] == "me.png" and data["size"] == len(png)
        assert data["sha256"] == hashlib.sha256(png).hexdigest()
        assert (folder / "media" / "avatars" / "me.png").read_bytes() == png
        assert len(list((folder / "media" / "avatars").iterdir())) == 1

    serve(app, scenario)


def check_tutorial_first_route(folder: Path, ns: dict[str, Any]) -> None:
    (folder / "app.py").write_text(
        "from webframe import Application\nimport pages\n"
        "def make_app(settings):\n    return Application([pages], settings)\n"
    )

    async def scenario(c: Client) -> None:
        r = await c.get("/")
        assert r.code == 200 and r.body == b"Hello from the guestbook"
        assert (await c.fetch("/", "DELETE", xsrf=False)).code in (403, 405)

    serve(load_app(folder), scenario)


def check_tutorial_templates(folder: Path, ns: dict[str, Any]) -> None:
    (folder / "app.py").write_text(
        "from webframe import Application\nimport pages\n"
        "DEFAULTS = {'template_path': 'templates', 'static_path': 'static'}\n"
        "def make_app(settings):\n"
        "    return Application([pages], settings, guestbook_entries=[{'name': 'x', "
        "'message': '<b>hi</b>'}])\n"
    )

    async def scenario(c: Client) -> None:
        r = await c.get("/")
        assert r.code == 200
        assert "<title>Guestbook</title>" in text(r) and "&lt;b&gt;hi&lt;/b&gt;" in text(r)
        assert "/static/style.css?v=" in text(r)
        assert (await c.get("/static/style.css")).code == 200

    serve(load_app(folder), scenario)


def check_tutorial_forms(folder: Path, ns: dict[str, Any]) -> None:
    async def scenario(c: Client) -> None:
        c.xsrf_path = "/sign"
        r = await c.post("/sign", form={"name": "", "message": "hi"})
        assert r.code == 400 and "Give a name" in text(r)
        r = await c.post("/sign", form={"name": "Bo", "message": "Hi <there>"})
        assert r.code == 302 and r.headers["Location"] == "/"
        r = await c.get("/")
        assert "Thank you for signing!" in text(r)
        assert "<strong>Bo</strong>: Hi &lt;there&gt;" in text(r)
        assert "Thank you for signing!" not in text(await c.get("/"))  # shown once

    serve(load_app(folder), scenario)


def check_tutorial_login(folder: Path, ns: dict[str, Any]) -> None:
    async def scenario(c: Client) -> None:
        c.xsrf_path = "/login"
        r = await c.get("/sign")
        assert r.code == 302 and r.headers["Location"] == "/login?next=%2Fsign"
        r = await c.post("/sign", form={"message": "sneaky"})
        assert r.code == 403
        r = await c.post("/login", form={"name": "ada", "password": "wrong"})
        assert r.code == 400 and "Wrong name or password." in text(r)
        before = c.cookies.get("session")
        r = await c.post(
            "/login?next=%2Fsign", form={"name": "ada", "password": "lovelace-1815"}
        )
        assert r.code == 302 and r.headers["Location"] == "/sign"
        assert c.cookies.get("session") not in (None, before)  # regenerated at login
        r = await c.post("/sign", form={"message": "Hello"}, follow_redirects=True)
        assert "<strong>ada</strong>: Hello" in text(r) and "Thank you" in text(r)
        r = await c.post("/logout", follow_redirects=True)
        assert "You are logged out." in text(r)
        assert (await c.get("/sign")).code == 302

    serve(load_app(folder), scenario)


def check_tutorial_uploads(folder: Path, ns: dict[str, Any]) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100

    async def scenario(c: Client) -> None:
        c.xsrf_path = "/login"
        r = await c.post("/photos", files={"photo": ("me.png", png)})
        assert r.code == 403  # not logged in
        await c.post("/login", form={"name": "ada", "password": "lovelace-1815"})
        r = await c.post("/photos", files={"photo": ("../me.png", png)}, follow_redirects=True)
        assert r.code == 200 and "Saved me.png." in text(r)
        r = await c.get("/photos/me.png")
        assert r.code == 200 and r.body == png
        r = await c.post("/photos", files={"photo": ("big.png", png + b"\0" * 2 * 2**20)})
        assert r.code == 413
        r = await c.post("/photos", files={"photo": ("x.png", b"GIF89a not a png")})
        assert r.code == 415
        assert sorted(p.name for p in (folder / "instance" / "photos").iterdir()) == ["me.png"]
        assert (await c.get("/photos/..%2Fapp.py")).code == 404

    serve(load_app(folder), scenario)
    # The finished app, started as step 7 says, from another folder: python app.py
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WEBFRAME_"))}
    env["WEBFRAME_COOKIE_SECRET"] = "tutorial-secret-" + "9" * 32
    server = subprocess.Popen(
        [sys.executable, str(folder / "app.py"), "--no-debug", "--port", "0"],
        cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        m = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", line)
        assert m, line
        with urllib.request.urlopen(m.group(1), timeout=10) as r:
            assert r.status == 200 and b"<h1>Guestbook</h1>" in r.read()
        with urllib.request.urlopen(m.group(1) + "static/style.css", timeout=10) as r:
            assert r.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not (elsewhere / "instance").exists()


def check_pypi_first_app(folder: Path, ns: dict[str, Any]) -> None:
    app = ns["make_app"](test_settings())

    async def scenario(c: Client) -> None:
        r = await c.get("/users/7")
        assert r.code == 200 and json.loads(r.body) == {"id": 7, "url": "/users/7"}
        assert (await c.get("/users/seven")).code == 404

    serve(app, scenario)


def check_templates_flash(folder: Path, ns: dict[str, Any]) -> None:
    settings = test_settings(template_path=str(folder / "templates"))
    app = Application([ns["SaveHandler"], ns["SavedHandler"], ("/token", TokenPage)], settings)

    async def scenario(c: Client) -> None:
        c.xsrf_path = "/token"
        r = await c.post("/settings/save", follow_redirects=True)
        assert r.code == 200
        assert '<li class="flash flash-success">Your settings were saved.</li>' in text(r)
        assert "flash" not in text(await c.get("/settings"))  # shown once
        r = await c.get("/nowhere")
        assert r.code == 404 and "<h1>404 Not Found</h1>" in text(r)  # error.html

    serve(app, scenario)


def check_keys_rotation(folder: Path, ns: dict[str, Any]) -> None:
    class Remember(RequestHandler):
        def get(self) -> None:
            self.set_signed_cookie("who", "ada")

        def put(self) -> None:
            self.write(self.get_signed_cookie("who") or b"nobody")

    old = Application([("/", Remember)], test_settings(**ns["before"], xsrf=False))
    new = Application([("/", Remember)], test_settings(**ns["during"], xsrf=False))
    after = Application([("/", Remember)], test_settings(**ns["after"], xsrf=False))
    jar = CookieJar()

    def scenario_for(expect: bytes | None) -> Callable[[Client], Awaitable[None]]:
        async def scenario(c: Client) -> None:
            c.cookies = jar
            if expect is None:
                assert (await c.get("/")).code == 200  # signed with the old key
            else:
                assert (await c.put("/", xsrf=False)).body == expect

        return scenario

    serve(old, scenario_for(None))
    serve(new, scenario_for(b"ada"))  # old cookies still read during the rotation
    serve(after, scenario_for(b"nobody"))  # once the old key is gone, they are not


def check_configuration_sources(folder: Path, ns: dict[str, Any]) -> None:
    assert ns["settings"].port == 9000 and "port" in ns["message"]


def check_sessions_memory(folder: Path, ns: dict[str, Any]) -> None:
    async def scenario(c: Client) -> None:
        assert (await c.get("/visits")).body == b"visit 1"
        assert (await c.get("/visits")).body == b"visit 2"  # the cookie brings it back
        c.cookies.clear()
        assert (await c.get("/visits")).body == b"visit 1"

    serve(ns["app"], scenario)


def check_processes_refused(folder: Path, ns: dict[str, Any]) -> None:
    assert "--processes" in ns["refused"] or "workers" in ns["refused"]


def check_testing_encoder(folder: Path, ns: dict[str, Any]) -> None:
    from tornado.httputil import parse_body_arguments

    fields: dict[str, list[bytes]] = {}
    files: dict[str, Any] = {}
    parse_body_arguments(ns["headers"]["Content-Type"], ns["body"], fields, files)
    assert fields == {"title": [b"Holiday"]}
    assert files["photo"][0]["filename"] == "sea.png"
    assert files["photo"][0]["body"] == b"\x89PNG..."


CHECKS: dict[str, Callable[[Path, dict[str, Any]], None]] = {
    "readme-first-app": check_readme_first_app,
    "readme-cart": check_readme_cart,
    "readme-avatar": check_readme_avatar,
    "pypi-first-app": check_pypi_first_app,
    "templates-flash": check_templates_flash,
    "keys-rotation": check_keys_rotation,
    "configuration-sources": check_configuration_sources,
    "sessions-memory": check_sessions_memory,
    "processes-refused": check_processes_refused,
    "testing-encoder": check_testing_encoder,
    "tutorial-first-route": check_tutorial_first_route,
    "tutorial-templates": check_tutorial_templates,
    "tutorial-forms": check_tutorial_forms,
    "tutorial-login": check_tutorial_login,
    "tutorial-uploads": check_tutorial_uploads,
}


# Shell blocks ----------------------------------------------------------------------


def setup_extras() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return set(cfg["options.extras_require"])


def parser_options(parser: Any) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def shell_commands(block: Block) -> Iterator[list[str]]:
    for raw in block.text.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        commands: list[list[str]] = [[]]
        for token in lexer:
            if token in ("&&", "||", ";", "|", "&"):
                commands.append([])
            else:
                commands[-1].append(token)
        for words in commands:
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                words = words[1:]
            if words and words[0] == "export":
                continue  # an assignment; its value may use $(python -c ...)
            if words:
                yield words


def check_shell(block: Block) -> None:
    extras = setup_extras()
    for words in shell_commands(block):
        program = words[0]
        assert program in KNOWN_PROGRAMS, f"{block.where}: unknown command {program!r}"
        if program == "pip" and "install" in words:
            for word in words:
                m = re.fullmatch(r"(?:\.|webframe)\[([a-z,]+)\]", word)
                if m:
                    for extra in m.group(1).split(","):
                        assert extra in extras, f"{block.where}: no extra {extra!r}"
        if program == "python" and len(words) > 1:
            if words[1] == "-m":
                assert importlib.util.find_spec(words[2]) is not None, (
                    f"{block.where}: no module {words[2]!r}"
                )
            elif words[1] == "-c":
                compile(words[2], block.where, "exec")
            elif words[1].endswith(".py"):
                allowed = parser_options(run_parser())
                for word in words[2:]:
                    if word.startswith("--"):
                        flag = word.split("=", 1)[0]
                        assert flag in allowed, f"{block.where}: run.py has no {flag}"
        if program == "webframe" and len(words) > 1 and not words[1].startswith("-"):
            sub = webframe_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
            assert words[1] in sub, f"{block.where}: no 'webframe {words[1]}' command"


# The test ----------------------------------------------------------------------------


def run_page(page: Path, folder: Path) -> None:
    blocks = extract(page)
    ns: dict[str, Any] = {"__name__": "docs_block"}
    wrote_tests = False
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        for block in blocks:
            if "not-run" in block.markers:
                assert block.markers["not-run"], f"{block.where}: not-run needs a reason"
                continue
            if "file" in block.markers:
                path = folder / block.markers["file"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(block.text, encoding="utf-8")
                if path.suffix == ".py":
                    compile(block.text, block.where, "exec")
                wrote_tests |= path.name.startswith("test_") and path.suffix == ".py"
            elif block.lang in PYTHON:
                exec(compile(block.text, block.where, "exec"), ns)
            elif block.lang in SHELL:
                check_shell(block)
            else:
                pytest.fail(f"{block.where}: a {block.lang or 'plain'} block needs a "
                            "'file:' or 'not-run:' marker")
            if "check" in block.markers:
                name = block.markers["check"]
                assert name in CHECKS, f"{block.where}: no check called {name!r}"
                CHECKS[name](folder, ns)
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        forget_modules(folder)
    if wrote_tests:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, f"{page}: its tests fail:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks(page: Path, tmp_path: Path) -> None:
    run_page(page, tmp_path)


def test_every_check_is_used() -> None:
    used = {b.markers["check"] for p in PAGES for b in extract(p) if "check" in b.markers}
    assert used == set(CHECKS)


def test_a_broken_block_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nraise RuntimeError('rotted')\n```\n")
    with pytest.raises(RuntimeError, match="rotted"):
        run_page(page, tmp_path)
    page.write_text("```sh\npip install -e '.[nosuchextra]'\n```\n")
    with pytest.raises(AssertionError, match="no extra 'nosuchextra'"):
        run_page(page, tmp_path)
    page.write_text("```sh\npython run.py --no-such-flag\n```\n")
    with pytest.raises(AssertionError, match=r"run\.py has no --no-such-flag"):
        run_page(page, tmp_path)
    page.write_text("<!-- not-run: -->\n```python\npass\n```\n")
    with pytest.raises(AssertionError, match="needs a reason"):
        run_page(page, tmp_path)
    page.write_text("```ini\n[x]\n```\n")
    with pytest.raises(pytest.fail.Exception, match="needs a 'file:' or 'not-run:' marker"):
        run_page(page, tmp_path)
