"""Accounts: register, log in (new session ID), log out (session invalidated), profile."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re

import tornado.web

from webframe import RateLimiter, route
from webframe.throttle import enforce

from .base import PageHandler

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# scrypt cost: ~50 ms per hash here; run off the event loop.
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
BAD_LOGIN = "Wrong username or password."

# Login attempts, counted in the session store so that every node shares the counts:
# per account (all attempts since its last successful login) and per client address
# (every attempt: one address may try many names). Over a limit: 429 + Retry-After,
# and nothing else runs: no lookup, no password hash.
LOGIN_BY_ACCOUNT = RateLimiter(
    "login-account",
    limit=10,
    window=15 * 60,
    message="Too many login attempts for this account.",
)
LOGIN_BY_ADDRESS = RateLimiter(
    "login-address",
    limit=50,
    window=15 * 60,
    message="Too many login attempts from your network address.",
)


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, **SCRYPT)


async def hash_password(password: str, salt: bytes) -> bytes:
    return await asyncio.get_running_loop().run_in_executor(None, _hash, password, salt)


# Compared against when the user does not exist, so timing does not reveal names.
_DUMMY_SALT = os.urandom(16)


class AccountPage(PageHandler):
    def log_in(self, user_id: int, username: str) -> None:
        # A new session ID at login: an ID planted before login (fixation) is worthless.
        self.session.regenerate()
        self.session["user"] = {"id": user_id, "name": username}


@route("/register", name="register")
class RegisterHandler(AccountPage):
    def get(self) -> None:
        self.render("register.html", username="", error=None)

    async def post(self) -> None:
        username = self.get_body_argument("username", "").strip()
        password = self.get_body_argument("password", "")
        error = None
        if not USERNAME.fullmatch(username):
            error = "Choose a username of 3 to 32 letters, digits, '.', '_' or '-'."
        elif not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            error = f"Choose a password of at least {MIN_PASSWORD} characters."
        if error is None:
            salt = os.urandom(16)
            user_id = await self.db.add_user(username, salt, await hash_password(password, salt))
            if user_id is None:
                error = "That username is taken; choose another."
            else:
                self.log_in(user_id, username)
                self.flash(f"Welcome, {username}! Your account is ready.", "success")
                self.redirect(self.reverse_url("profile"))
                return
        self.set_status(400)
        self.render("register.html", username=username, error=error)


@route("/login", name="login")
class LoginHandler(AccountPage):
    def get(self) -> None:
        self.render("login.html", username="", next_url=self.safe_next_url())

    async def post(self) -> None:
        username = self.get_body_argument("username", "").strip()
        password = self.get_body_argument("password", "")[:MAX_PASSWORD]
        store = self.application.session_store
        account = username.lower()
        await enforce(
            store,
            (LOGIN_BY_ACCOUNT, account),
            (LOGIN_BY_ADDRESS, self.request.remote_ip or "unknown"),
        )
        user = await self.db.user_by_name(username) if USERNAME.fullmatch(username) else None
        salt = user["salt"] if user is not None else _DUMMY_SALT
        digest = await hash_password(password, salt)
        if user is None or not hmac.compare_digest(digest, user["password_hash"]):
            self.flash(BAD_LOGIN, "error")
            self.set_status(400)
            self.render("login.html", username=username, next_url=self.safe_next_url())
            return
        await LOGIN_BY_ACCOUNT.reset(store, account)
        self.log_in(user["id"], user["username"])
        self.flash(f"Welcome back, {user['username']}.", "success")
        self.redirect(self.safe_next_url())


@route("/logout", name="logout")
class LogoutHandler(AccountPage):
    def post(self) -> None:
        self.session.invalidate()
        self.flash("You have been logged out.", "info")
        self.redirect(self.reverse_url("home"))


@route("/profile", name="profile")
class ProfileHandler(AccountPage):
    @tornado.web.authenticated
    async def get(self) -> None:
        user = await self.db.user_by_id(self.current_user["id"])
        if user is None:  # deleted meanwhile
            self.session.invalidate()
            self.redirect(self.get_login_url())
            return
        self.render("profile.html", user=user)
