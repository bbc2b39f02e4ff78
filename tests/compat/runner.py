"""Run Tornado's own test suite (from the installed tornado package) against webframe.

Run it as a script, in its own process (it changes what names Tornado's test modules
see, and that must never leak into a pytest process)::

    python tests/compat/runner.py --mode substituted --output /tmp/subst.json
    python tests/compat/runner.py --mode import --modules tornado.test.web_test

Modes
-----
``import``
    ``import webframe`` first, then Tornado's suite unchanged. Importing webframe must
    change nothing in Tornado: every test passes (or skips as it does plain).

``substituted``
    webframe's ``RequestHandler`` and ``Application`` stand in for Tornado's in the
    test modules. How, so that the substitution is real but Tornado itself is untouched:

    1. ``webframe`` and every non-test ``tornado.*`` module are imported first, so that
       Tornado's own classes (``ErrorHandler``, ``StaticFileHandler``,
       ``RedirectHandler``, ``WebSocketHandler``, ...) are built on Tornado's
       ``RequestHandler``, and Tornado's internals keep their own module globals.
    2. The ``tornado.test.*`` modules are imported while ``sys.modules["tornado.web"]``
       and the ``tornado.web`` attribute of the ``tornado`` package are a *proxy
       module*: it answers ``RequestHandler`` with :class:`webframe.RequestHandler`,
       ``Application`` with :class:`TornadoStyleApplication` and every other name from
       the real ``tornado.web``. So ``from tornado.web import RequestHandler`` binds
       webframe's class in the test module's namespace, module-level handler classes
       are built on it, and a module that did ``from tornado import web`` keeps the
       proxy, so its ``web.RequestHandler`` lookups at run time get webframe's too.
       The real ``tornado.web`` module object is never modified.
    3. The proxy is then taken out of ``sys.modules`` and the package again, and
       :func:`check_substitution` verifies the outcome (webframe classes in the test
       namespaces and in their handler classes' bases; Tornado's own handlers and
       ``tornado.web`` unchanged). A failed check stops the run with exit status 2.

    ``TornadoStyleApplication`` maps Tornado's ``Application(handlers, default_host,
    transforms, **settings)`` onto webframe's ``Application(routes, Settings,
    **tornado_settings)``: the Settings take Tornado's defaults where the two differ
    (``debug`` and ``xsrf_cookies`` off, no template or static folder) or the test's
    values; sessions go to ``memory://``; relative paths are read against an empty temp
    folder; a cookie secret is supplied when the test gives none; and the test's own
    settings are all passed on as Tornado settings (so they win).

Layers
------
``--layer tornado`` (the default) serves the tests on Tornado's ``HTTPServer``. Any
other connection layer is selected the way Tornado's own ``runtests --httpserver``
does it: ``HTTPServer.configure(cls)``, so every ``HTTPServer(...)`` the tests build
(``AsyncHTTPTestCase.get_http_server`` included) is an instance of ``cls``. ``--layer
NAME`` looks ``cls`` up in :data:`LAYERS`; ``--layer package.module:Class`` names it
directly. ``cls`` must subclass ``tornado.httpserver.HTTPServer``.

Output
------
JSON: the mode, layer, versions, counts and ``results``: test id -> ``{"outcome":
"pass"|"fail"|"error"|"skip", "message": first lines of the failure or the skip
reason}``. As in Tornado's ``runtests`` (which fails a run that logged anything), a test
that logs at INFO or above (outside ``ExpectLog``) or writes to stderr fails, with
"unexpected log output" in its message. A few of Tornado's tests are timing-sensitive
(a 0.1 s request timeout fails on a busy machine), so a failing test is re-run on its own
up to twice (``--rerun``); one that then passes is recorded as a pass with ``"flaky":
true`` and listed under ``flaky``.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import inspect
import io
import json
import logging
import os
import pkgutil
import platform
import shutil
import sys
import tempfile
import time
import traceback
import types
import unittest
import warnings
from collections.abc import Iterator
from typing import Any, TextIO

MODES = ("import", "substituted")
#: connection layers by name: ``module:Class`` of a ``tornado.httpserver.HTTPServer``
#: subclass (None: Tornado's own HTTPServer).
LAYERS: dict[str, str | None] = {
    "tornado": None,
    "httptools": "webframe.server.httptools_server:HTTPToolsServer",
}
#: a secret for apps whose test gives none (webframe requires one outside debug).
COMPAT_SECRET = "webframe-compat-suite-cookie-secret-0123456789"
#: the message Tornado's abstract base test classes skip with (not real skips).
ABSTRACT_SKIP = "abstract base class"
#: lines of a failure kept in the JSON.
MESSAGE_LINES = 14
MESSAGE_CHARS = 2000


# --------------------------------------------------------------------------- modules


def test_modules() -> list[str]:
    """The module list of Tornado's ``runtests`` (doctests included)."""
    from tornado.test.runtests import TEST_MODULES

    return list(TEST_MODULES)


