"""Public pages of the demo, and a small JSON API showing PUT/PATCH/DELETE."""

from __future__ import annotations

import contextlib
from asyncio import Future
from typing import Any

from webframe import (
    BadRequestError,
    NotFoundError,
    RequestHandler,
    ServiceUnavailableError,
    route,
)

from .base import THEMES, PageHandler


class NotFoundPage(PageHandler):
    """Every URL no route matched (the app's ``default_handler_class``): the 404 page
    in the visitor's theme, with their name in the bar if they are logged in; JSON
    under ``/api/``, like the API's own errors."""

    def check_xsrf_cookie(self) -> None:
        # An unknown URL is a 404 whatever the method: nothing here to protect.
        return None

    def check_trusted_origin(self, origin: str) -> bool:
        # Nothing runs here, so a cross-site POST to an unknown URL is a 404 too.
        return True

    def wants_json(self) -> bool:
        return is_api_path(self.request.path) or super().wants_json()

    async def prepare(self) -> None:
        if not is_api_path(self.request.path):
            # The store is down: still a 404, shown without the user's name.
            with contextlib.suppress(ServiceUnavailableError):
                await self.load_session()
        raise NotFoundError(quiet=True)


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


@route("/", name="home")
class HomeHandler(PageHandler):
    def get(self) -> None:
        self.render("home.html")


@route("/about", name="about")
class AboutHandler(PageHandler):
    def get(self) -> None:
        self.render("about.html")


@route("/hello/{name}", name="hello")
class HelloHandler(PageHandler):
    def get(self, name: str) -> None:
        self.render("hello.html", name=name)


@route("/preferences", name="preferences")
class PreferencesHandler(PageHandler):
    """A display preference kept in a plain cookie: set, shown back, cleared."""

    def get(self) -> None:
        self.render("preferences.html", themes=THEMES, saved="theme" in self.request.cookies)

    def post(self) -> None:
        if self.get_body_argument("action", "save") == "clear":
            self.clear_cookie("theme")
            self.flash("Theme preference cleared.", "info")
        else:
            theme = self.get_body_argument("theme", "")
            if theme not in THEMES:
                raise BadRequestError(f"Choose one of the themes: {', '.join(THEMES)}.")
            self.set_cookie("theme", theme, expires_days=365)
            self.flash(f"Theme set to {theme}.", "success")
        self.redirect(self.reverse_url("preferences"))


class NoteStore:
    """The notes of the JSON API, kept in memory for the life of the process."""

    def __init__(self) -> None:
        self.notes: dict[int, dict[str, Any]] = {}
        self.next_id = 1

    def add(self, text: str) -> dict[str, Any]:
        note = {"id": self.next_id, "text": text}
        self.notes[self.next_id] = note
        self.next_id += 1
        return note


NOTES = NoteStore()


def _note_text(data: Any) -> str:
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise BadRequestError('Send a JSON object like {"text": "..."}.')
    text: str = data["text"].strip()
    if not 1 <= len(text) <= 500:
        raise BadRequestError("A note's text must be 1 to 500 characters long.")
    return text


_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


class JSONAPIHandler(RequestHandler):
    """Base of the API handlers: errors are JSON whatever the client accepts (a plain
    ``curl`` gets ``{"error": ...}`` too), and JSON bodies need no XSRF token."""

    def wants_json(self) -> bool:
        return True

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Future[None]:
        # Every text these handlers finish with is JSON (their answers and errors).
        # Writing <, > and & as \u escapes keeps an echoed '<script>' inert even for a
        # client that reads the answer as HTML; the JSON value is the same.
        if isinstance(chunk, str):
            chunk = chunk.translate(_HTML_SAFE)
        return super().finish(chunk)

    def check_xsrf_cookie(self) -> None:
        # A cross-site page can only send GET/POST forms with form or text bodies; a
        # PUT/DELETE or a Content-Type: application/json needs a CORS preflight, which
        # this server never grants. Everything else (including _method forms) needs the token.
        ctype = self.request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if self.request.method == "POST" and ctype != "application/json":
            super().check_xsrf_cookie()


@route("/api/notes", name="api-notes")
class NotesHandler(JSONAPIHandler):
    """GET the list of notes, POST a new one."""

    def get(self) -> None:
        self.json({"notes": list(NOTES.notes.values())})

    def post(self) -> None:
        note = NOTES.add(_note_text(self.get_json()))
        self.set_header("Location", self.reverse_url("api-note", note_id=note["id"]))
        self.json(note, status=201)


@route("/api/notes/{note_id:int}", name="api-note")
class NoteHandler(JSONAPIHandler):
    """GET, PUT (replace the text) and DELETE one note."""

    def _note(self, note_id: int) -> dict[str, Any]:
        try:
            return NOTES.notes[note_id]
        except KeyError:
            raise NotFoundError(f"There is no note {note_id}.") from None

    def get(self, note_id: int) -> None:
        self.json(self._note(note_id))

    def put(self, note_id: int) -> None:
        note = self._note(note_id)
        note["text"] = _note_text(self.get_json())
        self.json(note)

    def delete(self, note_id: int) -> None:
        self._note(note_id)
        del NOTES.notes[note_id]
        self.set_status(204)
        self.finish()
