"""Settings: one dataclass, read from CLI flags > ``WEBFRAME_*`` environment > defaults."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .units import MiB

ENV_PREFIX = "WEBFRAME_"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass
class Settings:
    """Everything an application and its server are configured with.

    Build it directly, or with :meth:`from_sources` which layers CLI flags over
    ``WEBFRAME_<NAME>`` environment variables over defaults. :meth:`validate` is
    called on construction and raises :class:`ConfigurationError` naming the setting.
    """

    debug: bool = False
    #: a string, or ``{version: secret}`` for key rotation (see ``cookie_secret_version``).
    cookie_secret: str | dict[int, str] | None = None
    #: the version in ``cookie_secret`` used to sign new cookies (highest when unset).
    cookie_secret_version: int | None = None
    #: folders; a relative one is read against the app's root folder (``root_path``
    #: of :class:`~webframe.Application`), not the current directory.
    template_path: str = "templates"
    static_path: str = "static"
    static_url_prefix: str = "/static/"
    #: per-deployment files: the generated debug secret, the SQLite session db, uploads.
    instance_path: str = "instance"
    xsrf: bool = True
    #: mark every cookie ``Secure`` even when the request did not arrive over HTTPS.
    secure_cookies: bool = False
    host: str = "127.0.0.1"
    port: int = 8888
    #: worker processes; 0 means one per CPU core.
    processes: int = 1
    #: trust X-Forwarded-For / X-Forwarded-Proto / X-Real-Ip from a reverse proxy.
    xheaders: bool = False
    #: ``asyncio`` or ``uvloop`` (needs ``webframe[fast]``).
    loop: str = "asyncio"
    #: the HTTP connection layer: ``httptools`` (llhttp on asyncio, the default) or
    #: ``tornado`` (Tornado's own ``HTTPServer``).
    http_impl: str = "httptools"
    access_log: bool = True
    #: largest request body on routes that do not set their own limit (bytes).
    max_body_size: int = 10 * MiB
    #: largest upload request (and file) on upload routes without their own limits.
    max_upload_size: int = 100 * MiB
    #: largest body :meth:`RequestHandler.get_json` will parse (bytes).
    max_json_size: int = 1 * MiB
    #: largest request head (start line + headers) in bytes.
    max_header_size: int = 64 * 1024
    #: seconds a keep-alive connection may stay idle.
    idle_connection_timeout: float = 60.0
    #: seconds a client may take to send the headers of a request.
    header_timeout: float = 30.0
    #: seconds a client may take to send a whole request body.
    body_timeout: float = 300.0
    #: seconds in-flight requests get to finish after SIGTERM/SIGINT.
    shutdown_timeout: float = 10.0
    #: a store URL: ``memory://``, ``sqlite:///path.db``, ``redis://host:port/db``,
    #: ``redis+sentinel://host:port,host:port/mastername/db``,
    #: ``redis+cluster://host:port,host:port`` or ``postgresql://user@host/db``
    #: (the list: ``webframe.sessions.registry``); default: SQLite in the instance folder.
    session_store: str | None = None
    session_cookie: str = "session"
    #: seconds of inactivity after which a session ends.
    session_idle_timeout: float = 2 * 3600.0
    #: seconds after which a session ends however active it is.
    session_absolute_timeout: float = 7 * 24 * 3600.0
    #: move a session's idle expiry at most this often (seconds), on reads and on writes.
    session_touch_interval: float = 60.0
    #: seconds a session-store call may take before the request gets a 503.
    session_timeout: float = 2.0
    #: Redis replicas that must acknowledge each session write (Redis ``WAIT``) before
    #: the response; 0 = do not wait.  Redis stores only.
    session_redis_wait: int = 0
    #: where uploads are stored; temporary parts live in ``<upload_path>/.tmp``.
    upload_path: str | None = None
    #: the storage uploads are kept in: ``file:///absolute/path`` or ``s3://bucket/prefix``
    #: (endpoint and keys from ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
    #: ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``); default: the upload folder.
    upload_storage: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every value; raise :class:`ConfigurationError` naming the first bad one."""
        if not 0 <= self.port <= 65535:
            raise ConfigurationError("port", f"{self.port} is not a TCP port (0-65535)")
        if self.processes < 0:
            raise ConfigurationError("processes", "must be 0 (one per core) or a positive number")
        if self.loop not in ("asyncio", "uvloop"):
            raise ConfigurationError("loop", f"{self.loop!r} is not 'asyncio' or 'uvloop'")
        if self.http_impl not in ("httptools", "tornado"):
            raise ConfigurationError(
                "http_impl", f"{self.http_impl!r} is not 'httptools' or 'tornado'"
            )
        for name in ("max_body_size", "max_json_size", "max_header_size", "max_upload_size"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(name, "must be a positive number of bytes")
        for name in (
            "idle_connection_timeout",
            "header_timeout",
            "body_timeout",
            "shutdown_timeout",
            "session_idle_timeout",
            "session_absolute_timeout",
            "session_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(name, "must be a positive number of seconds")
        if self.session_redis_wait < 0:
            raise ConfigurationError(
                "session_redis_wait", "must be 0 (do not wait) or a number of Redis replicas"
            )
        if self.session_touch_interval < 0:
            raise ConfigurationError("session_touch_interval", "must not be negative")
        if not self.static_url_prefix.startswith("/") or not self.static_url_prefix.endswith("/"):
            raise ConfigurationError("static_url_prefix", "must start and end with '/'")
        if self.upload_storage is not None:
            _check_storage_url(self.upload_storage)
        secret = self.cookie_secret
        if isinstance(secret, dict):
            if not secret:
                raise ConfigurationError("cookie_secret", "the key-rotation mapping is empty")
            for version, value in secret.items():
                _check_secret(value, f"cookie_secret[{version}]")
            if self.cookie_secret_version is not None and self.cookie_secret_version not in secret:
                raise ConfigurationError(
                    "cookie_secret_version",
                    f"{self.cookie_secret_version} is not a version in cookie_secret "
                    f"(have {sorted(secret)})",
                )
        elif secret is not None:
            _check_secret(secret, "cookie_secret")

    @classmethod
    def from_sources(
        cls,
        cli: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Layer ``cli`` (values not None) over ``WEBFRAME_*`` in ``env`` over ``defaults``."""
        env = os.environ if env is None else env
        names = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for name, value in (defaults or {}).items():
            if name not in names:
                raise ConfigurationError(name, "is not a webframe setting")
            values[name] = value
        for key, raw in env.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key[len(ENV_PREFIX) :].lower()
            if name not in names or name == "extra":
                # Other tools share the prefix (e.g. WEBFRAME_REQUIRE_SERVICES in CI).
                continue
            values[name] = _parse(name, str(names[name].type), raw)
        for name, value in (cli or {}).items():
            if value is None:
                continue
            if name not in names:
                raise ConfigurationError(name, "is not a webframe setting")
            values[name] = value
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - a wrongly typed default
            raise ConfigurationError("settings", str(exc)) from exc

    @property
    def upload_dir(self) -> str:
        """Where uploads are stored: ``upload_path``, else ``<instance_path>/uploads``."""
        return self.upload_path or os.path.join(self.instance_path, "uploads")

    def resolve_paths(self, root: str | os.PathLike[str]) -> Settings:
        """A copy whose relative ``template_path``, ``static_path``, ``instance_path``
        and ``upload_path`` are made absolute against ``root`` (the app's root folder);
        called by :class:`~webframe.Application`, so a relative path means the same
        folder whichever directory the app is started from."""
        base = os.path.abspath(root)
        changes: dict[str, Any] = {}
        for name in ("template_path", "static_path", "instance_path", "upload_path"):
            value = getattr(self, name)
            if value:
                path = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
                if path != value:
                    changes[name] = path
        return self.replace(**changes) if changes else self

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


def _check_storage_url(url: str) -> None:
    """Refuse an ``upload_storage`` URL whose form is wrong (the app builds the storage)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigurationError(
                "upload_storage", f"{url!r}: use file:///absolute/path (three slashes)"
            )
    elif scheme == "s3":
        if not parts.netloc:
            raise ConfigurationError(
                "upload_storage", f"{url!r}: name the bucket: s3://bucket/prefix"
            )
    else:
        raise ConfigurationError(
            "upload_storage", f"{url!r}: use file:///absolute/path or s3://bucket/prefix"
        )


def _check_secret(value: object, name: str) -> None:
    if not isinstance(value, str) or len(value) < 16:
        raise ConfigurationError(
            name, "must be a string of at least 16 characters (use secrets.token_hex(32))"
        )


def _parse(name: str, type_name: str, raw: str) -> Any:
    """Turn the text of an environment variable into the setting's type."""
    text = raw.strip()
    try:
        if type_name == "bool":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(f"{raw!r} is not a yes/no value (use 1/0, true/false, on/off)")
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
        if type_name == "int | None":
            return int(text) if text else None
        if name == "cookie_secret":
            return _parse_secret(text)
        if type_name.endswith("| None"):
            return text or None
        return raw
    except ValueError as exc:
        raise ConfigurationError(name, f"cannot read {ENV_PREFIX}{name.upper()}: {exc}") from exc


def _parse_secret(text: str) -> str | dict[int, str] | None:
    """A plain secret, or a JSON object ``{"1": "old", "2": "new"}`` for key rotation."""
    if not text:
        return None
    if text.startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object of version: secret")
        return {int(k): str(v) for k, v in data.items()}
    return text
