"""Pluggable storage for uploaded files: local disk (the default) or S3-compatible.

``from_url("file:///srv/uploads")`` or ``from_url("s3://bucket/prefix")`` gives a
:class:`Storage`; see :mod:`webframe.storage.base` for the interface::

    storage = from_url("s3://media/uploads")       # AWS_* variables: endpoint, keys
    async with await storage.open_sink("a/b.png", content_type="image/png") as sink:
        async for chunk in body:                    # bytes as they arrive
            await sink.write(chunk)
        info = await sink.commit()                  # size, etag, sha256, ...
    # leaving the block without commit() (error, cancel) aborts: nothing is left

    async with await storage.open_read("a/b.png", 0, 1024) as reader:  # end exclusive
        async for chunk in reader:
            ...
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from webframe.errors import ConfigurationError
from webframe.storage.base import (
    InvalidKeyError,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectReader,
    RangeNotSatisfiableError,
    Sink,
    Storage,
    StorageFullError,
    StorageUnavailableError,
    UnsupportedOperationError,
    check_key,
)

__all__ = [
    "InvalidKeyError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectReader",
    "RangeNotSatisfiableError",
    "Sink",
    "Storage",
    "StorageFullError",
    "StorageUnavailableError",
    "UnsupportedOperationError",
    "check_key",
    "from_url",
]

SETTING = "upload_storage"


def from_url(
    url: str,
    *,
    environ: Mapping[str, str] | None = None,
    setting: str = SETTING,
    **options: Any,
) -> Storage:
    """Build the storage a URL names; raise :class:`ConfigurationError` naming ``setting``.

    - ``file:///absolute/path``: :class:`~webframe.storage.local.LocalStorage`
      (the folder is created if missing).
    - ``s3://bucket`` or ``s3://bucket/prefix``:
      :class:`~webframe.storage.s3.S3Storage`; endpoint, region and credentials
      come from ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``),
      ``AWS_DEFAULT_REGION`` (or ``AWS_REGION``), ``AWS_ACCESS_KEY_ID`` and
      ``AWS_SECRET_ACCESS_KEY`` in ``environ`` (default: ``os.environ``); with no
      keys there, botocore's usual chain (``~/.aws``, instance roles) applies.
      Query parameters (``?part_size=16MiB&addressing_style=path``) and keyword
      ``options`` set the other :class:`S3Storage` arguments; keywords win.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                setting, f"{url!r}: a file URL needs three slashes and an absolute path"
            )
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ConfigurationError(setting, f"{url!r}: the path must be absolute")
        if query:
            raise ConfigurationError(setting, f"{url!r}: file URLs take no parameters")
        from webframe.storage.local import LocalStorage

        return LocalStorage(Path(path), create=bool(options.pop("create", True)), **options)
    if scheme == "s3":
        from webframe.storage.s3 import S3Storage, parse_options

        env = os.environ if environ is None else environ
        bucket = parts.netloc
        prefix = unquote(parts.path).strip("/")
        settings: dict[str, Any] = {
            "endpoint_url": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            "region": env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION"),
            "access_key": env.get("AWS_ACCESS_KEY_ID"),
            "secret_key": env.get("AWS_SECRET_ACCESS_KEY"),
            "session_token": env.get("AWS_SESSION_TOKEN"),
        }
        settings.update(parse_options(query, setting))
        settings.update(options)
        return S3Storage(bucket, prefix, setting=setting, **settings)
    raise ConfigurationError(
        setting, f"{url!r}: unknown storage scheme; use file:///path or s3://bucket/prefix"
    )
