"""The demo's base handler and its small SQLite database of users and files."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from webframe import RequestHandler

THEMES = ("light", "dark", "contrast")


class PageHandler(RequestHandler):
    """Every demo page: the session is loaded so the layout can show the user and
    flash messages; the theme preference comes from a plain cookie."""

    uses_session: ClassVar[bool] = True

    @property
    def db(self) -> DemoDB:
        db: DemoDB = self.application.settings["demo_db"]
        return db

    def theme(self) -> str:
        value = self.get_cookie("theme", "light")
        return value if value in THEMES else "light"

    def get_template_namespace(self) -> dict[str, Any]:
        ns = super().get_template_namespace()
        ns["theme"] = self.theme()
        return ns


SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    salt BLOB NOT NULL,
    password_hash BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    stored_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_owner ON files (owner_id);
"""


class DemoDB:
    """Users and file records of the demo, in one SQLite file (safe across processes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    # users
    def add_user(self, username: str, salt: bytes, password_hash: bytes) -> int | None:
        """Insert a user; None if the name is taken."""
        try:
            with self._conn() as conn:
                cur = conn.execute(
                    "INSERT INTO users (username, salt, password_hash, created) VALUES (?,?,?,?)",
                    (username, salt, password_hash, time.time()),
                )
                return cur.lastrowid
        except sqlite3.IntegrityError:
            return None

    def user_by_name(self, username: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = (
            self._conn().execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        )
        return row

    def user_by_id(self, user_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = (
            self._conn().execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        )
        return row

    # files
    def add_file(
        self, owner_id: int, name: str, stored_name: str, size: int, ctype: str, sha256: str
    ) -> int:
        with self._conn() as conn:
            cur = conn.execute(
                "INSERT INTO files (owner_id, name, stored_name, size, content_type, sha256,"
                " uploaded) VALUES (?,?,?,?,?,?,?)",
                (owner_id, name, stored_name, size, ctype, sha256, time.time()),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def files_of(self, owner_id: int) -> list[sqlite3.Row]:
        return list(
            self._conn().execute(
                "SELECT * FROM files WHERE owner_id = ? ORDER BY uploaded DESC, id DESC",
                (owner_id,),
            )
        )

    def file_of(self, owner_id: int, file_id: int) -> sqlite3.Row | None:
        """The file ``file_id`` if ``owner_id`` owns it (None otherwise: no leak)."""
        row: sqlite3.Row | None = (
            self._conn()
            .execute("SELECT * FROM files WHERE id = ? AND owner_id = ?", (file_id, owner_id))
            .fetchone()
        )
        return row

    def delete_file(self, owner_id: int, file_id: int) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "DELETE FROM files WHERE id = ? AND owner_id = ?", (file_id, owner_id)
            )
            return cur.rowcount > 0