def preimport_tornado() -> None:
    """Import every non-test tornado module, so none is first imported via the proxy."""
    import tornado

    for info in pkgutil.walk_packages(tornado.__path__, "tornado."):
        if info.name == "tornado.test" or info.name.startswith("tornado.test."):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:
            continue  # an optional backend (pycurl, twisted, pycares) is missing
    # The test package's helpers define no handlers; import them with Tornado's names.
    importlib.import_module("tornado.test.util")
    importlib.import_module("tornado.test.runtests")


# --------------------------------------------------------------------- substitution


def make_application_class() -> type:
    """webframe's Application with Tornado's constructor (see the module docstring)."""
    import webframe
    from webframe import Settings

    instance = tempfile.mkdtemp(prefix="webframe-compat-")
    atexit.register(shutil.rmtree, instance, True)
    # Relative paths in Settings are read against root_path where webframe has it: the
    # empty temp folder, so nothing (templates/, static/) comes from the checkout.
    takes_root = "root_path" in inspect.signature(webframe.Application.__init__).parameters
    extra: dict[str, Any] = {"root_path": instance} if takes_root else {}

    class TornadoStyleApplication(webframe.Application):
        """``Application(handlers, default_host, transforms, **settings)`` on webframe."""

        def __init__(
            self,
            handlers: Any = None,
            default_host: str | None = None,
            transforms: Any = None,
            **settings: Any,
        ) -> None:
            secret = settings.get("cookie_secret")
            wf = Settings(
                debug=bool(settings.get("debug", False)),
                cookie_secret=secret if _usable_secret(secret) else COMPAT_SECRET,
                xsrf=bool(settings.get("xsrf_cookies", False)),
                instance_path=instance,
                session_store="memory://",
            )
            # Tornado's defaults where webframe's differ: no template or static folder
            # unless the test names one (Tornado then reads templates beside the handler).
            settings.setdefault("template_path", None)
            if default_host is not None:
                settings["default_host"] = default_host
            if transforms is not None:
                settings["transforms"] = transforms
            super().__init__(list(handlers or ()), wf, **extra, **settings)

    TornadoStyleApplication.__module__ = __name__
    TornadoStyleApplication.__qualname__ = "TornadoStyleApplication"
    return TornadoStyleApplication


def _usable_secret(secret: object) -> bool:
    """Whether webframe's Settings accept ``secret`` (else it is passed to Tornado only)."""
    if isinstance(secret, str):
        return len(secret) >= 16
    if isinstance(secret, dict):
        return bool(secret) and all(isinstance(v, str) and len(v) >= 16 for v in secret.values())
    return False


class WebProxy(types.ModuleType):
    """Stands for ``tornado.web`` in the test modules: two names replaced, the rest real."""

    def __init__(self, real: types.ModuleType, overrides: dict[str, Any]) -> None:
        super().__init__(real.__name__, real.__doc__)
        self.__dict__.update(overrides)
        self.__dict__["__wrapped_module__"] = real
        self.__dict__["__file__"] = getattr(real, "__file__", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["__wrapped_module__"], name)


