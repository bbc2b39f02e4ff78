"""The compat runner itself: it records every kind of outcome, and cannot pass vacuously."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RUNNER = HERE / "runner.py"

FAKE_SUITE = """
import logging
import unittest

class Cases(unittest.TestCase):
    def test_passes(self):
        pass

    def test_fails(self):
        self.assertEqual(1, 2, "one is not two")

    def test_errors(self):
        raise KeyError("boom")

    @unittest.skip("not today")
    def test_skipped(self):
        pass

    def test_table(self):
        for n in (1, 2, 3):
            with self.subTest(n=n):
                self.assertNotEqual(n, 2)

    def test_logs(self):
        logging.getLogger("some.library").warning("something odd happened")

    def test_writes_stderr(self):
        import sys
        sys.stderr.write("stray output\\n")
"""


def run_runner(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    (tmp_path / "fake_compat_suite.py").write_text(textwrap.dedent(FAKE_SUITE))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(tmp_path), str(ROOT), env.get("PYTHONPATH")])
    )
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--output", str(out), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=300,
    )
    report = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, report, proc.stderr.decode(errors="replace")


def test_every_outcome_is_recorded(tmp_path: Path) -> None:
    rc, report, err = run_runner(
        tmp_path, "--mode", "import", "--modules", "fake_compat_suite", "--rerun", "0"
    )
    assert rc == 0, err
    assert report is not None
    results = report["results"]
    name = "fake_compat_suite.Cases."
    assert results[name + "test_passes"]["outcome"] == "pass"
    assert results[name + "test_fails"]["outcome"] == "fail"
    assert "one is not two" in results[name + "test_fails"]["message"]
    assert results[name + "test_errors"]["outcome"] == "error"
    assert "KeyError: 'boom'" in results[name + "test_errors"]["message"]
    assert results[name + "test_skipped"] == {
        "outcome": "skip",
        "message": "not today",
        "seconds": results[name + "test_skipped"]["seconds"],
    }
    table = results[name + "test_table"]
    assert table["outcome"] == "fail"
    assert list(table["subtests"]) == ["(n=2)"]
    assert not table.get("own_failure")
    # As in Tornado's runtests: a test that logs (outside ExpectLog) or writes to stderr fails.
    logs = results[name + "test_logs"]
    assert logs["outcome"] == "fail"
    assert "something odd happened" in logs["message"]
    assert results[name + "test_writes_stderr"]["outcome"] == "fail"
    assert report["counts"] == {"pass": 1, "fail": 4, "error": 1, "skip": 1}


def test_substituted_mode_refuses_to_pass_without_substituting(tmp_path: Path) -> None:
    # No Tornado test module: nothing can be substituted, so the run is an error.
    rc, report, err = run_runner(
        tmp_path, "--mode", "substituted", "--modules", "fake_compat_suite"
    )
    assert rc == 2
    assert report is not None and "nothing was substituted" in report["error"]
    assert "nothing was substituted" in err


def test_substitution_reaches_tornado_tests_and_spares_tornado(tmp_path: Path) -> None:
    rc, report, err = run_runner(
        tmp_path,
        "--mode",
        "substituted",
        "--modules",
        "tornado.test.web_test",
        "-k",
        "CookieTest",
        "--rerun",
        "0",
    )
    assert rc == 0, err
    assert report is not None
    assert report["substitution"]["problems"] == []
    assert report["substitution"]["modules_substituted"] == 1
    results = report["results"]
    # webframe's cookie defaults show through Tornado's own assertion...
    cookie = results["tornado.test.web_test.CookieTest.test_set_cookie_false_flags"]
    assert cookie["outcome"] == "fail"
    assert "HttpOnly; Path=/; SameSite=Lax" in cookie["message"]
    # ...while the same test module run plain passes.
    rc, plain, err = run_runner(
        tmp_path, "--mode", "import", "--modules", "tornado.test.web_test", "-k", "CookieTest"
    )
    assert rc == 0, err
    assert plain is not None
    assert (
        plain["results"]["tornado.test.web_test.CookieTest.test_set_cookie_false_flags"]["outcome"]
        == "pass"
    )


def test_an_unknown_layer_is_refused(tmp_path: Path) -> None:
    rc, _report, err = run_runner(
        tmp_path, "--mode", "import", "--modules", "fake_compat_suite", "--layer", "carrier-pigeon"
    )
    assert rc != 0
    assert "unknown layer 'carrier-pigeon'" in err


pytestmark = pytest.mark.slow
