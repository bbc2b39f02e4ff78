"""The docs site: the settings table and the README section it is generated from, and a
clean Sphinx build (warnings are errors) whose API page documents every public name."""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import webframe

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REQUIRE_SERVICES = os.environ.get("WEBFRAME_REQUIRE_SERVICES") == "1"


def docs_extension(name: str) -> ModuleType:
    """A module of docs/_ext; needs Sphinx (the docs extra)."""
    try:
        import sphinx  # noqa: F401
    except ImportError:
        message = "Sphinx is not installed: pip install -e '.[docs]'"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (WEBFRAME_REQUIRE_SERVICES=1 forbids skipping)")
        pytest.skip(message)
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(DOCS / "_ext"))


def test_settings_table_lists_every_field_with_meaning_and_env() -> None:
    table = docs_extension("settings_table")
    rows = table.settings_rows()
    names = [row[0].strip("`") for row in rows]
    assert names == [f.name for f in dataclasses.fields(webframe.Settings)]
    for name, meaning, _unit, default, env in rows:
        assert meaning.strip(), name
        assert default.strip(), name
        assert env == "(Python only)" or env.startswith(f"``WEBFRAME_{name.strip('`').upper()}``")
    by_name = {row[0].strip("`"): row for row in rows}
    assert by_name["max_body_size"][2] == "bytes" and "10 MiB" in by_name["max_body_size"][3]
    assert by_name["body_timeout"][2] == "seconds"
    assert "{settings-table}" in (DOCS / "howto" / "configuration.md").read_text()


def test_settings_table_refuses_a_field_without_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    table = docs_extension("settings_table")
    monkeypatch.delitem(table.MEANINGS, "host")
    with pytest.raises(Exception, match=r"Settings\.host has no meaning"):
        table.settings_rows()


README_SAMPLE = """# x

## Before

text

## Differences from Tornado

Intro, see [the list](tests/compat/allowlist.txt) and [Tornado](https://www.tornadoweb.org/).

### Cookies

More.

## After
"""


def test_readme_section_is_cut_shifted_and_linked() -> None:
    section = docs_extension("readme_section")
    body = section.readme_section("Differences from Tornado", README_SAMPLE)
    assert body.startswith("Intro")
    assert "## Cookies" in body and "### Cookies" not in body
    assert "## After" not in body and "Before" not in body
    assert f"]({section.REPOSITORY}tests/compat/allowlist.txt)" in body
    assert "](https://www.tornadoweb.org/)" in body
    with pytest.raises(Exception, match="no '## Nothing' section"):
        section.readme_section("Nothing", README_SAMPLE)


def test_stores_table_lists_every_registered_scheme() -> None:
    from webframe.sessions.registry import BACKENDS

    table = docs_extension("stores_table")
    rows = table.store_rows()
    assert [row[0] for row in rows] == [b.scheme for b in BACKENDS]
    by_scheme = {row[0]: row for row in rows}
    assert by_scheme["redis"][3] == "pip install 'webframe[redis]'"
    assert by_scheme["sqlite"][3] == "nothing"
    assert "{stores-table}" in (DOCS / "howto" / "sessions.md").read_text()


@pytest.mark.slow
def test_docs_build_clean_and_document_every_public_name(tmp_path: Path) -> None:
    docs_extension("settings_table")  # skips (fails in CI) without Sphinx
    out = tmp_path / "html"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
         str(DOCS), str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in webframe.__all__:
        if name != "__version__":
            assert f'id="webframe.{name}"' in api, name
    import webframe.testing as testing

    for cls in (testing.Client, testing.WebTestCase, testing.MultipartEncoder):
        for attr, value in vars(cls).items():
            if not attr.startswith("_") and callable(value):
                assert f'id="webframe.testing.{cls.__name__}.{attr}"' in api, attr
    assert 'id="webframe.pytest_plugin.webframe_client"' in api
    for page in ("tutorial", "templates", "testing", "command", "differences", "howto/sessions",
                 "howto/processes", "howto/proxy", "howto/configuration", "howto/keys"):
        assert (out / f"{page}.html").is_file(), page
    config = (out / "howto" / "configuration.html").read_text(encoding="utf-8")
    for field in dataclasses.fields(webframe.Settings):
        if field.name != "extra":
            assert f"WEBFRAME_{field.name.upper()}" in config, field.name