def import_substituted(modules: list[str]) -> dict[str, Any]:
    """Import ``modules`` with webframe's classes substituted; return what was used."""
    import tornado
    import tornado.web

    import webframe

    preimport_tornado()
    app_class = make_application_class()
    real_web = tornado.web
    proxy = WebProxy(
        real_web, {"RequestHandler": webframe.RequestHandler, "Application": app_class}
    )
    already = [m for m in modules if m.startswith("tornado.test.") and m in sys.modules]
    if already:
        raise RuntimeError(f"test modules imported before substitution: {already}")
    sys.modules["tornado.web"] = proxy
    tornado.web = proxy  # type: ignore[attr-defined]
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:
                # "tornado.httputil.doctests" is a function, not a module: loaded later.
                if not _is_attribute_path(name):
                    raise
    finally:
        sys.modules["tornado.web"] = real_web
        tornado.web = real_web  # type: ignore[attr-defined]
    return {"RequestHandler": webframe.RequestHandler, "Application": app_class, "proxy": proxy}


def _is_attribute_path(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


def check_substitution(modules: list[str], used: dict[str, Any]) -> list[str]:
    """Problems with the substitution (empty when it is real and Tornado is untouched)."""
    import tornado.web
    from tornado.websocket import WebSocketHandler

    import webframe

    problems: list[str] = []
    wf_handler, wf_app, proxy = used["RequestHandler"], used["Application"], used["proxy"]
    if sys.modules["tornado.web"] is proxy or tornado.web is proxy:
        problems.append("the tornado.web proxy is still installed")
    if tornado.web.RequestHandler is wf_handler or tornado.web.Application is wf_app:
        problems.append("tornado.web itself was modified")
    for own in (
        tornado.web.ErrorHandler,
        tornado.web.StaticFileHandler,
        tornado.web.RedirectHandler,
        WebSocketHandler,
    ):
        if issubclass(own, webframe.RequestHandler):
            problems.append(f"Tornado's {own.__name__} was built on webframe's handler")
    handler_names = 0
    subclassed = 0
    for name in modules:
        module = sys.modules.get(name)
        if module is None or not name.startswith("tornado.test."):
            continue
        ns = vars(module)
        if "RequestHandler" in ns:
            handler_names += 1
            if ns["RequestHandler"] is not wf_handler:
                problems.append(f"{name}.RequestHandler is not webframe's")
        if "Application" in ns and ns["Application"] is not wf_app:
            problems.append(f"{name}.Application is not the webframe adapter")
        web = ns.get("web")
        if (
            isinstance(web, types.ModuleType)
            and web.__name__ == "tornado.web"
            and web.RequestHandler is not wf_handler
        ):
            problems.append(f"{name}.web.RequestHandler is not webframe's")
        for value in ns.values():
            if (
                isinstance(value, type)
                and value.__module__ == name
                and issubclass(value, tornado.web.RequestHandler)
                and issubclass(value, webframe.RequestHandler)
            ):
                subclassed += 1
    if handler_names == 0 or subclassed == 0:
        problems.append(
            f"nothing was substituted ({handler_names} modules name RequestHandler, "
            f"{subclassed} module-level handlers are webframe handlers)"
        )
    used["stats"] = {"modules_substituted": handler_names, "module_level_handlers": subclassed}
    return problems


# ----------------------------------------------------------------------------- layers


def install_layer(layer: str) -> str | None:
    """Make every ``HTTPServer(...)`` of the tests use ``layer``; return its class path."""
    path = LAYERS.get(layer, layer)
    if path is None:
        return None
    if ":" not in path:
        known = ", ".join(LAYERS)
        raise ValueError(f"unknown layer {layer!r}: use {known} or package.module:Class")
    from tornado.httpserver import HTTPServer

    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, HTTPServer)):
        raise TypeError(f"{module_name}.{attr} is not a tornado.httpserver.HTTPServer subclass")
    HTTPServer.configure(cls)
    return f"{module_name}.{attr}"


# ---------------------------------------------------------------------------- results


