"""webframe/sessions/mixin.py: the end of a response that has a session.

One state (``ResponseEnd``) decides whether finish() saves first, returns the save
already under way, or finishes at once; these tests drive each path and count the
store's writes and the handler's runs.
"""

from __future__ import annotations

from typing import Any

from tornado.concurrent import Future

from tests.store_doubles import CountingStore
from webframe import Application, RequestHandler
from webframe.sessions import open_store
from webframe.sessions.mixin import ResponseEnd
from webframe.testing import WebTestCase, test_settings

HITS: list[str] = []
SEEN: dict[str, Any] = {}


class TwiceHandler(RequestHandler):
    """finish() called again while the first one waits for the save."""

    def get(self) -> Future[None]:
        self.session["k"] = "twice"
        first = self.finish("body")
        SEEN["waiting"] = self._end
        second = self.finish()
        SEEN["same"] = first is second
        return first


class FlushHandler(RequestHandler):
    """An un-awaited flush() then finish(): one save, before the first byte."""

    def get(self) -> None:
        self.session["k"] = "flushed"
        self.write("a")
        self.flush()
        self.write("b")


class PrepareFinishHandler(RequestHandler):
    """finish() in prepare with a changed session: the method must never run."""

    def prepare(self) -> None:
        self.session["k"] = "prepared"
        self.finish("stopped")

    def get(self) -> None:
        HITS.append("get ran")


class PlainHandler(RequestHandler):
    """A session read but not changed: nothing to save, finish settles at once."""

    uses_session = True

    def get(self) -> None:
        SEEN["value"] = self.session.get("k")
        self.finish("plain")
        SEEN["settled"] = self._end


class ResponseEndTest(WebTestCase):
    xsrf_path = None

    def get_app(self) -> Application:
        app = Application(
            [
                ("/twice", TwiceHandler),
                ("/flush", FlushHandler),
                ("/prepare", PrepareFinishHandler),
                ("/plain", PlainHandler),
            ],
            test_settings(),
        )
        self.store = CountingStore(open_store("memory://"))
        app._store = self.store
        return app

    def setUp(self) -> None:
        super().setUp()
        HITS.clear()
        SEEN.clear()

    def saved(self) -> Any:
        sid = self.store.calls[-1][1]
        record = self.io_loop.run_sync(lambda: self.store.load(sid))
        return record.data["k"] if record is not None else None

    def test_a_second_finish_while_saving_gets_the_same_future(self) -> None:
        r = self.fetch("/twice")
        assert r.code == 200 and r.body == b"body"
        assert SEEN == {"waiting": ResponseEnd.WAITING, "same": True}
        assert self.store.writes == ["save"]
        assert self.saved() == "twice"

    def test_flush_then_finish_save_once_before_the_first_byte(self) -> None:
        r = self.fetch("/flush")
        assert r.code == 200 and r.body == b"ab"
        assert "session=" in r.headers.get("Set-Cookie", "")
        assert self.store.writes == ["save"]
        assert self.saved() == "flushed"

    def test_finish_in_prepare_saves_and_the_method_never_runs(self) -> None:
        r = self.fetch("/prepare")
        assert r.code == 200 and r.body == b"stopped"
        assert HITS == []
        assert self.saved() == "prepared"

    def test_nothing_to_save_settles_without_a_store_write(self) -> None:
        assert self.fetch("/twice").code == 200
        self.store.calls.clear()
        r = self.fetch("/plain")
        assert r.code == 200 and r.body == b"plain"
        assert (SEEN["value"], SEEN["settled"]) == ("twice", ResponseEnd.SETTLED)
        assert self.store.writes == []
