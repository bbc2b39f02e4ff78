"""What an Application works out from its :class:`~webframe.Settings` at start-up:
its root folder, the checked folders, the session store and upload storage URLs,
and the Tornado application settings.

Every check raises :class:`~webframe.ConfigurationError` naming the setting, so a
mistake stops the app before it serves.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .errors import ConfigurationError
from .handler import NotFoundHandler
from .settings import Settings
from .storage import Storage


def tornado_options(s: Settings, secret: Any, version: int | None) -> dict[str, Any]:
    """The Tornado application settings for ``s`` (paths already resolved), signed
    with ``secret`` (see :func:`webframe.signing.resolve_cookie_secret`)."""
    options: dict[str, Any] = {
        "debug": s.debug,
        # Code reloading is the CLI's business; an app built in tests never re-execs.
        "autoreload": False,
        "cookie_secret": secret,
        "template_path": s.template_path,
        "xsrf_cookies": s.xsrf,
        "default_handler_class": NotFoundHandler,
        "autoescape": "xhtml_escape",
        "static_url_prefix": s.static_url_prefix,
    }
    if version is not None:
        options["key_version"] = version
    if s.static_path and os.path.isdir(s.static_path):
        options["static_path"] = s.static_path
    return options


def default_root_path() -> str:
    """The root folder of an app built without ``root_path``: where the code calling
    ``Application(...)`` lives.

    It is the folder of that caller's source file; when that folder is a package (it
    has an ``__init__.py``), the folder holding the outermost package instead, which
    in webframe's layout (``handlers/`` beside ``templates/``, ``static/`` and
    ``instance/``) is the project folder. webframe's own frames are skipped, so a
    factory in ``handlers/__init__.py`` or a test in ``tests/`` both give the project
    folder. With no source file (an interactive session), the current directory.
    """
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] == (
        "webframe"
    ):
        frame = frame.f_back  # type: ignore[assignment]
    filename = frame.f_globals.get("__file__") if frame is not None else None
    if not isinstance(filename, str) or not filename:
        return os.getcwd()
    folder = os.path.dirname(os.path.abspath(filename))
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def check_paths(s: Settings, template_path: str) -> None:
    """Refuse a template folder (``template_path`` as given, before resolving) other
    than the default, or an SQLite session folder, that does not exist."""
    from .sessions.registry import scheme_of

    if (
        template_path
        and template_path != Settings.template_path
        and not os.path.isdir(s.template_path)
    ):
        raise ConfigurationError(
            "template_path",
            f"the folder {s.template_path} does not exist (a relative template_path is "
            "read against the app's root folder: give an absolute path, or root_path= "
            "to Application)",
        )
    url = s.session_store or ""
    if scheme_of(url) == "sqlite":
        rest = url.partition("://")[2]
        path = rest[1:].partition("?")[0] if rest.startswith("/") else ""
        if path and path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise ConfigurationError(
                    "session_store",
                    f"the folder {folder} of the SQLite database does not exist; create it, "
                    "or leave session_store unset for sessions.db in the instance folder",
                )


def upload_storage(s: Settings) -> Storage:
    """The storage of the ``upload_storage`` setting; by default the upload folder
    (created when the first upload arrives, as before)."""
    from .storage import from_url
    from .storage.local import LocalStorage

    if s.upload_storage is None:
        return LocalStorage(s.upload_dir, create=False)
    return from_url(s.upload_storage)


def session_store_url(s: Settings) -> str:
    """The store URL (default: SQLite in the instance folder), checked at start-up
    against the one scheme table (`webframe.sessions.registry`)."""
    from .sessions.registry import check_store_url, scheme_of

    url = s.session_store or "sqlite:///" + os.path.abspath(
        os.path.join(s.instance_path, "sessions.db")
    )
    if s.session_redis_wait:
        if not scheme_of(url).startswith("redis"):
            raise ConfigurationError(
                "session_redis_wait",
                "needs a Redis session_store (redis://, rediss://, redis+sentinel:// or "
                "redis+cluster://: Redis WAIT for replicas); set it to 0 for other stores",
            )
        url += ("&" if "?" in url else "?") + f"wait_replicas={s.session_redis_wait}"
    try:
        check_store_url(url)
    except (ValueError, ImportError) as exc:
        raise ConfigurationError("session_store", str(exc)) from None
    return url