class LogRecorder(logging.Handler):
    """Counts records that reach the root logger (what ExpectLog did not swallow)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 3:
            try:
                text = record.getMessage()
            except Exception:
                text = str(record.msg)
            self.first.append(
                f"{record.levelname} {record.name}: {text.splitlines()[0][:200]}"
                if text
                else f"{record.levelname} {record.name}"
            )

    def take(self) -> tuple[int, list[str]]:
        count, first = self.count, self.first
        self.count, self.first = 0, []
        return count, first


class CountingStream(io.TextIOBase):
    """Stands for sys.stderr: anything the tests write there counts against them."""

    def __init__(self, real: TextIO) -> None:
        self.real = real
        self.written: list[str] = []

    def write(self, data: str) -> int:
        self.written.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> str:
        text = "".join(self.written)
        self.written = []
        return text


def short(text: str) -> str:
    """The first lines of a failure: the exception and the innermost frames."""
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    if len(lines) > MESSAGE_LINES:
        # Keep the last frame and the exception: they say what went wrong.
        lines = [*lines[:1], "...", *lines[-(MESSAGE_LINES - 2) :]]
    out = "\n".join(lines)
    return out if len(out) <= MESSAGE_CHARS else out[: MESSAGE_CHARS - 3] + "..."


class Recorder(unittest.TestResult):
    """Records one outcome per test id (sub-test failures count for their test)."""

    def __init__(self, logs: LogRecorder, stderr: CountingStream) -> None:
        super().__init__()
        self.logs = logs
        self.stderr = stderr
        self.results: dict[str, dict[str, Any]] = {}
        self._current: dict[str, Any] | None = None
        self._current_id = ""
        self._started = time.monotonic()

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self.logs.take()
        self.stderr.take()
        self._current = {"outcome": "pass", "message": ""}
        self._current_id = test_id(test)
        self._started = time.monotonic()

    def _set(self, test: Any, outcome: str, message: str, own: bool = True) -> None:
        tid = test_id(test)
        entry = self.results.get(tid) or self._entry(tid)
        if own and outcome in ("fail", "error"):
            entry["own_failure"] = True
        if entry["outcome"] in ("fail", "error") and outcome in ("fail", "error"):
            entry["message"] = short(entry["message"] + "\n" + message)
        else:
            entry["outcome"], entry["message"] = outcome, message
        self.results[tid] = entry

    def _entry(self, tid: str) -> dict[str, Any]:
        """The record of the running test, or a new one (class and module fixtures)."""
        if tid == self._current_id and self._current is not None:
            return self._current
        return {"outcome": "pass", "message": ""}

    def _err(self, test: Any, err: Any) -> str:
        return short("".join(traceback.format_exception(*err)))

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self.results.setdefault(test_id(test), self._entry(test_id(test)))

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._set(test, "fail", self._err(test, err))

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        self._set(test, "error", self._err(test, err))

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            outcome = "fail" if issubclass(err[0], test.failureException) else "error"
            message = self._err(test, err)
            desc = subtest._subDescription()
            entry = self.results.get(test_id(test)) or self._entry(test_id(test))
            # Each failing sub-test is also its own unit ("<test id> <description>"),
            # so an allow-list can name one case of a table-driven test.
            entry.setdefault("subtests", {})[desc] = {"outcome": outcome, "message": message}
            self.results[test_id(test)] = entry
            self._set(test, outcome, f"{desc} " + message, own=False)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        if reason == ABSTRACT_SKIP:
            return
        self._set(test, "skip", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._set(test, "pass", "expected failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._set(test, "fail", "unexpected success of an expectedFailure test")

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        count, first = self.logs.take()
        written = self.stderr.take()
        tid = test_id(test)
        entry = self.results.setdefault(tid, self._entry(tid))
        entry["seconds"] = round(time.monotonic() - self._started, 3)
        if entry["outcome"] == "skip" or not (count or written):
            return
        noise = []
        if count:
            noise.append(f"{count} log record(s) at INFO+: " + " | ".join(first))
        if written:
            noise.append(f"{len(written)} chars on stderr: {written.strip()[:300]!r}")
        note = "unexpected log output: " + "; ".join(noise)
        if entry["outcome"] == "pass":
            entry["outcome"], entry["message"] = "fail", note
            entry["own_failure"] = True
        else:
            entry["message"] = short(entry["message"] + "\n" + note)


def test_id(test: Any) -> str:
    """A test's id; class or module fixture errors get their ``setUpClass (...)`` id."""
    return str(test.id())


