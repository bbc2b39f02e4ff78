"""The published package: ``python -m build`` makes an sdist and a wheel that pass
``twine check --strict``, with the licence, the scaffold's files, the console script,
the testing extra, and a PyPI description free of relative images and benchmark tables
(the ``bench`` extra, for the repository's harness, is explained there)."""

from __future__ import annotations

import configparser
import email
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_SERVICES = os.environ.get("WEBFRAME_REQUIRE_SERVICES") == "1"


def need_module(name: str) -> None:
    import importlib.util

    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed: pip install -e '.[docs]'"
        if REQUIRE_SERVICES:
            pytest.fail(message + " (WEBFRAME_REQUIRE_SERVICES=1 forbids skipping)")
        pytest.skip(message)


def test_pypi_description_has_no_relative_images_or_benchmark_tables() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    source = cfg["metadata"]["long_description"]
    assert source.startswith("file: ")
    text = (ROOT / source.removeprefix("file: ")).read_text()
    for target in re.findall(r"\]\(([^)]+)\)", text):
        assert target.startswith(("https://", "http://", "#")), target
    assert "<img" not in text and "| scenario |" not in text and "req/s" not in text


def test_metadata_declares_licence_urls_and_extras() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    meta, extras = cfg["metadata"], cfg["options.extras_require"]
    assert meta["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    assert "Documentation" in meta["project_urls"] and "Source" in meta["project_urls"]
    if "bench" in extras:  # for the repository's harness, bench/: the description says so
        description = (ROOT / "docs" / "pypi.md").read_text()
        assert "`webframe[bench]` only installs" in description and "`bench/`" in description
    testing = {line.split(">=")[0] for line in extras["testing"].split() if line}
    assert testing == {"pytest", "pytest-tornado"}
    assert "webframe = webframe.__main__:main" in cfg["options.entry_points"]["console_scripts"]


@pytest.mark.slow
def test_build_makes_an_sdist_and_wheel_that_twine_accepts(tmp_path: Path) -> None:
    need_module("build")
    need_module("twine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    built = sorted(tmp_path.iterdir(), key=lambda p: p.suffix)
    assert [p.suffix for p in built] == [".gz", ".whl"], built
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, built)],
        capture_output=True, text=True, timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    with zipfile.ZipFile(built[1]) as wheel:
        names = set(wheel.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(meta_name))
        entry_points = wheel.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "webframe/scaffold/project/templates/error.html" in names
    assert "webframe/scaffold/project/handlers/__init__.py.tmpl" in names
    assert "webframe/scaffold/project/gitignore.tmpl" in names
    assert not any(n.startswith(("bench/", "tests/", "handlers/", "docs/")) for n in names)
    assert "webframe = webframe.__main__:main" in entry_points
    assert "webframe = webframe.pytest_plugin" in entry_points
    extras = metadata.get_all("Provides-Extra") or []
    assert "testing" in extras and "docs" in extras
    assert any(u.startswith("Documentation, https://") for u in metadata.get_all("Project-URL"))
    description = metadata.get_payload()
    assert "](static/" not in description and "| scenario |" not in description