def iter_tests(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from iter_tests(item)
    else:
        yield suite


# ------------------------------------------------------------------------------- main


def configure_like_runtests() -> None:
    """The warning and logging set-up of ``tornado.test.runtests.main``."""
    warnings.filterwarnings("error")
    warnings.filterwarnings("ignore", category=ImportWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("error", category=DeprecationWarning, module=r"tornado\..*")
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
    warnings.filterwarnings("error", category=PendingDeprecationWarning, module=r"tornado\..*")
    logging.getLogger("tornado.access").setLevel(logging.CRITICAL)
    root = logging.getLogger()
    root.setLevel(logging.INFO)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load and run the suite in ``args.mode``; the JSON report as a dict."""
    started = time.monotonic()
    configure_like_runtests()
    for name in args.silence:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    modules = args.modules.split(",") if args.modules else test_modules()
    report: dict[str, Any] = {
        "mode": args.mode,
        "layer": args.layer,
        "modules": modules,
        "silenced": args.silence,
    }
    import webframe  # both modes: importing webframe must change nothing by itself

    if args.mode == "substituted":
        used = import_substituted(modules)
        problems = check_substitution(modules, used)
        report["substitution"] = {"problems": problems, **used.get("stats", {})}
        if problems:
            report["error"] = "substitution check failed: " + "; ".join(problems)
            return report
    report["server_class"] = install_layer(args.layer)

    import tornado

    report["versions"] = {
        "tornado": tornado.version,
        "webframe": webframe.__version__,
        "python": platform.python_version(),
    }
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(modules)
    if args.k:
        suite = unittest.TestSuite(t for t in iter_tests(suite) if args.k in t.id())

    logs = LogRecorder()
    logging.getLogger().addHandler(logs)
    stderr = CountingStream(sys.stderr)
    real_stderr = sys.stderr
    sys.stderr = stderr
    try:
        result = Recorder(logs, stderr)
        suite.run(result)
        rerun = [tid for tid, e in result.results.items() if e["outcome"] in ("fail", "error")]
        flaky: list[str] = []
        for _ in range(args.rerun):
            again: list[str] = []
            for tid in rerun:
                if tid.startswith(("setUpClass", "tearDownClass", "setUpModule")):
                    again.append(tid)
                    continue
                second = Recorder(logs, stderr)
                loader.loadTestsFromName(tid).run(second)
                entry = second.results.get(tid)
                if entry is not None and entry["outcome"] == "pass":
                    first = result.results[tid]
                    first.pop("own_failure", None)
                    first.pop("subtests", None)
                    first.update(
                        outcome="pass",
                        flaky=True,
                        message="failed, then passed when re-run alone: " + first["message"],
                    )
                    flaky.append(tid)
                else:
                    again.append(tid)
            rerun = again
    finally:
        sys.stderr = real_stderr
        logging.getLogger().removeHandler(logs)
    counts: dict[str, int] = {"pass": 0, "fail": 0, "error": 0, "skip": 0}
    for entry in result.results.values():
        counts[entry["outcome"]] += 1
    report.update(
        counts=counts,
        total=len(result.results),
        flaky=sorted(flaky),
        seconds=round(time.monotonic() - started, 1),
        results=dict(sorted(result.results.items())),
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument(
        "--layer",
        default="tornado",
        help=f"connection layer: {', '.join(LAYERS)} (default tornado) or package.module:Class",
    )
    parser.add_argument("--output", help="write the JSON report here (default: stdout)")
    parser.add_argument(
        "--modules", help="comma-separated test modules (default: all of Tornado's runtests)"
    )
    parser.add_argument("-k", help="only tests whose id contains this text")
    parser.add_argument(
        "--silence",
        action="append",
        default=[],
        metavar="LOGGER",
        help="diagnostics only: set LOGGER to CRITICAL (to see what else fails)",
    )
    parser.add_argument(
        "--rerun", type=int, default=2, help="times a failing test is re-run alone (default 2)"
    )
    args = parser.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=1, sort_keys=False)
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.output)
    else:
        print(text)
    if "error" in report:
        print(report["error"], file=sys.stderr)
        return 2
    counts = report["counts"]
    print(
        f"{args.mode} on {args.layer}: {report['total']} tests, {counts['pass']} passed, "
        f"{counts['fail']} failed, {counts['error']} errors, {counts['skip']} skipped, "
        f"{len(report['flaky'])} flaky, {report['seconds']} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
